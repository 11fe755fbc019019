/**
 * What a generation gives back: stream events while it runs, one result at the end. Plain data
 * (structured-clone and JSON safe), so they cross the worker boundary and the node-to-node stream.
 */

export interface LogprobAlternative {
  token: number;
  /** The token's own text (its bytes decoded alone: may be U+FFFD for part of a character). */
  text: string;
  /** Log-softmax of the raw logits (before penalties, temperature and filters). */
  logprob: number;
}

export interface TokenLogprobs extends LogprobAlternative {
  /** The most likely tokens, best first (as many as the request asked for). */
  top: LogprobAlternative[];
}

/** Sent once per generation, after the prompt is tokenized and checked and before it is computed. */
export interface PromptInfo {
  /** Prompt length in tokens (after the chat template). */
  promptTokens: number;
  /** Of those, already in the KV cache from the previous request. */
  cachedTokens: number;
}

export interface TokenEvent {
  /**
   * The generated token; absent on the last event of a generation when it only carries text that
   * was held back (an incomplete character, or a stop-string prefix that turned out not to be one).
   */
  token?: number;
  /** Text this event adds to the output ("" while a character or a possible stop string is incomplete). */
  text: string;
  logprobs?: TokenLogprobs;
}

/** stop: a stop token or string; length: max tokens or the context is full; cancelled: the client went away. */
export type FinishReason = "stop" | "length" | "cancelled";

export interface GenerationTimings {
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Of those, how many were already in the KV cache from the previous request (not recomputed). */
  cachedTokens: number;
  prefillMs: number;
  /** Prompt tokens computed per second of prefill. */
  prefillTps: number;
  /** From the start of the request to the first sampled token. */
  firstTokenMs: number;
  generatedTokens: number;
  /** Time of the decode steps (one forward + one sample each) after the first token. */
  decodeMs: number;
  decodeTps: number;
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  /** What stopped it, when finishReason is "stop". */
  stoppedBy?: { token: number } | { string: string };
  logprobs?: TokenLogprobs[];
  /** The seed used (the request's, or the random one drawn for it). */
  seed: number;
  timings: GenerationTimings;
}
