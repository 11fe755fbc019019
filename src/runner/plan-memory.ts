import type { ModelConfig, TensorInfo } from "../models/types.js";
import { estimateShardMemory, sumEstimates, type MemoryEstimate } from "../engine/memory.js";
import { rankPlaces, type ShardPlan } from "../placement/shard-plan.js";

/** What every rank of a plan holds, added up (all ranks on one machine, as `tessera run --stages/--tp`). */
export function estimatePlanMemory(cfg: ModelConfig, tensors: readonly TensorInfo[], plan: ShardPlan, contextLength: number): MemoryEstimate {
  return sumEstimates(rankPlaces(plan).map((p) => estimateShardMemory(cfg, tensors, { layers: p.layers, tp: p.tpSize, contextLength })));
}
