import { formatBytes } from "../units.js";
import { BATCH_MEMORY_SHARE, DEFAULT_PARALLEL } from "../parallel-defaults.js";
import { TesseraError } from "../errors.js";
import { COST, decodeCost, rankComputeMs, rankPrefillMsPerToken, ttftMs, type Hop, type PlanShape } from "./cost.js";
import { DEFAULT_CTX, driverBytes, rankMemoryBytes, rankStream, rankWeights, vocabShares, type RankShare } from "./memory.js";
import type { PlacementModel } from "./model.js";
import { proportionalSplit } from "./shard-plan.js";
import { tpSplit, type TpSlice } from "./split.js";
import { STRATEGIES, type PlacementCluster, type PlacementNode, type PlacementPlan, type PlacementRequest, type PlanRank, type PlanStage, type Strategy } from "./types.js";

/**
 * Every candidate plan for a model on a cluster, best first: the feasible ones ranked by predicted
 * decode speed (then fewer nodes, then the simpler strategy, then node ids), followed by the
 * rejected ones, each with its reason. Deterministic: the same model, cluster and request give the
 * same list, whatever order the nodes and links come in.
 *
 * Candidates: each node alone; pipelines over k nodes (layers split in proportion to measured
 * decode speed, capped by what each node's memory holds); tensor groups of k nodes; hybrids
 * (tensor groups of t nodes as pipeline stages). With many nodes only the MAX_NODES with the most
 * free memory are combined.
 */
export const MAX_NODES = 8;
export const DEFAULT_PROMPT_TOKENS = 128;
/** Most sequences an instance decodes together: a runner's DECODE step names its slots in one int32 mask (runner/protocol.ts). */
export const MAX_PARALLEL = 32;

interface Candidate {
  strategy: Strategy;
  /** Per stage: its layer count is decided later (pipelines) or all layers (one stage). */
  groups: PlacementNode[][];
  /** Layers per stage, when decided up front. */
  counts?: number[];
  /** A structural reason (the split cannot be made), found before memory is looked at. */
  reason?: string;
}

export function place(model: PlacementModel, cluster: PlacementCluster, request: PlacementRequest = {}): PlacementPlan[] {
  const ctx = checkRequest(model, cluster, request);
  const links = linkTable(cluster);
  const nodes = eligible(cluster, request);
  const buildAt = (parallel: number) => candidates(model, nodes, ctx * parallel, links).map((c) => build(model, c, { ctx, parallel }, links, request));
  if (request.parallel !== undefined) return rank(buildAt(request.parallel));
  // No parallel asked for: each candidate gets as many slots (up to DEFAULT_PARALLEL) as its nodes
  // hold within BATCH_MEMORY_SHARE, else one. The candidates come in the same order at every count,
  // so which ones are feasible is decided by one slot, as before.
  const plans = buildAt(1);
  for (let parallel = DEFAULT_PARALLEL; parallel > 1; parallel--) {
    buildAt(parallel).forEach((p, i) => {
      if (plans[i]!.parallel === 1 && plans[i]!.feasible && p.feasible && roomy(p, cluster)) plans[i] = p;
    });
  }
  return rank(plans);
}

/** Every node of the plan within BATCH_MEMORY_SHARE of its free memory. */
function roomy(plan: PlacementPlan, cluster: PlacementCluster): boolean {
  return plan.nodes.every((id) => plan.memoryBytes[id]! <= BATCH_MEMORY_SHARE * cluster.nodes.find((n) => n.id === id)!.freeBytes);
}

/**
 * Each node alone; pipelines over k nodes; tensor groups of k nodes; hybrids. Every rank holds
 * `kvTokens` of KV (ctx × slots), which moves a pipeline's layer split.
 */
function candidates(model: PlacementModel, nodes: PlacementNode[], kvTokens: number, links: LinkTable): Candidate[] {
  const candidates: Candidate[] = [];
  for (const subset of subsets(nodes)) {
    const k = subset.length;
    if (k === 1) candidates.push({ strategy: "single", groups: [subset] });
    if (k >= 2 && k <= model.layers) candidates.push(pipeline(model, subset, kvTokens));
    if (k >= 2) candidates.push({ strategy: "tensor", groups: [subset], reason: splitProblem(model, k) });
    for (const t of divisors(k)) {
      const s = k / t;
      if (t < 2 || s < 2) continue;
      if (s > model.layers) continue;
      candidates.push({ strategy: "hybrid", groups: hybridGroups(subset, t, links), reason: splitProblem(model, t) });
    }
  }
  return candidates;
}

