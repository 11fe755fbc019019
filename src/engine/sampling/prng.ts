import { splitmix32, Xoshiro128 } from "../../random.js";

/**
 * Seeded PRNG for sampling: xoshiro128** seeded through splitmix32, so that the same seed gives
 * the same token stream on every platform (Math.random cannot be seeded).
 */
export class Prng extends Xoshiro128 {
  constructor(seed: number) {
    const next = splitmix32(seed >>> 0);
    super(next(), next(), next(), next());
  }

  /** Uniform in [0, 1) with 53 bits of resolution. */
  next(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

/** A seed for requests that give none. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}
