import { TesseraError } from "../errors.js";
import type { EngineWorkerOptions } from "../inference/worker/engine-worker.js";
import { checkMemoryFits, estimateShardMemory } from "../engine/memory.js";
import { resolveContextLength } from "../models/context.js";
import { openModel } from "../models/open.js";
import { memoryInfo } from "../system-memory.js";
import { checkPlan, makePlan, splitBlocks } from "../placement/shard-plan.js";
import { estimatePlanMemory } from "./plan-memory.js";
import type { ShardingOptions } from "./sharded-backend.js";

export type Sharding = ShardingOptions;

/**
 * Checks a run against the model before any engine starts (fast: the file's header only): the
 * sharding plan, the context against what the model was trained for, and the memory all ranks need
 * against what this machine has free. Returns the context length to use. The engine backends check
 * the same again for callers that skip this.
 */
export async function preflight(modelPath: string, s: Sharding, contextLength: number | undefined, label?: string): Promise<number> {
  const source = await openModel(modelPath);
  try {
    const cfg = source.config;
    const ctx = resolveContextLength(cfg, contextLength, modelPath, label);
    let need;
    if (s.pp === 1 && s.tp === 1) {
      need = estimateShardMemory(cfg, source.tensors(), { contextLength: ctx });
    } else {
      let plan;
      try {
        plan = makePlan(cfg, { pp: s.pp, tp: s.tp });
        checkPlan(cfg, plan, splitBlocks(source));
      } catch (e) {
        // Name the flags that asked for this split.
        if (e instanceof TesseraError) throw new TesseraError(e.message, `--stages ${s.pp} --tp ${s.tp}`, { cause: e });
        throw e;
      }
      need = estimatePlanMemory(cfg, source.tensors(), plan, ctx);
    }
    checkMemoryFits(need, memoryInfo().availableBytes, ctx, modelPath);
    return ctx;
  } finally {
    await source.close();
  }
}

/**
 * Engine worker options for `tessera run/bench`: unchanged for one process; with pp × tp > 1 the
 * engine worker loads the sharded backend, which starts pp × tp local runner processes.
 */
export function withSharding(opts: EngineWorkerOptions, s: Sharding): EngineWorkerOptions {
  if (s.pp === 1 && s.tp === 1) return opts;
  return { ...opts, backend: { kind: "sharded", sharding: { ...s, compressActivations: s.compressActivations === true } } };
}
