import { LocalModels, modelSpecFromPath } from "../inference/local-models.js";
import { ModelRouter } from "../inference/router.js";
import type { ModelBackends } from "../inference/service.js";
import type { EngineWorkerOptions } from "../inference/worker/engine-worker.js";
import type { Serving } from "./generation.js";
import { internalRoutes } from "./internal-routes.js";
import type { RouteModule } from "./server.js";
import { RunningRequests } from "./requests.js";
import { ServingMetrics } from "./serving-metrics.js";

export interface NodeServingOptions {
  nodeId: string;
  /** Model files this node serves (`--model`), loaded on their first request. */
  modelPaths: string[];
  engine: EngineWorkerOptions;
  aliases?: Record<string, string>;
  /** Where vendor names (claude-*, gpt-*) go; default: the first model. */
  defaultModel?: string;
  autoLaunch?: boolean;
  maxQueued?: number;
  keepAliveMs?: number;
  /** This node's other places models run (the instances it is home to), beside its --model files. */
  places?: ModelBackends[];
  version: string;
  log(message: string): void;
}

export interface NodeServing {
  serving: Serving;
  local: LocalModels;
  /** This node's own places (its models and instances): what other nodes forward to. */
  own: ModelRouter;
  router: ModelRouter;
  /** Replaces the backends of other nodes (forwarding); this node's own stay first. */
  setRemote(backends: ModelBackends[]): void;
  /** This node's models for other nodes (node-to-node routes). */
  internalRoutes: RouteModule;
  close(): Promise<void>;
}

/** The serving stack of one node: its local models and instances, the router over them and other nodes, metrics. */
export function createNodeServing(o: NodeServingOptions): NodeServing {
  const specs = o.modelPaths.map(modelSpecFromPath);
  const metrics = new ServingMetrics();
  const local = new LocalModels(specs, {
    node: o.nodeId,
    engine: o.engine,
    maxQueued: o.maxQueued,
    keepAliveMs: o.keepAliveMs,
    log: o.log,
    onResult: (model, result) => metrics.observe(model, result),
  });
  const own = new ModelRouter([local, ...(o.places ?? [])], { node: o.nodeId, autoLaunch: o.autoLaunch });
  const router = new ModelRouter([own], {
    node: o.nodeId,
    aliases: o.aliases,
    defaultModel: o.defaultModel ?? specs[0]?.id,
    autoLaunch: o.autoLaunch,
  });
  const serving: Serving = { models: router, metrics, requests: new RunningRequests(), version: o.version, log: o.log };
  return {
    serving,
    local,
    own,
    router,
    setRemote: (backends) => router.setBackends([own, ...backends]),
    internalRoutes: internalRoutes(own, serving.requests, o.log),
    close: () => local.close(),
  };
}
