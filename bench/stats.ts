/** Small numeric helpers the benchmarks share. */

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[n >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Rounded to 2 decimals, for JSON results. */
export const round2 = (x: number): number => Math.round(x * 100) / 100;

/** `xs` starting at index k (mod length): the order of a round's configurations, changing every round. */
export const rotate = <T>(xs: readonly T[], k: number): T[] => [...xs.slice(k % xs.length), ...xs.slice(0, k % xs.length)];
