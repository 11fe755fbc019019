import type { ResolvedSamplingParams, SampleResult } from "./sampling/index.js";

/**
 * The engine's contract with the generation loop, the runner and the CLI.
 * A Stepper owns one sequence's KV cache and runs tokens through (a shard of) the model.
 * `forward` is synchronous (ORT's run() is): call it off the main event loop (worker thread or
 * runner process).
 */

export type Device = "cpu" | "webgpu" | "cuda";

export interface EngineOptions {
  /** Intra-op threads; default: physical cores. */
  threads?: number;
  device?: Device;
  /** KV cache capacity in tokens (prompt + generated). */
  contextLength?: number;
  /**
   * Sequences decoded together (continuous batching; one process only): the KV store holds this
   * many slots of contextLength each, fewer when memory does not allow. Default 1: no batching.
   */
  slots?: number;
  /** Called as the model loads (not across threads: EngineWorker.start takes its own). */
  onProgress?: (p: LoadProgress) => void;
}

/**
 * How far a model load is: `done` of `total` bytes of stored weights read and converted; then
 * phase "session" while onnxruntime builds its sessions (done = total).
 */
export interface LoadProgress {
  done: number;
  total: number;
  phase: "weights" | "session";
}

export interface Stepper {
  readonly vocabSize: number;
  /** KV capacity in tokens. */
  readonly contextLength: number;
  /** Tokens cached so far (the position the next forward starts at). */
  readonly position: number;
  /**
   * Runs `tokens` at positions [position, position + n) and appends them to the KV cache.
   * Returns the logits of the last token ([vocab]), or of every token ([n × vocab]) with allLogits.
   * Throws TesseraError when the tokens would overflow the context.
   */
  forward(tokens: Int32Array, opts?: { allLogits?: boolean }): Float32Array;
  /** Forgets cached positions ≥ pos (truncate(0) starts a new sequence). */
  truncate(pos: number): void;
  dispose(): Promise<void>;
}

/**
 * A stepper that samples where its logits are: a sharded model samples on its last stage, so a
 * decode step sends one token (and its logprobs) back over the network, not vocabulary-sized
 * logits (a 152k vocabulary is 608 KB per token). The generation loop uses it when a stepper has
 * it, and otherwise samples forward()'s logits itself; both give the same tokens for one seed.
 */
export interface SamplingStepper extends Stepper {
  /** Starts a request: its parameters (seed included), logprobs count, and the whole prompt, which feeds the penalty window. */
  beginSampling(params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): void;
  /** forward(tokens), then the token sampled from the last one's logits, already accepted into the penalty window. */
  forwardSample(tokens: Int32Array): SampleResult;
  /**
   * Runs tokens into the KV cache and returns nothing, possibly before they are computed: a pipeline
   * keeps consecutive prefill chunks in flight. A failure surfaces at the next call.
   */
  prefill(tokens: Int32Array): void;
}

export function samplesItself(s: Stepper): s is SamplingStepper {
  const c = s as Partial<SamplingStepper>;
  return typeof c.beginSampling === "function" && typeof c.forwardSample === "function" && typeof c.prefill === "function";
}

/** One decode step's work for a slot: the token whose successor it wants. */
export interface DecodeEntry {
  slot: number;
  token: number;
}

/**
 * Many sequences over one model (continuous batching): a KV store of `slots` sequences, each with
 * its own length. `decode` advances several slots by one token in one run; `prefill` runs a chunk
 * of one slot's prompt. Synchronous, like Stepper.forward.
 */
export interface BatchStepper {
  readonly vocabSize: number;
  /** KV capacity of each slot in tokens. */
  readonly contextLength: number;
  readonly slots: number;
  /** Tokens cached in the slot. */
  length(slot: number): number;
  /** Logits of the chunk's last token ([vocab]) after appending it to the slot. */
  prefill(slot: number, tokens: Int32Array): Float32Array;
  /** One token per entry, one run: [entries × vocab] logits, row i for entries[i]. */
  decode(entries: readonly DecodeEntry[]): Float32Array;
  /**
   * Decode steps that can compute at once (a pipeline's stages: each works on a different step).
   * Above 1, startDecode sends a step without waiting and finishDecode takes the oldest one's
   * logits (as decode returns them); other calls may come between them.
   */
  readonly depth?: number;
  startDecode?(entries: readonly DecodeEntry[]): void;
  finishDecode?(): Float32Array;
  /** Forgets the slot's cached positions ≥ pos. */
  truncate(slot: number, pos: number): void;
  dispose(): void;
  /**
   * Sampling where the logits are, when the stepper has it (a sharded model samples on its last
   * stage): a step then returns each row's token, not vocabulary-sized logits.
   */
  readonly sampling?: BatchSampling;
}

/**
 * A BatchStepper's steps sampled where the logits are. After `begin(slot, …)` the slot's sampler
 * holds the request's parameters and penalty window; each call below runs like the BatchStepper's
 * own and returns the tokens sampled from its logits (already accepted into each slot's window).
 * One seed gives the same tokens as sampling the logits where they are returned.
 */
export interface BatchSampling {
  begin(slot: number, params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): void;
  /** prefill(slot, tokens), then the token sampled from its last one. */
  prefill(slot: number, tokens: Int32Array): SampleResult;
  /** decode(entries), then the token sampled for each entry, in entry order. */
  decode(entries: readonly DecodeEntry[]): SampleResult[];
  startDecode?(entries: readonly DecodeEntry[]): void;
  finishDecode?(): SampleResult[];
}
