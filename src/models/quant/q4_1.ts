import { f16ToF32, f32ToF16, readU16, writeU16 } from "./half.js";

/**
 * Q4_1 block (20 bytes, 32 elements):
 *   offset 0: d      f16 scale
 *   offset 2: m      f16 minimum
 *   offset 4: qs[16] element j in the low nibble of qs[j], element j+16 in the high nibble
 * value = q * d + m
 */
const QK = 32;
const BLOCK = 20;

export function dequantizeQ4_1(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  for (let b = 0, o = 0; b < n / QK; b++, o += BLOCK) {
    const d = f16ToF32(readU16(bytes, o));
    const m = f16ToF32(readU16(bytes, o + 2));
    const y = b * QK;
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 4 + j]!;
      out[y + j] = Math.fround(Math.fround((q & 0xf) * d) + m);
      out[y + j + 16] = Math.fround(Math.fround((q >>> 4) * d) + m);
    }
  }
  return out;
}

/** ggml's quantize_row_q4_1_ref: 16 levels between the block's min and max. */
export function quantizeQ4_1(x: Float32Array): Uint8Array {
  const nb = x.length / QK;
  const out = new Uint8Array(nb * BLOCK);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < QK; j++) {
      const v = Math.fround(x[base + j]!);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = Math.fround(Math.fround(max - min) / 15);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * BLOCK;
    writeU16(out, o, f32ToF16(d));
    writeU16(out, o + 2, f32ToF16(min));
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(Math.fround(Math.fround(x[base + j]!) - min) * id);
      const x1 = Math.fround(Math.fround(Math.fround(x[base + 16 + j]!) - min) * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 0.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 0.5)));
      out[o + 4 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}
