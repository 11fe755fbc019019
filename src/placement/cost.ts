/**
 * The cost model: decode time per token and time to first token of a plan, from measured node
 * speed and measured links. Pure arithmetic; place.ts builds the shape of each plan, and
 * `predictDecode` lets a benchmark ask the same model about PP k / TP k / hybrid from one measured
 * single-process speed.
 *
 * A decode token runs the stages one after another (a pipeline has one token in flight):
 *
 *   ms/token = Σ_stages [ compute of the stage's slowest rank + 2 × layers × all-reduce (tp > 1) ]
 *            + Σ_hops (RTT/2 + bytes / bandwidth)          driver → stage 0 → … → last → driver
 *            + step overhead                                 generation loop, sampling, driver thread
 *
 *   compute(rank)  = streamed 4-bit-weight equivalents / node decode rate + runs × RUN_OVERHEAD_MS
 *                    (decode is bandwidth-bound: the node's decode probe measures exactly this GEMV)
 *   all-reduce     = the group's worst link RTT + partial bytes × (tp − 1) / bandwidth + ALL_REDUCE_CPU_MS
 *
 * Constants were fitted to this project's measurements: bench/results/parallel-2026-11-26.json
 * (1b Q4_0, loopback: single 40.6 ms, TP 2 32.9 ms, PP 2 43.0 ms per token; driver CPU 1.4 ms/token;
 * busy-polled all-reduce 51 µs vs 20 µs raw RTT) and bench/results/placement-calibration-*.json.
 */
export const COST = {
  /** Fixed cost of one onnxruntime graph run (dispatch, input binding). */
  RUN_OVERHEAD_MS: 0.05,
  /** Per decoder layer inside a graph (≈30 ops, each a kernel launch). */
  LAYER_OVERHEAD_MS: 0.04,
  /** Generation loop + sampling per token in one process, plus per vocabulary entry. */
  STEP_OVERHEAD_MS: 0.15,
  SAMPLE_MS_PER_VOCAB: 4e-6,
  /** What a sharded model adds per token: the driver thread's round trip through the bridge. */
  DRIVER_OVERHEAD_MS: 1.4,
  /** CPU of one decode-sized all-reduce beyond its round trip (busy-polled; bench/parallel). */
  ALL_REDUCE_CPU_MS: 0.02,
  /** A hop between two processes on one node. */
  LOCAL_RTT_MS: 0.06,
  LOCAL_BANDWIDTH: 1.2e9,
  /** Unmeasured node or link: a modest laptop on Wi-Fi-free Ethernet. */
  DEFAULT_DECODE_BYTES_PER_SEC: 8e9,
  DEFAULT_GFLOPS: 50,
  DEFAULT_RTT_MS: 0.5,
  DEFAULT_BANDWIDTH: 1e8,
  /** Bytes per 4-bit weight as the decode probe counts them (0.5 packed + float32 scale per 32). */
  PROBE_BYTES_PER_WEIGHT: 0.625,
  /** Prefill reaches this share of the node's float32 MatMul throughput. */
  PREFILL_EFFICIENCY: 1.0,
  /** Pipelined prefill cuts a long input into micro-batches of this many tokens (runner/driver.ts). */
  MICRO_BATCH: 64,
} as const;

export interface StageShape {
  /** Ranks of the stage: per-token compute of each (ms), and its prefill compute per token. */
  rankComputeMs: number[];
  rankPrefillMsPerToken: number[];
  layers: number;
  /** Worst link inside the stage's tensor group (unused when tp = 1). */
  reduceRttMs: number;
  reduceBandwidth: number;
}

export interface Hop {
  rttMs: number;
  bandwidth: number;
}

export interface PlanShape {
  stages: StageShape[];
  /** stages.length + 1 hops: driver → stage 0, stage i → i + 1, last → driver (ignored for one in-process stage). */
  hops: Hop[];
  hiddenSize: number;
  vocabSize: number;
  /** One stage of one rank, run by the engine in-process (no driver thread, no network). */
  local: boolean;
}

export interface DecodeParts {
  computeMs: number;
  allReduceMs: number;
  hopsMs: number;
  overheadMs: number;
}

