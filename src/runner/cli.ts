import { TesseraError } from "../errors.js";
import type { EngineWorkerOptions } from "../inference/worker/engine-worker.js";
import type { ShardingOptions } from "./sharded-backend.js";

/** Sharding flags of `tessera run/bench` besides --tp (an engine flag) and the pipeline count (named per command). */
export const SHARDING_FLAGS = {
  "compress-activations": { type: "boolean" },
} as const;

export type Sharding = ShardingOptions;

/** The sharding flags out of parsed values, checked. */
export function shardingFlags(values: Record<string, unknown>, pp: number, tp: number): Sharding {
  const compressActivations = values["compress-activations"] === true;
  if (compressActivations && tp < 2) {
    throw new TesseraError("--compress-activations needs --tp 2 or more: it compresses the partial sums that tensor-parallel ranks exchange");
  }
  return { pp, tp, compressActivations };
}

/**
 * Engine worker options for `tessera run/bench`: unchanged for one process; with pp × tp > 1 the
 * engine worker loads the sharded backend, which starts pp × tp local runner processes.
 */
export function withSharding(opts: EngineWorkerOptions, s: Sharding): EngineWorkerOptions {
  if (s.pp === 1 && s.tp === 1) return opts;
  return { ...opts, backend: { kind: "sharded", sharding: { ...s, compressActivations: s.compressActivations === true } } };
}