function checkRequest(model: PlacementModel, cluster: PlacementCluster, r: PlacementRequest): number {
  if (r.strategy !== undefined && !STRATEGIES.includes(r.strategy)) {
    throw new TesseraError(`strategy must be one of ${STRATEGIES.join(", ")}, got '${String(r.strategy)}'`);
  }
  if (r.minNodes !== undefined && !(Number.isInteger(r.minNodes) && r.minNodes >= 1)) throw new TesseraError(`minNodes must be an integer ≥ 1, got ${r.minNodes}`);
  for (const id of r.nodes ?? []) {
    if (!cluster.nodes.some((n) => n.id === id)) throw new TesseraError(`node '${id}' is not a worker node of this cluster`);
  }
  const limit = model.contextLength > 0 ? model.contextLength : Infinity;
  const ctx = r.ctx ?? Math.min(limit, DEFAULT_CTX);
  if (!Number.isInteger(ctx) || ctx < 1) throw new TesseraError(`ctx must be an integer ≥ 1, got ${r.ctx}`);
  if (ctx > limit) throw new TesseraError(`ctx ${ctx} is more than the ${limit} tokens ${model.name} was trained for`);
  if (r.parallel !== undefined && !(Number.isInteger(r.parallel) && r.parallel >= 1 && r.parallel <= MAX_PARALLEL)) {
    throw new TesseraError(`parallel must be an integer from 1 to ${MAX_PARALLEL}, got ${r.parallel}`);
  }
  return ctx;
}

