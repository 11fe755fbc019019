import { f16ToF32, f32ToF16, readU16, writeU16 } from "./half.js";
import { packScalesMins, unpackScaleMin } from "./k-scales.js";

/**
 * Q4_K and Q5_K: super-blocks of 256 elements in 8 sub-blocks of 32, value = d*sc[j]*q - dmin*m[j].
 *
 * Q4_K block (144 bytes):
 *   0: d f16 · 2: dmin f16 · 4: scales[12] (see k-scales.ts) · 16: qs[128]
 * Q5_K block (176 bytes):
 *   0: d f16 · 2: dmin f16 · 4: scales[12] · 16: qh[32] · 48: qs[128]
 * Within each 64-element chunk c (0..3): qs[32c + l] holds element 64c+l in its low nibble (sub-block 2c)
 * and element 64c+32+l in its high nibble (sub-block 2c+1). Q5_K's fifth bit: bit 2c of qh[l] for the
 * low element, bit 2c+1 of qh[l] for the high one.
 */
const QK_K = 256;

function dequantizeAffineK(bytes: Uint8Array, n: number, out: Float32Array, fiveBit: boolean): Float32Array {
  const blockBytes = fiveBit ? 176 : 144;
  const qsOff = fiveBit ? 48 : 16;
  for (let b = 0, o = 0; b < n / QK_K; b++, o += blockBytes) {
    const d = f16ToF32(readU16(bytes, o));
    const dmin = f16ToF32(readU16(bytes, o + 2));
    let y = b * QK_K;
    for (let c = 0; c < 4; c++) {
      const [sc1, m1c] = unpackScaleMin(bytes, o + 4, 2 * c);
      const [sc2, m2c] = unpackScaleMin(bytes, o + 4, 2 * c + 1);
      const d1 = Math.fround(d * sc1);
      const m1 = Math.fround(dmin * m1c);
      const d2 = Math.fround(d * sc2);
      const m2 = Math.fround(dmin * m2c);
      const q = o + qsOff + 32 * c;
      const lowBit = 1 << (2 * c);
      const highBit = lowBit << 1;
      for (let l = 0; l < 32; l++) {
        const hi = fiveBit && bytes[o + 16 + l]! & lowBit ? 16 : 0;
        out[y + l] = Math.fround(Math.fround(d1 * ((bytes[q + l]! & 0xf) + hi)) - m1);
      }
      for (let l = 0; l < 32; l++) {
        const hi = fiveBit && bytes[o + 16 + l]! & highBit ? 16 : 0;
        out[y + 32 + l] = Math.fround(Math.fround(d2 * ((bytes[q + l]! >>> 4) + hi)) - m2);
      }
      y += 64;
    }
  }
  return out;
}

export function dequantizeQ4_K(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  return dequantizeAffineK(bytes, n, out, false);
}

export function dequantizeQ5_K(bytes: Uint8Array, n: number, out = new Float32Array(n)): Float32Array {
  return dequantizeAffineK(bytes, n, out, true);
}

/**
 * A simpler scale search than ggml's (whose blocks it must still match on dequantization): each sub-block
 * spans [min(0, lo), hi] in `levels` steps; d and dmin are the largest sub-block step and offset over 63.
 * The 6-bit scale rounds up (so the step never shrinks), the min rounds to nearest; then
 * |error| <= (d*sc)/2 + dmin/2 per element.
 */
function quantizeAffineK(x: Float32Array, fiveBit: boolean): Uint8Array {
  const levels = fiveBit ? 31 : 15;
  const blockBytes = fiveBit ? 176 : 144;
  const qsOff = fiveBit ? 48 : 16;
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * blockBytes);
  const steps = new Float64Array(8);
  const offsets = new Float64Array(8);
  const sc = new Uint8Array(8);
  const m = new Uint8Array(8);
  const q = new Uint8Array(QK_K);
  for (let b = 0; b < nb; b++) {
    const base = b * QK_K;
    for (let j = 0; j < 8; j++) {
      let lo = 0;
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        const v = Math.fround(x[base + 32 * j + l]!);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      steps[j] = Math.max(0, hi - lo) / levels;
      offsets[j] = -lo;
    }
    const dh = f32ToF16(Math.max(...steps) / 63);
    const dminh = f32ToF16(Math.max(...offsets) / 63);
    const d = f16ToF32(dh);
    const dmin = f16ToF32(dminh);
    for (let j = 0; j < 8; j++) {
      sc[j] = d > 0 ? Math.min(63, Math.ceil(steps[j]! / d)) : 0;
      m[j] = dmin > 0 ? Math.min(63, Math.round(offsets[j]! / dmin)) : 0;
      const d1 = Math.fround(d * sc[j]!);
      const m1 = Math.fround(dmin * m[j]!);
      for (let l = 0; l < 32; l++) {
        const v = Math.fround(x[base + 32 * j + l]!);
        const r = d1 > 0 ? Math.round((v + m1) / d1) : 0;
        q[32 * j + l] = Math.max(0, Math.min(levels, r));
      }
    }
    const o = b * blockBytes;
    writeU16(out, o, dh);
    writeU16(out, o + 2, dminh);
    packScalesMins(sc, m, out, o + 4);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const lowQ = q[64 * c + l]!;
        const highQ = q[64 * c + 32 + l]!;
        out[o + qsOff + 32 * c + l] = (lowQ & 0xf) | ((highQ & 0xf) << 4);
        if (fiveBit) out[o + 16 + l]! |= ((lowQ >>> 4) << (2 * c)) | ((highQ >>> 4) << (2 * c + 1));
      }
    }
  }
  return out;
}

export function quantizeQ4_K(x: Float32Array): Uint8Array {
  return quantizeAffineK(x, false);
}

export function quantizeQ5_K(x: Float32Array): Uint8Array {
  return quantizeAffineK(x, true);
}
