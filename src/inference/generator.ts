import { TesseraError } from "../errors.js";
import type { Tokenizer } from "../models/types.js";
import { samplesItself, type Stepper } from "../engine/types.js";
import { Sampler, type ResolvedSamplingParams, type SampleResult } from "../engine/sampling/index.js";
import { InferenceError } from "./errors.js";
import { promptTokens } from "./prompt.js";
import type { ResolvedRequest } from "./request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "./result.js";
import { Sequence } from "./sequence.js";

export interface GenerateOptions {
  /** Once the prompt is tokenized and fits: nothing about the request can be refused after this. */
  onPrompt?: (info: PromptInfo) => void;
  onToken?: (event: TokenEvent) => void;
  /** Checked between steps (prefill chunks and decode tokens). */
  signal?: AbortSignal;
}

export interface GeneratorOptions {
  /** Tokens per prefill forward. Default 512. */
  prefillChunk?: number;
}

const DEFAULT_PREFILL_CHUNK = 512;

/** Lets the thread's event loop run (messages such as a cancel) between two synchronous steps. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Drives one Stepper: prompt → tokens, one request at a time. It remembers which tokens the KV
 * cache holds, so a request that starts with the previous conversation only computes what is new.
 */
export class Generator {
  private sampler: Sampler | undefined;
  /** Tokens whose keys/values the stepper holds, in order. */
  private cached: number[] = [];
  private busy = false;
  private readonly prefillChunk: number;

  constructor(
    readonly stepper: Stepper,
    private readonly tokenizer?: Tokenizer,
    opts: GeneratorOptions = {},
  ) {
    this.prefillChunk = opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) {
      throw new TesseraError(`prefill chunk must be an integer ≥ 1, got ${this.prefillChunk}`);
    }
  }

  /** Forgets the cached sequence (call after using the stepper directly). */
  reset(): void {
    this.cached = [];
    this.stepper.truncate(0);
  }

  /**
   * Starts a request's sampling and returns its step: run tokens, get the next one (accepted into
   * the penalty window). A stepper that samples itself does it where its logits are.
   */
  private sampling(params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): (tokens: Int32Array) => SampleResult {
    const stepper = this.stepper;
    if (samplesItself(stepper)) {
      stepper.beginSampling(params, opts, prompt);
      return (tokens) => stepper.forwardSample(tokens);
    }
    const vocab = stepper.vocabSize;
    if (!this.sampler || this.sampler.vocabSize !== vocab) this.sampler = new Sampler(vocab, params, opts);
    else this.sampler.reset(params, opts);
    const sampler = this.sampler;
    for (const t of prompt) sampler.accept(t);
    return (tokens) => {
      const r = sampler.sample(stepper.forward(tokens));
      sampler.accept(r.token);
      return r;
    };
  }

  async generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    if (this.busy) throw new Error("Generator.generate: one request at a time");
    this.busy = true;
    try {
      return await this.run(req, opts);
    } catch (e) {
      // A failed step may leave the cache anywhere: start clean next time.
      this.cached = [];
      try {
        this.stepper.truncate(0);
      } catch {
        // the stepper is broken; the next request will report it
      }
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private async run(req: ResolvedRequest, { onPrompt, onToken, signal }: GenerateOptions): Promise<GenerationResult> {
    const t0 = performance.now();
    const stepper = this.stepper;
    const prompt = promptTokens(req.input, this.tokenizer);
    const maxTokens = checkRequest(req, prompt, stepper);
    const next = this.sampling(req.sampling, { logprobs: req.logprobs ?? undefined }, prompt);

    // Reuse the cached prefix; at least one prompt token must run to get logits.
    let keep = commonPrefix(this.cached, prompt);
    if (keep === prompt.length) keep--;
    // (a stepper that ran tokens behind this Generator's back holds more than it knows of)
    if (keep < this.cached.length || stepper.position !== this.cached.length) {
      stepper.truncate(keep);
      this.cached.length = keep;
    }

    onPrompt?.({ promptTokens: prompt.length, cachedTokens: keep });
    // sampling happens in next() (here or where the logits are): the sequence is handed tokens
    const seq = new Sequence(req, prompt, maxTokens, undefined, this.tokenizer, onToken, t0);
    seq.startPrefill(keep);

    // Prefill in chunks, so a long prompt can be cancelled and the memory of one step stays bounded.
    let sampled: SampleResult | undefined;
    for (let at = keep; at < prompt.length; at += this.prefillChunk) {
      if (signal?.aborted) return cancelled(seq);
      const chunk = Int32Array.from(prompt.slice(at, at + this.prefillChunk));
      const last = at + this.prefillChunk >= prompt.length;
      if (last) sampled = next(chunk);
      else if (samplesItself(stepper)) stepper.prefill(chunk);
      else stepper.forward(chunk);
      this.cached.push(...chunk);
      if (!last) await yieldToEventLoop();
    }
    seq.endPrefill();
    if (!sampled) throw new Error("Generator: prefill produced no token");
    if (signal?.aborted) return cancelled(seq);
    seq.take(sampled);

    while (seq.pending !== undefined) {
      await yieldToEventLoop();
      if (signal?.aborted) return cancelled(seq);
      const token = seq.pending;
      sampled = next(Int32Array.of(token));
      this.cached.push(token);
      seq.decoded();
      seq.take(sampled);
    }
    return seq.result!;
  }
}

function cancelled(seq: Sequence): GenerationResult {
  seq.cancel();
  return seq.result!;
}

export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Validates a request's prompt against the stepper; returns the effective max tokens (never past the context). */
export function checkRequest(req: ResolvedRequest, prompt: readonly number[], stepper: Pick<Stepper, "contextLength" | "vocabSize">): number {
  const ctx = stepper.contextLength;
  const vocab = stepper.vocabSize;
  if (prompt.length === 0) throw new InferenceError("invalid_request", "the prompt has no tokens", { param: "prompt" });
  for (const t of prompt) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new InferenceError("invalid_request", `prompt token ${String(t)} is not in the vocabulary [0, ${vocab})`, { param: "prompt" });
  }
  if (prompt.length >= ctx) {
    throw new InferenceError("context_overflow", `the prompt has ${prompt.length} tokens, the context holds ${ctx}: nothing left to generate`);
  }
  return Math.min(req.maxTokens ?? Infinity, ctx - prompt.length);
}
