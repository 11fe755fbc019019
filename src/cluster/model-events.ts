import { isDeepStrictEqual } from "node:util";

/**
 * The models block of the replicated state: which node holds which model (by content digest), and
 * the downloads each node runs. Every node reports only its own facts (a reporter in node.ts turns
 * its registry and downloads into these events), so a node that leaves takes its entries with it.
 *
 * Layout (in ClusterState):
 *   models     node id → digest → ModelHolding   the node holds that model (complete, or a shard)
 *   downloads  node id → download id → DownloadStatus
 */
export interface HeldModelMeta {
  format: "gguf" | "safetensors" | "mlx";
  architecture: string;
  parameters: number;
  bytes: number;
  quantization: string;
  contextLength: number | null;
  layers: number | null;
  description?: string;
  unsupported?: string;
}

export interface ModelHolding {
  /** Content digest (64 hex digits, models/registry/describe.ts). */
  digest: string;
  /** The model's id on the holding node. */
  name: string;
  meta: HeldModelMeta;
  /** False for a shard-only copy: some byte ranges of the file. */
  complete: boolean;
  /** The model's files (GGUF: one), what a peer asks the holder for; sha256 where the hub gave one. */
  files: { name: string; bytes: number; sha256?: string }[];
  /** The hub repo and commit it was pulled from, so a node can fetch its bytes there too. */
  origin?: { repo: string; revision: string };
}

export type DownloadState = "queued" | "downloading" | "verifying" | "done" | "failed" | "cancelled";

export interface DownloadStatus {
  /** The model id the download will have on its node. */
  id: string;
  /** What was asked for: a catalog name, hf.co/ORG/REPO[:TAG], or a URL. */
  model: string;
  state: DownloadState;
  bytesDone: number;
  bytesTotal: number;
  /** Recent transfer rate. */
  bytesPerSec: number;
  /** Seconds left at that rate, null when unknown. */
  etaSec: number | null;
  /** Where the bytes come from now: "hub", "url" or "peer <node id>". */
  from: string;
  error?: string;
}

export type ModelEvent =
  | { type: "model-held"; node: string; model: ModelHolding }
  | { type: "model-dropped"; node: string; digest: string }
  | { type: "download-status"; node: string; download: DownloadStatus }
  | { type: "download-removed"; node: string; id: string };

export interface ModelsBlock {
  models: Record<string, Record<string, ModelHolding>>;
  downloads: Record<string, Record<string, DownloadStatus>>;
}

const MODEL_EVENT_TYPES = new Set(["model-held", "model-dropped", "download-status", "download-removed"]);

export function isModelEventType(type: unknown): boolean {
  return MODEL_EVENT_TYPES.has(type as string);
}

/** Applies a model event to the block; events about nodes that are not members change nothing. */
export function applyModelEvent(block: ModelsBlock, e: ModelEvent, isMember: (id: string) => boolean): ModelsBlock {
  if (!isMember(e.node)) return block;
  switch (e.type) {
    case "model-held":
      return { ...block, models: { ...block.models, [e.node]: { ...block.models[e.node], [e.model.digest]: e.model } } };
    case "model-dropped": {
      const mine = block.models[e.node];
      if (!mine || !(e.digest in mine)) return block;
      const rest = { ...mine };
      delete rest[e.digest];
      return { ...block, models: withNode(block.models, e.node, rest) };
    }
    case "download-status":
      return { ...block, downloads: { ...block.downloads, [e.node]: { ...block.downloads[e.node], [e.download.id]: e.download } } };
    case "download-removed": {
      const mine = block.downloads[e.node];
      if (!mine || !(e.id in mine)) return block;
      const rest = { ...mine };
      delete rest[e.id];
      return { ...block, downloads: withNode(block.downloads, e.node, rest) };
    }
  }
}

function withNode<T>(byNode: Record<string, Record<string, T>>, node: string, entries: Record<string, T>): Record<string, Record<string, T>> {
  const out = { ...byNode };
  if (Object.keys(entries).length === 0) delete out[node];
  else out[node] = entries;
  return out;
}

/** A node left: its holdings and downloads go with it. */
export function dropNode(block: ModelsBlock, id: string): ModelsBlock {
  const models = { ...block.models };
  const downloads = { ...block.downloads };
  delete models[id];
  delete downloads[id];
  return { models, downloads };
}

/** A node proposes facts about itself only. */
export function modelEventSender(e: ModelEvent): string {
  return e.node;
}

export function isModelNoop(block: ModelsBlock, e: ModelEvent): boolean {
  switch (e.type) {
    case "model-held":
      return isDeepStrictEqual(block.models[e.node]?.[e.model.digest], e.model);
    case "model-dropped":
      return !block.models[e.node]?.[e.digest];
    case "download-status":
      return isDeepStrictEqual(block.downloads[e.node]?.[e.download.id], e.download);
    case "download-removed":
      return !block.downloads[e.node]?.[e.id];
  }
}

/**
 * The events that make `block` show exactly `held` and `downloads` for node `self` (what the
 * node's reporter submits each heartbeat until the state agrees).
 */
