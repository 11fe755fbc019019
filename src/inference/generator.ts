import { TesseraError } from "../errors.js";
import type { Tokenizer } from "../models/types.js";
import { samplesItself, type Stepper } from "../engine/types.js";
import { Sampler, resolveSamplingParams, randomSeed, type ResolvedSamplingParams, type SampleResult, type SamplingParams, type TokenLogprobs } from "../engine/sampling/index.js";
import { StreamDetokenizer } from "./detokenizer.js";
import { StopMatcher } from "./stop.js";

/** The one request shape every API adapter (OpenAI, Ollama, Anthropic, CLI) turns its input into. */
export interface GenerationRequest extends SamplingParams {
  promptTokens: number[];
  /** Default: whatever room the context has left after the prompt. */
  maxTokens?: number;
  /** Generation ends before any of these strings; the string itself is not part of the text. */
  stop?: string[];
  /** Generation ends when one of these is sampled (it is not part of tokens or text). */
  stopTokenIds?: number[];
  /** Report log-probabilities with this many alternatives per token (0: the chosen token only). */
  logprobs?: number;
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

export interface GenerateOptions {
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

  async generate(req: GenerationRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
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

  private async run(req: GenerationRequest, { onToken, signal }: GenerateOptions): Promise<GenerationResult> {
    const t0 = performance.now();
    const stepper = this.stepper;
    const prompt = req.promptTokens;
    const maxTokens = checkRequest(req, stepper);
    const seed = req.seed ?? randomSeed();
    const params = resolveSamplingParams(pickSampling(req), seed);
    const next = this.sampling(params, { logprobs: req.logprobs }, prompt);

    // Reuse the cached prefix; at least one prompt token must run to get logits.
    let keep = commonPrefix(this.cached, prompt);
    if (keep === prompt.length) keep--;
    // (a stepper that ran tokens behind this Generator's back holds more than it knows of)
    if (keep < this.cached.length || stepper.position !== this.cached.length) {
      stepper.truncate(keep);
      this.cached.length = keep;
    }

    const tokens: number[] = [];
    const logprobs: TokenLogprobs[] | undefined = req.logprobs !== undefined ? [] : undefined;
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
    const stopper = new StopMatcher(req.stop ?? []);
    const stopIds = new Set(req.stopTokenIds ?? []);

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
      const { token, logprobs: lp } = sampled;
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

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function pickSampling(r: GenerationRequest): SamplingParams {
  const { temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, penaltyLastN } = r;
  return { temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, penaltyLastN };
}

/** Validates a request against the stepper; returns the effective max tokens. */
function checkRequest(req: GenerationRequest, stepper: Stepper): number {
  const prompt = req.promptTokens;
  const ctx = stepper.contextLength;
  const vocab = stepper.vocabSize;
  if (!Array.isArray(prompt) || prompt.length === 0) throw new TesseraError("the prompt has no tokens", "request");
  for (const t of prompt) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new TesseraError(`prompt token ${String(t)} is not in the vocabulary [0, ${vocab})`, "request");
  }
  if (prompt.length >= ctx) {
    throw new TesseraError(`the prompt has ${prompt.length} tokens, the context holds ${ctx}: nothing left to generate (raise --ctx)`, "request");
  }
  const maxTokens = req.maxTokens ?? ctx - prompt.length;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new TesseraError(`max tokens must be an integer ≥ 1, got ${String(req.maxTokens)}`, "request");
  if (prompt.length + maxTokens > ctx) {
    throw new TesseraError(
      `prompt (${prompt.length} tokens) + max tokens (${maxTokens}) = ${prompt.length + maxTokens} exceeds the context of ${ctx} tokens`,
      "request",
    );
  }
  for (const s of req.stop ?? []) if (typeof s !== "string" || s.length === 0) throw new TesseraError("stop strings must be non-empty strings", "request");
  for (const t of req.stopTokenIds ?? []) if (!Number.isInteger(t)) throw new TesseraError(`stop token id ${String(t)} is not an integer`, "request");
  if (req.logprobs !== undefined && (!Number.isInteger(req.logprobs) || req.logprobs < 0 || req.logprobs > vocab)) {
    throw new TesseraError(`logprobs must be an integer in [0, ${vocab}], got ${String(req.logprobs)}`, "request");
  }
  if (req.seed !== undefined && (!Number.isInteger(req.seed) || req.seed < 0 || req.seed > 0xffffffff)) {
    throw new TesseraError(`seed must be an integer in [0, 2^32), got ${String(req.seed)}`, "request");
  }
  return maxTokens;
}