export interface DecodeCost extends DecodeParts {
  msPerToken: number;
  decodeTps: number;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

function allReduceMs(tp: number, hidden: number, tokens: number, rttMs: number, bandwidth: number): number {
  if (tp < 2) return 0;
  return rttMs + (tokens * hidden * 4 * (tp - 1)) / bandwidth * 1000 + COST.ALL_REDUCE_CPU_MS;
}

function hopMs(h: Hop, bytes: number): number {
  return h.rttMs / 2 + (bytes / h.bandwidth) * 1000;
}

export function decodeCost(p: PlanShape): DecodeCost {
  const computeMs = sum(p.stages.map((s) => Math.max(...s.rankComputeMs)));
  const allReduce = sum(p.stages.map((s) => 2 * s.layers * allReduceMs(s.rankComputeMs.length, p.hiddenSize, 1, s.reduceRttMs, s.reduceBandwidth)));
  const hidden = p.hiddenSize * 4;
  // driver → first stage: the token (4 bytes); between stages: the hidden state; last → driver: the sample (24 bytes).
  const hopsMs = p.local ? 0 : sum(p.hops.map((h, i) => hopMs(h, i === 0 ? 4 : i === p.hops.length - 1 ? 24 : hidden)));
  const overheadMs = COST.STEP_OVERHEAD_MS + p.vocabSize * COST.SAMPLE_MS_PER_VOCAB + (p.local ? 0 : COST.DRIVER_OVERHEAD_MS);
  const msPerToken = computeMs + allReduce + hopsMs + overheadMs;
  return { computeMs, allReduceMs: allReduce, hopsMs, overheadMs, msPerToken, decodeTps: 1000 / msPerToken };
}

/** Time to first token for a prompt of `tokens`: a prefill, micro-batched through a pipeline. */
export function ttftMs(p: PlanShape, tokens: number): number {
  const stageMs = p.stages.map((s) => {
    const compute = Math.max(...s.rankPrefillMsPerToken) * tokens;
    const tp = s.rankComputeMs.length;
    return compute + 2 * s.layers * allReduceMs(tp, p.hiddenSize, tokens, s.reduceRttMs, s.reduceBandwidth);
  });
  const m = p.stages.length > 1 ? Math.max(1, Math.ceil(tokens / COST.MICRO_BATCH)) : 1;
  // m micro-batches through the stages: the slowest stage paces all but the first.
  const pipeline = (sum(stageMs) + (m - 1) * Math.max(...stageMs)) / m;
  const hops = p.local ? 0 : sum(p.hops.map((h, i) => hopMs(h, i === 0 ? tokens * 4 : i === p.hops.length - 1 ? 24 : (tokens * p.hiddenSize * 4) / m)));
  return pipeline + hops + decodeCost(p).overheadMs;
}

/** Per-token decode compute of a rank: its streamed weights at the node's rate, plus kernel overheads. */
export function rankComputeMs(stream: number, layers: number, tp: number, decodeBytesPerSec: number | null): number {
  const rate = (decodeBytesPerSec ?? COST.DEFAULT_DECODE_BYTES_PER_SEC) / COST.PROBE_BYTES_PER_WEIGHT;
  // A whole stage is one graph; a tensor rank runs two graphs per layer (attention, MLP) and a head.
  const runs = tp > 1 ? 2 * layers + 1 : 1;
  return (stream / rate) * 1000 + layers * COST.LAYER_OVERHEAD_MS + runs * COST.RUN_OVERHEAD_MS;
}

export function rankPrefillMsPerToken(weights: number, gflops: number | null): number {
  return ((2 * weights) / (((gflops ?? COST.DEFAULT_GFLOPS) * COST.PREFILL_EFFICIENCY) * 1e9)) * 1000;
}

/**
 * Predicted decode speed of a sharded run from a measured single-process speed (for
 * bench/scaling): the same model as place(), fed with `singleMsPerToken` instead of a node probe.
 * The single-process time is split into weight streaming and fixed costs with COST's overheads;
 * stages get equal layers; every link has `rttMs` (and `bandwidthBytesPerSec`, default 1 Gbit/s).
 *
 *   predictDecode({ singleMsPerToken: 40.6, layers: 16, hiddenSize: 2048, vocabSize: 32000, pp: 1, tp: 2, rttMs: 0.05 })
 *     → { msPerToken, decodeTps, computeMs, allReduceMs, hopsMs, overheadMs }
 */
export interface DecodePredictionInput {
  singleMsPerToken: number;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  /** Pipeline stages (1 = none). */
  pp: number;
  /** Tensor ranks per stage (1 = none). */
  tp: number;
  rttMs: number;
  bandwidthBytesPerSec?: number;
}

export function predictDecode(i: DecodePredictionInput): DecodeCost {
  const { layers: L, pp, tp } = i;
  const bandwidth = i.bandwidthBytesPerSec ?? 1.25e8;
  const fixed = COST.STEP_OVERHEAD_MS + i.vocabSize * COST.SAMPLE_MS_PER_VOCAB + L * COST.LAYER_OVERHEAD_MS + COST.RUN_OVERHEAD_MS;
  const streamMs = Math.max(0, i.singleMsPerToken - fixed);
  const per = evenLayers(L, pp);
  const stages: StageShape[] = per.map((layers) => {
    const runs = tp > 1 ? 2 * layers + 1 : 1;
    const ms = (streamMs * layers) / L / tp + layers * COST.LAYER_OVERHEAD_MS + runs * COST.RUN_OVERHEAD_MS;
    return { rankComputeMs: new Array<number>(tp).fill(ms), rankPrefillMsPerToken: new Array<number>(tp).fill(0), layers, reduceRttMs: i.rttMs, reduceBandwidth: bandwidth };
  });
  const local = pp === 1 && tp === 1;
  // The driver sits with stage 0's tensor rank 0: tokens reach the other ranks of stage 0 over the
  // network, hidden states cross every stage boundary, and the sample comes back from the last stage.
  const localHop: Hop = { rttMs: COST.LOCAL_RTT_MS, bandwidth: COST.LOCAL_BANDWIDTH };
  const remote: Hop = { rttMs: i.rttMs, bandwidth };
  const hops: Hop[] = [tp > 1 ? remote : localHop, ...new Array<Hop>(pp - 1).fill(remote), pp > 1 ? remote : localHop];
  return decodeCost({ stages, hops, hiddenSize: i.hiddenSize, vocabSize: i.vocabSize, local });
}

function evenLayers(L: number, k: number): number[] {
  return Array.from({ length: k }, (_, s) => Math.floor(L / k) + (s < L % k ? 1 : 0));
}
