import { TesseraError } from "../errors.js";
import { isInstanceId, isInstanceRequest, isModelRef, isPlacementModel } from "../cluster/instance-state.js";
import type { ClusterState } from "../cluster/state.js";
import { STRATEGIES, type Strategy } from "../placement/index.js";
import type { CreateRequest } from "./decide.js";
import type { ResolvedModel } from "./model-source.js";

/** A request error with the HTTP status it answers with. */
export class RequestError extends TesseraError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Commands a node sends its master (ClusterNode.command), checked again by the master:
 *   { op: "create", request: CreateRequest, resolved: ResolvedModel }   → 201 InstanceView | 409 | 400
 *   { op: "delete", id }                                                 → 200 { id, deleted: true } | 404
 */
export type InstanceCommand = { op: "create"; request: CreateRequest; resolved: ResolvedModel } | { op: "delete"; id: string };

export function isInstanceCommand(x: Record<string, unknown>): x is InstanceCommand {
  if (x.op === "delete") return isInstanceId(x.id);
  if (x.op !== "create") return false;
  const r = x.request as Record<string, unknown> | undefined;
  const m = x.resolved as Record<string, unknown> | undefined;
  return (
    isInstanceRequest(r) &&
    (r!.keep === undefined || typeof r!.keep === "boolean") &&
    typeof m === "object" &&
    m !== null &&
    typeof m.model === "string" &&
    isModelRef(m.source) &&
    isPlacementModel(m.summary)
  );
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

function intField(body: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "string" ? Number(v) : v;
  if (!Number.isInteger(n) || (n as number) < min) throw new RequestError(400, `${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n as number;
}

/** Node names or ids (an array, or a comma-separated string) → ids, each known to the state. */
export function nodeIds(state: ClusterState, v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const list = typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) throw new RequestError(400, "nodes must be a list of node names or ids");
  return [...new Set(list as string[])].map((want) => {
    if (want in state.nodes) return want;
    const byName = Object.values(state.nodes).filter((n) => n.name === want);
    if (byName.length === 1) return byName[0]!.id;
    if (byName.length > 1) throw new RequestError(400, `node name '${want}' is ambiguous (${byName.map((n) => n.id).join(", ")}): use the id`);
    throw new RequestError(400, `no node '${want}' in the cluster`);
  });
}

/** The body of POST /instances (or the query of a preview) → a model name and a request. */
export function parseCreate(state: ClusterState, body: unknown, needModel = true): { model: string; request: CreateRequest } {
  if (!isObj(body)) throw new RequestError(400, "the body must be a JSON object: {model, strategy?, nodes?, minNodes?, ctx?, parallel?, keep?}");
  const model = body.model;
  if (typeof model !== "string" || !model.trim()) {
    if (needModel) throw new RequestError(400, "model is required: a model path present on the nodes");
  }
  const strategy = body.strategy;
  if (strategy !== undefined && strategy !== "" && !STRATEGIES.includes(strategy as Strategy)) {
    throw new RequestError(400, `strategy must be one of ${STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  }
  const keep = body.keep;
  if (keep !== undefined && typeof keep !== "boolean" && keep !== "true" && keep !== "false") throw new RequestError(400, `keep must be true or false, got ${JSON.stringify(keep)}`);
  const request: CreateRequest = {};
  if (strategy) request.strategy = strategy as Strategy;
  const nodes = nodeIds(state, body.nodes);
  if (nodes) request.nodes = nodes;
  const minNodes = intField(body, "minNodes", 1);
  if (minNodes !== undefined) request.minNodes = minNodes;
  const ctx = intField(body, "ctx", 1);
  if (ctx !== undefined) request.ctx = ctx;
  const parallel = intField(body, "parallel", 1);
  if (parallel !== undefined) request.parallel = parallel;
  if (keep === true || keep === "true") request.keep = true;
  return { model: typeof model === "string" ? model.trim() : "", request };
}
