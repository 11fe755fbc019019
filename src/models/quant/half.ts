/**
 * IEEE half (f16) and bfloat16 (bf16) <-> float32, rounding to nearest even as ggml does.
 * Scalars work on the 16-bit pattern as a number; the bulk helpers read and write little-endian bytes.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let f16Table: Float32Array | undefined;

/** All 65536 half values, built once: a table lookup beats bit twiddling in the bulk paths. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Slow(h);
  }
  return f16Table;
}

function f16BitsToF32Slow(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

export function f16ToF32(h: number): number {
  return halfTable()[h & 0xffff]!;
}

/** float32 → half bits; NaN becomes a quiet NaN with the sign kept (ggml's 0x7E00). */
export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): value / 2^-24, rounded to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function bf16ToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** float32 → bf16 bits, round to nearest even; NaN forced quiet (same as ggml_compute_fp32_to_bf16). */
export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff;
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

/** Little-endian u16 at byte offset `o` (works for any alignment). */
export function readU16(bytes: Uint8Array, o: number): number {
  return bytes[o]! | (bytes[o + 1]! << 8);
}

export function writeU16(bytes: Uint8Array, o: number, v: number): void {
  bytes[o] = v & 0xff;
  bytes[o + 1] = (v >>> 8) & 0xff;
}

/** 16-bit little-endian words of `bytes` (a view when aligned, else a copy). */
function u16View(bytes: Uint8Array, n: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  return new Uint16Array(bytes.slice(0, 2 * n).buffer);
}

export function f16BytesToF32(bytes: Uint8Array, n = bytes.length >>> 1): Float32Array {
  const t = halfTable();
  const h = u16View(bytes, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = t[h[i]!]!;
  return out;
}

export function bf16BytesToF32(bytes: Uint8Array, n = bytes.length >>> 1): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  const h = u16View(bytes, n);
  for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
  return out;
}

export function f32ToF16Bytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]!);
  return new Uint8Array(out.buffer);
}

export function f32ToBf16Bytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i]!;
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 64 : (x + (0x7fff + ((x >>> 16) & 1))) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** Little-endian float32 bytes → Float32Array (copies, so any byte alignment works). */
export function f32BytesToF32(bytes: Uint8Array, n = bytes.length >>> 2): Float32Array {
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
  return out;
}

export function f32ToF32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}
