import type { ChildProcess } from "node:child_process";
import type { InstanceRecord } from "../cluster/instance-state.js";
import type { ClusterNode } from "../cluster/node.js";
import type { ClusterState } from "../cluster/state.js";
import type { Device } from "../engine/types.js";
import { spawnRunnerProcess } from "../runner/launcher.js";
import type { FromRunner, RunnerInit, ToRunner } from "../runner/protocol.js";
import type { RankPorts } from "../cluster/instance-state.js";
import type { ModelFiles } from "./model-source.js";
import type { RankReporter } from "./reporter.js";
import { rankPlaces } from "../placement/shard-plan.js";
import { groupOf, shardPlanOf, wiring } from "./wiring.js";

/** Characters of a runner's stderr kept for its failure message. */
const STDERR_TAIL = 2000;
const KILL_GRACE_MS = 2000;
/** A peer silent on both its data link and its liveness thread this long is lost (runner-main's default). */
export const STALL_TIMEOUT_MS = 3000;

interface Runner {
  id: string;
  generation: number;
  rank: number;
  child: ChildProcess;
  ports?: RankPorts;
  progress: number;
  peersSent: boolean;
  /** Torn down on purpose: its exit is no failure. */
  stopping: boolean;
  failed: boolean;
  stderr: string;
}

/**
 * The runners of one node: for every placed instance, the ranks the plan gives this node. It starts
 * their processes, reports their progress and ports through the control plane, hands them every
 * rank's address once all have loaded, and ends them when their placement ends (deleted, failed,
 * re-placed). A runner that exits or fails is reported failed, which fails its instance everywhere.
 */
export class Supervisor {
  private readonly runners = new Map<string, Runner>();

  constructor(
    private readonly node: ClusterNode,
    private readonly reporter: RankReporter,
    private readonly files: ModelFiles,
    private readonly log: (m: string) => void,
  ) {}

  /** Process ids of this node's runners (for tests and status). */
  get pids(): number[] {
    return [...this.runners.values()].map((r) => r.child.pid!).filter(Boolean);
  }

  sync(state: ClusterState): void {
    const want = new Set<string>();
    for (const i of Object.values(state.instances)) {
      if (i.status !== "starting" && i.status !== "ready") continue;
      for (let r = 1; r < i.ranks.length; r++) {
        const rank = i.ranks[r]!;
        if (rank.node !== this.node.id) continue;
        const key = `${i.id}/${i.generation}/${r}`;
        want.add(key);
        const running = this.runners.get(key);
        if (!running) {
          // A rank past "starting" with no process here: this node restarted within the placement.
          if (rank.status === "starting") this.spawn(key, i, r);
          else if (rank.status !== "failed") this.reporter.report({ id: i.id, generation: i.generation, rank: r, status: "failed", progress: 0, error: "its runner is gone (the node restarted)" });
        } else if (!running.peersSent && running.ports && running.progress === 1) {
          this.sendPeers(state, i, running);
        }
      }
    }
    for (const [key, r] of this.runners) if (!want.has(key)) this.stop(key, r);
  }

  /** Ends every runner (node shutdown). */
  async stopAll(): Promise<void> {
    const gone = [...this.runners.entries()].map(([key, r]) => {
      const exited = new Promise<void>((res) => (r.child.exitCode !== null || r.child.signalCode !== null ? res() : r.child.once("exit", () => res())));
      this.stop(key, r);
      return exited;
    });
    await Promise.all(gone);
  }

  private spawn(key: string, i: InstanceRecord, rank: number): void {
    const child = spawnRunnerProcess();
    const r: Runner = { id: i.id, generation: i.generation, rank, child, progress: 0, peersSent: false, stopping: false, failed: false, stderr: "" };
    this.runners.set(key, r);
    const report = (status: "loading" | "ready" | "failed", progress: number, error?: string): void => {
      if (r.stopping) return;
      this.reporter.report({ id: r.id, generation: r.generation, rank, status, progress, ports: r.ports, pid: child.pid, error });
    };
    const fail = (error: string): void => {
      if (r.failed || r.stopping) return;
      r.failed = true;
      this.log(`instance ${r.id}: rank ${rank} failed: ${error}`);
      report("failed", r.progress, error);
    };
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (r.stderr = (r.stderr + d).slice(-STDERR_TAIL)));
    child.on("message", (m: FromRunner) => {
      switch (m.type) {
        case "ports":
          r.ports = { world: m.world, tp: m.tp, live: m.live };
          return report("loading", 0);
        case "progress":
          r.progress = Math.min(0.99, m.total > 0 ? m.done / m.total : 0);
          return report("loading", r.progress);
        case "loaded":
          r.progress = 1;
          report("loading", 1);
          // every other rank may have loaded already
          return this.sync(this.node.replica.state);
        case "joined":
          return report("ready", 1);
        case "failed":
          return fail(m.message);
        default:
          return;
      }
    });
    child.on("error", (e) => fail(`could not start: ${e.message}`));
    child.on("exit", (code, signal) => {
      const tail = r.stderr.trim().split("\n").slice(-2).join(" | ");
      // give a "failed" message still in flight the first word
      setTimeout(() => fail(`runner exited (${signal ?? `code ${code}`})${tail ? `: ${tail}` : ""}`), 20);
    });
    const place = rankPlaces(shardPlanOf(i))[rank - 1]!;
    const part = { layers: place.layers, ...(place.tpSize > 1 ? { tp: { rank: place.tpRank, size: place.tpSize } } : {}) };
    // This node's copy of the model, or the bytes of this rank's part fetched from a holder first.
    this.files.rankPath(i.source, part).then(
      (modelPath) => {
        if (r.stopping || r.failed) return;
        post(child, this.init(i, rank, modelPath));
        this.log(`instance ${i.id}: starting rank ${rank} (pid ${child.pid})`);
      },
      (e: Error) => fail(`the model's bytes for this rank: ${e.message}`),
    );
  }

  private init(i: InstanceRecord, rank: number, modelPath: string): RunnerInit {
    return {
      type: "init",
      instance: groupOf(i),
      world: rank,
      plan: shardPlanOf(i),
      modelPath,
      threads: this.node.threads,
      device: runnerDevice(this.node.device),
      contextLength: i.plan.ctx,
      slots: i.plan.parallel ?? 1,
      host: this.node.bindHost,
      stallTimeoutMs: STALL_TIMEOUT_MS,
      compressActivations: false,
      key: this.node.dataPlaneKey(i.id),
      digest: i.source.digest,
    };
  }

  private sendPeers(state: ClusterState, i: InstanceRecord, r: Runner): void {
    const w = wiring(state, i);
    if (!w) return;
    const me = w.places[r.rank - 1]!;
    r.peersSent = true;
    post(r.child, { type: "peers", world: w.world, tp: w.tp.get(me.stage), live: w.live });
  }

  private stop(key: string, r: Runner): void {
    this.runners.delete(key);
    r.stopping = true;
    if (r.child.exitCode !== null || r.child.signalCode !== null) return;
    r.child.kill("SIGTERM");
    setTimeout(() => {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    }, KILL_GRACE_MS).unref();
  }
}

function post(child: ChildProcess, m: ToRunner): void {
  if (child.connected) child.send(m);
}

/** What `--device` means for a runner: "auto" runs on the CPU until an accelerator path is chosen here. */
function runnerDevice(d: string): Device {
  return d === "webgpu" || d === "cuda" ? d : "cpu";
}
