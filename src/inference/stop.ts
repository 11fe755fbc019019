/**
 * Finds stop strings in streamed text. Text that might be the beginning of a stop string is held
 * back until the next piece shows whether it is one, so a client never sees part of a stop string
 * that spans tokens; the stop string itself and everything after it are dropped (OpenAI semantics).
 */
export class StopMatcher {
  private held = "";
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /**
   * Adds text; returns what may be shown now, and the stop string when one completed (then `text`
   * is what precedes it, and the caller stops).
   */
  push(piece: string): { text: string; stop?: string } {
    if (this.stops.length === 0) return { text: piece };
    const buf = this.held + piece;
    let at = -1;
    let which: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (which !== undefined) {
      this.held = "";
      return { text: buf.slice(0, at), stop: which };
    }
    const keep = this.partialMatchLength(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep) };
  }

  /** Text held back at the end of generation (it turned out not to be a stop string). */
  flush(): string {
    const t = this.held;
    this.held = "";
    return t;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialMatchLength(buf: string): number {
    for (let k = Math.min(this.longest - 1, buf.length); k > 0; k--) {
      const tail = buf.slice(buf.length - k);
      if (this.stops.some((s) => s.length > k && s.startsWith(tail))) return k;
    }
    return 0;
  }
}
