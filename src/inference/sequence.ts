import type { Tokenizer } from "../models/types.js";
import type { Sampler, SampleResult, TokenLogprobs as RawLogprobs } from "../engine/sampling/index.js";
import { StreamDetokenizer } from "./detokenizer.js";
import type { ResolvedRequest } from "./request.js";
import type { FinishReason, GenerationResult, GenerationTimings, TokenEvent, TokenLogprobs } from "./result.js";
import { StopMatcher } from "./stop.js";

/**
 * One request's generation as a state machine, driven by the one-at-a-time loop (generator.ts) and
 * by the batch scheduler (batch-scheduler.ts): it is handed each sampled token (or the logits to
 * sample it from, with its own sampler), streams text and decides when it is done. Stop tokens end
 * the turn unshown, stop strings are never streamed in part, text is UTF-8-safe, max tokens hold.
 */
export class Sequence {
  readonly tokens: number[] = [];
  private readonly detok: StreamDetokenizer | undefined;
  private readonly stopper: StopMatcher;
  private readonly stopIds: Set<number>;
  private readonly logprobs: TokenLogprobs[] | undefined;
  private text = "";
  private decodeStart = 0;
  private decodeSteps = 0;
  private prefillStart = 0;
  /** The sampled token the next decode step feeds; undefined while prefilling or once done. */
  pending: number | undefined;
  result: GenerationResult | undefined;
  readonly timings: GenerationTimings;

  constructor(
    readonly request: ResolvedRequest,
    readonly prompt: readonly number[],
    private readonly maxTokens: number,
    /** Samples logits handed in; without one, callers hand in sampled tokens. */
    private readonly sampler: Sampler | undefined,
    private readonly tokenizer: Tokenizer | undefined,
    private readonly onToken: ((event: TokenEvent) => void) | undefined,
    /** performance.now() when the request arrived (time to first token counts from here). */
    private readonly t0: number,
  ) {
    this.detok = tokenizer ? new StreamDetokenizer(tokenizer, prompt) : undefined;
    this.stopper = new StopMatcher(request.stop);
    this.stopIds = new Set(request.stopTokenIds ?? tokenizer?.stopIds ?? []);
    this.logprobs = request.logprobs !== null ? [] : undefined;
    this.timings = { promptTokens: prompt.length, cachedTokens: 0, prefillMs: 0, prefillTps: 0, firstTokenMs: 0, generatedTokens: 0, decodeMs: 0, decodeTps: 0 };
  }

  get done(): boolean {
    return this.result !== undefined;
  }

  /** The first prefill chunk is about to run. */
  startPrefill(cached: number): void {
    this.timings.cachedTokens = cached;
    this.prefillStart = performance.now();
  }

  /** The last prompt chunk ran (its logits or sampled token follow through take()). */
  endPrefill(): void {
    this.timings.prefillMs = performance.now() - this.prefillStart;
    this.timings.prefillTps = rate(this.prompt.length - this.timings.cachedTokens, this.timings.prefillMs);
  }

  /** A decode step ran the pending token (its logits or sampled token follow through take()). */
  decoded(): void {
    this.decodeSteps++;
  }

  /** Ends the generation as cancelled (between steps). */
  cancel(): void {
    if (!this.done) this.finish("cancelled");
  }

  /**
   * The next token: sampled here from logits, or sampled already (and accepted into its penalty
   * window) by the caller. Sets `pending` when the generation goes on, else `result`.
   */
  take(next: Float32Array | SampleResult): void {
    this.pending = undefined;
    let sampled: SampleResult;
    if (next instanceof Float32Array) {
      if (!this.sampler) throw new Error("Sequence.take: logits without a sampler");
      sampled = this.sampler.sample(next);
      this.sampler.accept(sampled.token);
    } else {
      sampled = next;
    }
    const { token } = sampled;
    if (this.tokens.length === 0) {
      this.timings.firstTokenMs = performance.now() - this.t0;
      this.decodeStart = performance.now();
    }
    if (this.stopIds.has(token)) return this.finish("stop", { token });
    this.tokens.push(token);
    const lp = sampled.logprobs && this.withText(sampled.logprobs);
    if (lp) this.logprobs?.push(lp);
    const shown = this.stopper.push(this.detok ? this.detok.push(token) : "");
    this.emit({ token, text: shown.text, ...(lp ? { logprobs: lp } : {}) });
    if (shown.stop !== undefined) return this.finish("stop", { string: shown.stop });
    if (this.tokens.length >= this.maxTokens) return this.finish("length");
    this.pending = token;
  }

  private emit(event: TokenEvent): void {
    this.text += event.text;
    this.onToken?.(event);
  }

  private withText(lp: RawLogprobs): TokenLogprobs {
    const text = (token: number) => this.tokenizer?.decode([token]) ?? "";
    return { token: lp.token, text: text(lp.token), logprob: lp.logprob, top: lp.top.map((t) => ({ token: t.token, text: text(t.token), logprob: t.logprob })) };
  }

  private finish(finishReason: FinishReason, stoppedBy?: GenerationResult["stoppedBy"]): void {
    this.pending = undefined;
    if (this.decodeSteps > 0) {
      this.timings.decodeMs = performance.now() - this.decodeStart;
      this.timings.decodeTps = rate(this.decodeSteps, this.timings.decodeMs);
    }
    // Release what the detokenizer and the stop matcher still hold, unless a stop string has
    // already cut the text (whatever follows it is dropped).
    if (!(stoppedBy && "string" in stoppedBy)) {
      const held = this.stopper.push(this.detok?.flush() ?? "");
      if (held.stop !== undefined) {
        finishReason = "stop";
        stoppedBy = { string: held.stop };
      }
      const rest = held.stop !== undefined ? held.text : held.text + this.stopper.flush();
      if (rest) this.emit({ text: rest });
    }
    this.timings.generatedTokens = this.tokens.length;
    this.result = {
      tokens: this.tokens,
      text: this.text,
      finishReason,
      ...(stoppedBy ? { stoppedBy } : {}),
      ...(this.logprobs ? { logprobs: this.logprobs } : {}),
      seed: this.request.sampling.seed,
      timings: this.timings,
    };
  }
}

function rate(n: number, ms: number): number {
  return ms > 0 ? (n * 1000) / ms : 0;
}
