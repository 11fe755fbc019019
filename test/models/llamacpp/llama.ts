import { getLlama, type Llama, type LlamaModel, type Token } from "node-llama-cpp";

/**
 * Shared llama.cpp (node-llama-cpp) access for tests: one Llama instance per process, CPU only,
 * never building from source.
 */
let instance: Promise<Llama> | undefined;

export function llama(): Promise<Llama> {
  instance ??= getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: "error" as never });
  return instance;
}

export async function withModel<T>(path: string, fn: (model: LlamaModel) => Promise<T>): Promise<T> {
  const model = await (await llama()).loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

export interface GreedyRun {
  tokens: number[];
  /** top-1 minus top-2 log-probability (= logit difference) at each step */
  margins: number[];
}

/** Greedy decoding of `steps` tokens after `prompt`, with the top-1/top-2 margin of every step. */
export async function greedy(model: LlamaModel, prompt: number[], steps: number): Promise<GreedyRun> {
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: { ideal: 1, min: 1 } });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    const margins: number[] = [];
    const want = { generateNext: { probabilities: true } };
    let res = await seq.controlledEvaluate(prompt.map((t, i) => (i === prompt.length - 1 ? [t as Token, want] : (t as Token))));
    for (let step = 0; step < steps; step++) {
      const probs = res.at(-1)!.next.probabilities!;
      const it = probs.entries();
      const [t1, p1] = it.next().value!;
      const [, p2] = it.next().value!;
      margins.push(Math.log(p1) - Math.log(p2));
      tokens.push(t1);
      if (step + 1 < steps) res = await seq.controlledEvaluate([[t1, want]]);
    }
    return { tokens, margins };
  } finally {
    await ctx.dispose();
  }
}

/** Greedy tokens only (no probability maps, so much faster than `greedy`). */
export async function greedyTokens(model: LlamaModel, prompt: number[], steps: number): Promise<number[]> {
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: { ideal: 1, min: 1 } });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    const want = { generateNext: { token: true, options: { temperature: 0 } } };
    let res = await seq.controlledEvaluate(prompt.map((t, i) => (i === prompt.length - 1 ? [t as Token, want] : (t as Token))));
    for (let step = 0; step < steps; step++) {
      const t = res.at(-1)!.next.token!;
      tokens.push(t);
      if (step + 1 < steps) res = await seq.controlledEvaluate([[t, want]]);
    }
    return tokens;
  } finally {
    await ctx.dispose();
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
