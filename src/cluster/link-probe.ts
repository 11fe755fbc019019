import { randomBytes } from "node:crypto";
import type { PeerMessage } from "./messages.js";

/**
 * Measures one directed link: median RTT of small ping frames, then bandwidth of a bulk transfer
 * (BULK_BYTES in BULK_CHUNK frames, timed from the first write to the receiver's ack, minus the
 * least RTT of the window). The same object answers the peer's probes (pong, bulk-ack).
 * RTT samples also come from a ping the node sends with every heartbeat (beat()); the median of
 * the last RTT_WINDOW of them is steadier than a burst of pings taken while the peer is busy.
 * On a slow link the bulk size shrinks to about BULK_SECONDS of transfer (and to a quarter after a
 * timeout), so probes of a VPN do not clog it.
 */
export const PROBE = { pings: 5, bulkBytes: 4 * 1024 * 1024, minBulkBytes: 256 * 1024, bulkChunk: 256 * 1024, timeoutMs: 15000, rttWindow: 15, bulkSeconds: 2 };

export interface LinkSample {
  rttMs: number;
  bandwidthBytesPerSec: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Bytes per second from a timed transfer, not counting the ack's trip back (≈ one RTT). */
export function bandwidthFrom(bytes: number, elapsedMs: number, rttMs: number): number {
  const ms = Math.max(elapsedMs - rttMs, 0.05);
  return (bytes / ms) * 1000;
}

let chunk: Uint8Array | null = null;

export class LinkProber {
  private seq = 0;
  private waiting = new Map<number, (m: PeerMessage) => void>();
  private receiving = new Map<number, number>();
  private beats = new Map<number, number>();
  private rtts: number[] = [];
  private bulkBytes = PROBE.bulkBytes;

  constructor(private readonly send: (m: PeerMessage) => boolean) {}

  /** Handles probe traffic; returns false for any other message. */
  handle(m: PeerMessage): boolean {
    switch (m.t) {
      case "ping":
        this.send({ t: "pong", n: m.n });
        return true;
      case "bulk":
        if (this.receiving.size > 4 && !this.receiving.has(m.n)) this.receiving.clear();
        this.receiving.set(m.n, (this.receiving.get(m.n) ?? 0) + m.data.length);
        return true;
      case "bulk-end":
        this.send({ t: "bulk-ack", n: m.n, bytes: this.receiving.get(m.n) ?? 0 });
        this.receiving.delete(m.n);
        return true;
      case "pong": {
        const sent = this.beats.get(m.n);
        if (sent !== undefined) {
          this.beats.delete(m.n);
          this.sample(performance.now() - sent);
          return true;
        }
        const w = this.waiting.get(m.n);
        if (w) {
          this.waiting.delete(m.n);
          w(m);
        }
        return true;
      }
      case "bulk-ack": {
        const w = this.waiting.get(m.n);
        if (w) {
          this.waiting.delete(m.n);
          w(m);
        }
        return true;
      }
      default:
        return false;
    }
  }

  /** Fails pending waits (the link closed). */
  cancel(): void {
    for (const w of this.waiting.values()) w({ t: "bye", reason: "link closed" });
    this.waiting.clear();
  }

  /** One background RTT sample (sent with each heartbeat). */
  beat(): void {
    const n = ++this.seq;
    if (this.beats.size > PROBE.rttWindow) this.beats.clear();
    this.beats.set(n, performance.now());
    this.send({ t: "ping", n });
  }

  private sample(ms: number): void {
    this.rtts.push(ms);
    if (this.rtts.length > PROBE.rttWindow) this.rtts.shift();
  }

  async measure(): Promise<LinkSample> {
    for (let i = this.rtts.length; i < PROBE.pings; i++) {
      const n = ++this.seq;
      const t0 = performance.now();
      if (!this.send({ t: "ping", n })) throw new Error("link closed");
      await this.reply(n);
      this.sample(performance.now() - t0);
    }
    const rttMs = median(this.rtts);
    chunk ??= new Uint8Array(randomBytes(PROBE.bulkChunk));
    const n = ++this.seq;
    const t0 = performance.now();
    let sent = 0;
    const size = this.bulkBytes;
    while (sent < size) {
      if (!this.send({ t: "bulk", n, data: chunk })) throw new Error("link closed");
      sent += chunk.length;
    }
    this.send({ t: "bulk-end", n, bytes: sent });
    let ack: PeerMessage;
    try {
      ack = await this.reply(n);
    } catch (e) {
      this.bulkBytes = Math.max(PROBE.minBulkBytes, this.bulkBytes / 4);
      throw e;
    }
    const elapsed = performance.now() - t0;
    if (ack.t !== "bulk-ack" || ack.bytes !== sent) throw new Error("bulk probe incomplete");
    // The ack's trip back is counted at the least RTT seen: on a busy link the pings queue behind
    // bulk data (a tbf cap held them 650 ms), and taking off such an RTT over-reported the bandwidth.
    const bandwidthBytesPerSec = bandwidthFrom(sent, elapsed, Math.min(...this.rtts));
    this.bulkBytes = Math.min(PROBE.bulkBytes, Math.max(PROBE.minBulkBytes, bandwidthBytesPerSec * PROBE.bulkSeconds));
    return { rttMs, bandwidthBytesPerSec };
  }

  private reply(n: number): Promise<PeerMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(n);
        reject(new Error("probe timed out"));
      }, PROBE.timeoutMs);
      this.waiting.set(n, (m) => {
        clearTimeout(timer);
        if (m.t === "bye") reject(new Error(m.reason));
        else resolve(m);
      });
    });
  }
}
