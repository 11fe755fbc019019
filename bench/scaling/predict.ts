// The cost model's prediction for each configuration bench/scaling measures (issue 16): the same
// place() the master runs, fed with what was measured on this machine in this run: the node's machine
// probe (src/cluster/profile.ts: decode GEMV bytes/s and float32 MatMul GFLOP/s at the runners'
// thread count) and the links' round trip and bandwidth (loopback, or through the delay proxy).
// Each runner process counts as its own node, as the emulated links treat it.
import type { ProbeResult } from "../../src/cluster/profile.js";
import { place, type PlacementCluster, type PlacementLink, type PlacementModel, type PlacementNode, type PlacementPlan } from "../../src/placement/index.js";
import { round2 as r2 } from "../stats.js";

export interface LinkMeasure {
  rttMs: number;
  bandwidthBytesPerSec: number;
}

export interface Prediction {
  decode_tps: number;
  ttft_ms: number;
  /** The plan place() built for this shape: layers per stage, tensor ranks per stage. */
  stages: string;
}

/** Nodes as the probe measured this machine; memory is no constraint here (the runs fit, they ran). */
function nodes(k: number, probe: ProbeResult): PlacementNode[] {
  return Array.from({ length: k }, (_, i) => ({
    id: `n${String(i).padStart(2, "0")}`,
    name: `runner ${i}`,
    freeBytes: 2 ** 50,
    decodeBytesPerSec: probe.decodeBytesPerSec,
    matmulGflops: probe.matmulGflops,
  }));
}

function fullMesh(ns: PlacementNode[], link: LinkMeasure): PlacementLink[] {
  const out: PlacementLink[] = [];
  for (const a of ns) for (const b of ns) if (a !== b) out.push({ from: a.id, to: b.id, ...link });
  return out;
}

/** The plan of `pp` stages of `tp` tensor ranks among all candidates place() weighs for pp × tp nodes. */
export function planFor(model: PlacementModel, probe: ProbeResult, pp: number, tp: number, link: LinkMeasure, ctx: number, promptTokens: number): PlacementPlan {
  const ns = nodes(pp * tp, probe);
  const cluster: PlacementCluster = { nodes: ns, links: fullMesh(ns, link) };
  const plans = place(model, cluster, { ctx, promptTokens, minNodes: pp * tp });
  const plan = plans.find((p) => p.nodes.length === pp * tp && p.stages.length === pp && p.stages.every((s) => s.nodes.length === tp));
  if (!plan) throw new Error(`placement has no plan of ${pp} stage(s) × ${tp} tensor rank(s)`);
  if (!plan.feasible) throw new Error(`placement rejects ${pp} × ${tp}: ${plan.reason}`);
  return plan;
}

export function predict(model: PlacementModel, probe: ProbeResult, pp: number, tp: number, link: LinkMeasure, ctx: number, promptTokens: number): Prediction {
  const plan = planFor(model, probe, pp, tp, link, ctx, promptTokens);
  return {
    decode_tps: r2(plan.predicted.decodeTps),
    ttft_ms: r2(plan.predicted.ttftMs),
    stages: plan.stages.map((s) => `[${s.layers[0]},${s.layers[1]})×${s.nodes.length}`).join(" "),
  };
}

/** predicted / measured − 1, rounded to a tenth of a percent (as a fraction); undefined without both. */
export function relativeError(predicted: number | undefined, measured: number | undefined): number | undefined {
  if (predicted === undefined || measured === undefined || !(measured > 0)) return undefined;
  return Math.round((predicted / measured - 1) * 1000) / 1000;
}

/**
 * A link's bandwidth from two round trips of the same path: a small message and `bigBytes`
 * (each crosses twice, there and back): 2 × (big − small) bytes in the extra time.
 */
export function bandwidthFrom(smallRttUs: number, smallBytes: number, bigRttUs: number, bigBytes: number): number {
  const extraUs = Math.max(bigRttUs - smallRttUs, 1);
  return (2 * (bigBytes - smallBytes)) / (extraUs / 1e6);
}
