import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { TesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import type { ReadCounts } from "../models/source/counting.js";
import type { Device, LoadProgress } from "../engine/types.js";
import { nodeModuleCommand } from "../spawn.js";
import { Group, GroupListener, Liveness, type PeerAddress } from "../transport/index.js";
import { checkPlan, describeRank, describeWorldRank, rankPlaces, splitBlocks, type RankPlace, type ShardPlan } from "../placement/shard-plan.js";
import type { FromRunner, RunnerInit, ToRunner } from "./protocol.js";
import { lmHeadRows } from "./stage.js";

export interface LaunchOptions {
  plan: ShardPlan;
  modelPath: string;
  /**
   * Where a rank finds the model, when not at modelPath: on a cluster each node has its own copy,
   * or only its shard's byte ranges (library/shard.ts). modelPath is still read for the plan check.
   */
  modelPathFor?: (place: RankPlace) => string;
  /** Intra-op threads per runner process (default 1). */
  threads?: number;
  device?: Device;
  contextLength: number;
  /** Sequences whose KV every runner holds (continuous batching; default 1). */
  slots?: number;
  /** Interface for the data plane (default 127.0.0.1). */
  host?: string;
  /**
   * A rank that sends nothing, not even heartbeats from its liveness thread, is lost after this long
   * (default 3 s; a dead process is noticed at once). A rank busy in a long step keeps beating.
   */
  stallTimeoutMs?: number;
  /** Give up when the runners are not all ready by then (default 120 s). */
  startTimeoutMs?: number;
  /**
   * Rewrites the address one rank dials for one link before the runners get it: benchmarks put delay
   * proxies there to emulate slower links. Called for every link of the world group (the driver is
   * world rank 0) and of each tensor group, once per pair, with the dialing (higher) rank as `from`.
   * In-process use only.
   */
  routeLink?: (link: LinkEnds, address: PeerAddress) => Promise<PeerAddress>;
  /** Tensor-parallel all-reduces send 8-bit partial sums (transport/quantize.ts; default off). */
  compressActivations?: boolean;
  /**
   * Filled in by close() with each runner's peak RSS in bytes, in world order (0 where a runner did not
   * say). A SharedArrayBuffer-backed array reaches across the worker threads the options are cloned into.
   */
  peakRssOut?: Float64Array;
  /**
   * Pipelined prefill (driver.ts): a forward of more tokens than this is cut into micro-batches of
   * about this size, sent back to back so every stage computes at once. 0 = never cut. Default:
   * PIPELINE_MICRO_BATCH.
   */
  microBatch?: number;
  /** Tests only: world rank `world` blocks for `ms` before each prefill step (see RunnerInit). */
  testStepDelay?: { world: number; ms: number };
  /** The runners' loading, summed over all of them (in-process only: not cloned to other threads). */
  onProgress?: (p: LoadProgress) => void;
}

interface Runner {
  place: RankPlace;
  child: ChildProcess;
  /** From its "exiting" message. */
  peakRssBytes: number;
  /** Resolves once it has exited and its IPC channel and stderr are drained (its last messages are in). */
  gone: Promise<void>;
  stderrTail: string;
  exited: boolean;
  inbox: FromRunner[];
  waiter: (() => void) | undefined;
}

const STDERR_TAIL = 4000;

/** One data-plane link: world rank `from` dials world rank `to` (from > to) in the world or a stage's tensor group. */
export interface LinkEnds {
  group: "world" | "tp";
  from: number;
  to: number;
}


/**
 * Starts one runner process per rank of a plan on this machine and joins their world group as the
 * driver (world rank 0). The same runner and transport code runs on a cluster; only the launching
 * differs. Children never outlive this process: they exit when their IPC channel closes, and are
 * killed on this process's exit.
 */
export class LocalRunners {
  private readonly onExit = (): void => this.kill();
  private closed = false;

  private constructor(
    readonly places: RankPlace[],
    private readonly runners: Runner[],
    readonly world: Group,
    readonly hiddenSize: number,
    readonly vocabSize: number,
    /** Peak RSS each runner reported after loading. */
    readonly rssBytes: number[],
    /** Bytes each runner read from the model file (its share of the weights), and of those, expert bytes. */
    readonly readCounts: ReadCounts[],
    private readonly live: Liveness,
    private readonly peakRssOut: Float64Array | undefined,
  ) {
    process.on("exit", this.onExit);
  }

  get pids(): number[] {
    return this.runners.map((r) => r.child.pid!);
  }

  static async start(o: LaunchOptions): Promise<LocalRunners> {
    const source = await openModel(o.modelPath);
    let cfg;
    let vocab: number;
    try {
      cfg = source.config;
      checkPlan(cfg, o.plan, splitBlocks(source)); // refuse before any process starts
      vocab = lmHeadRows(source);
    } finally {
      await source.close();
    }
    const host = o.host ?? "127.0.0.1";
    const places = rankPlaces(o.plan);
    const instance = randomBytes(6).toString("hex");
    const stallTimeoutMs = o.stallTimeoutMs ?? 3000;
    const listener = await GroupListener.open(host, 0);
    const live = await Liveness.start({ host, self: 0, count: places.length + 1, groupId: `${instance}/live`, owner: "driver", lostAfterMs: stallTimeoutMs });
    const runners = places.map((place) => spawnRunner(place));
    const killAll = (): void => runners.forEach((r) => r.child.kill("SIGKILL"));
    process.on("exit", killAll);
    const deadline = setTimeout(() => fail(new TesseraError(`runners not ready after ${(o.startTimeoutMs ?? 120_000) / 1000} s`)), o.startTimeoutMs ?? 120_000);
    let fail!: (e: Error) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});
    for (const r of runners) watchRunner(r, fail);
    if (o.onProgress) watchProgress(runners, o.onProgress);
    try {
      const init = (r: Runner): RunnerInit => ({
        type: "init",
        instance,
        world: r.place.world,
        plan: o.plan,
        modelPath: o.modelPathFor?.(r.place) ?? o.modelPath,
        threads: o.threads ?? 1,
        device: o.device ?? "cpu",
        contextLength: o.contextLength,
        slots: o.slots ?? 1,
        host,
        stallTimeoutMs,
        compressActivations: o.compressActivations === true,
        testStepDelay: o.testStepDelay,
      });
      runners.forEach((r) => post(r, init(r)));
      const ports = await Promise.race([Promise.all(runners.map((r) => expect(r, "ports"))), failed]);
      const loaded = await Promise.race([Promise.all(runners.map((r) => expect(r, "loaded"))), failed]);
      const worldPeers: PeerAddress[] = [{ host, port: listener.port }, ...ports.map((p) => ({ host, port: p.world }))];
      const livePeers: PeerAddress[] = [{ host, port: live.port }, ...ports.map((p) => ({ host, port: p.live }))];
      live.watch(livePeers, (id) => describeWorldRank(id, places));
      for (const r of runners) {
        const stage = places.filter((p) => p.stage === r.place.stage);
        const tpDirect = stage.map((p) => ({ host, port: ports[p.world - 1]!.tp! }));
        const world = await routed(o.routeLink, "world", worldPeers, r.place.world, (i) => i);
        const tp = o.plan.stages[r.place.stage]!.tp === 1 ? undefined : await routed(o.routeLink, "tp", tpDirect, r.place.tpRank, (i) => stage[i]!.world);
        post(r, { type: "peers", world, tp, live: livePeers });
      }
      const joining = Group.join({
        rank: 0,
        size: places.length + 1,
        peers: worldPeers,
        groupId: `${instance}/world`,
        listener,
        stepTimeoutMs: stallTimeoutMs,
        liveness: (r) => live.silentMs(r),
        timeoutMs: 60_000,
      });
      joining.catch(() => {});
      await Promise.race([Promise.all(runners.map((r) => expect(r, "joined"))), failed]);
      const world = await Promise.race([joining, failed]);
      // the liveness thread may notice a stopped rank before the group's own monitor does
      live.onLost((e) => world.abort(e));
      const lr = new LocalRunners(places, runners, world, cfg.hiddenSize, vocab, loaded.map((l) => l.rssBytes), loaded.map((l) => l.read), live, o.peakRssOut);
      process.off("exit", killAll);
      return lr;
    } catch (e) {
      killAll();
      listener.close();
      live.close();
      throw e;
    } finally {
      clearTimeout(deadline);
      process.off("exit", killAll);
    }
  }

  /** Waits up to `ms` for every runner to exit (after a CLOSE step), then kills the rest. */
  async close(ms = 5000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.race([
      Promise.all(this.runners.map((r) => r.gone)),
      new Promise((res) => setTimeout(res, ms).unref()),
    ]);
    this.world.close();
    this.live.close();
    this.kill();
    this.runners.forEach((r, i) => {
      if (this.peakRssOut && i < this.peakRssOut.length) this.peakRssOut[i] = r.peakRssBytes;
    });
    process.off("exit", this.onExit);
  }

  /** SIGKILLs every runner still alive. */
  kill(): void {
    for (const r of this.runners) if (!r.exited && r.child.exitCode === null) r.child.kill("SIGKILL");
  }

  stderrOf(world: number): string {
    return this.runners[world - 1]?.stderrTail ?? "";
  }
}

