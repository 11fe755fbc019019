import { TesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import { DEFAULT_CONTEXT } from "../engine/session/shard.js";
import { physicalCores } from "../engine/session/threads.js";
import type { EngineOptions } from "../engine/types.js";
import type { LoadedEngine } from "../engine/backend.js";
import { ShardedStepper } from "./bridge.js";
import { checkPlan, makePlan, rankPlaces, splitBlocks } from "./plan.js";

/** Engine options plus the shape of the local sharded run (`tessera run --pp N --tp M`). */
export interface ShardedEngineOptions extends EngineOptions {
  pp: number;
  tp: number;
  /** Relative speed of each pipeline stage: layers are split in proportion (default equal). */
  stageWeights?: number[];
  /** Tensor-parallel all-reduces send 8-bit partial sums (transport/quantize.ts). */
  compressActivations?: boolean;
  /** Filled in when the engine closes: each runner's peak RSS (LaunchOptions.peakRssOut). */
  runnerPeakRss?: Float64Array;
}

/** URL of this module, for EngineWorker's `backend` option. */
export function shardedBackendUrl(): string {
  return import.meta.url;
}

/**
 * The sharded backend for the engine worker: same contract as engine/backend.ts, but
 * the Stepper drives pp × tp runner processes on this machine. `threads` is per runner (default:
 * the physical cores shared out, at least 1).
 */
export async function openEngine(modelPath: string, opts: EngineOptions): Promise<LoadedEngine> {
  const o = opts as ShardedEngineOptions;
  const source = await openModel(modelPath);
  try {
    const cfg = source.config;
    const plan = makePlan(cfg, { pp: o.pp ?? 1, tp: o.tp ?? 1, weights: o.stageWeights });
    checkPlan(cfg, plan, splitBlocks(source));
    const tokenizer = await loadTokenizer(source);
    const ranks = rankPlaces(plan).length;
    const contextLength = o.contextLength ?? Math.min(cfg.contextLength || DEFAULT_CONTEXT, DEFAULT_CONTEXT);
    const stepper = await ShardedStepper.start({
      plan,
      modelPath,
      contextLength,
      device: o.device,
      threads: o.threads ?? Math.max(1, Math.floor(physicalCores() / ranks)),
      compressActivations: o.compressActivations,
      peakRssOut: o.runnerPeakRss,
    });
    if (tokenizer.vocabSize > stepper.vocabSize) {
      await stepper.dispose();
      throw new TesseraError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's output only ${stepper.vocabSize}`, modelPath);
    }
    const weightBytes = source.tensors().reduce((s, t) => s + t.byteLength, 0);
    return { stepper, tokenizer, architecture: cfg.architecture, weightBytes, close: () => source.close() };
  } catch (e) {
    await source.close();
    throw e;
  }
}
