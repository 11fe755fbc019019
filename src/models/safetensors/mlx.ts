import { TesseraError } from "../../errors.js";
import { bf16BytesToF32, f16BytesToF32, f32BytesToF32, f32ToBf16, f32ToF16, writeU16 } from "../quant/half.js";

/**
 * MLX affine quantization of a [rows, cols] weight, groups of `groupSize` along each row:
 *   w = scale[g] * q + bias[g],  q an unsigned `bits`-bit value
 * Stored as three tensors: `<name>.weight` U32 [rows, cols * bits / 32] with values packed into
 * little-endian uint32 words, element i of a word at bits (bits*i)..(bits*i + bits - 1) (so for 4-bit,
 * element 2k is the low nibble of byte k); `<name>.scales` and `<name>.biases` [rows, cols / groupSize]
 * in the model's float type (F16, BF16 or F32).
 */
export type MlxBits = 4 | 8;
export type ScaleType = "F32" | "F16" | "BF16";

export interface MlxQuantized {
  weight: Uint8Array;
  scales: Uint8Array;
  biases: Uint8Array;
}

function floatsOf(bytes: Uint8Array, type: ScaleType, n: number): Float32Array {
  return type === "F16" ? f16BytesToF32(bytes, n) : type === "BF16" ? bf16BytesToF32(bytes, n) : f32BytesToF32(bytes, n);
}

function checkShape(cols: number, bits: number, groupSize: number): void {
  if (bits !== 4 && bits !== 8) throw new TesseraError(`MLX quantization with ${bits} bits is not supported (4 or 8)`);
  if (!Number.isInteger(groupSize) || groupSize <= 0 || groupSize % (32 / bits) !== 0 || cols % groupSize !== 0) {
    throw new TesseraError(`MLX group size ${groupSize} does not divide a row of ${cols} into whole uint32 words`);
  }
}

/** The reference dequantizer: float32(float32(scale * q) + bias). */
export function dequantizeMlx(
  q: MlxQuantized, rows: number, cols: number, bits: MlxBits, groupSize: number, scaleType: ScaleType,
): Float32Array {
  checkShape(cols, bits, groupSize);
  const groups = cols / groupSize;
  const scales = floatsOf(q.scales, scaleType, rows * groups);
  const biases = floatsOf(q.biases, scaleType, rows * groups);
  const out = new Float32Array(rows * cols);
  const w = q.weight;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < rows * cols; i++) {
    const bitPos = i * bits;
    const v = (w[bitPos >>> 3]! >>> (bitPos & 7)) & mask;
    const g = (i / groupSize) | 0;
    out[i] = Math.fround(Math.fround(scales[g]! * v) + biases[g]!);
  }
  return out;
}

function encodeScale(v: number, type: ScaleType): number {
  return type === "F16" ? f32ToF16(v) : f32ToBf16(v);
}

function decodeScale(bitsValue: number, type: ScaleType): number {
  const b = new Uint8Array(2);
  writeU16(b, 0, bitsValue);
  return floatsOf(b, type, 1)[0]!;
}

/**
 * Per group: bias = min, scale = (max - min) / (2^bits - 1), both rounded to the scale type first,
 * then q = round((w - bias) / scale) clamped; |error| <= scale / 2 plus the rounding of bias.
 */
export function quantizeMlx(
  input: ArrayLike<number>, rows: number, cols: number, bits: MlxBits, groupSize: number, scaleType: ScaleType,
): MlxQuantized {
  checkShape(cols, bits, groupSize);
  const values = input instanceof Float32Array ? input : Float32Array.from(input);
  if (values.length !== rows * cols) throw new TesseraError(`MLX quantize: ${values.length} values for shape [${rows}, ${cols}]`);
  const groups = rows * (cols / groupSize);
  const levels = (1 << bits) - 1;
  const scaleBytes = scaleType === "F32" ? 4 : 2;
  const scales = new Uint8Array(groups * scaleBytes);
  const biases = new Uint8Array(groups * scaleBytes);
  const sv = new DataView(scales.buffer);
  const bv = new DataView(biases.buffer);
  const weight = new Uint8Array((rows * cols * bits) / 8);
  for (let g = 0; g < groups; g++) {
    const base = g * groupSize;
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < groupSize; j++) {
      const v = values[base + j]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    let scale: number;
    let bias: number;
    if (scaleType === "F32") {
      scale = Math.fround((hi - lo) / levels);
      bias = Math.fround(lo);
      sv.setFloat32(4 * g, scale, true);
      bv.setFloat32(4 * g, bias, true);
    } else {
      const sBits = encodeScale((hi - lo) / levels, scaleType);
      const bBits = encodeScale(lo, scaleType);
      writeU16(scales, 2 * g, sBits);
      writeU16(biases, 2 * g, bBits);
      scale = decodeScale(sBits, scaleType);
      bias = decodeScale(bBits, scaleType);
    }
    for (let j = 0; j < groupSize; j++) {
      const r = scale > 0 ? Math.round((values[base + j]! - bias) / scale) : 0;
      const q = Math.max(0, Math.min(levels, r));
      const bitPos = (base + j) * bits;
      weight[bitPos >>> 3]! |= q << (bitPos & 7);
    }
  }
  return { weight, scales, biases };
}
