/**
 * Partial selection over a logits vector: the m largest entries without sorting the whole
 * vocabulary (O(n log m) with a bounded min-heap). Ties rank the lower token id first, so the
 * result is deterministic and top-1 agrees with argmax.
 */

/** True when token a ranks above token b. */
function above(v: Float32Array, a: number, b: number): boolean {
  const x = v[a]!;
  const y = v[b]!;
  return x > y || (x === y && a < b);
}

/** Min-heap sift-down on heap[0..size), ordered so the lowest-ranked token is at the root. */
function siftDown(v: Float32Array, heap: Int32Array, start: number, size: number): void {
  let i = start;
  const item = heap[i]!;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    const r = l + 1;
    let c = l;
    if (r < size && above(v, heap[l]!, heap[r]!)) c = r;
    if (!above(v, item, heap[c]!)) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = item;
}

/**
 * Writes the indices of the m largest values of v[0..n) into out[0..m), best first, and returns
 * how many were written (min(m, n)). `out` needs room for m entries; nothing else is allocated.
 */
export function topIndices(v: Float32Array, n: number, m: number, out: Int32Array): number {
  const k = Math.min(m, n);
  if (k <= 0) return 0;
  for (let i = 0; i < k; i++) out[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(v, out, i, k);
  for (let i = k; i < n; i++) {
    if (above(v, i, out[0]!)) {
      out[0] = i;
      siftDown(v, out, 0, k);
    }
  }
  // Heap sort in place: popping the lowest-ranked to the back leaves the array best first.
  for (let end = k - 1; end > 0; end--) {
    const t = out[0]!;
    out[0] = out[end]!;
    out[end] = t;
    siftDown(v, out, 0, end);
  }
  return k;
}

/** Index of the largest value (lowest index on ties). */
export function argmax(v: Float32Array, n = v.length): number {
  let best = 0;
  let bv = v[0]!;
  for (let i = 1; i < n; i++) {
    const x = v[i]!;
    if (x > bv) {
      bv = x;
      best = i;
    }
  }
  return best;
}

/** Largest value of v[0..n). */
export function maxValue(v: Float32Array, n = v.length): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (v[i]! > m) m = v[i]!;
  return m;
}

/** log Σ exp(v[i]) over v[0..n), computed stably around the maximum. */
export function logSumExp(v: Float32Array, n = v.length): number {
  const m = maxValue(v, n);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(v[i]! - m);
  return m + Math.log(s);
}
