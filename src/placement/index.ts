/*
 * Placement: pure and deterministic (no I/O, no clock, no randomness). Given a model's placement
 * view, the cluster's nodes and links, and a request, `place` returns every candidate plan with
 * its memory per node, predicted speed and, for rejected ones, the reason. The master runs it;
 * previews show its whole answer.
 *
 *   const plans = place(placementModel(source), cluster, { ctx: 4096 });
 *   const best = plans.find((p) => p.feasible);
 *
 * `predictDecode` asks the same cost model about a sharded run from one measured single-process
 * speed (bench/scaling). The shard plan (stages × tensor groups) and the tensor-parallel split
 * the runners execute live here too.
 */
export { place, fitLayers, DEFAULT_PROMPT_TOKENS, MAX_NODES } from "./place.js";
export { predictDecode, decodeCost, COST, type DecodePredictionInput, type DecodeCost } from "./cost.js";
export { placementModel, HELD_BYTES_PER_WEIGHT, STREAM_COST_PER_WEIGHT, type PlacementModel, type WeightGroup } from "./model.js";
export { DEFAULT_CTX, driverBytes, RUNNER_BASE_BYTES } from "./memory.js";
export * from "./types.js";
export { makePlan, rankPlaces, checkPlan, splitBlocks, describePlan, type ShardPlan, type StagePlan, type RankPlace } from "./shard-plan.js";
