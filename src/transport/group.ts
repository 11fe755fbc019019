import { performance } from "node:perf_hooks";
import { TesseraError } from "../errors.js";
import {
  BroadcastRecv,
  Barrier,
  DirectAllReduce,
  Recv,
  RingAllReduce,
  Scratch,
  bytesOf,
  type Op,
  type OpContext,
} from "./collectives.js";
import { DataOp, FrameKind } from "./frame.js";
import { formLinks, type PeerAddress } from "./handshake.js";
import { WRITE_HIGH_WATER, type Link } from "./link.js";
import { GroupListener } from "./listener.js";
import { ReducePoller } from "./reduce-poller.js";
import { dataKey } from "./auth.js";

export type { PeerAddress };

export interface JoinOptions {
  rank: number;
  size: number;
  /** Where to reach every rank, indexed by rank; peers[rank] is where this rank listens. */
  peers: readonly PeerAddress[];
  /** Ranks of different groups never pair up, even on reused ports. */
  groupId: string;
  /**
   * The instance key (32 bytes, or 64 hex digits) every rank of the group holds: each link proves
   * it in its handshake (auth.ts). Default: the open key.
   */
  key?: string | Uint8Array;
  /** Give up joining after this long (default 30 s). */
  timeoutMs?: number;
  /** An already open listening socket for this rank (else one is opened on peers[rank]); closed once joined. */
  listener?: GroupListener;
  /** A peer that sends nothing (not even a heartbeat) for this long is lost (default 3000 ms). */
  stepTimeoutMs?: number;
  /**
   * Milliseconds since rank r last showed life on another channel: Liveness.silentMs, mapped to
   * this group's ranks. A peer is then silent only while both channels are, so a rank blocked in a
   * long step (its data link quiet, its liveness thread beating) is waited for as long as it takes.
   */
  liveness?: (rank: number) => number;
  /** Idle links send a heartbeat this often; also the failure check period (default 250 ms). */
  heartbeatMs?: number;
  /** Largest frame payload accepted (default 1 GiB). */
  maxPayloadBytes?: number;
  /** allReduce of at least this many bytes uses the ring (default 512 KiB). */
  ringThresholdBytes?: number;
  /** Busy-polled allReduce: a peer that sends nothing for this long while awaited is lost (default 3000 ms). */
  pollTimeoutMs?: number;
  /** Busy-polled allReduce: spin at most this long, then wait on the event loop (default 0.5 ms; see busy-poll.ts). */
  pollSpinMs?: number;
}

export interface AllReduceOptions {
  /** Send partials as 8-bit blocks (see quantize.ts for the error bound). Every rank must agree. */
  compress?: boolean;
  /** "auto" picks by size (ringThresholdBytes); every rank must pick the same. */
  algorithm?: "auto" | "direct" | "ring";
  /**
   * Try to finish a direct (one round trip) all-reduce synchronously, spinning on the sockets for up
   * to pollSpinMs instead of waiting for the event loop (busy-poll.ts): ~15 µs instead of ~120 µs on
   * loopback. Past that budget, or when a link is not in a state to poll, or while spins keep running
   * out of budget (see countPoll), it waits on the event loop. Either way a peer it waits on that stays
   * silent for pollTimeoutMs fails the group. Ranks may differ in this option.
   */
  poll?: boolean;
}

type Tensor = Uint8Array | Float32Array | Int32Array | Uint32Array | Float64Array | Int8Array | Int16Array | Uint16Array;

/**
 * A fixed set of ranks connected pairwise over TCP (rank i dials every rank below it). Collectives
 * follow MPI rules: every rank of the group calls the same collectives in the same order. A lost
 * peer (closed, reset, or silent past stepTimeoutMs) fails the group: pending and later operations
 * reject with an error that names the lost rank, and the other ranks are told so they fail too.
 */
