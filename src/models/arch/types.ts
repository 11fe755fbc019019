import type { GgufValue } from "../gguf/values.js";
import type { Architecture, ModelConfig } from "../types.js";
import type { GgufKeys, HfKeys } from "./keys.js";

/**
 * What one architecture file says about its models (see registry.ts for the list). Everything that
 * differs between architectures is here, so the rest of the code reads features, never names:
 *
 * - config: the fields and defaults it reads from GGUF metadata and from a Hugging Face config.json,
 *   refusing (with the feature named) whatever the engine does not implement;
 * - tensors: one layout per layer, the stored tensors with their shapes (the shape check and the
 *   synthetic writer use it) and where each logical weight lives in them (the loader uses it);
 * - names: Hugging Face module names of those tensors (safetensors/MLX reading, synthetic writing);
 * - the synthetic writer's metadata (GGUF keys, config.json fields) for this architecture.
 *
 * The layer's math follows from the config and the weights present: the engine composes shared blocks
 * (pre/post norms, attention with optional bias, q/k norm and sliding window, gated MLP or mixture of
 * experts) from them (engine/graph/decoder.ts).
 */
export interface ArchDef {
  readonly name: Architecture;
  /** `general.architecture` in GGUF files. */
  readonly gguf: string;
  /** config.json `model_type` values and `architectures` class names this file reads. */
  readonly hfModelTypes: readonly string[];
  readonly hfClasses: readonly string[];
  /** llama.cpp's converter permutes this architecture's attn_q/attn_k rows for interleaved rope. */
  readonly ggufRopeInterleaved: boolean;
  /**
   * Added to norm weights read from Hugging Face / MLX files: Gemma stores w and multiplies by
   * (1 + w), GGUF stores 1 + w. The engine always sees the multiplier.
   */
  readonly hfNormOffset?: number;
  fromGguf(k: GgufKeys): ModelConfig;
  fromHf(k: HfKeys): ModelConfig;
  /** Stored tensors of layer `l` and where its weights live in them. */
  layer(cfg: ModelConfig, l: number): LayerLayout;
  /** Module names inside `model.layers.N.` (HF) for each canonical layer tensor part. */
  readonly hfLayerNames: HfLayerNames;
  /** GGUF metadata beyond the keys every decoder has (synthetic writer). */
  ggufExtraMeta?(cfg: ModelConfig): [string, GgufValue][];
  /** config.json fields for this architecture (synthetic writer); model_type and class first. */
  hfConfig(cfg: ModelConfig): Record<string, unknown>;
}

/**
 * The logical weights of a decoder layer. A model stores each one as a tensor of its own, or as rows
 * of a fused tensor (Phi-3's attn_qkv and gate|up ffn_up). Expert tensors are 3-D: [experts, rows, cols].
 */
export type LayerRole =
  | "attnNorm" | "q" | "k" | "v" | "o" | "qBias" | "kBias" | "vBias" | "qNorm" | "kNorm" | "attnPostNorm"
  | "ffnNorm" | "gate" | "up" | "down" | "ffnPostNorm"
  | "router" | "gateExps" | "upExps" | "downExps";

/** Rows [rowOffset, rowOffset + rows) of `tensor` (per expert, for 3-D tensors). */
export interface WeightRef {
  tensor: string;
  rowOffset: number;
  rows: number;
}

export interface StoredTensor {
  name: string;
  /** Row-major, outermost first (GGUF's dims reversed). */
  shape: number[];
}

export interface LayerLayout {
  tensors: StoredTensor[];
  weights: Partial<Record<LayerRole, WeightRef>>;
}

/**
 * Canonical layer tensor part (`attn_q`, `ffn_gate_exps`, ...) → Hugging Face module inside
 * `model.layers.N.`. Expert tensors have a per-expert name with `{e}` for the expert index
 * (transformers checkpoints) and may have a stacked one (MLX `switch_mlp`).
 */
export type HfLayerNames = Record<string, string | { perExpert: string; stacked?: string }>;
