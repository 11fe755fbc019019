import type { PlacementModel } from "./model.js";
import { evenSplit } from "./split.js";

/**
 * What a runner process needs in memory, in bytes. Measured by bench/placement/held-bytes.ts
 * (bench/results/placement-held-bytes-2026-12-04.json):
 *   RUNNER_BASE_BYTES   a runner with no weights: Node, onnxruntime, its liveness thread (108 MiB
 *                       steady, 128 MiB peak)
 *   driverBytes         what the driver adds to its home node: engine worker and driver threads and
 *                       the tokenizer, which grows with the vocabulary (64 MiB with 4096 tokens,
 *                       185 MiB with Qwen3's 151,643): DRIVER_BASE_BYTES + DRIVER_BYTES_PER_TOKEN × vocab
 * KV caches are float32: per layer 2 (keys, values) × KV heads × head_dim × ctx × 4 bytes.
 * Activations of a prefill chunk: ACTIVATION_TOKENS rows of the widest intermediate tensors.
 */
export const RUNNER_BASE_BYTES = 120 * 2 ** 20;
export const DRIVER_BASE_BYTES = 60 * 2 ** 20;
export const DRIVER_BYTES_PER_TOKEN = 860;
export const ACTIVATION_TOKENS = 512;
export const DEFAULT_CTX = 4096;

/** One rank's share of a stage: which part of each layer it holds. */
export interface RankShare {
  layers: number;
  /** Query heads, KV heads and FFN columns of this rank (the whole layer when not split). */
  heads: number;
  kvHeads: number;
  ffn: number;
  first: boolean;
  last: boolean;
  /** Fraction of lm_head rows (the last stage splits the vocabulary over its ranks). */
  vocabShare: number;
}

/** The rank's part of one layer, as fractions of the whole (query heads, KV heads, FFN columns). */
function fractions(m: PlacementModel, s: RankShare): { q: number; kv: number; ffn: number } {
  return { q: s.heads / m.numHeads, kv: s.kvHeads / m.numKvHeads, ffn: s.ffn / m.intermediateSize };
}

export function rankWeightBytes(m: PlacementModel, s: RankShare): number {
  const f = fractions(m, s);
  const perLayer = m.layer.qo.heldBytes * f.q + m.layer.kv.heldBytes * f.kv + m.layer.mlp.heldBytes * f.ffn + m.layer.otherBytes;
  return s.layers * perLayer + (s.first ? m.embeddingBytes : 0) + (s.last ? m.head.heldBytes * s.vocabShare : 0);
}

/** KV bytes of a rank for `kvTokens` cached tokens (ctx × the slots it holds). */
export function rankKvBytes(m: PlacementModel, s: RankShare, kvTokens: number): number {
  return s.layers * 2 * s.kvHeads * m.headDim * kvTokens * 4;
}

function activationBytes(m: PlacementModel, s: RankShare): number {
  const widest = 4 * m.hiddenSize + 2 * s.ffn;
  return ACTIVATION_TOKENS * widest * 4 + (s.last ? m.vocabSize * s.vocabShare * 4 : 0);
}

export function driverBytes(m: PlacementModel): number {
  return Math.ceil(DRIVER_BASE_BYTES + DRIVER_BYTES_PER_TOKEN * m.vocabSize);
}

export function rankMemoryBytes(m: PlacementModel, s: RankShare, kvTokens: number): number {
  return Math.ceil(RUNNER_BASE_BYTES + rankWeightBytes(m, s) + rankKvBytes(m, s, kvTokens) + activationBytes(m, s));
}

/** Decode cost of a rank: 4-bit-weight equivalents it streams per token. */
export function rankStream(m: PlacementModel, s: RankShare): number {
  const f = fractions(m, s);
  const perLayer = m.layer.qo.stream * f.q + m.layer.kv.stream * f.kv + m.layer.mlp.stream * f.ffn;
  return s.layers * perLayer + (s.last ? m.head.stream * s.vocabShare : 0);
}

/** Weights a rank multiplies per token (prefill: 2 FLOPs each). */
export function rankWeights(m: PlacementModel, s: RankShare): number {
  const f = fractions(m, s);
  const perLayer = m.layer.qo.weights * f.q + m.layer.kv.weights * f.kv + m.layer.mlp.weights * f.ffn;
  return s.layers * perLayer + (s.last ? m.head.weights * s.vocabShare : 0);
}

/** The vocabulary share of each tensor rank of a last stage of `size` ranks (engine: vocabSlices). */
export function vocabShares(m: PlacementModel, size: number): number[] {
  return evenSplit(m.vocabSize, size).map((c) => c / m.vocabSize);
}
