/**
 * The replicated cluster state and the one pure reducer every node applies to the master's log.
 * Only control-plane events exist here; tokens and bulk data never go through the log
 * (isControlEvent refuses anything else, and anything larger than MAX_EVENT_BYTES).
 *
 * Layout of ClusterState (also what GET /cluster returns under "state"):
 *   index   last applied log index (0 = nothing applied)
 *   term    the master's term the log belongs to
 *   master  node id of the master that ordered the log, or null
 *   nodes   node id → NodeRecord (with its latest profile, if reported)
 *   links   "<from>><to>" → LinkMeasurement (directed: from measured its link to `to`)
 *   instances, kept, keptVersion   see instance-state.ts
 *   models, downloads   which node holds which model, and downloads (see model-events.ts)
 */
import {
  applyInstanceEvent,
  isInstanceEvent,
  isInstanceState,
  mayProposeInstance,
  type InstanceEvent,
  type InstanceState,
} from "./instance-state.js";
import { applyModelEvent, dropNode, isModelEvent, isModelEventType, isModelNoop, isModelsBlock, modelEventSender, type ModelEvent, type ModelsBlock } from "./model-events.js";

export interface NodeProfile {
  memory: { totalBytes: number; availableBytes: number };
  cpu: { model: string; cores: number };
  /** Usable ONNX Runtime execution providers, "cpu" first. */
  providers: string[];
  /** The device runners use (--device), or "auto". */
  device: string;
  threads: number;
  /** False for a coordinator-only node (--no-worker). */
  worker: boolean;
  /** Measured float32 MatMul throughput on this machine (GFLOP/s), null until measured. */
  matmulGflops: number | null;
  /**
   * Measured decode speed: bytes of 4-bit packed weights a batch-1 MatMulNBits chain streams per
   * second (decode is bound by this; placement's cost model reads it). Null until measured.
   */
  decodeBytesPerSec: number | null;
  platform: string;
  arch: string;
}

export interface NodeRecord {
  id: string;
  name: string;
  /** Address peers reach the node at, as the master sees it. */
  host: string;
  httpPort: number;
  peerPort: number;
  /** Wall-clock ms of the node's start: seniority for the election. */
  startedAt: number;
  version: string;
  profile?: NodeProfile;
}

export interface LinkMeasurement {
  from: string;
  to: string;
  /** Median round trip of small frames, ms. */
  rttMs: number;
  /** Bulk transfer rate from → to, bytes per second. */
  bandwidthBytesPerSec: number;
  /** Wall-clock ms of the measurement (the measuring node's clock). */
  measuredAt: number;
}

export type ClusterEvent =
  | { type: "master-elected"; master: string; term: number }
  | { type: "node-joined"; node: NodeRecord }
  | { type: "node-left"; id: string; reason: string }
  | { type: "node-profile"; id: string; profile: NodeProfile }
  | { type: "link-measured"; link: LinkMeasurement }
  | InstanceEvent
  | ModelEvent;

/** One ordered log entry, assigned by the master. `at` is the master's wall clock (ms). */
export interface LogEntry {
  index: number;
  term: number;
  at: number;
  event: ClusterEvent;
}

export interface ClusterState extends InstanceState, ModelsBlock {
  index: number;
  term: number;
  master: string | null;
  nodes: Record<string, NodeRecord>;
  links: Record<string, LinkMeasurement>;
}

export const MAX_EVENT_BYTES = 16 * 1024;

export function emptyState(): ClusterState {
  return { index: 0, term: 0, master: null, nodes: {}, links: {}, instances: {}, kept: {}, keptVersion: 0, models: {}, downloads: {} };
}

export function linkKey(from: string, to: string): string {
  return `${from}>${to}`;
}

export function apply(state: ClusterState, entry: LogEntry): ClusterState {
  const base = { ...state, index: entry.index, term: entry.term };
  const e = entry.event;
  switch (e.type) {
    case "master-elected":
      return { ...base, master: e.master, term: e.term };
    case "node-joined": {
      const prev = state.nodes[e.node.id];
      const node: NodeRecord = { ...e.node };
      // A rejoin of the same process keeps its profile; a restarted node reports a new one.
      if (prev?.profile && prev.startedAt === e.node.startedAt && !node.profile) node.profile = prev.profile;
      return { ...base, nodes: { ...state.nodes, [node.id]: node } };
    }
    case "node-left": {
      if (!(e.id in state.nodes)) return base;
      const nodes = { ...state.nodes };
      delete nodes[e.id];
      const links: Record<string, LinkMeasurement> = {};
      for (const [k, l] of Object.entries(state.links)) if (l.from !== e.id && l.to !== e.id) links[k] = l;
      return { ...base, nodes, links, ...dropNode(state, e.id) };
    }
    case "node-profile": {
      const node = state.nodes[e.id];
      if (!node) return base;
      return { ...base, nodes: { ...state.nodes, [e.id]: { ...node, profile: e.profile } } };
    }
    case "link-measured": {
      const { from, to } = e.link;
      if (!(from in state.nodes) || !(to in state.nodes)) return base;
      return { ...base, links: { ...state.links, [linkKey(from, to)]: { ...e.link } } };
    }
    default:
      if (isModelEventType(e.type)) return { ...base, ...applyModelEvent(state, e as ModelEvent, (id) => id in state.nodes) };
      return { ...base, ...applyInstanceEvent(state, e as InstanceEvent, (n) => state.nodes[n]?.name ?? n) };
  }
}

