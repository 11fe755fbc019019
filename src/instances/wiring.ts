import type { InstanceRecord } from "../cluster/instance-state.js";
import type { ClusterState } from "../cluster/state.js";
import { rankPlaces, type RankPlace, type ShardPlan } from "../placement/shard-plan.js";
import type { PeerAddress } from "../transport/index.js";

/** The shard plan the runners of an instance execute (stages × tensor groups). */
export function shardPlanOf(i: InstanceRecord): ShardPlan {
  return { stages: i.plan.stages.map((s) => ({ layers: s.layers, tp: s.nodes.length })) };
}

/** Data-plane group ids of one placement: a re-placement never meets the runners of the last one. */
export function groupOf(i: InstanceRecord): string {
  return `${i.id}.${i.generation}`;
}

export interface Wiring {
  places: RankPlace[];
  /** By world rank (0 = the driver). */
  world: PeerAddress[];
  live: PeerAddress[];
  /** Per stage with tensor parallelism: its ranks' tensor-group addresses, in tensor-rank order. */
  tp: Map<number, PeerAddress[]>;
}

/**
 * Every rank's addresses, once every runner has loaded and every rank (the driver too) has
 * reported its ports: then the ranks may join. Undefined before. Addresses are the nodes' as the
 * master sees them, with the ports each rank reported.
 */
export function wiring(state: ClusterState, i: InstanceRecord): Wiring | undefined {
  const places = rankPlaces(shardPlanOf(i));
  const world: PeerAddress[] = [];
  const live: PeerAddress[] = [];
  for (const [r, rank] of i.ranks.entries()) {
    const host = state.nodes[rank.node]?.host;
    if (!host || !rank.ports) return undefined;
    // a runner is ready to join once loaded (progress 1); the driver once it listens
    if (r > 0 && !(rank.status === "ready" || (rank.status === "loading" && rank.progress === 1))) return undefined;
    world.push({ host, port: rank.ports.world });
    live.push({ host, port: rank.ports.live });
  }
  const tp = new Map<number, PeerAddress[]>();
  for (const p of places) {
    if (p.tpSize < 2) continue;
    const rank = i.ranks[p.world]!;
    if (rank.ports?.tp === undefined) return undefined;
    const list = tp.get(p.stage) ?? [];
    list.push({ host: world[p.world]!.host, port: rank.ports.tp });
    tp.set(p.stage, list);
  }
  return { places, world, live, tp };
}
