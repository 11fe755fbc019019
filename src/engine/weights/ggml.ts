import { readHalf } from "./half.js";
import type { NBitsWeight } from "./linear.js";

/**
 * GGML block formats → MatMulNBits. Each function takes a [n, k] matrix stored row by row as
 * whole ggml blocks (k a multiple of the block size) and returns the MatMulNBits layout
 * (see linear.ts). All conversions are exact: the values MatMulNBits reconstructs equal ggml's
 * dequantized values (float zero points: up to one float32 rounding of zp = min/scale; 8-bit
 * affine blocks keep the min as a per-block bias, see linear.ts).
 *
 * Block layouts (little-endian):
 *   Q4_0  18 B / 32: f16 d, 16 B qs; element j (<16) = low nibble of qs[j], j+16 = high nibble. w = d·(q−8)
 *   Q4_1  20 B / 32: f16 d, f16 m, 16 B qs as Q4_0.                                               w = d·q + m
 *   Q8_0  34 B / 32: f16 d, 32 int8 q.                                                             w = d·q
 *   Q4_K 144 B / 256: f16 d, f16 dmin, 12 B packed 6-bit (scale, min) × 8, 128 B qs; 64-element
 *         chunk c uses qs[32c..32c+31]: low nibbles = elements 64c+l, high nibbles = 64c+32+l.
 *         sub-block s (32 elements): w = d·sc_s·q − dmin·m_s
 *   Q5_K 176 B / 256: f16 d, f16 dmin, 12 B scales as Q4_K, 32 B qh, 128 B qs; like Q4_K with a
 *         5th bit: element 64c+l takes bit 2c of qh[l], 64c+32+l takes bit 2c+1.
 *   Q6_K 210 B / 256: 128 B ql, 64 B qh, 16 int8 scales, f16 d; sub-blocks of 16; w = d·sc·(q−32)
 */

function checkBlocks(type: string, n: number, k: number, block: number, bytesPer: number, data: Uint8Array): number {
  if (k % block !== 0) throw new Error(`${type}: inner dim ${k} is not a multiple of ${block}`);
  const nb = k / block;
  if (data.byteLength !== n * nb * bytesPer) throw new Error(`${type}: ${data.byteLength} bytes for [${n}, ${k}]`);
  return nb;
}

/**
 * One block of 32 4-bit values from ggml's order to MatMulNBits'. ggml: element j < 16 is the low
 * nibble of qs[j], element j + 16 its high nibble. MatMulNBits: byte i holds element 2i (low) and 2i + 1 (high).
 */
function reorderNibbles(data: Uint8Array, qs: number, out: Uint8Array, dst: number): void {
  for (let i = 0; i < 16; i++) {
    const e0 = 2 * i;
    const e1 = e0 + 1;
    const q0 = e0 < 16 ? data[qs + e0] & 15 : data[qs + e0 - 16] >> 4;
    const q1 = e1 < 16 ? data[qs + e1] & 15 : data[qs + e1 - 16] >> 4;
    out[dst + i] = q0 | (q1 << 4);
  }
}

export function q4_0ToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q4_0", n, k, 32, 18, data);
  const total = n * nb;
  const out = new Uint8Array(total * 16);
  const scales = new Float32Array(total);
  for (let b = 0; b < total; b++) {
    const src = b * 18;
    scales[b] = readHalf(data, src);
    const qs = src + 2;
    const dst = b * 16;
    reorderNibbles(data, qs, out, dst);
  }
  return { kind: "nbits", n, k, bits: 4, blockSize: 32, data: out, scales };
}

export function q4_1ToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q4_1", n, k, 32, 20, data);
  const total = n * nb;
  const out = new Uint8Array(total * 16);
  const scales = new Float32Array(total);
  const zps = new Float32Array(total);
  for (let b = 0; b < total; b++) {
    const src = b * 20;
    const d = readHalf(data, src);
    const m = readHalf(data, src + 2);
    const qs = src + 4;
    const dst = b * 16;
    reorderNibbles(data, qs, out, dst);
    setAffine(scales, zps, out, b, d, m, 16);
  }
  return { kind: "nbits", n, k, bits: 4, blockSize: 32, data: out, scales, zeroPoints: zps };
}

/**
 * w = d·q + m as scale·(q − zp): zp = −m/d. A zero scale with a non-zero offset is a constant
 * block: it becomes q = 0, scale = m, zp = −1.
 */
function setAffine(scales: Float32Array, zps: Float32Array, q: Uint8Array, b: number, d: number, m: number, blobBytes: number): void {
  if (d !== 0) {
    scales[b] = d;
    zps[b] = -m / d;
  } else {
    scales[b] = m;
    zps[b] = -1;
    q.fill(0, b * blobBytes, (b + 1) * blobBytes);
  }
}