export function modelEventsFor(block: ModelsBlock, self: string, held: ModelHolding[], downloads: DownloadStatus[]): ModelEvent[] {
  const out: ModelEvent[] = [];
  const inState = block.models[self] ?? {};
  const mine = new Map(held.map((m) => [m.digest, m]));
  for (const m of mine.values()) if (!isDeepStrictEqual(inState[m.digest], m)) out.push({ type: "model-held", node: self, model: m });
  for (const digest of Object.keys(inState)) if (!mine.has(digest)) out.push({ type: "model-dropped", node: self, digest });
  const dlState = block.downloads[self] ?? {};
  const dls = new Map(downloads.map((d) => [d.id, d]));
  for (const d of dls.values()) if (!isDeepStrictEqual(dlState[d.id], d)) out.push({ type: "download-status", node: self, download: d });
  for (const id of Object.keys(dlState)) if (!dls.has(id)) out.push({ type: "download-removed", node: self, id });
  return out;
}

// ---- type guards (everything from a peer is checked before it is used) ----

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isStr = (x: unknown, max = 256): x is string => typeof x === "string" && x.length <= max;
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isNonNeg = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
const isNodeId = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{16}$/.test(x);
export const isDigest = (x: unknown): x is string => typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const REVISION = /^[A-Za-z0-9._-]{1,64}$/;
const FILE = /^[A-Za-z0-9._-][A-Za-z0-9._ +-]{0,199}$/;
/** A model file name a peer may ask for: one path component, no "..". */
export const isPeerFileName = (x: unknown): x is string => typeof x === "string" && FILE.test(x) && !x.includes("..");
const DOWNLOAD_STATES = new Set<unknown>(["queued", "downloading", "verifying", "done", "failed", "cancelled"]);
export const MAX_DESCRIPTION = 1000;
const MAX_FILES = 64;

function isMeta(x: unknown): x is HeldModelMeta {
  return (
    isObj(x) &&
    (x.format === "gguf" || x.format === "safetensors" || x.format === "mlx") &&
    isStr(x.architecture, 64) &&
    isCount(x.parameters) &&
    isCount(x.bytes) &&
    isStr(x.quantization, 32) &&
    (x.contextLength === null || isCount(x.contextLength)) &&
    (x.layers === null || isCount(x.layers)) &&
    (x.description === undefined || isStr(x.description, MAX_DESCRIPTION)) &&
    (x.unsupported === undefined || isStr(x.unsupported, 512))
  );
}

export function isModelHolding(x: unknown): x is ModelHolding {
  return (
    isObj(x) &&
    isDigest(x.digest) &&
    typeof x.name === "string" &&
    NAME.test(x.name) &&
    isMeta(x.meta) &&
    typeof x.complete === "boolean" &&
    Array.isArray(x.files) &&
    x.files.length <= MAX_FILES &&
    x.files.every((f) => isObj(f) && isPeerFileName(f.name) && isCount(f.bytes) && (f.sha256 === undefined || isDigest(f.sha256))) &&
    (x.origin === undefined || (isObj(x.origin) && typeof x.origin.repo === "string" && REPO.test(x.origin.repo) && typeof x.origin.revision === "string" && REVISION.test(x.origin.revision)))
  );
}

export function isDownloadStatus(x: unknown): x is DownloadStatus {
  return (
    isObj(x) &&
    typeof x.id === "string" &&
    NAME.test(x.id) &&
    isStr(x.model, 512) &&
    DOWNLOAD_STATES.has(x.state) &&
    isCount(x.bytesDone) &&
    isCount(x.bytesTotal) &&
    isNonNeg(x.bytesPerSec) &&
    (x.etaSec === null || isNonNeg(x.etaSec)) &&
    isStr(x.from, 64) &&
    (x.error === undefined || isStr(x.error, 1000))
  );
}

export function isModelEvent(x: unknown): x is ModelEvent {
  if (!isObj(x) || !isNodeId(x.node)) return false;
  switch (x.type) {
    case "model-held":
      return isModelHolding(x.model);
    case "model-dropped":
      return isDigest(x.digest);
    case "download-status":
      return isDownloadStatus(x.download);
    case "download-removed":
      return typeof x.id === "string" && NAME.test(x.id);
    default:
      return false;
  }
}

/** A snapshot's models block, checked entry by entry. */
export function isModelsBlock(x: { models?: unknown; downloads?: unknown }): boolean {
  if (!isObj(x.models) || !isObj(x.downloads)) return false;
  for (const [node, held] of Object.entries(x.models)) {
    if (!isNodeId(node) || !isObj(held)) return false;
    for (const [digest, m] of Object.entries(held)) if (!isModelHolding(m) || m.digest !== digest) return false;
  }
  for (const [node, dls] of Object.entries(x.downloads)) {
    if (!isNodeId(node) || !isObj(dls)) return false;
    for (const [id, d] of Object.entries(dls)) if (!isDownloadStatus(d) || d.id !== id) return false;
  }
  return true;
}
