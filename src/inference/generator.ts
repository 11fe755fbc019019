import { TesseraError } from "../errors.js";
import type { Tokenizer } from "../models/types.js";
import { samplesItself, type Stepper } from "../engine/types.js";
import { Sampler, type ResolvedSamplingParams, type SampleResult, type TokenLogprobs as RawLogprobs } from "../engine/sampling/index.js";
import { StreamDetokenizer } from "./detokenizer.js";
import { InferenceError } from "./errors.js";
import { promptTokens } from "./prompt.js";
import type { ResolvedRequest } from "./request.js";
import type { FinishReason, GenerationResult, GenerationTimings, PromptInfo, TokenEvent, TokenLogprobs } from "./result.js";
import { StopMatcher } from "./stop.js";

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

  /** The sampler's logprobs with each token's text (a token alone may decode to part of a character). */
  private withText(lp: RawLogprobs): TokenLogprobs {
    const text = (token: number) => this.tokenizer?.decode([token]) ?? "";
    return { token: lp.token, text: text(lp.token), logprob: lp.logprob, top: lp.top.map((t) => ({ token: t.token, text: text(t.token), logprob: t.logprob })) };
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
    const params = req.sampling;
    const seed = params.seed;
    const next = this.sampling(params, { logprobs: req.logprobs ?? undefined }, prompt);

    // Reuse the cached prefix; at least one prompt token must run to get logits.
    let keep = commonPrefix(this.cached, prompt);
    if (keep === prompt.length) keep--;
    // (a stepper that ran tokens behind this Generator's back holds more than it knows of)
    if (keep < this.cached.length || stepper.position !== this.cached.length) {
      stepper.truncate(keep);
      this.cached.length = keep;
    }

    onPrompt?.({ promptTokens: prompt.length, cachedTokens: keep });

    const tokens: number[] = [];
    const logprobs: TokenLogprobs[] | undefined = req.logprobs !== null ? [] : undefined;
    let text = "";
    const emit = (event: TokenEvent) => {
      text += event.text;
      onToken?.(event);
    };
    const timings: GenerationTimings = {
      promptTokens: prompt.length,
      cachedTokens: keep,
      prefillMs: 0,
      prefillTps: 0,
      firstTokenMs: 0,
      generatedTokens: 0,
      decodeMs: 0,
      decodeTps: 0,
    };
    const finish = (finishReason: FinishReason, stoppedBy?: GenerationResult["stoppedBy"]): GenerationResult => {
      // Release what the detokenizer and the stop matcher still hold, unless a stop string has
      // already cut the text (whatever follows it is dropped).
      if (!(stoppedBy && "string" in stoppedBy)) {
        const held = stopper.push(detok?.flush() ?? "");
        if (held.stop !== undefined) {
          finishReason = "stop";
          stoppedBy = { string: held.stop };
        }
        const rest = held.stop !== undefined ? held.text : held.text + stopper.flush();
        if (rest) emit({ text: rest });
      }
      timings.generatedTokens = tokens.length;
      return { tokens, text, finishReason, ...(stoppedBy ? { stoppedBy } : {}), ...(logprobs ? { logprobs } : {}), seed, timings };
    };

    const detok = this.tokenizer ? new StreamDetokenizer(this.tokenizer, prompt) : undefined;
    const stopper = new StopMatcher(req.stop);
    const stopIds = new Set(req.stopTokenIds ?? this.tokenizer?.stopIds ?? []);

    // Prefill in chunks, so a long prompt can be cancelled and the memory of one step stays bounded.
    const tp = performance.now();
    let sampled: SampleResult | undefined;
    for (let at = keep; at < prompt.length; at += this.prefillChunk) {
      if (signal?.aborted) return finish("cancelled");
      const chunk = Int32Array.from(prompt.slice(at, at + this.prefillChunk));
      const last = at + this.prefillChunk >= prompt.length;
      if (last) sampled = next(chunk);
      else if (samplesItself(stepper)) stepper.prefill(chunk);
      else stepper.forward(chunk);
      this.cached.push(...chunk);
      if (!last) await yieldToEventLoop();
    }
    timings.prefillMs = performance.now() - tp;
    timings.prefillTps = rate(prompt.length - keep, timings.prefillMs);
    if (!sampled) throw new Error("Generator: prefill produced no token");

    let decodeStart = 0;
    let decodeSteps = 0;
    for (;;) {
      if (signal?.aborted) return finishDecode("cancelled");
      const { token } = sampled;
      const lp = sampled.logprobs && this.withText(sampled.logprobs);
      if (tokens.length === 0) {
        timings.firstTokenMs = performance.now() - t0;
        decodeStart = performance.now();
      }
      if (stopIds.has(token)) return finishDecode("stop", { token });
      tokens.push(token);
      if (lp) logprobs?.push(lp);
      const piece = detok ? detok.push(token) : "";
      const shown = stopper.push(piece);
      emit({ token, text: shown.text, ...(lp ? { logprobs: lp } : {}) });
      if (shown.stop !== undefined) return finishDecode("stop", { string: shown.stop });
      if (tokens.length >= maxTokens) return finishDecode("length");
      await yieldToEventLoop();
      if (signal?.aborted) return finishDecode("cancelled");
      sampled = next(Int32Array.of(token));
      this.cached.push(token);
      decodeSteps++;
    }

    function finishDecode(reason: FinishReason, stoppedBy?: GenerationResult["stoppedBy"]): GenerationResult {
      if (decodeSteps > 0) {
        timings.decodeMs = performance.now() - decodeStart;
        timings.decodeTps = rate(decodeSteps, timings.decodeMs);
      }
      return finish(reason, stoppedBy);
    }
  }
}

function rate(n: number, ms: number): number {
  return ms > 0 ? (n * 1000) / ms : 0;
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
