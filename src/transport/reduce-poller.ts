import { performance } from "node:perf_hooks";
import { canPoll, socketFd, spinFor } from "./busy-poll.js";
import type { Op } from "./collectives.js";
import type { Link } from "./link.js";

/** Polled allReduces judged together, and how many skip spinning after a window that mostly waited. */
const POLL_WINDOW = 32;
const POLL_BACKOFF = 512;

/** What the poller needs from its group. */
export interface PollerHost {
  readonly rank: number;
  readonly size: number;
  readonly links: readonly (Link | undefined)[];
  /** Whether `op` is still running. */
  isActive(op: Op): boolean;
  /** Peer r, awaited while spinning, sent nothing on its data link for `dataQuietMs` > timeoutMs: fail it unless it shows life elsewhere. */
  quietWhileSpinning(r: number, link: Link, dataQuietMs: number, timeoutMs: number): void;
}

/**
 * The busy-poll side of Group.allReduce (AllReduceOptions.poll): spins on the links' fds for up to
 * spinMs (busy-poll.ts) so a decode-sized reduce finishes without an event-loop turn, keeps the
 * statistics, and backs off when spinning does not pay.
 */
export class ReducePoller {
  /**
   * Polled allReduces that finished while spinning, those that then waited on the event loop, and
   * those that did not spin because recent spins mostly ran out of budget.
   */
  readonly stats = { synchronous: 0, waited: 0, skipped: 0 };
  /** Reused across calls: the decode loop allocates nothing. */
  private readonly buf = Buffer.allocUnsafeSlow(256 * 1024);
  private readonly fds: number[] = [];
  private readonly lastRx: number[] = [];
  private window = 0;
  private windowWaited = 0;
  /** This many more polled allReduces wait on the event loop without spinning. */
  private offFor = 0;
  /** A polled allReduce that ran out of spin budget and now waits on the event loop. */
  private waitingOp: Op | undefined;

  constructor(
    private readonly host: PollerHost,
    private readonly spinMs: number,
    readonly timeoutMs: number,
  ) {}

  /** Before a polled reduce sends its partials: whether it will spin (links pollable, not backed off). */
  before(): boolean {
    if (!this.pollable()) return false;
    if (this.offFor > 0) {
      this.offFor--;
      this.stats.skipped++;
      return false;
    }
    return true;
  }

  /** After `op` sent its partials: spins if `spin` (from before()) and the links still allow it. */
  after(op: Op, spin: boolean): void {
    // A partial still queued in libuv would only leave on an event-loop turn: then wait for one.
    if (spin && this.pollable()) this.spinUntilDone(op);
    if (spin) this.count(!this.host.isActive(op));
    if (this.host.isActive(op)) this.waitingOp = op;
  }

  /** True while a polled reduce waits on the event loop: its peers answer within ms, so the monitor holds them to timeoutMs. */
  get waiting(): boolean {
    if (this.waitingOp && !this.host.isActive(this.waitingOp)) this.waitingOp = undefined;
    return this.waitingOp !== undefined;
  }

  /**
   * Spinning pays only while the peers answer within the budget, i.e. every rank has a core to
   * itself. On a crowded machine it burns the core the peer needs (bench/parallel: TP 2 on 2 shared
   * cores got slower), so when most spins of a window run out of budget, stop spinning for a while.
   */
  private count(synchronous: boolean): void {
    if (synchronous) this.stats.synchronous++;
    else {
      this.stats.waited++;
      this.windowWaited++;
    }
    if (++this.window < POLL_WINDOW) return;
    if (this.windowWaited * 2 > POLL_WINDOW) this.offFor = POLL_BACKOFF;
    this.window = this.windowWaited = 0;
  }

  private pollable(): boolean {
    for (const link of this.host.links) if (link && !canPoll(link.socket)) return false;
    return true;
  }

  /** Spins on the links' fds until `op` settles or the budget is spent. */
  private spinUntilDone(op: Op): void {
    const { links, size, rank } = this.host;
    const { fds, lastRx, buf, timeoutMs } = this;
    const t0 = performance.now();
    for (let r = 0; r < size; r++) {
      fds[r] = r === rank ? -1 : (socketFd(links[r]!.socket) ?? -1);
      lastRx[r] = t0;
    }
    spinFor(() => {
      let now = -1;
      for (let r = 0; r < size; r++) {
        const link = links[r];
        if (!link || !this.host.isActive(op)) continue;
        if (link.pollRead(fds[r]!, buf)) {
          lastRx[r] = now = performance.now();
        } else if (link.awaiting) {
          if (now < 0) now = performance.now();
          if (now - lastRx[r]! > timeoutMs) this.host.quietWhileSpinning(r, link, now - lastRx[r]!, timeoutMs);
        }
      }
      return !this.host.isActive(op);
    }, this.spinMs);
  }
}
