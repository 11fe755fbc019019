// The shape of bench/results/scaling-*.json (written by bench/scaling/scaling.ts), as the report reads it.

export interface DecodeRow {
  median_tps: number;
  ratio_to_single: number;
  processes?: number;
  /** Threads in all (processes × threads per process). */
  threads?: number;
  vs_llama_cpp_same_threads?: number;
  /** The cost model (place(), fed this run's machine probe and measured links); absent for llama.cpp. */
  predicted?: { decode_tps: number; ttft_ms: number; stages: string };
  /** predicted / measured − 1. */
  error?: { decode_tps?: number; ttft_ms?: number };
  /** The same model fed the single process's measured speed instead of the probe (split costs only). */
  predicted_from_single?: { decode_tps: number; error?: number };
}

export interface EmulatedRow {
  config: string;
  target_one_way_us: number;
  effective_one_way_us: number;
  median_tps: number;
  ratio_to_single: number;
  ratio_to_direct?: number;
  ttft_ms?: number;
  predicted?: DecodeRow["predicted"];
  error?: DecodeRow["error"];
  predicted_from_single?: DecodeRow["predicted_from_single"];
}

export interface ScalingResult {
  file?: string;
  date: string;
  commit: string;
  dirty: boolean;
  machine: { cpu: string; cores: number; memory_gib: number };
  settings: { threads_per_process: number; rounds: number; block_tokens: number };
  decode: Record<string, DecodeRow>;
  ttft?: Record<string, { median_ms: number }>;
  all_reduce: { bytes: number; raw_rtt_busy_polled_us: { median: number }; busy_polled_us: Record<string, { median: number }>; ratio_to_raw_rtt: Record<string, number> };
  emulated: EmulatedRow[];
  met: Record<string, boolean | string>;
  model?: { layers: number; hidden: number; vocab: number };
  cost_model?: {
    probe_used: { decodeBytesPerSec: number; matmulGflops: number };
    loopback_link: { rtt_ms: number; bandwidth_bytes_per_sec: number };
  };
  proxy?: { own_one_way_us: number };
  load?: { load_average_1m_start: number; load_average_1m_end: number; cores: number };
  notes?: string;
}

export type Crossover =
  | { kind: "crossover"; us: number; below: [number, number]; above: [number, number]; strayLeads: number[] }
  | { kind: "never-leads"; strayLeads: number[] }
  | { kind: "always-leads" | "not-measured" };

/**
 * Decode speed (× one process, paired in its own rounds) of configuration `c` against the one-way
 * latency actually measured through the proxies: loopback (no proxy) counts as 1 µs on the log axis,
 * an emulated link as its effective latency (what it added over loopback; at least 1 µs).
 */
export function sweepOf(r: ScalingResult, c: string): Map<number, number> {
  const m = new Map<number, number>();
  if (r.decode[c]) m.set(1, r.decode[c]!.ratio_to_single);
  for (const e of r.emulated) if (e.config === c) m.set(Math.max(1, e.effective_one_way_us), e.ratio_to_single);
  return m;
}

/**
 * Where configuration `a` stops decoding faster than `b` as the link latency grows. Added latency
 * can only slow a split down, so the lead is read from the lowest latency up: a must lead there,
 * and the crossover lies between the last point of that unbroken lead and the first point where it
 * is gone, interpolated linearly in log latency (the sweep's points are spaced by decades). A lead
 * that reappears at a higher latency after a deficit is noise and is listed, not used. Only
 * latencies measured for both count. "never-leads": a is not ahead even at the lowest latency;
 * "always-leads": a leads at every point, so the crossover lies above the sweep.
 */
export function crossover(r: ScalingResult, a: string, b: string): Crossover {
  const [ma, mb] = [sweepOf(r, a), sweepOf(r, b)];
  const xs = [...ma.keys()].filter((x) => mb.has(x)).sort((p, q) => p - q);
  if (xs.length < 2) return { kind: "not-measured" };
  const lead = xs.map((x) => ma.get(x)! - mb.get(x)!);
  const stray = (from: number): number[] => xs.filter((_, j) => j >= from && lead[j]! > 0);
  if (lead[0]! <= 0) return { kind: "never-leads", strayLeads: stray(1) };
  const i = lead.findIndex((d) => d <= 0);
  if (i < 0) return { kind: "always-leads" };
  const [x0, x1, d0, d1] = [xs[i - 1]!, xs[i]!, lead[i - 1]!, lead[i]!];
  const t = d0 / (d0 - d1);
  const us = Math.round(10 ** (Math.log10(x0) + t * (Math.log10(x1) - Math.log10(x0))));
  return { kind: "crossover", us, below: [x0, d0], above: [x1, d1], strayLeads: stray(i + 1) };
}

/** The latency (µs, one way, added to loopback) where `lead(us)` changes sign, by bisection in log latency; undefined if it does not within [1, 1e5] µs. */
export function signChange(lead: (oneWayUs: number) => number): number | undefined {
  let [lo, hi] = [0, 5];
  if (lead(10 ** lo) <= 0 || lead(10 ** hi) > 0) return undefined;
  for (let k = 0; k < 60; k++) {
    const mid = (lo + hi) / 2;
    if (lead(10 ** mid) > 0) lo = mid;
    else hi = mid;
  }
  return Math.round(10 ** ((lo + hi) / 2));
}


