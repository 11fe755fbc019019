import type { EngineWorkerOptions } from "../engine/worker/engine-worker.js";
import { shardedBackendUrl, type ShardedEngineOptions } from "./sharded-backend.js";

/**
 * Engine worker options for `tessera run/bench`: unchanged for one process; with pp × tp > 1 the
 * engine worker loads the sharded backend, which starts pp × tp local runner processes.
 */
export function withSharding(opts: EngineWorkerOptions, pp: number, tp: number): EngineWorkerOptions {
  if (pp === 1 && tp === 1) return opts;
  const sharded: EngineWorkerOptions & ShardedEngineOptions = { ...opts, pp, tp, backend: shardedBackendUrl() };
  return sharded;
}
