import type { ClusterView, SelfView } from "../../../src/api/cluster-view.js";
import type { ClusterState, LogEntry, NodeRecord } from "../../../src/cluster/state.js";
import type { InstanceView } from "../../../src/instances/views.js";
import type { ClusterDownload, ClusterModel } from "../../../src/library/cluster-models.js";
import { api, auth, request } from "./api.svelte.js";
import { readSse } from "./sse.js";

/**
 * The cluster as this page knows it, kept live from GET /cluster/stream: the whole state on
 * connect, then one log entry per change. Node, link and master events are applied here; instance
 * and model events refetch just /instances or /models (their views carry names and progress the
 * raw log entries lack). Nodes that leave are remembered as lost, with the reason, until they rejoin.
 */
export interface LostNode {
  node: NodeRecord;
  reason: string;
  at: number;
}

export const live = $state({
  connected: false,
  error: "",
  self: null as SelfView | null,
  state: null as ClusterState | null,
  lost: {} as Record<string, LostNode>,
  instances: [] as InstanceView[],
  models: [] as ClusterModel[],
  downloads: [] as ClusterDownload[],
});

const NODE_EVENTS = new Set(["master-elected", "node-joined", "node-left", "node-profile", "link-measured"]);
const INSTANCE_EVENTS = new Set(["instance-placed", "rank-status", "instance-status", "instance-deleted", "kept-restored"]);
const RETRY_MS = 1000;

export async function refreshInstances(): Promise<void> {
  live.instances = await api<InstanceView[]>("/instances");
}

export async function refreshModels(): Promise<void> {
  const m = await api<{ models: ClusterModel[]; downloads: ClusterDownload[] }>("/models");
  live.models = m.models;
  live.downloads = m.downloads;
}

/** Coalesces bursts of events (a load reports progress often) into one refetch. */
function debounced(fn: () => Promise<void>, waitMs = 150): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => fn().catch(() => {}), waitMs);
  };
}
const instancesChanged = debounced(refreshInstances);
const modelsChanged = debounced(refreshModels);

function applyNodeEvent(s: ClusterState, entry: LogEntry): void {
  const e = entry.event;
  s.index = entry.index;
  switch (e.type) {
    case "master-elected":
      s.master = e.master;
      s.term = e.term;
      return;
    case "node-joined":
      s.nodes[e.node.id] = { ...e.node, profile: e.node.profile ?? s.nodes[e.node.id]?.profile };
      delete live.lost[e.node.id];
      return;
    case "node-left": {
      const gone = s.nodes[e.id];
      if (gone) live.lost[e.id] = { node: gone, reason: e.reason, at: entry.at };
      delete s.nodes[e.id];
      for (const [k, l] of Object.entries(s.links)) if (l.from === e.id || l.to === e.id) delete s.links[k];
      return;
    }
    case "node-profile":
      if (s.nodes[e.id]) s.nodes[e.id]!.profile = e.profile;
      return;
    case "link-measured":
      if (s.nodes[e.link.from] && s.nodes[e.link.to]) s.links[`${e.link.from}>${e.link.to}`] = e.link;
      return;
  }
}

function onState(view: ClusterView): void {
  // Nodes we knew that the new state lacks left while we were not listening.
  const before = live.state?.nodes ?? {};
  for (const [id, n] of Object.entries(before)) if (!view.state.nodes[id]) live.lost[id] = { node: n, reason: "left", at: Date.now() };
  for (const id of Object.keys(view.state.nodes)) delete live.lost[id];
  live.self = view.self;
  live.state = view.state;
}

function onEntry(entry: LogEntry): void {
  const type = entry.event.type;
  if (live.state && NODE_EVENTS.has(type)) applyNodeEvent(live.state, entry);
  else if (live.state) live.state.index = entry.index;
  if (INSTANCE_EVENTS.has(type) || type === "node-left") instancesChanged();
  else if (!NODE_EVENTS.has(type)) modelsChanged();
}

/** Follows the stream for the page's lifetime, reconnecting after a drop or a new API key. */
export async function follow(): Promise<void> {
  let seenAuth = -1;
  while (true) {
    if (auth.needed && seenAuth === auth.version) {
      await new Promise((r) => setTimeout(r, 300));
      continue;
    }
    seenAuth = auth.version;
    try {
      const res = await request("/cluster/stream", { headers: { accept: "text/event-stream" } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      live.connected = true;
      live.error = "";
      await Promise.all([refreshInstances(), refreshModels()]).catch(() => {});
      for await (const m of readSse(res)) {
        if (m.event === "state") onState(JSON.parse(m.data) as ClusterView);
        else if (m.event === "entry") onEntry(JSON.parse(m.data) as LogEntry);
      }
      throw new Error("the stream ended");
    } catch (e) {
      live.connected = false;
      live.error = auth.needed ? "this node needs an API key" : `lost the connection to this node (${(e as Error).message}); retrying`;
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

export function nodeName(id: string): string {
  return live.state?.nodes[id]?.name ?? live.lost[id]?.node.name ?? id.slice(0, 8);
}
