import { f16ToF32, f32ToF16, readU16, writeU16 } from "./half.js";

/**
 * Q4_0 block (18 bytes, 32 elements):
 *   offset 0: d      f16 scale
 *   offset 2: qs[16] element j in the low nibble of qs[j], element j+16 in the high nibble
 * value = (q - 8) * d
 */
const QK = 32;
const BLOCK = 18;

export function dequantizeQ4_0(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  for (let b = 0, o = 0; b < n / QK; b++, o += BLOCK) {
    const d = f16ToF32(readU16(bytes, o));
    const y = b * QK;
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 2 + j]!;
      out[y + j] = Math.fround(((q & 0xf) - 8) * d);
      out[y + j + 16] = Math.fround(((q >>> 4) - 8) * d);
    }
  }
  return out;
}

/** ggml's quantize_row_q4_0_ref: the element of largest magnitude maps to -8; float32 arithmetic throughout. */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK;
  const out = new Uint8Array(nb * BLOCK);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = Math.fround(x[base + j]!);
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * BLOCK;
    writeU16(out, o, f32ToF16(d));
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(Math.fround(x[base + j]!) * id);
      const x1 = Math.fround(Math.fround(x[base + 16 + j]!) * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}