export class Group {
  readonly links: (Link | undefined)[];
  private error: TesseraError | undefined;
  /** A peer that said BYE while nothing waited on it: no failure, but the group is done (see lost()). */
  private departed: TesseraError | undefined;
  private closed = false;
  private readonly active = new Set<Op>();
  private readonly failureListeners: ((e: TesseraError) => void)[] = [];
  private monitor: NodeJS.Timeout | undefined;
  /** While joining: ends the join with this error (an ABORT or a lost link before all ranks are in). */
  private abortJoin: ((e: TesseraError) => void) | undefined;
  private readonly ctx: OpContext;
  private readonly ringThresholdBytes: number;
  /** The last allReduce started; still in `active` while it runs. */
  private reduceOp: Op | undefined;
  private readonly poller: ReducePoller;

  private constructor(
    readonly rank: number,
    readonly size: number,
    private readonly peers: readonly PeerAddress[],
    private readonly opts: Required<Pick<JoinOptions, "stepTimeoutMs" | "heartbeatMs" | "maxPayloadBytes" | "pollTimeoutMs" | "pollSpinMs">>,
    private readonly liveness: ((rank: number) => number) | undefined,
    ringThresholdBytes: number,
  ) {
    this.links = new Array(size).fill(undefined);
    this.ringThresholdBytes = ringThresholdBytes;
    this.poller = new ReducePoller(
      {
        rank,
        size,
        links: this.links,
        isActive: (op) => this.active.has(op),
        quietWhileSpinning: (r, link, dataQuietMs, timeoutMs) => {
          const quiet = this.quietMs(r, dataQuietMs);
          if (quiet > timeoutMs) this.fail(this.silenceError(link, quiet, " during an all-reduce"));
        },
      },
      opts.pollSpinMs,
      opts.pollTimeoutMs,
    );
    const scratch = new Scratch(size);
    this.ctx = {
      rank,
      size,
      links: this.links,
      scratch,
      start: (op) => this.active.add(op),
      finished: (op) => this.active.delete(op),
    };
  }

  static async join(o: JoinOptions): Promise<Group> {
    validateJoin(o);
    const listener = o.listener ?? (await GroupListener.open(o.peers[o.rank]!.host, o.peers[o.rank]!.port));
    const group = new Group(
      o.rank,
      o.size,
      o.peers,
      {
        stepTimeoutMs: o.stepTimeoutMs ?? 3000,
        heartbeatMs: o.heartbeatMs ?? 250,
        maxPayloadBytes: o.maxPayloadBytes ?? 1 << 30,
        pollTimeoutMs: o.pollTimeoutMs ?? 3000,
        pollSpinMs: o.pollSpinMs ?? 0.5,
      },
      o.liveness,
      o.ringThresholdBytes ?? 512 * 1024,
    );
    const forming = formLinks(listener, {
      rank: o.rank,
      size: o.size,
      peers: o.peers,
      groupId: o.groupId,
      key: dataKey(o.key),
      timeoutMs: o.timeoutMs ?? 30_000,
      maxPayloadBytes: group.opts.maxPayloadBytes,
      links: group.links,
      labelOf: (r) => group.labelOf(r),
      established: (link) => {
        link.onLost = (e) => group.lost(link, e);
        link.onControl = (kind, payload) => group.onControl(link, kind, payload);
      },
    });
    group.abortJoin = forming.abort;
    try {
      await forming.done;
    } catch (e) {
      group.destroyLinks();
      throw e;
    } finally {
      group.abortJoin = undefined;
      listener.close();
    }
    group.startMonitor();
    return group;
  }

  labelOf(r: number): string {
    const p = this.peers[r];
    return p ? `rank ${r} (${p.host}:${p.port})` : `rank ${r}`;
  }

  // ---- collectives ----

