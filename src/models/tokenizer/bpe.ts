/**
 * Byte-pair merging over one pre-tokenized word: repeatedly merge the adjacent pair with the lowest
 * merge rank (leftmost on ties) until no pair has a rank. Inputs are byte-level strings.
 */
export class BpeMerger {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  /** merges[i] = [left, right] has rank i. */
  constructor(merges: Iterable<readonly [string, string]>) {
    let rank = 0;
    for (const [a, b] of merges) {
      const key = a + " " + b;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
      rank++;
    }
  }

  merge(word: string): string[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const parts = Array.from(word);
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(parts[i] + " " + parts[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best]! + parts[best + 1]!);
    }
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(word, parts);
    return parts;
  }
}
