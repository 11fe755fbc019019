/** IEEE half and bfloat16 to float32 (exact: every half/bfloat16 value is a float32). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const HALF_TABLE = new Float32Array(65536);
for (let i = 0; i < 65536; i++) HALF_TABLE[i] = halfToFloat(i);

/** Little-endian f16 at byte offset `o`. */
export function readHalf(b: Uint8Array, o: number): number {
  return HALF_TABLE[b[o] | (b[o + 1] << 8)];
}

export function bf16ToFloat(v: number): number {
  u32[0] = v << 16;
  return f32[0];
}

/** Converts a little-endian F16/BF16/F32 byte buffer to float32. */
export function toFloat32(bytes: Uint8Array, type: "F32" | "F16" | "BF16"): Float32Array {
  if (type === "F32") {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return new Float32Array(bytes.slice().buffer);
  }
  const n = bytes.byteLength / 2;
  const out = new Float32Array(n);
  // A Uint16Array view keeps the loop monomorphic and fast (file readers hand out Buffers).
  const src = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(bytes.slice().buffer);
  if (type === "F16") {
    for (let i = 0; i < n; i++) out[i] = HALF_TABLE[src[i]];
  } else {
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o32[i] = src[i] << 16;
  }
  return out;
}
