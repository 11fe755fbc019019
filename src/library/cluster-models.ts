import type { DownloadStatus, HeldModelMeta, ModelHolding } from "../cluster/model-events.js";
import type { ClusterState } from "../cluster/state.js";

/**
 * The cluster's models as every node lists them (GET /models, `tessera models`): one entry per
 * content digest, whatever each holder calls it, with the nodes that hold it. Pure: a function of
 * the replicated state, so every node lists the same thing.
 *
 * id: the name the holders use (complete copies first, then by node id); when two different models
 * want the same id, the one with the larger digest gets "-" and 8 digits of its digest appended.
 */
export interface ModelHolder {
  node: string;
  nodeName: string;
  /** The model's id on that node. */
  name: string;
  complete: boolean;
}

export interface ClusterModel extends HeldModelMeta {
  id: string;
  digest: string;
  /** Every name its holders give it, id first. */
  names: string[];
  holders: ModelHolder[];
  files: ModelHolding["files"];
  /** The hub repo and commit it came from, when a holder knows. */
  origin?: ModelHolding["origin"];
}

export interface ClusterDownload extends DownloadStatus {
  node: string;
  nodeName: string;
}

export function clusterModels(state: ClusterState): ClusterModel[] {
  const byDigest = new Map<string, { first: ModelHolding; holders: ModelHolder[] }>();
  for (const node of Object.keys(state.models).sort()) {
    const nodeName = state.nodes[node]?.name ?? node;
    for (const m of Object.values(state.models[node]!)) {
      const e = byDigest.get(m.digest) ?? { first: m, holders: [] };
      e.holders.push({ node, nodeName, name: m.name, complete: m.complete });
      if (m.complete && !e.first.complete) e.first = m;
      byDigest.set(m.digest, e);
    }
  }
  const entries = [...byDigest.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const taken = new Set<string>();
  const out: ClusterModel[] = [];
  for (const [digest, { first, holders }] of entries) {
    holders.sort((a, b) => Number(b.complete) - Number(a.complete) || (a.node < b.node ? -1 : 1));
    const names = [...new Set(holders.map((h) => h.name))];
    let id = names[0]!;
    if (taken.has(id)) id = `${id}-${digest.slice(0, 8)}`;
    taken.add(id);
    out.push({ ...first.meta, id, digest, names, holders, files: first.files, ...(first.origin ? { origin: first.origin } : {}) });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * The model a reference names: its id, any holder's name for it, or its digest (or ≥ 8 leading hex
 * digits of it). Undefined when nothing matches or a name is ambiguous.
 */
export function resolveModel(state: ClusterState, ref: string): ClusterModel | undefined {
  const models = clusterModels(state);
  const byId = models.find((m) => m.id === ref);
  if (byId) return byId;
  const byName = models.filter((m) => m.names.includes(ref));
  if (byName.length === 1) return byName[0];
  if (/^[0-9a-f]{8,64}$/.test(ref)) {
    const byDigest = models.filter((m) => m.digest.startsWith(ref));
    if (byDigest.length === 1) return byDigest[0];
  }
  return undefined;
}

export function clusterDownloads(state: ClusterState): ClusterDownload[] {
  const out: ClusterDownload[] = [];
  for (const node of Object.keys(state.downloads).sort()) {
    for (const d of Object.values(state.downloads[node]!)) out.push({ ...d, node, nodeName: state.nodes[node]?.name ?? node });
  }
  return out;
}
