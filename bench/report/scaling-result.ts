// The shape of bench/results/scaling-*.json (written by bench/scaling/scaling.ts), as the report reads it.

export interface DecodeRow {
  median_tps: number;
  ratio_to_single: number;
  processes?: number;
  /** Threads in all (processes × threads per process). */
  threads?: number;
  vs_llama_cpp_same_threads?: number;
}

export interface EmulatedRow {
  config: string;
  target_one_way_us: number;
  effective_one_way_us: number;
  median_tps: number;
  ratio_to_single: number;
  ratio_to_direct?: number;
  ttft_ms?: number;
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
}

/**
 * The one-way latency (µs) at which configuration `a` stops decoding faster than `b`: the first pair of
 * measured latencies (loopback counts as 1 µs) between which a's lead turns into a deficit, interpolated
 * linearly in log latency. Undefined when either was not measured or the lead never flips.
 */
export function crossoverUs(r: ScalingResult, a: string, b: string): number | undefined {
  const at = (c: string): Map<number, number> => {
    const m = new Map<number, number>();
    if (r.decode[c]) m.set(1, r.decode[c]!.ratio_to_single);
    for (const e of r.emulated) if (e.config === c) m.set(Math.max(1, e.target_one_way_us), e.ratio_to_single);
    return m;
  };
  const [ma, mb] = [at(a), at(b)];
  const xs = [...ma.keys()].filter((x) => mb.has(x)).sort((p, q) => p - q);
  for (let i = 1; i < xs.length; i++) {
    const [x0, x1] = [xs[i - 1]!, xs[i]!];
    const d0 = ma.get(x0)! - mb.get(x0)!;
    const d1 = ma.get(x1)! - mb.get(x1)!;
    if (d0 > 0 && d1 <= 0) {
      const t = d0 / (d0 - d1);
      return Math.round(10 ** (Math.log10(x0) + t * (Math.log10(x1) - Math.log10(x0))));
    }
  }
  return undefined;
}