export function q8_0ToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q8_0", n, k, 32, 34, data);
  const total = n * nb;
  const out = new Uint8Array(total * 32);
  const scales = new Float32Array(total);
  for (let b = 0; b < total; b++) {
    const src = b * 34;
    scales[b] = readHalf(data, src);
    const dst = b * 32;
    // int8 q and unsigned q+128 differ only in the top bit.
    for (let j = 0; j < 32; j++) out[dst + j] = data[src + 2 + j] ^ 0x80;
  }
  return { kind: "nbits", n, k, bits: 8, blockSize: 32, data: out, scales };
}

/** ggml's get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes at `o`. */
function scaleMinK4(d: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [d[o + j] & 63, d[o + j + 4] & 63];
  return [(d[o + j + 4] & 15) | ((d[o + j - 4] >> 6) << 4), (d[o + j + 4] >> 4) | ((d[o + j] >> 6) << 4)];
}

export function q4_KToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q4_K", n, k, 256, 144, data);
  const subBlocks = n * nb * 8;
  const out = new Uint8Array(subBlocks * 16);
  const scales = new Float32Array(subBlocks);
  const zps = new Float32Array(subBlocks);
  const q = new Uint8Array(32);
  for (let b = 0; b < n * nb; b++) {
    const src = b * 144;
    const d = readHalf(data, src);
    const dmin = readHalf(data, src + 2);
    const qs = src + 16;
    for (let c = 0; c < 4; c++) {
      for (let half = 0; half < 2; half++) {
        const s = 2 * c + half;
        const [sc, m] = scaleMinK4(data, src + 4, s);
        for (let l = 0; l < 32; l++) {
          const byte = data[qs + 32 * c + l];
          q[l] = half === 0 ? byte & 15 : byte >> 4;
        }
        const sb = b * 8 + s;
        const dst = sb * 16;
        for (let i = 0; i < 16; i++) out[dst + i] = q[2 * i] | (q[2 * i + 1] << 4);
        setAffine(scales, zps, out, sb, d * sc, -dmin * m, 16);
      }
    }
  }
  return { kind: "nbits", n, k, bits: 4, blockSize: 32, data: out, scales, zeroPoints: zps };
}

export function q5_KToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q5_K", n, k, 256, 176, data);
  const subBlocks = n * nb * 8;
  const out = new Uint8Array(subBlocks * 32);
  const scales = new Float32Array(subBlocks);
  const bias = new Float32Array(subBlocks);
  for (let b = 0; b < n * nb; b++) {
    const src = b * 176;
    const d = readHalf(data, src);
    const dmin = readHalf(data, src + 2);
    const qh = src + 16;
    const qs = src + 48;
    for (let c = 0; c < 4; c++) {
      for (let half = 0; half < 2; half++) {
        const s = 2 * c + half;
        const [sc, m] = scaleMinK4(data, src + 4, s);
        const sb = b * 8 + s;
        const dst = sb * 32;
        const bit = 1 << s;
        for (let l = 0; l < 32; l++) {
          const byte = data[qs + 32 * c + l];
          const lo = half === 0 ? byte & 15 : byte >> 4;
          out[dst + l] = lo | (data[qh + l] & bit ? 16 : 0);
        }
        scales[sb] = d * sc;
        bias[sb] = -dmin * m;
      }
    }
  }
  const zeroPoints = new Uint8Array(subBlocks);
  return { kind: "nbits", n, k, bits: 8, blockSize: 32, data: out, scales, zeroPoints, groupBias: bias };
}

export function q6_KToNBits(data: Uint8Array, n: number, k: number): NBitsWeight {
  const nb = checkBlocks("Q6_K", n, k, 256, 210, data);
  const subBlocks = n * nb * 16;
  const out = new Uint8Array(subBlocks * 16);
  const scales = new Float32Array(subBlocks);
  const zps = new Uint8Array(subBlocks).fill(32);
  for (let b = 0; b < n * nb; b++) {
    const src = b * 210;
    const d = readHalf(data, src + 208);
    const dst = b * 256;
    for (let h = 0; h < 2; h++) {
      const ql = src + 64 * h;
      const qh = src + 128 + 32 * h;
      const y = dst + 128 * h;
      for (let l = 0; l < 32; l++) {
        const hb = data[qh + l];
        out[y + l] = (data[ql + l] & 15) | ((hb & 3) << 4);
        out[y + l + 32] = (data[ql + l + 32] & 15) | (((hb >> 2) & 3) << 4);
        out[y + l + 64] = (data[ql + l] >> 4) | (((hb >> 4) & 3) << 4);
        out[y + l + 96] = (data[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4);
      }
    }
    for (let s = 0; s < 16; s++) {
      const sc = (data[src + 192 + s] << 24) >> 24;
      scales[b * 16 + s] = d * sc;
    }
  }
  return { kind: "nbits", n, k, bits: 8, blockSize: 16, data: out, scales, zeroPoints: zps };
}
