/**
 * Progress of a transfer: bytes done of a total (bytes already on disk from an earlier, interrupted
 * run count as done from the start, so a resumed download shows where it really is), the recent
 * speed (bytes received over the last WINDOW_MS, not counting bytes found on disk) and the time left
 * at that speed.
 */
const WINDOW_MS = 5000;

export interface ProgressSnapshot {
  bytesDone: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaSec: number | null;
}

export class Progress {
  bytesDone = 0;
  private samples: { t: number; received: number }[] = [];
  private received = 0;

  constructor(
    public bytesTotal: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.samples.push({ t: now(), received: 0 });
  }

  /** Bytes found on disk (not transferred now). */
  resumed(n: number): void {
    this.bytesDone += n;
  }

  /** Bytes received and written. */
  add(n: number): void {
    this.bytesDone += n;
    this.received += n;
    const t = this.now();
    this.samples.push({ t, received: this.received });
    while (this.samples.length > 2 && t - this.samples[1]!.t > WINDOW_MS) this.samples.shift();
  }

  /** Bytes that must be fetched again (a corrupt file is restarted). */
  discard(n: number): void {
    this.bytesDone = Math.max(0, this.bytesDone - n);
  }

  snapshot(): ProgressSnapshot {
    const first = this.samples[0]!;
    const t = this.now();
    const span = (t - first.t) / 1000;
    const bytesPerSec = span > 0.05 ? (this.received - first.received) / span : 0;
    const left = Math.max(0, this.bytesTotal - this.bytesDone);
    return {
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSec: Math.round(bytesPerSec),
      etaSec: bytesPerSec > 0 ? Math.round(left / bytesPerSec) : left === 0 ? 0 : null,
    };
  }
}