/** A group's address list as the rank at index `self` sees it: the ranks it dials (below it) go through `route`. */
async function routed(
  route: LaunchOptions["routeLink"],
  group: LinkEnds["group"],
  peers: PeerAddress[],
  self: number,
  worldOf: (index: number) => number,
): Promise<PeerAddress[]> {
  if (!route) return peers;
  const from = worldOf(self);
  return Promise.all(peers.map((a, i) => (i < self ? route({ group, from, to: worldOf(i) }, a) : a)));
}

/**
 * A runner process (runner-main.ts) with its IPC channel and stderr piped; it exits when this
 * process goes away. Used by the launcher here and by a cluster node's supervisor.
 */
export function spawnRunnerProcess(): ChildProcess {
  const { command, args } = nodeModuleCommand("./runner-main", import.meta.url);
  // glibc otherwise keeps the freed load-time weight copies: 4 MiB measured 1.62 → 1.30 GB steady RSS
  // on the 1b model at unchanged speed (131072 returned a little more but decoded 2.7× slower).
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? "4194304" };
  return spawn(command, args, { stdio: ["ignore", "ignore", "pipe", "ipc"], env });
}

function spawnRunner(place: RankPlace): Runner {
  const child = spawnRunnerProcess();
  // 'close' can come before the last IPC messages (the runner's "exiting" with its peak RSS) are
  // read: gone also waits for the channel to be done.
  const closed = new Promise<void>((res) => child.once("close", () => res()));
  const disconnected = new Promise<void>((res) => child.once("disconnect", () => res()));
  const gone = closed.then(() => (child.connected ? disconnected : undefined));
  const r: Runner = { place, child, peakRssBytes: 0, gone, stderrTail: "", exited: false, inbox: [], waiter: undefined };
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (r.stderrTail = (r.stderrTail + d).slice(-STDERR_TAIL)));
  child.on("message", (m: FromRunner) => {
    if (m.type === "exiting") return void (r.peakRssBytes = m.peakRssBytes);
    if (m.type === "progress") return;
    r.inbox.push(m);
    r.waiter?.();
  });
  return r;
}

