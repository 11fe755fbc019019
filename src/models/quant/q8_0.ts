import { f16ToF32, f32ToF16, readU16, writeU16 } from "./half.js";

/**
 * Q8_0 block (34 bytes, 32 elements):
 *   offset 0: d      f16 scale
 *   offset 2: qs[32] int8 values
 * value = q * d
 */
const QK = 32;
const BLOCK = 34;

export function dequantizeQ8_0(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  for (let b = 0, o = 0; b < n / QK; b++, o += BLOCK) {
    const d = f16ToF32(readU16(bytes, o));
    const y = b * QK;
    for (let j = 0; j < QK; j++) out[y + j] = Math.fround(((bytes[o + 2 + j]! << 24) >> 24) * d);
  }
  return out;
}

/** C roundf: halves away from zero. */
export function roundHalfAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** ggml's quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK;
  const out = new Uint8Array(nb * BLOCK);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(Math.fround(x[base + j]!)));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * BLOCK;
    writeU16(out, o, f32ToF16(d));
    for (let j = 0; j < QK; j++) {
      out[o + 2 + j] = roundHalfAway(Math.fround(Math.fround(x[base + j]!) * id)) & 0xff;
    }
  }
  return out;
}
