import type { InstanceRecord, InstanceRequest, KeptInstance, RankRecord } from "../cluster/instance-state.js";
import type { ClusterEvent, ClusterState } from "../cluster/state.js";
import { place, type PlacementPlan } from "../placement/index.js";
import { formatBytes } from "../units.js";
import type { ResolvedModel } from "./model-source.js";
import { placementCluster } from "./placement-input.js";

/**
 * The master's decisions about instances, as pure functions of the replicated state and the
 * master's clock: they return the events to order (manager.ts orders them and runs the timers).
 *
 * Lifecycle of an instance (status, and who moves it):
 *   starting ──every rank ready──► ready            (reducer, from the ranks' reports)
 *   starting/ready ──a rank failed──► failed, retryAt 0 (reducer)
 *   starting/ready ──a node left / not ready in time──► failed, retryAt 0 (reconcile)
 *   failed, retryAt 0 ──► retryAt = now + backoff, or null when it gave up (reconcile)
 *   failed/waiting, retryAt ≤ now ──fits──► starting, generation + 1 (reconcile: re-placed)
 *                                 ──no room──► waiting (kept) / failed for good (reconcile)
 * A kept instance never gives up; every other one does after MAX_FAILURES failures in a row.
 */
export interface Policy {
  /** A placement not ready by then has failed. */
  startTimeoutMs: number;
  /** Failures in a row after which an instance that is not kept is left failed. */
  maxFailures: number;
  /** Wait before re-placing after the n-th failure in a row. */
  backoffMs(failures: number): number;
  /** How often a waiting (kept) instance tries again. */
  waitRetryMs: number;
}

export const DEFAULT_POLICY: Policy = {
  startTimeoutMs: 10 * 60_000,
  maxFailures: 4,
  backoffMs: (n) => Math.min(30_000, 1000 * 2 ** Math.max(0, n - 1)),
  waitRetryMs: 5000,
};

export interface CreateRequest extends InstanceRequest {
  keep?: boolean;
}

export interface Placed {
  instance: InstanceRecord;
  plans: PlacementPlan[];
}

/** Every candidate plan for a model on the cluster as the state shows it. */
export function previews(state: ClusterState, summary: ResolvedModel["summary"], request: InstanceRequest, except?: string): PlacementPlan[] {
  return place(summary, placementCluster(state, except), request);
}

function ranksOf(plan: PlacementPlan): RankRecord[] {
  return [plan.home, ...plan.ranks.map((r) => r.node)].map((node) => ({ node, status: "starting", progress: 0 }));
}

/** The record of an instance placed by `plan` (generation `generation`, starting). */
function placedRecord(from: Pick<InstanceRecord, "id" | "model" | "source" | "summary" | "request" | "keep" | "createdAt" | "failures">, plan: PlacementPlan, generation: number, now: number): InstanceRecord {
  const { id, model, source, summary, request, keep, createdAt, failures } = from;
  return {
    id,
    model,
    source,
    summary,
    request,
    keep,
    createdAt,
    failures,
    generation,
    strategy: plan.strategy,
    plan: { stages: plan.stages, ctx: plan.ctx, parallel: plan.parallel, memoryBytes: plan.memoryBytes },
    home: plan.home,
    ranks: ranksOf(plan),
    status: "starting",
    retryAt: null,
    predicted: plan.predicted,
    placedAt: now,
  };
}

/**
 * A new instance: the best feasible plan, or (when none fits) the plans with their reasons and no
 * instance. Throws TesseraError for a request placement cannot read (unknown node, bad ctx, ...).
 */
export function createInstance(state: ClusterState, id: string, resolved: ResolvedModel, request: CreateRequest, now: number): { instance?: InstanceRecord; plans: PlacementPlan[] } {
  const { keep, ...ask } = request;
  const plans = previews(state, resolved.summary, ask);
  const best = plans.find((p) => p.feasible);
  if (!best) return { plans };
  const base = { id, model: resolved.model, source: resolved.source, summary: resolved.summary, request: ask, keep: keep === true, createdAt: now, failures: 0 };
  return { instance: placedRecord(base, best, 1, now), plans };
}

