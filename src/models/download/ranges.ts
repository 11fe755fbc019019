import type { TpSlice } from "../../placement/split.js";
import { LAYOUTS } from "../quant/types.js";
import { sliceToStrided } from "../source/strided.js";
import type { TensorSlice, TensorType } from "../types.js";

/**
 * Which bytes of a GGUF file one shard needs, as a pure function of the file's tensor table: the
 * header and tensor table, then each needed tensor (or the rows/columns of it a tensor-parallel rank
 * reads). A node that fetches only these ranges into a sparse file of the full size can open it like
 * the whole file (the header is intact, the other tensors are never read).
 *
 * Byte range: [start, end), absolute in the file. Ranges come back sorted and merged; ranges closer
 * than `mergeGapBytes` are merged into one (fewer requests, a few bytes more).
 */
export type ByteRange = [number, number];

export interface TableTensor {
  name: string;
  /** Absolute byte offset of the tensor's data. */
  offset: number;
  /** Row-major shape and storage type, needed only to slice (tensor parallelism). */
  shape?: number[];
  type?: TensorType;
}

export interface TensorTable {
  fileSize: number;
  /** End of the header and tensor table. */
  dataOffset: number;
  tensors: TableTensor[];
}

export interface ShardSpec {
  /** Decoder layers [a, b) of the shard. */
  layers: [number, number];
  numLayers: number;
  /** Tensor-parallel rank: the part of each tensor it reads; undefined = whole tensor. */
  slice?: (name: string) => TensorSlice | undefined;
}

export const DEFAULT_MERGE_GAP = 64 * 1024;

const LAYER = /^blk\.(\d+)\./;

/** The tensors a shard reads: its layers; the embedding on the first stage; final norm and lm_head on the last. */
export function shardTensorNames(names: string[], spec: ShardSpec): string[] {
  const [a, b] = spec.layers;
  const first = a === 0;
  const last = b === spec.numLayers;
  const tied = !names.includes("output.weight");
  return names.filter((n) => {
    const m = LAYER.exec(n);
    if (m) return Number(m[1]) >= a && Number(m[1]) < b;
    if (n.startsWith("token_embd.")) return first || (last && tied);
    if (n.startsWith("output_norm.") || n.startsWith("output.")) return last;
    // anything else (rope_freqs, ...) is small and may be read by any stage
    return true;
  });
}

/**
 * Each tensor's stored extent: from its offset to the next tensor's (the last one to the end of the
 * file). This includes alignment padding and needs no knowledge of the tensor's type, so it also
 * works for quantizations the engine does not read.
 */
export function tensorExtents(table: TensorTable): Map<string, ByteRange> {
  const sorted = [...table.tensors].sort((x, y) => x.offset - y.offset);
  const out = new Map<string, ByteRange>();
  sorted.forEach((t, i) => out.set(t.name, [t.offset, i + 1 < sorted.length ? sorted[i + 1]!.offset : table.fileSize]));
  return out;
}

/** The byte ranges a shard needs (see above). */
export function shardByteRanges(table: TensorTable, spec: ShardSpec, mergeGapBytes = DEFAULT_MERGE_GAP): ByteRange[] {
  const extents = tensorExtents(table);
  const byName = new Map(table.tensors.map((t) => [t.name, t]));
  const ranges: ByteRange[] = [[0, table.dataOffset]];
  for (const name of shardTensorNames([...byName.keys()], spec)) {
    const t = byName.get(name)!;
    const extent = extents.get(name)!;
    const slice = spec.slice?.(name);
    if (!slice || !t.shape || !t.type || !LAYOUTS[t.type]) {
      ranges.push(extent);
      continue;
    }
    const r = sliceToStrided(name, t.type, t.shape, slice);
    const base = t.offset + r.firstLine * r.lineBytes + r.colOffset;
    if (r.colBytes === r.lineBytes) ranges.push([base, base + r.lines * r.lineBytes]);
    else for (let i = 0; i < r.lines; i++) ranges.push([base + i * r.lineBytes, base + i * r.lineBytes + r.colBytes]);
  }
  return mergeRanges(ranges, mergeGapBytes);
}

/**
 * The slices a tensor-parallel rank reads of each tensor, as engine/weights/load.ts and
 * engine/tp/rank-engine.ts read them: q rows (and bias) of its heads, k/v rows of its KV heads,
 * attn_output columns of its heads, gate/up rows and down columns of its FFN part, and on the last
 * stage its vocabulary rows of lm_head (output.weight, or token_embd.weight when tied and this rank
 * does not also embed). Norms and the embedding are read whole.
 */
export function tpTensorSlice(slice: TpSlice, o: { vocabRows?: [number, number]; embedding?: boolean } = {}): (name: string) => TensorSlice | undefined {
  return (name) => {
    const kind = /^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.(weight|bias)$/.exec(name);
    if (kind) {
      const weight = kind[2] === "weight";
      switch (kind[1]) {
        case "attn_q":
          return { rows: slice.qRows };
        case "attn_k":
        case "attn_v":
          return { rows: slice.kvRows };
        case "attn_output":
          return weight ? { cols: slice.oCols } : undefined;
        case "ffn_gate":
        case "ffn_up":
          return { rows: slice.ffnRows };
        case "ffn_down":
          return weight ? { cols: slice.downCols } : undefined;
      }
    }
    if (o.vocabRows && (name === "output.weight" || (name === "token_embd.weight" && !o.embedding))) return { rows: o.vocabRows };
    return undefined;
  };
}

/** Sorted, overlapping or near (gap < mergeGap) ranges joined; empty ranges dropped. */
export function mergeRanges(ranges: ByteRange[], mergeGap = 0): ByteRange[] {
  const sorted = ranges.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const out: ByteRange[] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a - last[1] <= mergeGap) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The parts of `want` not covered by `have` (both merged lists). */
export function subtractRanges(want: ByteRange[], have: ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  for (const [a, b] of mergeRanges(want)) {
    let at = a;
    for (const [c, d] of mergeRanges(have)) {
      if (d <= at || c >= b) continue;
      if (c > at) out.push([at, c]);
      at = Math.max(at, d);
      if (at >= b) break;
    }
    if (at < b) out.push([at, b]);
  }
  return out;
}

export function rangeBytes(ranges: ByteRange[]): number {
  return ranges.reduce((s, [a, b]) => s + (b - a), 0);
}
