/**
 * xoshiro128** with splitmix32 seeding: a small PRNG whose streams are the same on every platform
 * and Node version (Math.random cannot be seeded). Used for sampling and for synthetic weights.
 */

/** splitmix32 from a starting state: spreads a small or sequential seed over many well-mixed words. */
export function splitmix32(start: number): () => number {
  let s = start | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** The four state words; they must not all be zero. */
  constructor(a: number, b: number, c: number, d: number) {
    if ((a | b | c | d) === 0) a = 1;
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
