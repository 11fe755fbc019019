import type { PlacementModel, PlanStage, Prediction, Strategy } from "../placement/index.js";
import { STRATEGIES } from "../placement/index.js";

/**
 * Instances in the replicated state: a model placed on nodes, which node runs which rank, and how
 * far each rank got. The master orders every change but one: the node that runs a rank reports its
 * status (rank-status), and only for its own ranks of the instance's current placement.
 *
 * Layout (ClusterState.instances[id], also what GET /instances returns):
 *   id, model          the instance and the model as the user named it
 *   source             { path, digest }: the file every node loads and the digest of its header
 *   summary            the model's placement view (placement/model.ts), kept for re-placement
 *   request            what the user asked for: strategy, nodes, minNodes, ctx
 *   keep               a deployment: re-placed whenever it is not running
 *   generation         1 for the first placement, +1 for each re-placement (names the data-plane groups)
 *   strategy, plan     the chosen plan: stages (layers, node per tensor rank), ctx, memory per node
 *   home               the node whose inference worker runs the driver (world rank 0)
 *   ranks[r]           r = world rank; 0 is the driver: { node, status, progress, ports?, pid?, error? }
 *   status             starting | ready | failed | waiting (kept, waiting for room)
 *   reason             why it failed or waits
 *   failures           failed placements in a row (reset when it becomes ready)
 *   retryAt            master's clock, ms: when the master tries to place it again; 0 = failed, not
 *                      decided yet; null = never (given up, or not failed)
 *   createdAt, placedAt  master's clock, ms
 *   predicted/measured decode tok/s (and predicted TTFT)
 *
 * ClusterState.kept[id] is the set of deployments, with keptVersion counting its changes; every
 * node mirrors it to its data dir, so after a restart of every node it comes back (kept-restored).
 */
export type InstanceStatus = "starting" | "ready" | "failed" | "waiting";
export type RankStatus = "starting" | "loading" | "ready" | "failed";

export interface RankPorts {
  world: number;
  tp?: number;
  live: number;
}

export interface RankRecord {
  node: string;
  status: RankStatus;
  /** 0..1 while loading. */
  progress: number;
  ports?: RankPorts;
  pid?: number;
  error?: string;
}

export interface InstanceRequest {
  strategy?: Strategy;
  nodes?: string[];
  minNodes?: number;
  ctx?: number;
  /** Sequences decoded together (KV slots on every rank). */
  parallel?: number;
}

export interface ModelRef {
  /** Path of the model on every node. */
  path: string;
  /** sha256 of the file's header and tensor table (models/registry/describe.ts: the registry's digest). */
  digest: string;
}

export interface InstancePlan {
  stages: PlanStage[];
  ctx: number;
  /** KV slots every rank holds (absent: 1). */
  parallel?: number;
  memoryBytes: Record<string, number>;
}

export interface InstanceRecord {
  id: string;
  model: string;
  source: ModelRef;
  summary: PlacementModel;
  request: InstanceRequest;
  keep: boolean;
  generation: number;
  strategy: Strategy;
  plan: InstancePlan;
  home: string;
  ranks: RankRecord[];
  status: InstanceStatus;
  reason?: string;
  failures: number;
  retryAt: number | null;
  predicted: Prediction;
  measured?: { decodeTps: number };
  createdAt: number;
  placedAt: number;
}

/** A deployment: enough to place it again from nothing. */
export interface KeptInstance {
  id: string;
  model: string;
  source: ModelRef;
  summary: PlacementModel;
  request: InstanceRequest;
  createdAt: number;
}

export type InstanceEvent =
  | { type: "instance-placed"; instance: InstanceRecord }
  | {
      type: "rank-status";
      id: string;
      generation: number;
      rank: number;
      status: RankStatus;
      progress: number;
      ports?: RankPorts;
      pid?: number;
      error?: string;
      measured?: { decodeTps: number };
    }
  | { type: "instance-status"; id: string; generation: number; status: "failed" | "waiting"; reason: string; retryAt: number | null }
  | { type: "instance-deleted"; id: string; reason: string }
  | { type: "kept-restored"; version: number; kept: KeptInstance[] };

