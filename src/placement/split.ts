import type { ModelConfig } from "../models/types.js";
import { TesseraError } from "../errors.js";
import { expertSlices } from "./expert-split.js";

/**
 * Tensor-parallel slicing of one decoder layer (Megatron style): a rank holds some query heads and
 * the KV heads they read, so its attention is self-contained; o_proj takes its input columns for
 * those heads and yields a partial sum. The MLP splits the intermediate dimension: gate/up rows and
 * down input columns. Partials of all ranks sum to the full layer's output (the all-reduce).
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

/**
 * How one tensor-parallel group of `size` ranks divides a decoder layer, as evenly as the model
 * allows, including uneven splits and groups larger than the KV head count:
 *
 * - size ≤ KV heads: KV heads are dealt out as evenly as possible (counts differ by at most one)
 *   and every rank takes the query heads that read its KV heads, so attention stays local.
 * - size > KV heads and a multiple of it: each KV head is replicated on size/KV ranks, which split
 *   that head's query group between them (each still needs ≥ 1 query head). Replication costs the
 *   KV projection and cache of one head per rank, the price of a group larger than KV.
 * - otherwise the plan is refused: a rank would need query heads of several KV heads that do not
 *   split into a whole group, which the grouped attention graph cannot express.
 *
 * FFN columns are dealt out in whole quantization blocks. Column slices (attn_output, ffn_down
 * inputs) must start on a block edge of the stored tensor, or the model is refused for that size.
 */
export interface SplitBlocks {
  /** Quantization block along attn_output's input (1 for float weights). */
  attnOutput: number;
  /** Quantization block along ffn_down's input. */
  ffnDown: number;
  /** Quantization block along ffn_down_exps' input (mixture of experts). */
  expertDown?: number;
}

/** n items into k parts, the first n mod k one larger. */
export function evenSplit(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

function starts(counts: number[]): number[] {
  const out = [0];
  for (const c of counts) out.push(out[out.length - 1]! + c);
  return out;
}

interface HeadRange {
  q0: number;
  q1: number;
  kv0: number;
  kv1: number;
}

/** The parts of a model config that a tensor-parallel split reads. */
export type SplitShape = Pick<ModelConfig, "numHeads" | "numKvHeads" | "headDim" | "intermediateSize" | "moe">;

function headRanges(cfg: SplitShape, size: number): HeadRange[] {
  const H = cfg.numHeads;
  const KV = cfg.numKvHeads;
  const group = H / KV;
  if (!Number.isInteger(group)) throw new TesseraError(`${H} heads are not a multiple of ${KV} KV heads`);
  if (size <= KV) {
    const kv = starts(evenSplit(KV, size));
    return Array.from({ length: size }, (_, r) => ({ q0: kv[r]! * group, q1: kv[r + 1]! * group, kv0: kv[r]!, kv1: kv[r + 1]! }));
  }
  if (size % KV !== 0) {
    throw new TesseraError(
      `a tensor-parallel group of ${size} cannot share the model's ${KV} KV heads: use a group size that divides ${KV} or is a multiple of it`,
    );
  }
  const per = size / KV;
  if (per > group) {
    throw new TesseraError(`a tensor-parallel group of ${size} is larger than the model's ${H} attention heads`);
  }
  const q = starts(evenSplit(group, per));
  const out: HeadRange[] = [];
  for (let kv = 0; kv < KV; kv++) {
    for (let j = 0; j < per; j++) out.push({ q0: kv * group + q[j]!, q1: kv * group + q[j + 1]!, kv0: kv, kv1: kv + 1 });
  }
  return out;
}

/** Every rank's slice of a layer for a group of `size`; throws a TesseraError when the model cannot be split so. */
export function tpSplit(cfg: SplitShape, size: number, blocks: SplitBlocks): TpSlice[] {
  if (!Number.isInteger(size) || size < 1) throw new TesseraError(`tensor-parallel group size must be an integer ≥ 1, got ${size}`);
  const D = cfg.headDim;
  const heads = headRanges(cfg, size);
  // A mixture-of-experts model has no dense MLP: its experts are sliced instead (expert-split.ts).
  const experts = cfg.moe ? expertSlices(cfg, size, blocks.expertDown ?? 1) : undefined;
  const F = cfg.moe ? 0 : cfg.intermediateSize;
  if (F % blocks.ffnDown !== 0) throw new TesseraError(`FFN size ${F} is not a whole number of quantization blocks (${blocks.ffnDown})`);
  const ffnBlocks = F / blocks.ffnDown;
  if (!cfg.moe && ffnBlocks < size) {
    throw new TesseraError(`FFN size ${F} has only ${ffnBlocks} quantization blocks of ${blocks.ffnDown}, fewer than ${size} ranks`);
  }
  const ffn = starts(evenSplit(ffnBlocks, size)).map((b) => b * blocks.ffnDown);
  return heads.map((h, rank) => {
    const col = h.q0 * D;
    if (size > 1 && (col % blocks.attnOutput !== 0 || (h.q1 * D) % blocks.attnOutput !== 0)) {
      throw new TesseraError(
        `tensor-parallel rank ${rank} of ${size} would hold attention heads [${h.q0}, ${h.q1}), whose attn_output columns ` +
          `[${col}, ${h.q1 * D}) do not fall on the weights' quantization blocks of ${blocks.attnOutput}: use a smaller group`,
      );
    }
    return {
      rank,
      size,
      heads: h.q1 - h.q0,
      kvHeads: h.kv1 - h.kv0,
      qRows: [h.q0 * D, h.q1 * D],
      kvRows: [h.kv0 * D, h.kv1 * D],
      oCols: [h.q0 * D, h.q1 * D],
      ffnRows: [ffn[rank]!, ffn[rank + 1]!],
      downCols: [ffn[rank]!, ffn[rank + 1]!],
      ...experts?.[rank],
    };
  });
}
