/**
 * out = parts[0] + parts[1] + … + parts[N-1], added in rank order in float64 and rounded to float32
 * once. Every rank calls it with the same parts in the same order, so every rank gets the same bits.
 * `out` may be one of the parts. `acc` is scratch of at least out.length.
 */
export function sumInRankOrder(parts: readonly Float32Array[], out: Float32Array, acc: Float64Array): void {
  const n = out.length;
  if (parts.length === 2) {
    const a = parts[0]!;
    const b = parts[1]!;
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    return;
  }
  const first = parts[0]!;
  for (let i = 0; i < n; i++) acc[i] = first[i]!;
  for (let r = 1; r < parts.length; r++) {
    const p = parts[r]!;
    for (let i = 0; i < n; i++) acc[i] += p[i]!;
  }
  for (let i = 0; i < n; i++) out[i] = acc[i]!;
}

/** out[i] += add[i] for i < out.length (float32 result). */
export function addInto(out: Float32Array, add: Float32Array): void {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] += add[i]!;
}

/** The element range [start, end) of ring chunk c when n elements are cut into `parts` near-equal chunks. */
export function ringChunk(n: number, parts: number, c: number): { start: number; end: number } {
  const base = Math.floor(n / parts);
  const extra = n % parts;
  const start = c * base + Math.min(c, extra);
  return { start, end: start + base + (c < extra ? 1 : 0) };
}

/** Non-negative remainder, for ring arithmetic. */
export function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}