export interface InstanceState {
  instances: Record<string, InstanceRecord>;
  kept: Record<string, KeptInstance>;
  keptVersion: number;
}

export function keptOf(i: InstanceRecord): KeptInstance {
  return { id: i.id, model: i.model, source: i.source, summary: i.summary, request: i.request, createdAt: i.createdAt };
}

/** The reducer's part for instance events: returns the changed parts of the state. `nameOf` names a node in reasons. */
export function applyInstanceEvent(s: InstanceState, e: InstanceEvent, nameOf: (node: string) => string = (n) => n): InstanceState {
  switch (e.type) {
    case "instance-placed": {
      const i = e.instance;
      const isNew = i.keep && !(i.id in s.kept);
      return {
        instances: { ...s.instances, [i.id]: i },
        kept: isNew ? { ...s.kept, [i.id]: keptOf(i) } : s.kept,
        keptVersion: s.keptVersion + (isNew ? 1 : 0),
      };
    }
    case "rank-status": {
      const i = s.instances[e.id];
      const r = i?.ranks[e.rank];
      // a report about an older placement (or a torn-down one) changes nothing
      if (!i || !r || i.generation !== e.generation || i.status === "failed" || i.status === "waiting") return s;
      const rank: RankRecord = { node: r.node, status: e.status, progress: e.progress };
      const ports = e.ports ?? r.ports;
      const pid = e.pid ?? r.pid;
      if (ports) rank.ports = ports;
      if (pid !== undefined) rank.pid = pid;
      if (e.error) rank.error = e.error;
      const ranks = i.ranks.map((x, k) => (k === e.rank ? rank : x));
      const next: InstanceRecord = { ...i, ranks };
      if (e.measured) next.measured = e.measured;
      if (e.status === "failed") {
        next.status = "failed";
        next.reason = `${e.rank === 0 ? "driver" : `rank ${e.rank}`} on node ${nameOf(r.node)}: ${e.error ?? "failed"}`;
        next.failures = i.failures + 1;
        next.retryAt = 0;
      } else if (ranks.every((x) => x.status === "ready")) {
        next.status = "ready";
        next.failures = 0;
        delete next.reason;
      }
      return { ...s, instances: { ...s.instances, [e.id]: next } };
    }
    case "instance-status": {
      const i = s.instances[e.id];
      if (!i || i.generation !== e.generation) return s;
      // a placement that was running (or starting) and stops is one more failure; re-deciding is not
      const failures = i.status === "starting" || i.status === "ready" ? i.failures + 1 : i.failures;
      return { ...s, instances: { ...s.instances, [e.id]: { ...i, status: e.status, reason: e.reason, retryAt: e.retryAt, failures } } };
    }
    case "instance-deleted": {
      if (!(e.id in s.instances) && !(e.id in s.kept)) return s;
      const instances = { ...s.instances };
      delete instances[e.id];
      if (!(e.id in s.kept)) return { ...s, instances };
      const kept = { ...s.kept };
      delete kept[e.id];
      return { instances, kept, keptVersion: s.keptVersion + 1 };
    }
    case "kept-restored": {
      if (e.version <= s.keptVersion) return s;
      return { ...s, kept: Object.fromEntries(e.kept.map((k) => [k.id, k])), keptVersion: e.version };
    }
  }
}

/** Bytes each node holds for instances that are placed (starting or ready): their plans' memory. */
export function reservedBytes(instances: Record<string, InstanceRecord>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of Object.values(instances)) {
    if (i.status !== "starting" && i.status !== "ready") continue;
    for (const [node, bytes] of Object.entries(i.plan.memoryBytes)) out[node] = (out[node] ?? 0) + bytes;
  }
  return out;
}

