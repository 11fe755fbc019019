/**
 * Sampling parameters of one request, all set (src/inference/sampling.ts fills defaults and checks
 * ranges). The order the sampler applies them in (and why):
 *   1. penalties on the raw logits of tokens in the last `penaltyLastN` tokens (prompt included,
 *      as llama.cpp does): repetition (llama.cpp/HF: a positive logit is divided by the penalty,
 *      a negative one multiplied), then OpenAI frequency/presence: logit -= count·frequency +
 *      (count > 0)·presence;
 *   2. temperature 0 → greedy: the argmax of the penalized logits, nothing else applies;
 *   3. otherwise softmax at the temperature (as HF/vLLM/OpenAI: the filters below see the tempered
 *      distribution), top-k, then top-p over the renormalized top-k (smallest prefix whose mass
 *      reaches p, the crossing token included), then min-p (keep p ≥ minP · p_max);
 *   4. draw from what is left with the request's seeded PRNG.
 */
export interface ResolvedSamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP: number;
  /** In [0, 1]; 0 = off. */
  minP: number;
  /** > 0; 1 = off. */
  repetitionPenalty: number;
  /** OpenAI range [-2, 2]; 0 = off. */
  presencePenalty: number;
  /** OpenAI range [-2, 2]; 0 = off. */
  frequencyPenalty: number;
  /** Window of recent tokens the penalties look at; -1 = the whole sequence. */
  penaltyLastN: number;
  /** Same seed ⇒ same tokens. */
  seed: number;
}

export function hasPenalties(p: ResolvedSamplingParams): boolean {
  return p.penaltyLastN !== 0 && (p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0);
}
