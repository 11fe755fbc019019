import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import { resolveContextLength } from "../models/context.js";
import { checkMemoryFits } from "../engine/memory.js";
import { memoryInfo } from "../system-memory.js";
import { physicalCores } from "../engine/session/threads.js";
import type { EngineOptions } from "../engine/types.js";
import { loadedEngine, slotsThatFit, type LoadedEngine } from "../engine/backend.js";
import { MAX_DECODE_SPAN } from "./protocol.js";
import { ShardedStepper } from "./bridge.js";
import { checkPlan, makePlan, rankPlaces, splitBlocks } from "../placement/shard-plan.js";
import { estimatePlanMemory } from "./plan-memory.js";

/** The shape of a local sharded run (`tessera run --stages N --tp M`). */
export interface ShardingOptions {
  pp: number;
  tp: number;
  /** Relative speed of each pipeline stage: layers are split in proportion (default equal). */
  stageWeights?: number[];
  /** Tensor-parallel all-reduces send 8-bit partial sums (transport/quantize.ts). */
  compressActivations?: boolean;
  /** SharedArrayBuffer-backed, one entry per runner: their peak RSS once the engine has closed (LaunchOptions.peakRssOut). */
  runnerPeakRss?: Float64Array;
}

/**
 * The sharded loader: same result as engine/backend.ts's openEngine, but the Stepper drives
 * pp × tp runner processes on this machine. `threads` is per runner (default: the physical cores
 * shared out, at least 1). With `slots` > 1 every runner holds that many sequences' KV and the
 * engine batches them (LoadedEngine.batch).
 */
export async function openShardedEngine(modelPath: string, opts: EngineOptions, sharding: ShardingOptions): Promise<LoadedEngine> {
  const source = await openModel(modelPath);
  try {
    const cfg = source.config;
    const plan = makePlan(cfg, { pp: sharding.pp, tp: sharding.tp, weights: sharding.stageWeights });
    checkPlan(cfg, plan, splitBlocks(source));
    const contextLength = resolveContextLength(cfg, opts.contextLength, modelPath);
    const estimate = estimatePlanMemory(cfg, source.tensors(), plan, contextLength);
    const available = memoryInfo().availableBytes;
    checkMemoryFits(estimate, available, contextLength, modelPath);
    const slots = Math.min(MAX_DECODE_SPAN, slotsThatFit(opts.slots ?? 1, estimate, available));
    const tokenizer = await loadTokenizer(source);
    const ranks = rankPlaces(plan).length;
    const stepper = await ShardedStepper.start({
      plan,
      modelPath,
      contextLength,
      slots,
      device: opts.device,
      threads: opts.threads ?? Math.max(1, Math.floor(physicalCores() / ranks)),
      compressActivations: sharding.compressActivations,
      peakRssOut: sharding.runnerPeakRss,
      onProgress: opts.onProgress,
    });
    const loaded = await loadedEngine(source, tokenizer, stepper);
    return stepper.batch ? { ...loaded, batch: stepper.batch } : loaded;
  } catch (e) {
    await source.close();
    throw e;
  }
}
