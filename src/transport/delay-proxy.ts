import net from "node:net";
import { performance } from "node:perf_hooks";
import { TesseraError } from "../errors.js";

/** One direction of an emulated link. */
export interface LinkShape {
  /** Added one-way delay, microseconds. */
  latencyUs: number;
  /** Serialization rate in bytes per second; 0 or absent = unlimited. */
  bandwidthBytesPerSec?: number;
}

export interface DelayProxyOptions {
  listenHost?: string;
  /** 0 (default) picks a free port. */
  listenPort?: number;
  target: { host: string; port: number };
  /** Client → target. */
  forward: LinkShape;
  /** Target → client (default: same as forward). */
  backward?: LinkShape;
}

/** Above this many bytes waiting in one direction, the proxy stops reading from the sender. */
const QUEUE_LIMIT = 8 * 1024 * 1024;
const LATENESS_SAMPLES = 4096;
/** Waits longer than this use a timer (ms granularity); shorter ones poll with setImmediate. */
const TIMER_THRESHOLD_MS = 2;

/**
 * Delivery times for one direction: a chunk that arrives at t leaves the sender's "wire" when the
 * wire is free and its bytes have been clocked out at the given rate (a token bucket with no burst),
 * and reaches the other end latencyUs later. Pure: the caller supplies the clock.
 */
export class WireClock {
  private busyUntilMs = 0;
  constructor(private readonly shape: LinkShape) {}

  deliveryTime(nowMs: number, bytes: number): number {
    const bw = this.shape.bandwidthBytesPerSec ?? 0;
    let sent = nowMs;
    if (bw > 0) {
      sent = Math.max(nowMs, this.busyUntilMs) + (bytes / bw) * 1000;
      this.busyUntilMs = sent;
    }
    return sent + this.shape.latencyUs / 1000;
  }
}

class Direction {
  private readonly chunks: Buffer[] = [];
  private readonly times: number[] = [];
  private head = 0;
  private queuedBytes = 0;
  private srcEnded = false;
  private pausedForQueue = false;
  private pausedForDrain = false;
  private readonly clock: WireClock;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    shape: LinkShape,
    private readonly scheduler: Scheduler,
  ) {
    this.clock = new WireClock(shape);
    src.on("data", (chunk: Buffer) => {
      const at = this.clock.deliveryTime(performance.now(), chunk.length);
      this.chunks.push(chunk);
      this.times.push(at);
      this.queuedBytes += chunk.length;
      if (this.queuedBytes > QUEUE_LIMIT && !this.pausedForQueue) {
        this.pausedForQueue = true;
        src.pause();
      }
      scheduler.wake(at);
    });
    src.on("end", () => {
      this.srcEnded = true;
      this.endIfDrained();
    });
    dst.on("drain", () => {
      this.pausedForDrain = false;
      this.maybeResume();
    });
  }

  /** Writes every chunk due by `now`; returns the next due time, or Infinity. */
  flush(now: number): number {
    while (this.head < this.chunks.length && this.times[this.head]! <= now) {
      const chunk = this.chunks[this.head]!;
      this.chunks[this.head] = undefined as unknown as Buffer;
      this.head++;
      this.queuedBytes -= chunk.length;
      this.scheduler.recordLateness(now - this.times[this.head - 1]!);
      if (!this.dst.destroyed && !this.dst.write(chunk)) this.pausedForDrain = true;
    }
    if (this.head === this.chunks.length) {
      this.chunks.length = this.times.length = this.head = 0;
      this.endIfDrained();
    } else if (this.head > 1024) {
      this.chunks.splice(0, this.head);
      this.times.splice(0, this.head);
      this.head = 0;
    }
    if (this.pausedForQueue && this.queuedBytes < QUEUE_LIMIT / 2) this.pausedForQueue = false;
    this.maybeResume();
    return this.head < this.times.length ? this.times[this.head]! : Infinity;
  }

  private maybeResume(): void {
    if (!this.pausedForQueue && !this.pausedForDrain && this.src.isPaused()) this.src.resume();
  }

  private endIfDrained(): void {
    if (this.srcEnded && this.head === this.chunks.length && !this.dst.destroyed) this.dst.end();
  }
}

/**
 * Runs deliveries on time. setTimeout only has millisecond granularity, so waits under
 * TIMER_THRESHOLD_MS poll with setImmediate against performance.now() (sub-microsecond clock): the
 * event loop keeps serving sockets between polls, and the CPU spins only while data is in flight.
 */
class Scheduler {
  readonly directions = new Set<Direction>();
  /** The last LATENESS_SAMPLES delivery delays beyond the due time, ms. */
  readonly lateness = new Float64Array(LATENESS_SAMPLES);
  latenessCount = 0;

