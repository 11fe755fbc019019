import assert from "node:assert/strict";
import type { Llama, LlamaContextSequence } from "node-llama-cpp";
import type { ModelSource } from "../../../src/models/types.js";
import { createStepper } from "../../../src/engine/session/stepper.js";

/**
 * Our engine and llama.cpp (node-llama-cpp) run greedily in lockstep on the same GGUF from the same
 * prompt. node-llama-cpp exposes probabilities, not raw logits, so log-probabilities (logits minus
 * their log-sum-exp) are compared; they differ from logits only by a per-step constant.
 */
export const PROBS = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } } as const;

export function logSoftmax(l: Float32Array): Float32Array {
  let m = -Infinity;
  for (const v of l) m = Math.max(m, v);
  let s = 0;
  for (const v of l) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return l.map((v) => v - lse);
}

export function argmax(l: Float32Array): number {
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
  return best;
}

export async function llamaStep(seq: LlamaContextSequence, tokens: number[]): Promise<Map<number, number>> {
  const input = tokens.map((t, i) => (i === tokens.length - 1 ? ([t, PROBS] as const) : t));
  const out = await seq.controlledEvaluate(input as never);
  const probs = out[tokens.length - 1]?.next.probabilities;
  assert.ok(probs, "llama.cpp returned no probabilities");
  return probs;
}

export interface Lockstep {
  /** llama.cpp's greedy tokens. */
  tokens: number[];
  /** Per step: the largest |log-prob difference| over llama.cpp's `top` most likely tokens. */
  errors: number[];
  /** Steps where the greedy tokens differ. */
  mismatches: number[];
}

/**
 * Prompt, then `steps` greedy steps, both engines fed llama.cpp's token each time. `src` is opened by
 * the caller (so it may adjust its config for negative controls).
 */
export async function lockstep(llama: Llama, src: ModelSource, prompt: number[], steps: number, opts: { top?: number; context?: number } = {}): Promise<Lockstep> {
  const top = opts.top ?? 20;
  const context = opts.context ?? 96;
  const ours = await createStepper(src, { threads: 1, contextLength: context });
  const model = await llama.loadModel({ modelPath: src.path, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: context, batchSize: 64, threads: { ideal: 1, min: 1 } });
  try {
    const seq = ctx.getSequence();
    let mine = logSoftmax(ours.forward(Int32Array.from(prompt)));
    let theirs = await llamaStep(seq, prompt);
    const out: Lockstep = { tokens: [], errors: [], mismatches: [] };
    for (let step = 0; step < steps; step++) {
      const [best] = theirs.keys();
      if (argmax(mine) !== best) out.mismatches.push(step);
      let k = 0;
      let err = 0;
      for (const [tok, p] of theirs) {
        if (k++ >= top) break;
        err = Math.max(err, Math.abs(Math.log(p) - mine[tok]!));
      }
      out.errors.push(err);
      out.tokens.push(best!);
      mine = logSoftmax(ours.forward(Int32Array.of(best!)));
      theirs = await llamaStep(seq, [best!]);
    }
    return out;
  } finally {
    await ours.dispose();
    await ctx.dispose();
    await model.dispose();
  }
}
