import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * Round statistics of concurrent streams (bench/serving): TTFT per stream, throughput, and the
 * aggregate decode rate while every stream is decoding.
 */

/** One stream of a round: when it started and when each token arrived (ms, the round's clock). */
export interface StreamTimes {
  start: number;
  tokens: number[];
}

export interface RoundStats {
  ttftMs: number[];
  throughputTps: number;
  decodeTps: number;
  tokens: number;
}

export function prompts(n: number, len: number, vocab: number): number[][] {
  // distinct prompts; skip the low ids (control and byte tokens of the synthetic vocabulary)
  return Array.from({ length: n }, (_, s) => Array.from({ length: len }, (_, i) => 300 + ((s * 104729 + i * 7919) % (vocab - 300))));
}

export function roundStats(streams: StreamTimes[]): RoundStats {
  const first = streams.map((s) => s.tokens[0] ?? Infinity);
  const end = streams.map((s) => s.tokens.at(-1) ?? -Infinity);
  const t0 = Math.min(...streams.map((s) => s.start));
  const from = Math.max(...first);
  const to = Math.min(...end);
  let inWindow = 0;
  for (const s of streams) for (const t of s.tokens) if (t > from && t <= to) inWindow++;
  const tokens = streams.reduce((n, s) => n + s.tokens.length, 0);
  return {
    ttftMs: streams.map((s) => (s.tokens[0] ?? NaN) - s.start),
    throughputTps: tokens / ((Math.max(...end) - t0) / 1000),
    decodeTps: to > from ? inWindow / ((to - from) / 1000) : NaN,
    tokens,
  };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}


/** The serving benches' model: the synthetic 1b llama, Q4_0, in `dir` (written on first use). */
export async function benchModel(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, "1b-llama-q4_0.gguf");
  if (!existsSync(model)) {
    console.error(`writing ${model} ...`);
    const { synthesize } = await import("../../src/models/synth/synthesize.js");
    await synthesize({ arch: "llama", preset: "1b", format: "gguf", quant: "q4_0", out: model, seed: 1, vocab: "spm" });
  }
  return model;
}