/** A node may report only about its own ranks of an instance's current placement; anyone may restore a newer kept set. */
export function mayProposeInstance(sender: string, e: InstanceEvent, s: InstanceState): boolean {
  if (e.type === "rank-status") {
    const i = s.instances[e.id];
    return !!i && i.generation === e.generation && i.ranks[e.rank]?.node === sender;
  }
  if (e.type === "kept-restored") return e.version > s.keptVersion;
  return false;
}

// ---- guards: what a peer sends is checked before it is used ----

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isStr = (x: unknown, max = 256): x is string => typeof x === "string" && x.length <= max;
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const isNonNeg = (x: unknown): x is number => isNum(x) && x >= 0;
const isInt = (x: unknown, min = 0): x is number => Number.isInteger(x) && (x as number) >= min;
const isPort = (x: unknown): boolean => isInt(x) && (x as number) <= 65535;
const isNodeId = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{16}$/.test(x);
export const isInstanceId = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{12}$/.test(x);
const isRange = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && isInt(x[0]) && isInt(x[1]) && x[0] < x[1];
const RANK_STATUSES = ["starting", "loading", "ready", "failed"];
const INSTANCE_STATUSES = ["starting", "ready", "failed", "waiting"];
const MAX_RANKS = 64;

function isPorts(x: unknown): boolean {
  return isObj(x) && isPort(x.world) && (x.tp === undefined || isPort(x.tp)) && isPort(x.live);
}

function isWeightGroup(x: unknown): boolean {
  return isObj(x) && isNonNeg(x.weights) && isNonNeg(x.heldBytes) && isNonNeg(x.stream);
}

export function isPlacementModel(x: unknown): x is PlacementModel {
  if (!isObj(x) || !isObj(x.layer) || !isObj(x.blocks)) return false;
  const shape = ["layers", "hiddenSize", "numHeads", "numKvHeads", "headDim", "intermediateSize", "vocabSize"].every((k) => isInt(x[k], 1));
  return (
    isStr(x.name, 1024) &&
    shape &&
    isInt(x.contextLength) &&
    isInt(x.blocks.attnOutput, 1) &&
    isInt(x.blocks.ffnDown, 1) &&
    isWeightGroup(x.layer.qo) &&
    isWeightGroup(x.layer.kv) &&
    isWeightGroup(x.layer.mlp) &&
    isNonNeg(x.layer.otherBytes) &&
    isNonNeg(x.embeddingBytes) &&
    isWeightGroup(x.head)
  );
}

export function isInstanceRequest(x: unknown): x is InstanceRequest {
  return (
    isObj(x) &&
    (x.strategy === undefined || STRATEGIES.includes(x.strategy as Strategy)) &&
    (x.nodes === undefined || (Array.isArray(x.nodes) && x.nodes.length <= MAX_RANKS && x.nodes.every(isNodeId))) &&
    (x.minNodes === undefined || isInt(x.minNodes, 1)) &&
    (x.ctx === undefined || isInt(x.ctx, 1))
  );
}

export function isModelRef(x: unknown): x is ModelRef {
  return isObj(x) && isStr(x.path, 4096) && isStr(x.digest, 128);
}

function isRank(x: unknown): x is RankRecord {
  return (
    isObj(x) &&
    isNodeId(x.node) &&
    RANK_STATUSES.includes(x.status as string) &&
    isNum(x.progress) &&
    x.progress >= 0 &&
    x.progress <= 1 &&
    (x.ports === undefined || isPorts(x.ports)) &&
    (x.pid === undefined || isInt(x.pid)) &&
    (x.error === undefined || isStr(x.error, 2048))
  );
}

