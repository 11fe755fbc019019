import { TesseraError } from "../../errors.js";
import { LAYOUTS } from "../quant/types.js";
import type { TensorSlice, TensorType } from "../types.js";
import { uninitializedBytes, type RandomAccessFile } from "./random-access-file.js";

/**
 * A slice of a row-major tensor as bytes: `lines` consecutive lines (a line = the innermost dimension),
 * starting at line `firstLine`, each `lineBytes` long, of which the bytes [colOffset, colOffset + colBytes)
 * are wanted. When colBytes === lineBytes the slice is one contiguous range.
 */
export interface StridedRange {
  shape: number[];
  firstLine: number;
  lines: number;
  lineBytes: number;
  colOffset: number;
  colBytes: number;
}

function checkRange(r: [number, number] | undefined, dim: number, what: string, name: string): [number, number] {
  if (!r) return [0, dim];
  const [a, b] = r;
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > dim || a >= b) {
    throw new TesseraError(`${what} range [${a}, ${b}) is not inside [0, ${dim})`, name);
  }
  return [a, b];
}

/**
 * Where the wanted part of a tensor lies. `rows` ranges over the outermost dimension, `cols` over the
 * innermost; for a 1-D tensor either one ranges over its elements. Column ranges of block types must
 * start and end on block boundaries (or at the end of the row).
 */
export function sliceToStrided(name: string, type: TensorType, shape: number[], slice: TensorSlice = {}): StridedRange {
  if (slice.expert !== undefined) return expertToStrided(name, type, shape, slice);
  const { blockSize, bytesPerBlock } = LAYOUTS[type];
  const inner = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const lineBytes = (inner / blockSize) * bytesPerBlock;
  const totalLines = shape.length <= 1 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1);
  if (shape.length <= 1) {
    if (slice.rows && slice.cols) throw new TesseraError("a 1-D tensor takes a rows or a cols range, not both", name);
    slice = { cols: slice.cols ?? slice.rows };
  }
  const [r0, r1] = checkRange(slice.rows, shape.length <= 1 ? 1 : shape[0]!, "row", name);
  const [c0, c1] = checkRange(slice.cols, inner, "column", name);
  if (c0 % blockSize !== 0 || (c1 % blockSize !== 0 && c1 !== inner)) {
    throw new TesseraError(`column range [${c0}, ${c1}) is not aligned to ${type} blocks of ${blockSize}`, name);
  }
  const linesPerRow = shape.length <= 1 ? 1 : totalLines / shape[0]!;
  const out = shape.length === 0 ? [] : [...shape];
  if (shape.length > 1) out[0] = r1 - r0;
  if (shape.length > 0) out[out.length - 1] = c1 - c0;
  return {
    shape: out,
    firstLine: r0 * linesPerRow,
    lines: (r1 - r0) * linesPerRow,
    lineBytes,
    colOffset: (c0 / blockSize) * bytesPerBlock,
    colBytes: (Math.ceil(c1 / blockSize) - c0 / blockSize) * bytesPerBlock,
  };
}

/** One expert's matrix of a 3-D [experts, rows, cols] tensor, seen as the 2-D [experts·rows, cols] it is stored as. */
function expertToStrided(name: string, type: TensorType, shape: number[], slice: TensorSlice): StridedRange {
  const e = slice.expert!;
  if (shape.length !== 3) throw new TesseraError(`an expert slice needs a 3-D tensor, got shape [${shape.join(", ")}]`, name);
  const [E, R, C] = shape as [number, number, number];
  if (!Number.isInteger(e) || e < 0 || e >= E) throw new TesseraError(`expert ${e} is not inside [0, ${E})`, name);
  const [r0, r1] = checkRange(slice.rows, R, "row", name);
  const r = sliceToStrided(name, type, [E * R, C], { rows: [e * R + r0, e * R + r1], ...(slice.cols ? { cols: slice.cols } : {}) });
  return { ...r, shape: [r1 - r0, r.shape[1]!] };
}

/** Segments at least this long are read straight into place; shorter ones go through a scratch buffer. */
const DIRECT_SEGMENT = 256 * 1024;
const SCRATCH = 4 * 1024 * 1024;

/** Reads a strided range of the tensor whose data starts at `base`, reading no more than needed. */
export async function readStrided(file: RandomAccessFile, base: number, r: StridedRange, what: string): Promise<Uint8Array> {
  const total = r.lines * r.colBytes;
  const start = base + r.firstLine * r.lineBytes;
  file.checkRange(start, r.lines * r.lineBytes, what);
  const out = uninitializedBytes(total);
  if (r.colBytes === r.lineBytes) {
    await file.readInto(out, 0, total, start, what);
    return out;
  }
  if (r.colBytes >= DIRECT_SEGMENT) {
    for (let i = 0; i < r.lines; i++) {
      await file.readInto(out, i * r.colBytes, r.colBytes, start + i * r.lineBytes + r.colOffset, what);
    }
    return out;
  }
  // Many short segments: read spans of whole lines (from the first wanted byte of the first line to the
  // last wanted byte of the last) and copy the wanted part of each line out.
  const linesPerSpan = Math.max(1, Math.floor(SCRATCH / r.lineBytes));
  const scratch = new Uint8Array(Math.min(r.lines, linesPerSpan) * r.lineBytes);
  for (let first = 0; first < r.lines; first += linesPerSpan) {
    const n = Math.min(linesPerSpan, r.lines - first);
    const spanBytes = (n - 1) * r.lineBytes + r.colBytes;
    await file.readInto(scratch, 0, spanBytes, start + first * r.lineBytes + r.colOffset, what);
    for (let i = 0; i < n; i++) {
      out.set(scratch.subarray(i * r.lineBytes, i * r.lineBytes + r.colBytes), (first + i) * r.colBytes);
    }
  }
  return out;
}
