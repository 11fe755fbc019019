import type { ModelConfig } from "../types.js";

/** Questions about a config that the engine asks per layer; the answers are the architecture file's settings. */

/** Whether layer `l` uses sliding-window attention. */
export function isSlidingLayer(cfg: ModelConfig, l: number): boolean {
  return cfg.slidingWindow !== undefined && (cfg.slidingLayers?.[l] ?? true);
}

/** Rope settings of layer `l`: sliding layers may have their own base, and then take no scaling (Gemma 3). */
export function layerRope(cfg: ModelConfig, l: number): Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling"> {
  if (cfg.ropeThetaSliding !== undefined && isSlidingLayer(cfg, l)) return { headDim: cfg.headDim, ropeTheta: cfg.ropeThetaSliding };
  return cfg;
}

/** Whether some layer's rope differs from the model's (needs a second rope table). */
export function hasSlidingRope(cfg: ModelConfig): boolean {
  return cfg.ropeThetaSliding !== undefined && cfg.slidingWindow !== undefined;
}

export function attentionScale(cfg: ModelConfig): number {
  return cfg.attentionScale ?? 1 / Math.sqrt(cfg.headDim);
}