function isPlan(x: unknown): x is InstancePlan {
  if (!isObj(x) || !Array.isArray(x.stages) || x.stages.length < 1 || x.stages.length > MAX_RANKS || !isInt(x.ctx, 1) || !isObj(x.memoryBytes)) return false;
  const stagesOk = x.stages.every((s) => isObj(s) && isRange(s.layers) && Array.isArray(s.nodes) && s.nodes.length >= 1 && s.nodes.length <= MAX_RANKS && s.nodes.every(isNodeId));
  return stagesOk && Object.entries(x.memoryBytes).every(([k, v]) => isNodeId(k) && isNonNeg(v));
}

function isPrediction(x: unknown): x is Prediction {
  return isObj(x) && isNonNeg(x.decodeTps) && isNonNeg(x.ttftMs);
}

export function isInstanceRecord(x: unknown): x is InstanceRecord {
  return (
    isObj(x) &&
    isInstanceId(x.id) &&
    isStr(x.model, 4096) &&
    isModelRef(x.source) &&
    isPlacementModel(x.summary) &&
    isInstanceRequest(x.request) &&
    typeof x.keep === "boolean" &&
    isInt(x.generation, 1) &&
    STRATEGIES.includes(x.strategy as Strategy) &&
    isPlan(x.plan) &&
    isNodeId(x.home) &&
    Array.isArray(x.ranks) &&
    x.ranks.length >= 2 &&
    x.ranks.length <= MAX_RANKS + 1 &&
    x.ranks.every(isRank) &&
    INSTANCE_STATUSES.includes(x.status as string) &&
    (x.reason === undefined || isStr(x.reason, 4096)) &&
    isInt(x.failures) &&
    (x.retryAt === null || isNonNeg(x.retryAt)) &&
    isPrediction(x.predicted) &&
    (x.measured === undefined || (isObj(x.measured) && isNonNeg(x.measured.decodeTps))) &&
    isNonNeg(x.createdAt) &&
    isNonNeg(x.placedAt)
  );
}

export function isKeptInstance(x: unknown): x is KeptInstance {
  return isObj(x) && isInstanceId(x.id) && isStr(x.model, 4096) && isModelRef(x.source) && isPlacementModel(x.summary) && isInstanceRequest(x.request) && isNonNeg(x.createdAt);
}

export function isInstanceEvent(x: Record<string, unknown>): boolean {
  switch (x.type) {
    case "instance-placed":
      return isInstanceRecord(x.instance);
    case "rank-status":
      return (
        isInstanceId(x.id) &&
        isInt(x.generation, 1) &&
        isInt(x.rank) &&
        (x.rank as number) <= MAX_RANKS &&
        RANK_STATUSES.includes(x.status as string) &&
        isNum(x.progress) &&
        x.progress >= 0 &&
        x.progress <= 1 &&
        (x.ports === undefined || isPorts(x.ports)) &&
        (x.pid === undefined || isInt(x.pid)) &&
        (x.error === undefined || isStr(x.error, 2048)) &&
        (x.measured === undefined || (isObj(x.measured) && isNonNeg(x.measured.decodeTps)))
      );
    case "instance-status":
      return isInstanceId(x.id) && isInt(x.generation, 1) && (x.status === "failed" || x.status === "waiting") && isStr(x.reason, 4096) && (x.retryAt === null || isNonNeg(x.retryAt));
    case "instance-deleted":
      return isInstanceId(x.id) && isStr(x.reason);
    case "kept-restored":
      return isInt(x.version, 1) && Array.isArray(x.kept) && x.kept.length <= 64 && x.kept.every(isKeptInstance);
    default:
      return false;
  }
}

export function isInstanceState(x: Record<string, unknown>): boolean {
  if (!isObj(x.instances) || !isObj(x.kept) || !isInt(x.keptVersion)) return false;
  for (const [k, i] of Object.entries(x.instances)) if (!isInstanceRecord(i) || i.id !== k) return false;
  for (const [k, i] of Object.entries(x.kept)) if (!isKeptInstance(i) || i.id !== k) return false;
  return true;
}
