import { TesseraError } from "../../errors.js";

/**
 * The engine's in-memory form of a linear weight (and of the embedding table), ready to become
 * ONNX initializers.
 *
 * NBitsWeight is com.microsoft.MatMulNBits' layout:
 *   data   uint8 [n, nBlocks, blockSize·bits/8]; 4-bit: byte i of a block holds element 2i in its low
 *          nibble and 2i+1 in its high nibble; 8-bit: one byte per element.
 *   scales float32 [n · nBlocks]
 *   zeroPoints (optional): uint8, one per block for 8-bit (4-bit packed weights here always use the
 *          default), or float32 [n · nBlocks] for affine formats; default 8 (4-bit) / 128 (8-bit).
 *   groupBias (optional): float32 [n · nBlocks], added to every element of the block. onnxruntime's
 *          CPU kernel takes float zero points only for 4-bit, so 8-bit affine formats use uint8 zero
 *          point 0 plus this term, emitted as a second small MatMul over per-block sums of x.
 *   w[r, b·blockSize + j] = scales[r·nBlocks + b] · (q − zp) + groupBias[r·nBlocks + b]
 * FloatWeight is row-major float32 [n, k] (out features, in features).
 */
export interface NBitsWeight {
  kind: "nbits";
  n: number;
  k: number;
  bits: 4 | 8;
  blockSize: number;
  data: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array | Float32Array;
  groupBias?: Float32Array;
}

export interface FloatWeight {
  kind: "float";
  n: number;
  k: number;
  data: Float32Array;
}

export type LinearWeight = NBitsWeight | FloatWeight;

export function nBlocks(w: NBitsWeight): number {
  return Math.ceil(w.k / w.blockSize);
}

export function weightBytes(w: LinearWeight): number {
  if (w.kind === "float") return w.data.byteLength;
  return w.data.byteLength + w.scales.byteLength + (w.zeroPoints?.byteLength ?? 0) + (w.groupBias?.byteLength ?? 0);
}

/**
 * The embedding rows of `tokens`, one after another ([n × k]), into `out` when given, times `scale`
 * when given (Gemma). The table stays at its stored size: one row is dequantized per token.
 */
export function embedTokens(table: LinearWeight, tokens: Int32Array, out: Float32Array = new Float32Array(tokens.length * table.k), scale?: number): Float32Array {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!(t >= 0 && t < table.n)) throw new TesseraError(`token id ${t} is outside the vocabulary (${table.n})`);
    dequantizeRow(table, t, out, i * table.k);
  }
  if (scale !== undefined) for (let i = 0; i < tokens.length * table.k; i++) out[i]! *= scale;
  return out;
}

/** Dequantizes row `r` into `out` (length k). Used for embedding lookups and the reference forward pass. */
export function dequantizeRow(w: LinearWeight, r: number, out: Float32Array, outOffset = 0): void {
  const k = w.k;
  if (w.kind === "float") {
    out.set(w.data.subarray(r * k, (r + 1) * k), outOffset);
    return;
  }
  const nb = nBlocks(w);
  const blob = (w.blockSize * w.bits) / 8;
  const defaultZp = w.bits === 4 ? 8 : 128;
  const zps = w.zeroPoints;
  for (let b = 0; b < nb; b++) {
    const bi = r * nb + b;
    const scale = w.scales[bi];
    const zp = zps === undefined ? defaultZp : zps[bi];
    const bias = w.groupBias ? w.groupBias[bi] : 0;
    const base = bi * blob;
    const len = Math.min(w.blockSize, k - b * w.blockSize);
    const o = outOffset + b * w.blockSize;
    if (w.bits === 8) {
      for (let j = 0; j < len; j++) out[o + j] = scale * (w.data[base + j] - zp) + bias;
    } else {
      for (let j = 0; j < len; j++) {
        const byte = w.data[base + (j >> 1)];
        const q = j & 1 ? byte >> 4 : byte & 15;
        out[o + j] = scale * (q - zp) + bias;
      }
    }
  }
}

/** The whole matrix as float32 [n, k] (tests and the reference implementation). */
export function dequantizeAll(w: LinearWeight): Float32Array {
  if (w.kind === "float") return w.data;
  const out = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++) dequantizeRow(w, r, out, r * w.k);
  return out;
}

/**
 * Stacks weights along the output dimension (q|k|v or gate|up), so one kernel call does the
 * work of several. Undefined when their storage differs (then they stay separate matmuls).
 */
export function concatRows(ws: LinearWeight[]): LinearWeight | undefined {
  const [first] = ws;
  const k = first.k;
  const n = ws.reduce((a, w) => a + w.n, 0);
  if (ws.some((w) => w.k !== k || w.kind !== first.kind)) return undefined;
  if (first.kind === "float") return { kind: "float", n, k, data: concat(ws.map((w) => w.data as Float32Array), Float32Array) };
  const nb = ws as NBitsWeight[];
  const zpKind = (w: NBitsWeight): string => (w.zeroPoints === undefined ? "none" : w.zeroPoints instanceof Float32Array ? "f32" : "u8");
  if (nb.some((w) => w.bits !== first.bits || w.blockSize !== first.blockSize || zpKind(w) !== zpKind(first) || !w.groupBias !== !first.groupBias)) {
    return undefined;
  }
  const out: NBitsWeight = {
    kind: "nbits",
    n,
    k,
    bits: first.bits,
    blockSize: first.blockSize,
    data: concat(nb.map((w) => w.data), Uint8Array),
    scales: concat(nb.map((w) => w.scales), Float32Array),
  };
  if (first.zeroPoints instanceof Float32Array) out.zeroPoints = concat(nb.map((w) => w.zeroPoints as Float32Array), Float32Array);
  else if (first.zeroPoints) out.zeroPoints = concat(nb.map((w) => w.zeroPoints as Uint8Array), Uint8Array);
  if (first.groupBias) out.groupBias = concat(nb.map((w) => w.groupBias!), Float32Array);
  return out;
}

function concat<T extends Uint8Array | Float32Array>(parts: T[], Ctor: new (n: number) => T): T {
  const out = new Ctor(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p as never, o);
    o += p.length;
  }
  return out;
}
