import type { Worker } from "node:worker_threads";
import { TesseraError } from "../errors.js";
import { startModuleWorker } from "../spawn.js";
import { clockMs, type FromLivenessThread, type LivenessThreadData, type ToLivenessThread } from "./liveness-protocol.js";
import type { PeerAddress } from "./handshake.js";
import { dataKey } from "./auth.js";

export interface LivenessOptions {
  /** Interface to listen on. */
  host: string;
  /** This endpoint's id (a world rank), below `count`. */
  self: number;
  count: number;
  /** Endpoints of different groups never pair up. */
  groupId: string;
  /** The instance key (see JoinOptions.key); default: the open key. */
  key?: string | Uint8Array;
  /** Names this process in messages (default "pid N"). */
  owner?: string;
  /** Heartbeat period (default 250 ms). */
  periodMs?: number;
  /** A peer heard from for this long is lost (default 3000 ms). */
  lostAfterMs?: number;
  /**
   * When a loss is not taken by the owning thread's event loop within this long (the thread is
   * blocked in a long synchronous call), the liveness thread writes why to stderr and SIGKILLs the
   * process. Leave unset where the process must outlive its peers (the driver, the node).
   */
  exitIfBlockedMs?: number;
}

/**
 * Tells a stopped peer from a busy one. A worker thread keeps its own TCP link to every peer and
 * heartbeats on it; compute on the owner's thread (a synchronous ORT run) does not stop it, but a
 * stopped process (SIGSTOP, a frozen VM) stops all its threads. Give `silentMs` to Group.join as
 * `liveness`: the group then waits as long as a step takes while heartbeats flow, and fails a
 * stopped peer within stepTimeoutMs.
 */
export class Liveness {
  private readonly lostListeners: ((e: TesseraError, id: number) => void)[] = [];
  private readonly labels = new Map<number, string>();
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly lastHeard: Int32Array,
    private readonly base: number,
    private readonly self: number,
    readonly port: number,
  ) {
    worker.on("message", (m: FromLivenessThread) => {
      if (m.type !== "lost" || this.closed) return;
      this.post({ type: "taken" });
      const e = new TesseraError(m.message, this.labels.get(m.id) ?? `rank ${m.id}`);
      for (const l of this.lostListeners) l(e, m.id);
    });
  }

  static async start(o: LivenessOptions): Promise<Liveness> {
    if (!Number.isInteger(o.self) || o.self < 0 || o.self >= o.count) throw new TesseraError(`liveness id must be in [0, ${o.count}), got ${o.self}`);
    const lastHeard = new Int32Array(new SharedArrayBuffer(4 * o.count));
    const base = Math.floor(performance.timeOrigin + performance.now());
    const data: LivenessThreadData = {
      host: o.host,
      key: dataKey(o.key).toString("hex"),
      self: o.self,
      groupId: o.groupId,
      owner: o.owner ?? `pid ${process.pid}`,
      periodMs: o.periodMs ?? 250,
      lostAfterMs: o.lostAfterMs ?? 3000,
      exitIfBlockedMs: o.exitIfBlockedMs,
      base,
      lastHeard: lastHeard.buffer as SharedArrayBuffer,
    };
    const worker = startModuleWorker("./liveness-thread", import.meta.url, { workerData: data });
    const first = await new Promise<FromLivenessThread>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", (e) => reject(new TesseraError(`liveness thread failed: ${e.message}`, o.owner)));
    });
    worker.removeAllListeners("error");
    worker.on("error", () => {});
    if (first.type !== "listening") {
      await worker.terminate();
      throw new TesseraError(`cannot listen for heartbeats: ${first.type === "error" ? first.message : first.type}`, `${o.host}:0`);
    }
    worker.unref();
    return new Liveness(worker, lastHeard, base, o.self, first.port);
  }

  /** Starts heartbeats with these peers (indexed by id; this one's own entry is ignored). Once. */
  watch(peers: readonly (PeerAddress | undefined)[], labelOf: (id: number) => string): void {
    const self = this.self;
    const list = [];
    for (const [id, p] of peers.entries()) {
      if (!p || id === self) continue;
      this.labels.set(id, labelOf(id));
      list.push({ id, host: p.host, port: p.port, label: labelOf(id) });
    }
    this.post({ type: "watch", peers: list });
  }

  /** Milliseconds since peer `id` last showed life here (counted from watch() until its first heartbeat; from start() before). */
  silentMs(id: number): number {
    return clockMs(this.base) - Atomics.load(this.lastHeard, id);
  }

  /** Called once per lost peer (its heartbeats stopped, it said it failed, or its link closed without a BYE). */
  onLost(listener: (e: TesseraError, id: number) => void): void {
    this.lostListeners.push(listener);
  }

  /**
   * Ends the thread after a last word to every peer: BYE (going quiet is then no loss), or with
   * `failure`, that this process gives up and why (a loss that names the cause, for peers that are
   * blocked in a step and would otherwise only see the link close).
   */
  close(failure?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.post({ type: "close", failure });
  }

  private post(m: ToLivenessThread): void {
    this.worker.postMessage(m);
  }
}
