/**
 * The window of recent tokens that repetition / presence / frequency penalties look at.
 * Layout (all vocab-sized arrays allocated once per window, never per token):
 *   counts[t]    occurrences of token t in the window
 *   distinct[0..distinctLen)  the tokens with counts > 0, in no particular order
 *   where[t]     index of t in `distinct` (valid while counts[t] > 0)
 *   ring         the last `size` tokens in arrival order (absent when the window is unbounded)
 */
export class PenaltyWindow {
  private readonly counts: Int32Array;
  private readonly where: Int32Array;
  private readonly distinct: Int32Array;
  private distinctLen = 0;
  private readonly ring: Int32Array | undefined;
  private ringPos = 0;
  private ringLen = 0;

  /** size: window length in tokens, -1 = unbounded. */
  constructor(readonly vocabSize: number, size: number) {
    this.counts = new Int32Array(vocabSize);
    this.where = new Int32Array(vocabSize);
    this.distinct = new Int32Array(vocabSize);
    this.ring = size >= 0 ? new Int32Array(size) : undefined;
  }

  push(token: number): void {
    if (token < 0 || token >= this.vocabSize) return;
    const ring = this.ring;
    if (ring) {
      if (ring.length === 0) return;
      if (this.ringLen === ring.length) this.remove(ring[this.ringPos]!);
      else this.ringLen++;
      ring[this.ringPos] = token;
      this.ringPos = (this.ringPos + 1) % ring.length;
    }
    if (this.counts[token]++ === 0) {
      this.where[token] = this.distinctLen;
      this.distinct[this.distinctLen++] = token;
    }
  }

  private remove(token: number): void {
    if (--this.counts[token]! > 0) return;
    const i = this.where[token]!;
    const last = this.distinct[--this.distinctLen]!;
    this.distinct[i] = last;
    this.where[last] = i;
  }

  count(token: number): number {
    return this.counts[token] ?? 0;
  }

  /**
   * Applies the penalties in place, once per distinct token: repetition first (llama.cpp/HF:
   * divide a positive logit, multiply a negative one), then OpenAI frequency and presence.
   */
  apply(logits: Float32Array, repetition: number, frequency: number, presence: number): void {
    for (let j = 0; j < this.distinctLen; j++) {
      const t = this.distinct[j]!;
      let l = logits[t]!;
      if (repetition !== 1) l = l > 0 ? l / repetition : l * repetition;
      l -= this.counts[t]! * frequency + presence;
      logits[t] = l;
    }
  }
}