function watchRunner(r: Runner, fail: (e: Error) => void): void {
  r.child.on("message", (m: FromRunner) => {
    if (m.type === "failed") {
      const e = m.user ? new TesseraError(m.message, describeRank(r.place)) : new Error(`${describeRank(r.place)}: ${m.message}`);
      fail(e);
    }
  });
  r.child.on("error", (e) => fail(new TesseraError(`could not start: ${e.message}`, describeRank(r.place))));
  r.child.on("exit", (code, signal) => {
    r.exited = true;
    // give a "failed" message that is still in flight the first word
    setTimeout(() => {
      const tail = r.stderrTail.trim().split("\n").slice(-3).join("\n");
      fail(new TesseraError(`exited while starting (${signal ?? `code ${code}`})${tail ? `:\n${tail}` : ""}`, describeRank(r.place)));
    }, 20);
  });
}

/** Sums the runners' load progress: bytes done of all their totals, "session" once every runner is there. */
function watchProgress(runners: Runner[], onProgress: (p: LoadProgress) => void): void {
  const latest: (LoadProgress | undefined)[] = runners.map(() => undefined);
  runners.forEach((r, i) => {
    r.child.on("message", (m: FromRunner) => {
      if (m.type !== "progress") return;
      latest[i] = { done: m.done, total: m.total, phase: m.phase };
      if (latest.some((p) => !p)) return;
      const all = latest as LoadProgress[];
      onProgress({
        done: all.reduce((s, p) => s + p.done, 0),
        total: all.reduce((s, p) => s + p.total, 0),
        phase: all.every((p) => p.phase === "session") ? "session" : "weights",
      });
    });
  });
}

function post(r: Runner, m: ToRunner): void {
  if (r.child.connected) r.child.send(m);
}

async function expect<T extends FromRunner["type"]>(r: Runner, type: T): Promise<Extract<FromRunner, { type: T }>> {
  for (;;) {
    const i = r.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return r.inbox.splice(i, 1)[0] as Extract<FromRunner, { type: T }>;
    await new Promise<void>((res) => (r.waiter = res));
  }
}