// ---- type guards: everything that arrives from a peer is checked before it is used ----

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isStr = (x: unknown, max = 256): x is string => typeof x === "string" && x.length <= max;
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const isNonNeg = (x: unknown): x is number => isNum(x) && x >= 0;
const isPort = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 65535;
export const isNodeId = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{16}$/.test(x);

export function isNodeProfile(x: unknown): x is NodeProfile {
  if (!isObj(x) || !isObj(x.memory) || !isObj(x.cpu)) return false;
  return (
    isNonNeg(x.memory.totalBytes) &&
    isNonNeg(x.memory.availableBytes) &&
    isStr(x.cpu.model) &&
    Number.isInteger(x.cpu.cores) &&
    Array.isArray(x.providers) &&
    x.providers.length <= 16 &&
    x.providers.every((p) => isStr(p, 32)) &&
    isStr(x.device, 32) &&
    Number.isInteger(x.threads) &&
    typeof x.worker === "boolean" &&
    (x.matmulGflops === null || isNonNeg(x.matmulGflops)) &&
    (x.decodeBytesPerSec === null || isNonNeg(x.decodeBytesPerSec)) &&
    isStr(x.platform, 32) &&
    isStr(x.arch, 32)
  );
}

export function isNodeRecord(x: unknown): x is NodeRecord {
  return (
    isObj(x) &&
    isNodeId(x.id) &&
    isStr(x.name) &&
    isStr(x.host) &&
    isPort(x.httpPort) &&
    isPort(x.peerPort) &&
    isNonNeg(x.startedAt) &&
    isStr(x.version, 64) &&
    (x.profile === undefined || isNodeProfile(x.profile))
  );
}

export function isLinkMeasurement(x: unknown): x is LinkMeasurement {
  return isObj(x) && isNodeId(x.from) && isNodeId(x.to) && x.from !== x.to && isNonNeg(x.rttMs) && isNonNeg(x.bandwidthBytesPerSec) && isNonNeg(x.measuredAt);
}

/** True only for the control-plane event types above, well formed. Token or bulk events are refused. */
export function isControlEvent(x: unknown): x is ClusterEvent {
  if (!isObj(x)) return false;
  switch (x.type) {
    case "master-elected":
      return isNodeId(x.master) && Number.isInteger(x.term) && (x.term as number) > 0;
    case "node-joined":
      return isNodeRecord(x.node);
    case "node-left":
      return isNodeId(x.id) && isStr(x.reason);
    case "node-profile":
      return isNodeId(x.id) && isNodeProfile(x.profile);
    case "link-measured":
      return isLinkMeasurement(x.link);
    default:
      return isModelEventType(x.type as string) ? isModelEvent(x) : isInstanceEvent(x);
  }
}

export function isLogEntry(x: unknown): x is LogEntry {
  return isObj(x) && Number.isInteger(x.index) && (x.index as number) > 0 && Number.isInteger(x.term) && isNonNeg(x.at) && isControlEvent(x.event);
}

export function isClusterState(x: unknown): x is ClusterState {
  if (!isObj(x) || !Number.isInteger(x.index) || !Number.isInteger(x.term)) return false;
  if (!(x.master === null || isNodeId(x.master)) || !isObj(x.nodes) || !isObj(x.links)) return false;
  for (const [k, n] of Object.entries(x.nodes)) if (!isNodeRecord(n) || n.id !== k) return false;
  for (const [k, l] of Object.entries(x.links)) if (!isLinkMeasurement(l) || linkKey(l.from, l.to) !== k) return false;
  return isInstanceState(x) && isModelsBlock(x);
}

/**
 * Which events a peer may propose to the master: only facts about itself (its profile, its links,
 * the ranks it runs) and a kept set newer than the state's. Membership, mastership and instances
 * are decided by the master alone.
 */
export function mayPropose(sender: string, event: ClusterEvent, state: ClusterState): boolean {
  switch (event.type) {
    case "node-profile":
      return event.id === sender;
    case "link-measured":
      return event.link.from === sender;
    case "master-elected":
    case "node-joined":
    case "node-left":
      return false;
    default:
      if (isModelEventType(event.type)) return modelEventSender(event as ModelEvent) === sender;
      return mayProposeInstance(sender, event as InstanceEvent, state);
  }
}

/** True when applying `event` would leave nodes and links as they are (a repeated report). */
export function isNoop(state: ClusterState, event: ClusterEvent): boolean {
  switch (event.type) {
    case "node-profile":
      return JSON.stringify(state.nodes[event.id]?.profile) === JSON.stringify(event.profile);
    case "link-measured":
      return JSON.stringify(state.links[linkKey(event.link.from, event.link.to)]) === JSON.stringify(event.link);
    default:
      return isModelEventType(event.type) && isModelNoop(state, event as ModelEvent);
  }
}
