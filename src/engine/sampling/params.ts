import { TesseraError } from "../../errors.js";

/**
 * Sampling parameters of one request. The order the sampler applies them in (and why):
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
export interface SamplingParams {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP?: number;
  /** In [0, 1]; 0 = off. */
  minP?: number;
  /** > 0; 1 = off. */
  repetitionPenalty?: number;
  /** OpenAI range [-2, 2]; 0 = off. */
  presencePenalty?: number;
  /** OpenAI range [-2, 2]; 0 = off. */
  frequencyPenalty?: number;
  /** Window of recent tokens the penalties look at; -1 = the whole sequence. Default 64. */
  penaltyLastN?: number;
  /** Same seed ⇒ same tokens. Default: a random seed. */
  seed?: number;
}

export type ResolvedSamplingParams = Required<SamplingParams>;

export const DEFAULT_SAMPLING: Omit<ResolvedSamplingParams, "seed"> = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
};

function check(ok: boolean, what: string, value: unknown): void {
  if (!ok) throw new TesseraError(`${what}, got ${String(value)}`, "sampling");
}

/** Fills defaults and rejects values outside their ranges with one clear TesseraError. */
export function resolveSamplingParams(p: SamplingParams = {}, seed: number): ResolvedSamplingParams {
  const r: ResolvedSamplingParams = { ...DEFAULT_SAMPLING, seed, ...stripUndefined(p) };
  check(Number.isFinite(r.temperature) && r.temperature >= 0, "temperature must be a number ≥ 0", r.temperature);
  check(Number.isInteger(r.topK) && r.topK >= 0, "topK must be an integer ≥ 0", r.topK);
  check(Number.isFinite(r.topP) && r.topP > 0 && r.topP <= 1, "topP must be in (0, 1]", r.topP);
  check(Number.isFinite(r.minP) && r.minP >= 0 && r.minP <= 1, "minP must be in [0, 1]", r.minP);
  check(Number.isFinite(r.repetitionPenalty) && r.repetitionPenalty > 0, "repetitionPenalty must be > 0", r.repetitionPenalty);
  check(Number.isFinite(r.presencePenalty), "presencePenalty must be a number", r.presencePenalty);
  check(Number.isFinite(r.frequencyPenalty), "frequencyPenalty must be a number", r.frequencyPenalty);
  check(Number.isInteger(r.penaltyLastN) && r.penaltyLastN >= -1, "penaltyLastN must be an integer ≥ -1", r.penaltyLastN);
  check(Number.isInteger(r.seed) && r.seed >= 0 && r.seed <= 0xffffffff, "seed must be an integer in [0, 2^32)", r.seed);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export function hasPenalties(p: ResolvedSamplingParams): boolean {
  return p.penaltyLastN !== 0 && (p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0);
}
