import { f16ToF32, f32ToF16, readU16, writeU16 } from "./half.js";

/**
 * Q6_K block (210 bytes, 256 elements in 16 sub-blocks of 16):
 *   0: ql[128] low 4 bits · 128: qh[64] high 2 bits · 192: scales[16] int8 · 208: d f16
 * value = d * scales[i >> 4] * (q - 32), q a 6-bit value. For half h (0, 1) of the block, with
 * L = ql + 64h, H = qh + 32h and l < 32, the elements 128h + {l, l+32, l+64, l+96} take their low bits
 * from L[l] & 15, L[l+32] & 15, L[l] >> 4, L[l+32] >> 4 and their high bits from bits 0-1, 2-3, 4-5, 6-7
 * of H[l].
 */
const QK_K = 256;
const BLOCK = 210;

export function dequantizeQ6_K(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  for (let b = 0, o = 0; b < n / QK_K; b++, o += BLOCK) {
    const d = f16ToF32(readU16(bytes, o + 208));
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const sc = o + 192 + 8 * h;
      const y = b * QK_K + 128 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >>> 4;
        const H = bytes[qh + l]!;
        const q1 = ((bytes[ql + l]! & 0xf) | ((H & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32]! & 0xf) | (((H >>> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l]! >>> 4) | (((H >>> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32]! >>> 4) | (((H >>> 6) & 3) << 4)) - 32;
        out[y + l] = Math.fround(Math.fround(d * ((bytes[sc + is]! << 24) >> 24)) * q1);
        out[y + l + 32] = Math.fround(Math.fround(d * ((bytes[sc + is + 2]! << 24) >> 24)) * q2);
        out[y + l + 64] = Math.fround(Math.fround(d * ((bytes[sc + is + 4]! << 24) >> 24)) * q3);
        out[y + l + 96] = Math.fround(Math.fround(d * ((bytes[sc + is + 6]! << 24) >> 24)) * q4);
      }
    }
  }
  return out;
}

/**
 * Simpler than ggml's search: sub-block k gets step amax_k/31 (so q stays in -31..31), d is the largest
 * step over 127 and the int8 scale rounds up. |error| <= d*scale/2 per element.
 */
export function quantizeQ6_K(x: Float32Array): Uint8Array {
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * BLOCK);
  const steps = new Float64Array(16);
  const q = new Uint8Array(QK_K);
  for (let b = 0; b < nb; b++) {
    const base = b * QK_K;
    for (let k = 0; k < 16; k++) {
      let amax = 0;
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(Math.fround(x[base + 16 * k + l]!)));
      steps[k] = amax / 31;
    }
    const dh = f32ToF16(Math.max(...steps) / 127);
    const d = f16ToF32(dh);
    const o = b * BLOCK;
    for (let k = 0; k < 16; k++) {
      const s = d > 0 ? Math.min(127, Math.ceil(steps[k]! / d)) : 0;
      out[o + 192 + k] = s;
      const d1 = Math.fround(d * s);
      for (let l = 0; l < 16; l++) {
        const r = d1 > 0 ? Math.round(Math.fround(x[base + 16 * k + l]!) / d1) : 0;
        q[16 * k + l] = Math.max(-32, Math.min(31, r)) + 32;
      }
    }
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const y = 128 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = q[y + l]!;
        const q2 = q[y + l + 32]!;
        const q3 = q[y + l + 64]!;
        const q4 = q[y + l + 96]!;
        out[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        out[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        out[qh + l] = (q1 >>> 4) | ((q2 >>> 4) << 2) | ((q3 >>> 4) << 4) | ((q4 >>> 4) << 6);
      }
    }
    writeU16(out, o + 208, dh);
  }
  return out;
}
