import { TesseraError } from "../errors.js";
import type { ModelConfig, TensorInfo, TensorType } from "../models/types.js";
import { formatBytes } from "../units.js";

/**
 * What the engine will hold in memory for one shard, computed from the model's header before
 * anything is allocated: `tessera run/bench` refuse a context or a model that cannot fit, and
 * placement can count the same way. A pure function of the config and the tensor list.
 *
 *   weights  each stored tensor the shard runs, times what the engine turns it into:
 *            quantized → MatMulNBits, 1.6 × the stored bytes (measured 1.56 × for Q4_0 on CPU,
 *            prepacked; facts.md); F16/BF16 → float32 MatMul, 2 ×; F32 1 ×. The embedding table
 *            stays at its stored size (rows are looked up in JS); when lm_head is that same table
 *            it is converted once more for the last stage.
 *   kv       layers × 2 × KV heads × context × head_dim × 4 bytes (float32 cache, allocated up front).
 *   scratch  the largest step: attention scores and their softmax for a prefill chunk over the
 *            whole context (2 × heads × chunk × context × 4), plus the rope tables of every graph.
 * Tensor parallel: a rank holds 1/tp of each layer's weights, heads and KV heads (at least one).
 */
export interface MemoryEstimate {
  weightBytes: number;
  kvBytes: number;
  scratchBytes: number;
  totalBytes: number;
}

export interface ShardShape {
  /** Layers [a, b) of the shard (default: all). */
  layers?: [number, number];
  contextLength: number;
  /** Tensor-parallel ranks sharing the shard's layers (default 1); the estimate is for one rank. */
  tp?: number;
  /** Tokens per prefill forward (default 512, the generation loop's). */
  prefillChunk?: number;
}

const ENGINE_BYTES_PER_STORED: Partial<Record<TensorType, number>> = { F32: 1, F16: 2, BF16: 2 };
const QUANTIZED_FACTOR = 1.6;

function engineBytes(t: TensorInfo): number {
  return t.byteLength * (ENGINE_BYTES_PER_STORED[t.type] ?? QUANTIZED_FACTOR);
}

function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

export function estimateShardMemory(cfg: ModelConfig, tensors: readonly TensorInfo[], shape: ShardShape): MemoryEstimate {
  const [a, b] = shape.layers ?? [0, cfg.numLayers];
  const tp = shape.tp ?? 1;
  const ctx = shape.contextLength;
  const first = a === 0;
  const last = b === cfg.numLayers;
  const byName = new Map(tensors.map((t) => [t.name, t]));

  let weights = 0;
  for (const t of tensors) {
    const l = layerOf(t.name);
    if (l >= a && l < b) weights += engineBytes(t) / tp;
    // The final norm (and GGUF's rope_freqs) go with the last stage.
    else if (l < 0 && last && t.name !== "token_embd.weight" && t.name !== "output.weight") weights += engineBytes(t);
  }
  const embedding = byName.get("token_embd.weight");
  if (first && embedding) weights += embedding.byteLength;
  if (last) {
    const head = byName.get("output.weight") ?? embedding;
    if (head) weights += engineBytes(head) / tp;
  }

  const layers = b - a;
  const kvHeads = Math.max(1, Math.ceil(cfg.numKvHeads / tp));
  const heads = Math.max(1, Math.ceil(cfg.numHeads / tp));
  const kv = layers * 2 * kvHeads * ctx * cfg.headDim * 4;
  const chunk = Math.min(shape.prefillChunk ?? 512, ctx);
  const scores = 2 * heads * chunk * ctx * 4;
  // One graph per shard, or two per layer under tensor parallelism; each has its own rope tables.
  const graphs = tp > 1 ? layers : 1;
  const rope = graphs * ctx * cfg.headDim * 4;
  const scratch = scores + rope;
  return { weightBytes: Math.round(weights), kvBytes: kv, scratchBytes: scratch, totalBytes: Math.round(weights) + kv + scratch };
}

/** Adds up estimates (the shards of one machine). */
export function sumEstimates(parts: readonly MemoryEstimate[]): MemoryEstimate {
  const sum = (k: keyof MemoryEstimate) => parts.reduce((s, p) => s + p[k], 0);
  return { weightBytes: sum("weightBytes"), kvBytes: sum("kvBytes"), scratchBytes: sum("scratchBytes"), totalBytes: sum("totalBytes") };
}

/** Throws a one-line error naming the need and what is free when the estimate does not fit. */
export function checkMemoryFits(e: MemoryEstimate, availableBytes: number, contextLength: number, subject?: string): void {
  if (e.totalBytes <= availableBytes) return;
  throw new TesseraError(
    `needs about ${formatBytes(e.totalBytes)} of memory (weights ${formatBytes(e.weightBytes)}, KV cache for ${contextLength} tokens ` +
      `${formatBytes(e.kvBytes)}, working memory ${formatBytes(e.scratchBytes)}) but only ${formatBytes(availableBytes)} is available` +
      (e.kvBytes + e.scratchBytes > e.weightBytes ? "; a smaller --ctx needs less" : ""),
    subject,
  );
}
