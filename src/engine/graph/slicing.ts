import type { ModelConfig } from "../../models/types.js";
import { TesseraError } from "../../errors.js";

/**
 * Tensor-parallel slicing of one decoder layer over `size` ranks (Megatron style). Rank r holds
 * query heads [r·H/g, (r+1)·H/g) and KV heads [r·KV/g, (r+1)·KV/g), so each rank's attention is
 * self-contained; o_proj takes its input columns for those heads and yields a partial sum. The MLP
 * splits the intermediate dimension: gate/up rows and down input columns. Partials of all ranks
 * sum to the full layer's output (the all-reduce).
 */
export interface TpSlice {
  rank: number;
  size: number;
  heads: number;
  kvHeads: number;
  /** Rows of attn_q (and the q bias) this rank reads: [start, end). */
  qRows: [number, number];
  /** Rows of attn_k and attn_v (and their biases). */
  kvRows: [number, number];
  /** Input columns of attn_output. */
  oCols: [number, number];
  /** Rows of ffn_gate and ffn_up. */
  ffnRows: [number, number];
  /** Input columns of ffn_down. */
  downCols: [number, number];
  /** Mixture of experts: rows of every expert's gate and up, and input columns of its down (each expert sliced alike). */
  expertRows?: [number, number];
  expertCols?: [number, number];
}

/** `block` is the quantization block of the weights; column slices must fall on block edges. */
export function tpSlice(cfg: ModelConfig, rank: number, size: number, block = 32): TpSlice {
  const { numHeads, numKvHeads, headDim, intermediateSize } = cfg;
  if (!Number.isInteger(size) || size < 1 || rank < 0 || rank >= size) {
    throw new TesseraError(`invalid tensor-parallel rank ${rank} of ${size}`);
  }
  if (numHeads % size || numKvHeads % size) {
    throw new TesseraError(`${numHeads} heads / ${numKvHeads} KV heads do not split over ${size} ranks`);
  }
  const heads = numHeads / size;
  const kvHeads = numKvHeads / size;
  const ffn = intermediateSize / size;
  if (!Number.isInteger(ffn) || (size > 1 && ffn % block)) {
    throw new TesseraError(`intermediate size ${intermediateSize} does not split over ${size} ranks in blocks of ${block}`);
  }
  if (size > 1 && (heads * headDim) % block) {
    throw new TesseraError(`${heads} heads × ${headDim} is not a multiple of the quantization block ${block}`);
  }
  const q0 = rank * heads * headDim;
  const kv0 = rank * kvHeads * headDim;
  return {
    rank,
    size,
    heads,
    kvHeads,
    qRows: [q0, q0 + heads * headDim],
    kvRows: [kv0, kv0 + kvHeads * headDim],
    oCols: [q0, q0 + heads * headDim],
    ffnRows: [rank * ffn, (rank + 1) * ffn],
    downCols: [rank * ffn, (rank + 1) * ffn],
  };
}
