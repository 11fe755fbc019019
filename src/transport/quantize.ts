/*
 * 8-bit compression of partial sums, per block of QUANT_BLOCK values.
 *
 * Layout of a compressed tensor of n floats (nb = ceil(n / QUANT_BLOCK) blocks):
 *   nb × f32 scale (little-endian), then n × int8 q.  Value i = q[i] × scale[floor(i / QUANT_BLOCK)].
 * scale = max|x| over the block / 127, q = round(x / scale) ∈ [-127, 127].
 *
 * Error bound: |x − q·scale| ≤ scale / 2 = max|x in its block| / 254, plus one float32 rounding of the
 * product. 64 floats take 4 + 64 = 68 bytes instead of 256 (3.76× fewer bytes).
 */
export const QUANT_BLOCK = 64;

export function compressedBytes(n: number): number {
  return 4 * Math.ceil(n / QUANT_BLOCK) + n;
}

/** Writes the compressed form of `src` into `out` at `offset` (little-endian host assumed, as on x64/arm64). */
export function quantizeInto(src: Float32Array, out: Uint8Array, offset: number): void {
  const n = src.length;
  const nb = Math.ceil(n / QUANT_BLOCK);
  const scales = new DataView(out.buffer, out.byteOffset + offset, nb * 4);
  const q = out.subarray(offset + nb * 4, offset + nb * 4 + n);
  for (let b = 0; b < nb; b++) {
    const start = b * QUANT_BLOCK;
    const stop = Math.min(start + QUANT_BLOCK, n);
    let amax = 0;
    for (let i = start; i < stop; i++) {
      const a = Math.abs(src[i]!);
      if (a > amax) amax = a;
    }
    const scale = Math.fround(amax / 127);
    scales.setFloat32(b * 4, scale, true);
    if (scale === 0) {
      q.fill(0, start, stop);
      continue;
    }
    for (let i = start; i < stop; i++) {
      let v = Math.round(src[i]! / scale);
      if (v > 127) v = 127;
      else if (v < -127) v = -127;
      q[i] = v & 0xff;
    }
  }
}

/** Reads n values compressed by quantizeInto from `bytes` into `out` (which must hold n floats). */
export function dequantizeInto(bytes: Uint8Array, n: number, out: Float32Array): void {
  const nb = Math.ceil(n / QUANT_BLOCK);
  const scales = new DataView(bytes.buffer, bytes.byteOffset, nb * 4);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset + nb * 4, n);
  for (let b = 0; b < nb; b++) {
    const scale = scales.getFloat32(b * 4, true);
    const start = b * QUANT_BLOCK;
    const stop = Math.min(start + QUANT_BLOCK, n);
    for (let i = start; i < stop; i++) out[i] = q[i]! * scale;
  }
}