  recordLateness(ms: number): void {
    this.lateness[this.latenessCount++ % LATENESS_SAMPLES] = ms;
  }
  private immediate = false;
  private timer: NodeJS.Timeout | undefined;
  /** When the scheduled tick is due; Infinity when nothing is scheduled. */
  private nextAt = Infinity;
  private stopped = false;

  wake(at: number): void {
    if (at >= this.nextAt || this.stopped) return;
    this.nextAt = at;
    if (this.immediate) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.immediate = true;
    setImmediate(this.tick);
  }

  private readonly tick = (): void => {
    this.immediate = false;
    this.timer = undefined;
    if (this.stopped) return;
    const now = performance.now();
    let next = Infinity;
    for (const d of this.directions) next = Math.min(next, d.flush(now));
    this.nextAt = next;
    if (next === Infinity) return;
    const wait = next - performance.now();
    if (wait > TIMER_THRESHOLD_MS) {
      this.timer = setTimeout(this.tick, Math.floor(wait - 1));
    } else {
      this.immediate = true;
      setImmediate(this.tick);
    }
  };

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * A TCP relay that emulates a slower link: every accepted connection is paired with a new
 * connection to the target, and bytes each way are delayed and rate-limited. Byte order is kept and
 * nothing is dropped; when one side closes, the other is closed after its pending bytes are sent.
 */
export class DelayProxy {
  private readonly sockets = new Set<net.Socket>();
  private readonly scheduler = new Scheduler();

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(o: DelayProxyOptions): Promise<DelayProxy> {
    checkShape(o.forward, "forward");
    if (o.backward) checkShape(o.backward, "backward");
    const host = o.listenHost ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      let proxy: DelayProxy | undefined;
      const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (client) => proxy?.pair(client, o));
      server.once("error", (e: NodeJS.ErrnoException) => reject(new TesseraError(`delay proxy cannot listen: ${e.code ?? e.message}`, `${host}:${o.listenPort ?? 0}`)));
      server.listen({ host, port: o.listenPort ?? 0 }, () => {
        server.removeAllListeners("error");
        server.on("error", () => {});
        proxy = new DelayProxy(server, host, (server.address() as net.AddressInfo).port);
        resolve(proxy);
      });
    });
  }

  private pair(client: net.Socket, o: DelayProxyOptions): void {
    const upstream = net.connect({ host: o.target.host, port: o.target.port, noDelay: true });
    upstream.pause();
    const both = [client, upstream];
    for (const s of both) {
      this.sockets.add(s);
      s.on("error", () => both.forEach((x) => x.destroy()));
      s.on("close", () => {
        this.sockets.delete(s);
        // A side that vanished without ending cannot get the rest: close the other one too.
        if (!s.readableEnded) both.forEach((x) => x.destroy());
      });
    }
    const forward = new Direction(client, upstream, o.forward, this.scheduler);
    const backward = new Direction(upstream, client, o.backward ?? o.forward, this.scheduler);
    this.scheduler.directions.add(forward);
    this.scheduler.directions.add(backward);
    let open = 2;
    for (const s of both) {
      s.on("close", () => {
        if (--open > 0) return;
        this.scheduler.directions.delete(forward);
        this.scheduler.directions.delete(backward);
      });
    }
    upstream.once("connect", () => {
      client.resume();
      upstream.resume();
    });
  }

  /** How late chunks left the proxy relative to their due time, over the last 4096 chunks (µs). */
  lateness(): { chunks: number; medianUs: number; p90Us: number; maxUs: number } {
    const n = Math.min(this.scheduler.latenessCount, LATENESS_SAMPLES);
    const s = Array.from(this.scheduler.lateness.subarray(0, n)).sort((a, b) => a - b);
    const us = (q: number): number => (n ? Math.round(s[Math.min(n - 1, Math.floor(q * n))]! * 10000) / 10 : 0);
    return { chunks: this.scheduler.latenessCount, medianUs: us(0.5), p90Us: us(0.9), maxUs: us(1) };
  }

  close(): Promise<void> {
    this.scheduler.stop();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function checkShape(s: LinkShape, which: string): void {
  if (!(s.latencyUs >= 0) || !Number.isFinite(s.latencyUs)) throw new TesseraError(`${which} latency must be ≥ 0 µs, got ${s.latencyUs}`, "delay proxy");
  const bw = s.bandwidthBytesPerSec ?? 0;
  if (!(bw >= 0) || !Number.isFinite(bw)) throw new TesseraError(`${which} bandwidth must be ≥ 0 bytes/s, got ${bw}`, "delay proxy");
}
