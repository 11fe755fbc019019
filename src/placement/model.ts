import type { ModelSource, TensorInfo, TensorType } from "../models/types.js";
import { splitBlocks } from "./shard-plan.js";
import type { SplitBlocks } from "./split.js";

/**
 * What placement knows about a model: its shape and, per group of weights, how many there are,
 * how many bytes the engine holds for them and what streaming them costs per decoded token. Plain
 * data (it travels in instance events and is kept with a deployment), built once from the model's
 * header by `placementModel`.
 *
 * Every decoder layer of the supported architectures is alike, so one layer stands for all: the
 * totals over blk.* divided by the layer count.
 */
export interface WeightGroup {
  /** Number of weights. */
  weights: number;
  /** Bytes the engine holds for them once loaded (HELD_BYTES_PER_WEIGHT). */
  heldBytes: number;
  /** Decode cost: 4-bit-weight equivalents streamed per token (STREAM_COST_PER_WEIGHT). */
  stream: number;
}

export interface PlacementModel {
  /** How reasons and previews name the model. */
  name: string;
  layers: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  /** lm_head rows. */
  vocabSize: number;
  /** The context the model was trained for (the cap for a requested ctx). */
  contextLength: number;
  /** Quantization blocks that a tensor-parallel split cuts across. */
  blocks: SplitBlocks;
  /** One decoder layer: q and o (split by query heads), k and v (by KV heads), the MLP (by FFN columns). */
  layer: { qo: WeightGroup; kv: WeightGroup; mlp: WeightGroup; /** norms and biases, float32 */ otherBytes: number };
  /** The embedding table: looked up in JS at its stored size, on every rank of the first stage. */
  embeddingBytes: number;
  /** lm_head (or the tied embedding) as the engine holds it, split by vocabulary over the last stage. */
  head: WeightGroup;
}

/**
 * How the engine holds each stored type (engine/weights/convert.ts), in bytes per weight once the
 * session is created: 4-bit types become MatMulNBits 4-bit (onnxruntime repacks them for its int8
 * kernel), 8-bit-ish types MatMulNBits 8-bit, float types a float32 MatMul. Measured by
 * bench/placement/held-bytes.ts (bench/results/placement-held-bytes-2026-12-04.json; the larger of
 * the steady and peak per-weight figures, 1b model, weights staged on disk): Q4_0 0.97, Q8_0 1.62,
 * F16 4.0. The others share their engine form's number plus their extra per-block data (Q4_1,
 * Q4_K, MLX4: float zero points, +0.125; Q5_K, Q6_K, MLX8: a bias or 16-wide blocks).
 */
export const HELD_BYTES_PER_WEIGHT: Record<TensorType, number> = {
  Q4_0: 0.97,
  Q4_1: 1.1,
  Q4_K: 1.1,
  MLX4: 1.1,
  Q8_0: 1.62,
  Q5_K: 1.75,
  Q6_K: 1.75,
  MLX8: 1.75,
  F32: 4.0,
  F16: 4.0,
  BF16: 4.0,
  U32: 4,
  I8: 1,
  U8: 1,
};

/**
 * Decode time per weight relative to a MatMulNBits 4-bit weight (what the node's decode probe
 * measures): GEMV at batch 1 is bound by memory bandwidth, and the kernels reach different shares
 * of it (measured facts: 4-bit block 32 at 0.58 of the read bandwidth for 0.625 B/weight, 8-bit at
 * 0.75 for 1.125 B/weight, float32 MatMul ~0.8 for 4 B/weight).
 */
export const STREAM_COST_PER_WEIGHT: Record<TensorType, number> = {
  Q4_0: 1,
  Q4_1: 1.1,
  Q4_K: 1.1,
  MLX4: 1.1,
  Q8_0: 1.39,
  Q5_K: 1.45,
  Q6_K: 1.45,
  MLX8: 1.45,
  F32: 4.6,
  F16: 4.6,
  BF16: 4.6,
  U32: 4.6,
  I8: 1.39,
  U8: 1.39,
};

function weightsOf(t: TensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

function group(ts: TensorInfo[], layers = 1): WeightGroup {
  let weights = 0;
  let heldBytes = 0;
  let stream = 0;
  for (const t of ts) {
    const w = weightsOf(t);
    weights += w;
    heldBytes += w * HELD_BYTES_PER_WEIGHT[t.type];
    stream += w * STREAM_COST_PER_WEIGHT[t.type];
  }
  return { weights: weights / layers, heldBytes: heldBytes / layers, stream: stream / layers };
}

const LAYER = /^blk\.\d+\.(.+)$/;

/** The placement view of a model, from its header (no tensor data is read). */
export function placementModel(source: ModelSource, name = source.path): PlacementModel {
  const cfg = source.config;
  const L = cfg.numLayers;
  const qo: TensorInfo[] = [];
  const kv: TensorInfo[] = [];
  const mlp: TensorInfo[] = [];
  let otherBytes = 0;
  for (const t of source.tensors()) {
    const part = LAYER.exec(t.name)?.[1];
    if (part === undefined) continue;
    if (part === "attn_q.weight" || part === "attn_output.weight") qo.push(t);
    else if (part === "attn_k.weight" || part === "attn_v.weight") kv.push(t);
    else if (part === "ffn_gate.weight" || part === "ffn_up.weight" || part === "ffn_down.weight") mlp.push(t);
    else otherBytes += weightsOf(t) * 4;
  }
  const embedding = source.info("token_embd.weight");
  const lmHead = source.info("output.weight") ?? embedding;
  return {
    name,
    layers: L,
    hiddenSize: cfg.hiddenSize,
    numHeads: cfg.numHeads,
    numKvHeads: cfg.numKvHeads,
    headDim: cfg.headDim,
    intermediateSize: cfg.intermediateSize,
    vocabSize: lmHead?.shape[0] ?? cfg.vocabSize,
    contextLength: cfg.contextLength,
    blocks: splitBlocks(source),
    layer: { qo: group(qo, L), kv: group(kv, L), mlp: group(mlp, L), otherBytes: otherBytes / L },
    embeddingBytes: embedding?.byteLength ?? 0,
    head: group(lmHead ? [lmHead] : []),
  };
}
