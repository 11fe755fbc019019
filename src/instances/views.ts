import type { InstanceRecord, RankRecord } from "../cluster/instance-state.js";
import type { ClusterState } from "../cluster/state.js";
import type { PlacementPlan } from "../placement/index.js";

/**
 * JSON shapes of the instance endpoints (the API keeps no state: these are views of the
 * replicated state).
 *   InstanceView   GET /instances[/:id], POST /instances (201)
 *     { id, model, strategy, status, reason?, generation, keep, home, ctx,
 *       plan: { stages: [{ layers, nodes }], memoryBytes }, ranks: [{ rank, role, node, name, status, progress, pid?, error? }],
 *       predicted: { decodeTps, ttftMs }, measured?: { decodeTps }, failures, retryAt, createdAt, placedAt, source: { path, digest } }
 *   PlanView       GET /instances/previews: a PlacementPlan with node names beside the ids
 */
export interface RankView extends Omit<RankRecord, "ports"> {
  rank: number;
  role: "driver" | "runner";
  name: string;
}

export interface InstanceView {
  id: string;
  model: string;
  strategy: InstanceRecord["strategy"];
  status: InstanceRecord["status"];
  reason?: string;
  generation: number;
  keep: boolean;
  home: string;
  ctx: number;
  /** Requests it decodes together. */
  parallel: number;
  plan: InstanceRecord["plan"];
  ranks: RankView[];
  predicted: InstanceRecord["predicted"];
  measured?: InstanceRecord["measured"];
  failures: number;
  retryAt: number | null;
  createdAt: number;
  placedAt: number;
  source: InstanceRecord["source"];
}

export function instanceView(state: ClusterState, i: InstanceRecord): InstanceView {
  const name = (id: string): string => state.nodes[id]?.name ?? id;
  const v: InstanceView = {
    id: i.id,
    model: i.model,
    strategy: i.strategy,
    status: i.status,
    generation: i.generation,
    keep: i.keep,
    home: i.home,
    ctx: i.plan.ctx,
    parallel: i.plan.parallel ?? 1,
    plan: i.plan,
    ranks: i.ranks.map(({ ports: _ports, ...r }, k) => ({ rank: k, role: k === 0 ? "driver" : "runner", name: name(r.node), ...r })),
    predicted: i.predicted,
    failures: i.failures,
    retryAt: i.retryAt,
    createdAt: i.createdAt,
    placedAt: i.placedAt,
    source: i.source,
  };
  if (i.reason) v.reason = i.reason;
  if (i.measured) v.measured = i.measured;
  return v;
}

export function instanceViews(state: ClusterState): InstanceView[] {
  return Object.values(state.instances)
    .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
    .map((i) => instanceView(state, i));
}

export type PlanView = PlacementPlan & { nodeNames: string[] };

export function planViews(state: ClusterState, plans: PlacementPlan[]): PlanView[] {
  return plans.map((p) => ({ ...p, nodeNames: p.nodes.map((id) => state.nodes[id]?.name ?? id) }));
}
