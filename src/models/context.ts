import { TesseraError } from "../errors.js";
import type { ModelConfig } from "./types.js";

/** KV capacity when the caller sets none: the model's own, capped to keep memory modest. */
export const DEFAULT_CONTEXT = 4096;

/**
 * The longest context a model can attend over: what it was trained for (`contextLength`, which for
 * llama3 rope scaling is already the extended length), or more where its rope scaling stretches
 * the original length further.
 */
export function maxContext(cfg: ModelConfig): number {
  const s = cfg.ropeScaling;
  // linear scaling states no original length: its contextLength is taken as the reach
  const scaled = s?.kind === "llama3" ? Math.floor(s.originalContextLength * s.factor) : 0;
  return Math.max(cfg.contextLength, scaled);
}

/**
 * The KV capacity to allocate: `requested` (the --ctx flag) checked against the model, or the
 * default. Throws before anything is allocated, so an absurd value costs nothing. `label` names
 * what asked for it in the error (bench: the prompt length).
 */
export function resolveContextLength(cfg: ModelConfig, requested: number | undefined, subject?: string, label = `--ctx ${requested}`): number {
  const limit = maxContext(cfg);
  if (requested === undefined) return Math.min(limit, DEFAULT_CONTEXT);
  if (!Number.isInteger(requested) || requested < 1) throw new TesseraError(`--ctx must be a whole number ≥ 1, got ${requested}`, subject);
  if (requested > limit) {
    throw new TesseraError(`${label} is beyond the ${limit} tokens this model was trained for (--ctx ${limit} at most)`, subject);
  }
  return requested;
}
