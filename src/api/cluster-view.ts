import type { ClusterNode } from "../cluster/node.js";
import type { ClusterState, LinkMeasurement, NodeRecord } from "../cluster/state.js";
import type { StaticPeerStatus } from "../cluster/static-peers.js";

/**
 * JSON shapes of the cluster endpoints, built from a node's replicated state (the API keeps no
 * cluster state of its own).
 *   GET /cluster        ClusterView: { self, state }  (state: see src/cluster/state.ts)
 *   GET /cluster/nodes  NodeView[]: every node record plus `master` and `self` flags
 */
export interface SelfView {
  id: string;
  name: string;
  cluster: string;
  /** "open" without --secret (open LAN mode), else "secret". */
  mode: "open" | "secret";
  /** The master this node's election picks from its live links. */
  master: string | null;
  peers: string[];
  httpPort: number;
  peerPort: number;
  /** Seniority in the election (wall-clock ms of the start). */
  startedAt: number;
  /** Each --peers address: connected, or why not (src/cluster/static-peers.ts). */
  staticPeers?: StaticPeerStatus[];
  /** Discovery off and no peer linked or reachable: this node is a cluster of one. */
  alone?: boolean;
}

export interface ClusterView {
  self: SelfView;
  state: ClusterState;
}

export type NodeView = NodeRecord & { master: boolean; self: boolean };

export function selfView(node: ClusterNode): SelfView {
  return {
    id: node.id,
    name: node.name,
    cluster: node.cluster,
    mode: node.open ? "open" : "secret",
    master: node.masterId,
    peers: node.livePeers.sort(),
    httpPort: node.httpPort,
    peerPort: node.peerPort,
    startedAt: node.startedAt,
    staticPeers: node.staticPeers(),
    alone: node.alone,
  };
}

export function clusterView(node: ClusterNode): ClusterView {
  return { self: selfView(node), state: node.replica.state };
}

export function nodeViews(state: ClusterState, selfId: string): NodeView[] {
  return Object.values(state.nodes)
    .map((n) => ({ ...n, master: n.id === state.master, self: n.id === selfId }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

export function linkList(state: ClusterState): LinkMeasurement[] {
  return Object.values(state.links).sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}