/** Why nothing fits, in one line: the reason of the best plan the request allowed (else the best plan). */
export function noRoom(plans: PlacementPlan[]): string {
  const allowed = plans.filter((p) => p.reason && !/ was requested$| requested$/.test(p.reason));
  const best = allowed[0] ?? plans[0];
  return best?.reason ? `no plan fits (best: ${best.strategy} on ${best.nodes.length} node${best.nodes.length === 1 ? "" : "s"}: ${best.reason})` : "no worker node to place it on";
}

function nodeName(state: ClusterState, id: string): string {
  return state.nodes[id]?.name ?? id;
}

/** The events that move every instance along its lifecycle at time `now`. */
export function reconcile(state: ClusterState, now: number, policy: Policy = DEFAULT_POLICY): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  for (const i of Object.values(state.instances)) {
    const e = step(state, i, now, policy);
    if (e) out.push(e);
  }
  for (const k of Object.values(state.kept)) {
    const e = k.id in state.instances ? undefined : restoreKept(state, k, now, policy);
    if (e) out.push(e);
  }
  for (const i of Object.values(state.instances)) {
    if (i.keep && !(i.id in state.kept)) out.push({ type: "instance-deleted", id: i.id, reason: "no longer in the kept set" });
  }
  return out;
}

function step(state: ClusterState, i: InstanceRecord, now: number, policy: Policy): ClusterEvent | undefined {
  const status = (s: "failed" | "waiting", reason: string, retryAt: number | null): ClusterEvent => ({ type: "instance-status", id: i.id, generation: i.generation, status: s, reason, retryAt });
  if (i.status === "starting" || i.status === "ready") {
    const gone = [...new Set(i.ranks.map((r) => r.node))].filter((n) => !(n in state.nodes));
    if (gone.length) return status("failed", `node ${gone.map((n) => nodeName(state, n)).join(", ")} left the cluster`, 0);
    if (i.status === "starting" && now - i.placedAt > policy.startTimeoutMs) {
      const slow = i.ranks.map((r, k) => (r.status === "ready" ? undefined : `${k === 0 ? "driver" : `rank ${k}`} ${r.status}`)).filter(Boolean);
      return status("failed", `not ready after ${Math.round(policy.startTimeoutMs / 1000)} s (${slow.join(", ")})`, 0);
    }
    return undefined;
  }
  if (i.retryAt === 0) {
    // just failed: retry after a backoff, or give up
    if (!i.keep && i.failures >= policy.maxFailures) return status("failed", `${i.reason} (gave up after ${i.failures} failures in a row)`, null);
    return status(i.status, i.reason ?? "failed", now + policy.backoffMs(i.failures));
  }
  if (i.retryAt === null || i.retryAt > now) return undefined;
  const plans = previews(state, i.summary, i.request, i.id);
  const best = plans.find((p) => p.feasible);
  if (best) return { type: "instance-placed", instance: placedRecord(i, best, i.generation + 1, now) };
  if (i.keep) return status("waiting", `cannot be placed now: ${noRoom(plans)}`, now + policy.waitRetryMs);
  return status("failed", `${i.reason ?? "failed"}; cannot be placed again: ${noRoom(plans)}`, null);
}

/** A deployment with no instance (after a restart of every node): place it, or show it waiting. */
function restoreKept(state: ClusterState, k: KeptInstance, now: number, policy: Policy): ClusterEvent | undefined {
  const plans = previews(state, k.summary, k.request);
  const base = { id: k.id, model: k.model, source: k.source, summary: k.summary, request: k.request, keep: true, createdAt: k.createdAt, failures: 0 };
  const best = plans.find((p) => p.feasible);
  if (best) return { type: "instance-placed", instance: placedRecord(base, best, 1, now) };
  // Nothing fits yet (nodes still joining): show it waiting, with the plan that came closest.
  const closest = plans[0];
  // no worker node at all: nothing to show a plan for; the next pass tries again
  if (!closest) return undefined;
  return {
    type: "instance-placed",
    instance: { ...placedRecord(base, closest, 1, now), status: "waiting", reason: `cannot be placed now: ${noRoom(plans)}`, retryAt: now + policy.waitRetryMs },
  };
}

/** How a memory figure reads in reasons (re-exported for the API's messages). */
export { formatBytes };