  /** Sums `data` over all ranks, in place; every rank ends with the same bits. */
  allReduce(data: Float32Array, opts: AllReduceOptions = {}): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    if (this.size === 1) return Promise.resolve();
    // The partials land in shared scratch buffers: a second reduce would overwrite the first's.
    if (this.reduceOp && this.active.has(this.reduceOp)) return Promise.reject(new Error("allReduce called while another allReduce of this group is in flight: await each one"));
    const algo = opts.algorithm ?? "auto";
    const ring = algo === "ring" || (algo === "auto" && data.byteLength >= this.ringThresholdBytes);
    const wantPoll = !!opts.poll && !ring;
    const spin = wantPoll && this.poller.before();
    const op = ring ? new RingAllReduce(this.ctx, data, !!opts.compress) : new DirectAllReduce(this.ctx, data, !!opts.compress);
    this.reduceOp = op;
    if (wantPoll) this.poller.after(op, spin);
    return op.promise;
  }

  /** Busy-polled allReduces: finished while spinning, then waited on the event loop, or did not spin (backed off). */
  get pollStats(): { readonly synchronous: number; readonly waited: number; readonly skipped: number } {
    return this.poller.stats;
  }

  /**
   * Sends a copy of `data` to rank `to` (pipeline hop). Resolves at once unless the link has more than
   * WRITE_HIGH_WATER bytes queued, then when it drains.
   */
  send(to: number, data: Tensor, tag = 0): Promise<void> {
    const err = this.unusable() ?? this.checkPeer(to);
    if (err) return Promise.reject(err);
    const link = this.links[to]!;
    const bytes = bytesOf(data);
    link.sendBytes(bytes, DataOp.SEND, tag, data.length);
    if (link.writeBacklog <= WRITE_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.failureListeners.splice(this.failureListeners.indexOf(onFail), 1);
        resolve();
      };
      const onFail = (e: TesseraError): void => {
        link.socket.off("drain", onDrain);
        reject(e);
      };
      link.socket.once("drain", onDrain);
      this.failureListeners.push(onFail);
    });
  }

  /** Receives the next `send` from rank `from` with this tag into `into`; resolves with the bytes received. */
  async recv(from: number, into: Tensor, tag = 0): Promise<number> {
    const err = this.unusable() ?? this.checkPeer(from);
    if (err) throw err;
    const op = new Recv(this.ctx, from, bytesOf(into), tag);
    await op.promise;
    return op.received;
  }

  /** Copies `data` from rank `root` to every rank, in place (e.g. the sampled token). Same size everywhere. */
  broadcast(root: number, data: Tensor): Promise<void> {
    const err = this.unusable() ?? (root === this.rank ? undefined : this.checkPeer(root));
    if (err) return Promise.reject(err);
    const bytes = bytesOf(data);
    if (root === this.rank) {
      for (let r = 0; r < this.size; r++) if (r !== this.rank) this.links[r]!.sendBytes(bytes, DataOp.BROADCAST, 0, data.length);
      return Promise.resolve();
    }
    return new BroadcastRecv(this.ctx, root, bytes).promise;
  }

  /** Resolves once every rank has reached its barrier. */
  barrier(): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    if (this.size === 1) return Promise.resolve();
    return new Barrier(this.ctx).promise;
  }

  // ---- failure ----

  /** Called once, with the error that broke the group (not after close()). */
  onFailure(listener: (e: TesseraError) => void): void {
    if (this.error && !this.closed) listener(this.error);
    else this.failureListeners.push(listener);
  }

  /** The error that broke the group, if any. */
  get failure(): TesseraError | undefined {
    return this.closed ? undefined : this.error;
  }

  private unusable(): TesseraError | undefined {
    if (this.closed) return new TesseraError("the group was closed", `rank ${this.rank}`);
    return this.error ?? this.departed;
  }

  private checkPeer(r: number): TesseraError | undefined {
    if (!Number.isInteger(r) || r < 0 || r >= this.size || r === this.rank) {
      return new TesseraError(`no peer rank ${r} in a group of ${this.size} (this is rank ${this.rank})`);
    }
    return undefined;
  }

  /**
   * A link went away. A peer that said BYE while no operation waits on its link is leaving with the
   * rest (an instance closing: ranks hear CLOSE at different times), so it fails nothing now; any
   * later operation is refused with its departure, and one that comes to wait on the link fails then
   * (Link.expect). Anything else is a lost peer.
   */
  private lost(link: Link, err: TesseraError): void {
    if (link.said !== undefined && !link.awaiting && !this.abortJoin) {
      this.departed ??= err;
      return;
    }
    this.fail(err);
  }

  private fail(err: TesseraError): void {
    if (this.error || this.closed) return;
    this.error = err;
    this.abortJoin?.(err);
    this.stopMonitor();
    for (const op of this.active) op.abort(err);
    this.active.clear();
    const reason = Buffer.from(err.message);
    for (const link of this.links) {
      if (!link || link.lost) continue;
      link.sendControl(FrameKind.ABORT, reason);
      link.close("aborted");
    }
    for (const l of this.failureListeners.splice(0)) l(err);
  }

  /**
   * Fails the group from outside, as a lost peer would (e.g. Liveness reported one): pending and later
   * operations reject with `err`, and the other ranks are told why.
   */
  abort(err: TesseraError): void {
    this.fail(err);
  }

  /** Leaves the group: peers see "rank r left the group" if they still expect something from us. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopMonitor();
    const err = new TesseraError("the group was closed", `rank ${this.rank}`);
    for (const op of this.active) op.abort(err);
    this.active.clear();
    this.failureListeners.length = 0;
    for (const link of this.links) link?.close(`rank ${this.rank} closed the group`);
  }

  private destroyLinks(): void {
    for (const link of this.links) link?.socket.destroy();
  }

  private startMonitor(): void {
    const { heartbeatMs, stepTimeoutMs, pollTimeoutMs } = this.opts;
    const minTicks = Math.ceil(stepTimeoutMs / heartbeatMs);
    const silent = new Array<number>(this.size).fill(0);
    const lastRx = new Array<number>(this.size).fill(performance.now());
    // Silence must last both stepTimeoutMs of wall time and minTicks checks: after this process was
    // blocked (a long synchronous run), data that waited in the socket is read before it counts.
    this.monitor = setInterval(() => {
      const now = performance.now();
      // peers inside a decode step answer within milliseconds: hold them to the shorter poll timeout
      const polled = this.poller.waiting;
      for (let r = 0; r < this.size; r++) {
        const link = this.links[r];
        if (!link || link.lost) continue;
        // a link this rank stopped reading (too much unclaimed data) is not the peer's silence
        if (link.rxSinceTick || link.socket.isPaused()) {
          link.rxSinceTick = false;
          silent[r] = 0;
          lastRx[r] = now;
        } else {
          const quiet = this.quietMs(r, now - lastRx[r]!);
          if ((++silent[r]! >= minTicks && quiet >= stepTimeoutMs) || (polled && link.awaiting && quiet >= pollTimeoutMs)) {
            this.fail(this.silenceError(link, quiet, ""));
            return;
          }
        }
        if (!link.txSinceTick) link.heartbeat();
        link.txSinceTick = false;
      }
    }, heartbeatMs);
    this.monitor.unref();
  }

  /** How long peer r has been silent: on the data link (`dataQuietMs`), and on the liveness channel if there is one. */
  private quietMs(r: number, dataQuietMs: number): number {
    return this.liveness ? Math.min(dataQuietMs, this.liveness(r)) : dataQuietMs;
  }

  private silenceError(link: Link, quietMs: number, during: string): TesseraError {
    const ms = Math.round(quietMs);
    return this.liveness
      ? new TesseraError(`sent nothing, not even a heartbeat from its liveness thread, for ${ms} ms${during} (the process is stopped, or its host is unreachable)`, link.label)
      : new TesseraError(`sent nothing for ${ms} ms${during} (stalled, or the link is down)`, link.label);
  }

  private stopMonitor(): void {
    if (this.monitor) clearInterval(this.monitor);
    this.monitor = undefined;
  }

  private onControl(link: Link, kind: number, payload: Uint8Array): void {
    if (kind === FrameKind.BYE) link.said = Buffer.from(payload).toString();
    else if (kind === FrameKind.ABORT) {
      this.fail(new TesseraError(`${Buffer.from(payload).toString()} (reported by ${link.label})`));
    }
  }
}

function validateJoin(o: JoinOptions): void {
  const where = `rank ${o.rank}`;
  if (!Number.isInteger(o.size) || o.size < 1) throw new TesseraError(`group size must be an integer ≥ 1, got ${o.size}`, where);
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.size) throw new TesseraError(`rank must be in [0, ${o.size}), got ${o.rank}`);
  if (o.peers.length !== o.size) throw new TesseraError(`${o.peers.length} peer addresses given for a group of ${o.size}`, where);
  if (!o.groupId) throw new TesseraError("a group id is required", where);
}
