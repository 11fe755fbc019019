import type { MessagePort } from "node:worker_threads";
import { TesseraError } from "../errors.js";
import { describeWorldRank, rankPlaces, type RankPlace, type ShardPlan } from "../placement/shard-plan.js";
import { Group, GroupListener, Liveness } from "../transport/index.js";
import type { FromDriverControl, ToDriverControl } from "./bridge-protocol.js";
import type { RunnerSet } from "./driver.js";

/** What a driver needs to join runners that the nodes of a cluster started (instances/supervisor.ts). */
export interface RemoteOptions {
  /** Group ids derive from it: `${group}/world`, `${group}/live`, `${group}/stage<s>` (runner-main.ts). */
  group: string;
  plan: ShardPlan;
  contextLength: number;
  /** Sequences whose KV every runner holds (the instance's plan says; default 1). */
  slots?: number;
  /** Interface to listen on. */
  host: string;
  /** The instance's data-plane key, 64 hex digits. */
  key: string;
  /** lm_head rows (the logits the last stage returns). */
  vocabSize: number;
  stallTimeoutMs?: number;
  microBatch?: number;
}

/**
 * The driver's side of an instance whose runners were started by the cluster's nodes: it listens,
 * tells its node where (control port), waits for every rank's address, and joins the world group
 * as rank 0. It starts no process and kills none: each node's supervisor owns its runners.
 */
export class RemoteRunners implements RunnerSet {
  readonly pids: number[] = [];
  readonly rssBytes: number[];
  private closed = false;

  private constructor(
    readonly places: RankPlace[],
    readonly world: Group,
    readonly vocabSize: number,
    private readonly live: Liveness,
  ) {
    this.rssBytes = places.map(() => 0);
  }

  static async join(o: RemoteOptions, control: MessagePort): Promise<RemoteRunners> {
    const places = rankPlaces(o.plan);
    const stallTimeoutMs = o.stallTimeoutMs ?? 3000;
    const listener = await GroupListener.open(o.host, 0);
    let live: Liveness | undefined;
    try {
      live = await Liveness.start({ host: o.host, self: 0, count: places.length + 1, groupId: `${o.group}/live`, owner: "driver", lostAfterMs: stallTimeoutMs, key: o.key });
      const told: FromDriverControl = { type: "ports", world: listener.port, live: live.port };
      control.postMessage(told);
      const peers = await new Promise<Extract<ToDriverControl, { type: "peers" }>>((resolve, reject) => {
        control.on("message", (m: ToDriverControl) => {
          if (m.type === "peers") resolve(m);
          else reject(new TesseraError(`stopped while joining: ${m.reason}`, "driver"));
        });
      });
      const heartbeats = live;
      heartbeats.watch(peers.live, (id) => describeWorldRank(id, places));
      const world = await Group.join({
        rank: 0,
        size: places.length + 1,
        peers: peers.world,
        groupId: `${o.group}/world`,
        key: o.key,
        listener,
        stepTimeoutMs: stallTimeoutMs,
        liveness: (r) => heartbeats.silentMs(r),
        timeoutMs: 60_000,
      });
      heartbeats.onLost((e) => world.abort(e));
      world.onFailure((e) => {
        const failed: FromDriverControl = { type: "failed", message: e.message };
        control.postMessage(failed);
      });
      return new RemoteRunners(places, world, o.vocabSize, heartbeats);
    } catch (e) {
      listener.close();
      live?.close();
      throw e;
    }
  }

  /** Leaves the groups (after the driver's CLOSE step, which the runners answer by exiting). */
  async close(ms = 1000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // let the CLOSE step reach the runners before the links go
    await new Promise((r) => setTimeout(r, Math.min(ms, 200)).unref());
    this.world.close();
    this.live.close();
  }

  kill(): void {
    this.world.close();
    this.live.close();
  }

  stderrOf(): string {
    return "";
  }
}