function eligible(cluster: PlacementCluster, r: PlacementRequest): PlacementNode[] {
  const wanted = r.nodes ? new Set(r.nodes) : undefined;
  const nodes = cluster.nodes.filter((n) => !wanted || wanted.has(n.id));
  // the MAX_NODES with the most room take part; ties by id, so input order never matters
  return [...nodes].sort((a, b) => b.freeBytes - a.freeBytes || cmp(a.id, b.id)).slice(0, MAX_NODES).sort((a, b) => cmp(a.id, b.id));
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Every non-empty subset, by size then lexicographically (nodes sorted by id). */
function subsets<T>(xs: T[]): T[][] {
  const out: T[][] = [];
  for (let k = 1; k <= xs.length; k++) {
    const pick = (start: number, acc: T[]): void => {
      if (acc.length === k) return void out.push(acc);
      for (let i = start; i < xs.length; i++) pick(i + 1, [...acc, xs[i]!]);
    };
    pick(0, []);
  }
  return out;
}

function divisors(k: number): number[] {
  return Array.from({ length: k }, (_, i) => i + 1).filter((d) => k % d === 0);
}

function splitProblem(model: PlacementModel, size: number): string | undefined {
  try {
    tpSplit(model, size, model.blocks);
    return undefined;
  } catch (e) {
    if (e instanceof TesseraError) return e.message;
    throw e;
  }
}

// ---- links ----

type LinkTable = (a: string, b: string) => Hop;

function linkTable(cluster: PlacementCluster): LinkTable {
  const m = new Map<string, { rtt: number; bw: number }>();
  for (const l of cluster.links) {
    // an undirected view: the worse of the two directions
    const key = l.from < l.to ? `${l.from}|${l.to}` : `${l.to}|${l.from}`;
    const cur = m.get(key);
    m.set(key, cur ? { rtt: Math.max(cur.rtt, l.rttMs), bw: Math.min(cur.bw, l.bandwidthBytesPerSec) } : { rtt: l.rttMs, bw: l.bandwidthBytesPerSec });
  }
  return (a, b) => {
    if (a === b) return { rttMs: COST.LOCAL_RTT_MS, bandwidth: COST.LOCAL_BANDWIDTH };
    const l = m.get(a < b ? `${a}|${b}` : `${b}|${a}`);
    return l && l.bw > 0 ? { rttMs: l.rtt, bandwidth: l.bw } : { rttMs: COST.DEFAULT_RTT_MS, bandwidth: COST.DEFAULT_BANDWIDTH };
  };
}

function worst(hops: Hop[]): Hop {
  if (hops.length === 0) return { rttMs: 0, bandwidth: Infinity };
  return { rttMs: Math.max(...hops.map((h) => h.rttMs)), bandwidth: Math.min(...hops.map((h) => h.bandwidth)) };
}

// ---- candidates ----

/** A pipeline over `subset`: stage order by free memory (the first holds the embedding and the driver). */
function pipeline(model: PlacementModel, subset: PlacementNode[], ctx: number): Candidate {
  const order = [...subset].sort((a, b) => b.freeBytes - a.freeBytes || cmp(a.id, b.id));
  const k = order.length;
  const speed = order.map((n) => n.decodeBytesPerSec ?? COST.DEFAULT_DECODE_BYTES_PER_SEC);
  const caps = order.map((n, i) => {
    const fixed = stageShare(model, 0, i === 0, i === k - 1, 1, 0);
    const one = stageShare(model, 1, i === 0, i === k - 1, 1, 0);
    const base = rankMemoryBytes(model, fixed, ctx) + (i === 0 ? driverBytes(model) : 0);
    const perLayer = rankMemoryBytes(model, one, ctx) - rankMemoryBytes(model, fixed, ctx);
    return Math.max(0, Math.floor((n.freeBytes - base) / perLayer));
  });
  const counts = fitLayers(model.layers, speed, caps) ?? proportionalSplit(model.layers, speed);
  return { strategy: "pipeline", groups: order.map((n) => [n]), counts };
}

/**
 * `total` layers over parts in proportion to `weights`, no part above its cap and none below 1;
 * null when the caps cannot hold them.
 */
export function fitLayers(total: number, weights: number[], caps: number[]): number[] | null {
  if (caps.some((c) => c < 1) || caps.reduce((a, b) => a + b, 0) < total) return null;
  const counts = new Array<number>(weights.length).fill(0);
  const fixed = new Set<number>();
  for (;;) {
    const free = weights.map((_, i) => i).filter((i) => !fixed.has(i));
    const left = total - [...fixed].reduce((a, i) => a + counts[i]!, 0);
    if (free.length === 0 || left < free.length) return null;
    const split = proportionalSplit(left, free.map((i) => weights[i]!));
    const over = free.filter((i, j) => split[j]! > caps[i]!);
    if (over.length === 0) {
      free.forEach((i, j) => (counts[i] = split[j]!));
      return counts;
    }
    for (const i of over) {
      fixed.add(i);
      counts[i] = caps[i]!;
    }
  }
}

/** Groups of t nodes for a hybrid: the roomiest node left picks its t − 1 closest (by RTT) partners. */
function hybridGroups(subset: PlacementNode[], t: number, links: LinkTable): PlacementNode[][] {
  const left = [...subset].sort((a, b) => b.freeBytes - a.freeBytes || cmp(a.id, b.id));
  const groups: PlacementNode[][] = [];
  while (left.length) {
    const seed = left.shift()!;
    const near = [...left].sort((a, b) => links(seed.id, a.id).rttMs - links(seed.id, b.id).rttMs || cmp(a.id, b.id)).slice(0, t - 1);
    for (const n of near) left.splice(left.indexOf(n), 1);
    groups.push([seed, ...near]);
  }
  return groups;
}

function stageShare(model: PlacementModel, layers: number, first: boolean, last: boolean, size: number, rank: number, slice?: TpSlice): RankShare {
  const s = slice ?? { heads: model.numHeads, kvHeads: model.numKvHeads, ffnRows: [0, model.intermediateSize] as [number, number] };
  return {
    layers,
    heads: s.heads,
    kvHeads: s.kvHeads,
    ffn: s.ffnRows[1] - s.ffnRows[0],
    first,
    last,
    vocabShare: last ? vocabShares(model, size)[rank]! : 0,
  };
}

// ---- building and ranking ----

function build(model: PlacementModel, c: Candidate, { ctx, parallel }: { ctx: number; parallel: number }, links: LinkTable, r: PlacementRequest): PlacementPlan {
  const L = model.layers;
  const S = c.groups.length;
  const counts = c.counts ?? (S === 1 ? [L] : weightedByGroups(model, c.groups));
  const stages: PlanStage[] = [];
  const ranks: PlanRank[] = [];
  const shape: PlanShape = { stages: [], hops: [], hiddenSize: model.hiddenSize, vocabSize: model.vocabSize, local: c.strategy === "single" };
  const memory: Record<string, number> = {};
  let at = 0;
  c.groups.forEach((group, s) => {
    const layers: [number, number] = [at, at + counts[s]!];
    at += counts[s]!;
    stages.push({ layers, nodes: group.map((n) => n.id) });
    const size = group.length;
    const slices = size > 1 && !c.reason ? tpSplit(model, size, model.blocks) : undefined;
    const compute: number[] = [];
    const prefill: number[] = [];
    group.forEach((node, t) => {
      const share = stageShare(model, layers[1] - layers[0], s === 0, s === S - 1, size, t, slices?.[t]);
      const bytes = rankMemoryBytes(model, share, ctx * parallel);
      ranks.push({ world: ranks.length + 1, node: node.id, stage: s, tpRank: t, tpSize: size, layers, memoryBytes: bytes });
      memory[node.id] = (memory[node.id] ?? 0) + bytes;
      compute.push(rankComputeMs(rankStream(model, share), share.layers, size, node.decodeBytesPerSec));
      prefill.push(rankPrefillMsPerToken(rankWeights(model, share), node.matmulGflops));
    });
    const inner = worst(pairs(group).map(([a, b]) => links(a.id, b.id)));
    shape.stages.push({ rankComputeMs: compute, rankPrefillMsPerToken: prefill, layers: layers[1] - layers[0], reduceRttMs: inner.rttMs, reduceBandwidth: inner.bandwidth });
  });
  const home = c.groups[0]![0]!.id;
  memory[home] = (memory[home] ?? 0) + driverBytes(model);
  shape.hops = hopsOf(c.groups, home, links);
  const cost = decodeCost(shape);
  const plan: PlacementPlan = {
    strategy: c.strategy,
    nodes: [...new Set(c.groups.flat().map((n) => n.id))],
    stages,
    ranks,
    home,
    memoryBytes: memory,
    ctx,
    parallel,
    predicted: { decodeTps: round(cost.decodeTps, 2), ttftMs: round(ttftMs(shape, r.promptTokens ?? DEFAULT_PROMPT_TOKENS), 1) },
    feasible: true,
  };
  const reason = c.reason ?? requestProblem(plan, r) ?? memoryProblem(plan, c.groups.flat(), ranks);
  if (reason) {
    plan.feasible = false;
    plan.reason = reason;
  }
  return plan;
}

/** Hybrid stages get layers in proportion to their slowest member's speed. */
function weightedByGroups(model: PlacementModel, groups: PlacementNode[][]): number[] {
  const speed = groups.map((g) => Math.min(...g.map((n) => n.decodeBytesPerSec ?? COST.DEFAULT_DECODE_BYTES_PER_SEC)));
  return proportionalSplit(model.layers, speed);
}

function pairs<T>(xs: T[]): [T, T][] {
  const out: [T, T][] = [];
  for (let i = 0; i < xs.length; i++) for (let j = i + 1; j < xs.length; j++) out.push([xs[i]!, xs[j]!]);
  return out;
}

/** driver → every rank of stage 0; stage s → s + 1 (rank t receives from rank t mod size of s); the sampler → driver. */
function hopsOf(groups: PlacementNode[][], home: string, links: LinkTable): Hop[] {
  const hops: Hop[] = [worst(groups[0]!.map((n) => links(home, n.id)))];
  for (let s = 0; s + 1 < groups.length; s++) {
    const from = groups[s]!;
    hops.push(worst(groups[s + 1]!.map((n, t) => links(from[t % from.length]!.id, n.id))));
  }
  hops.push(links(groups[groups.length - 1]![0]!.id, home));
  return hops;
}

function requestProblem(plan: PlacementPlan, r: PlacementRequest): string | undefined {
  if (r.strategy && plan.strategy !== r.strategy) return `strategy '${r.strategy}' was requested`;
  if (r.minNodes && plan.nodes.length < r.minNodes) return `uses ${plan.nodes.length} node${plan.nodes.length === 1 ? "" : "s"}, fewer than the ${r.minNodes} requested`;
  return undefined;
}

function memoryProblem(plan: PlacementPlan, nodes: PlacementNode[], ranks: PlanRank[]): string | undefined {
  const problems: string[] = [];
  for (const id of plan.nodes) {
    const node = nodes.find((n) => n.id === id)!;
    const need = plan.memoryBytes[id]!;
    if (need <= node.freeBytes) continue;
    const what = ranks.filter((r) => r.node === id).map((r) => `layers [${r.layers[0]}, ${r.layers[1]})${r.tpSize > 1 ? ` tensor rank ${r.tpRank}/${r.tpSize}` : ""}`);
    if (id === plan.home) what.push("the driver");
    problems.push(`needs ${formatBytes(need)} on ${node.name} (${what.join(", ")}) but it has ${formatBytes(Math.max(0, node.freeBytes))} free`);
  }
  return problems.length ? problems.join("; ") : undefined;
}

function rank(plans: PlacementPlan[]): PlacementPlan[] {
  const order = (a: PlacementPlan, b: PlacementPlan): number =>
    b.predicted.decodeTps - a.predicted.decodeTps ||
    a.nodes.length - b.nodes.length ||
    STRATEGIES.indexOf(a.strategy) - STRATEGIES.indexOf(b.strategy) ||
    cmp(a.nodes.join(","), b.nodes.join(","));
  return [...plans.filter((p) => p.feasible).sort(order), ...plans.filter((p) => !p.feasible).sort(order)];
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
