import type { ModelConfig, ModelSource } from "../models/types.js";
import { TesseraError } from "../errors.js";
import { tpSplit, type SplitBlocks, type TpSlice } from "./split.js";

/**
 * A shard plan: ordered pipeline stages, each running layers [a, b) on a tensor-parallel group of
 * `tp` ranks (pipeline = every tp 1; tensor parallel = one stage; hybrid = both). The first stage
 * embeds, the last runs the final norm and lm_head.
 *
 * Ranks: world rank 0 is the driver (it sends tokens and gets logits back); runners follow stage
 * by stage, so stage s, tensor rank t is world rank 1 + (Σ tp of stages before s) + t.
 */
export interface StagePlan {
  layers: [number, number];
  tp: number;
}

export interface ShardPlan {
  stages: StagePlan[];
}

export interface RankPlace {
  /** Rank in the world group (driver = 0). */
  world: number;
  stage: number;
  tpRank: number;
  tpSize: number;
  layers: [number, number];
}

/** Pipeline stages with layers in proportion to `weights` (default: equal), each of `tp` ranks. */
export function makePlan(cfg: ModelConfig, opts: { pp: number; tp: number; weights?: number[] }): ShardPlan {
  const { pp, tp } = opts;
  if (!Number.isInteger(pp) || pp < 1) throw new TesseraError(`--stages must be an integer ≥ 1, got ${pp}`);
  if (!Number.isInteger(tp) || tp < 1) throw new TesseraError(`--tp must be an integer ≥ 1, got ${tp}`);
  const L = cfg.numLayers;
  if (pp > L) throw new TesseraError(`${pp} pipeline stages for a model with only ${L} layers`);
  const weights = opts.weights ?? new Array<number>(pp).fill(1);
  if (weights.length !== pp) throw new TesseraError(`${weights.length} stage weights given for ${pp} pipeline stages`);
  if (weights.some((w) => !(Number.isFinite(w) && w > 0))) throw new TesseraError(`stage weights must be positive numbers, got ${weights.join(", ")}`);
  const counts = proportionalSplit(L, weights);
  const stages: StagePlan[] = [];
  let at = 0;
  for (const c of counts) {
    stages.push({ layers: [at, at + c], tp });
    at += c;
  }
  return { stages };
}

/**
 * `n` items in proportion to `weights` (largest remainder, ties to the earlier part), every part
 * at least 1: [3, 1] over 4 layers gives 3 + 1, [2, 1, 1] over 10 gives 5 + 3 + 2.
 */
export function proportionalSplit(n: number, weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (n * w) / total);
  const counts = exact.map((e) => Math.max(1, Math.floor(e)));
  const byRemainder = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  let left = n - counts.reduce((a, b) => a + b, 0);
  for (let j = 0; left > 0; j = (j + 1) % counts.length, left--) counts[byRemainder[j]!.i]!++;
  // Parts raised to 1 are paid for by the largest ones.
  while (left < 0) {
    const big = counts.indexOf(Math.max(...counts));
    counts[big]!--;
    left++;
  }
  return counts;
}

export function rankPlaces(plan: ShardPlan): RankPlace[] {
  const out: RankPlace[] = [];
  plan.stages.forEach((s, stage) => {
    for (let t = 0; t < s.tp; t++) out.push({ world: out.length + 1, stage, tpRank: t, tpSize: s.tp, layers: s.layers });
  });
  return out;
}

/** Quantization blocks of the tensors a tensor-parallel split cuts across columns (layer 0 stands for all). */
export function splitBlocks(source: ModelSource): SplitBlocks {
  const block = (name: string): number => source.info(name)?.groupSize ?? 1;
  const blocks: SplitBlocks = { attnOutput: block("blk.0.attn_output.weight"), ffnDown: block("blk.0.ffn_down.weight") };
  if (source.info("blk.0.ffn_down_exps.weight")) blocks.expertDown = block("blk.0.ffn_down_exps.weight");
  return blocks;
}

/**
 * Checks a plan against a model before anything is loaded: layers covered exactly once and in
 * order, and every tensor-parallel group splittable (heads, KV heads, FFN blocks). Returns each
 * stage's per-rank slices.
 */
export function checkPlan(cfg: ModelConfig, plan: ShardPlan, blocks: SplitBlocks): TpSlice[][] {
  if (plan.stages.length === 0) throw new TesseraError("a shard plan needs at least one stage");
  let next = 0;
  return plan.stages.map((s, i) => {
    const [a, b] = s.layers;
    const where = `stage ${i}`;
    if (!(Number.isInteger(a) && Number.isInteger(b) && a < b)) throw new TesseraError(`layer range [${a}, ${b}) is empty or not integer`, where);
    if (a !== next) {
      throw new TesseraError(a > next ? `layers [${next}, ${a}) are not run by any stage` : `layer ${a} is already run by an earlier stage`, where);
    }
    if (b > cfg.numLayers) throw new TesseraError(`layer range [${a}, ${b}) goes past the model's ${cfg.numLayers} layers`, where);
    next = b;
    try {
      return tpSplit(cfg, s.tp, blocks);
    } catch (e) {
      if (e instanceof TesseraError) throw new TesseraError(e.message, where, { cause: e });
      throw e;
    }
  }).map((slices, i, all) => {
    if (i === all.length - 1 && next !== cfg.numLayers) {
      throw new TesseraError(`layers [${next}, ${cfg.numLayers}) are not run by any stage`, "shard plan");
    }
    return slices;
  });
}

function placeOf(p: RankPlace): string {
  return `stage ${p.stage}${p.tpSize > 1 ? `, tensor rank ${p.tpRank}` : ""}`;
}

export function describeRank(p: RankPlace): string {
  return `runner ${p.world} (${placeOf(p)})`;
}

/** World rank `id` as liveness and group errors name it (0 is the driver). */
export function describeWorldRank(id: number, places: RankPlace[]): string {
  const p = places[id - 1];
  return `rank ${id} (${p ? placeOf(p) : "the driver"})`;
}

export function describePlan(plan: ShardPlan): string {
  return plan.stages.map((s) => `[${s.layers[0]}, ${s.layers[1]})${s.tp > 1 ? `×tp${s.tp}` : ""}`).join(" → ");
}
