import type { ClusterNode } from "../cluster/node.js";
import { RemoteNode } from "./remote-node.js";

/**
 * The models of the other nodes: every few seconds, for each node in the replicated cluster state
 * (its HTTP address as the state has it), a RemoteNode refreshes its model list, and the set goes
 * to the router. Tokens never go through the event log: requests go to the node over HTTP.
 */
export interface PeerModelsOptions {
  node: ClusterNode;
  /** Headers that open the other nodes' internal routes (node token, API key). */
  headers: Record<string, string>;
  onChange(peers: RemoteNode[]): void;
  everyMs?: number;
}

export class PeerModels {
  private readonly remotes = new Map<string, RemoteNode>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: PeerModelsOptions) {}

  start(): void {
    const tick = () => {
      this.running = this.refresh().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.everyMs ?? 2000);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round: follow the cluster's membership, then ask every node for its models. */
  async refresh(): Promise<void> {
    const self = this.opts.node.id;
    const nodes = Object.values(this.opts.node.replica.state.nodes).filter((n) => n.id !== self);
    const live = new Set<string>();
    for (const n of nodes) {
      const host = n.host.includes(":") ? `[${n.host}]` : n.host;
      const baseUrl = `http://${host}:${n.httpPort}`;
      live.add(n.id);
      const known = this.remotes.get(n.id);
      if (!known || known.address.baseUrl !== baseUrl) this.remotes.set(n.id, new RemoteNode({ id: n.id, baseUrl, headers: this.opts.headers }));
    }
    for (const id of [...this.remotes.keys()]) if (!live.has(id)) this.remotes.delete(id);
    await Promise.all([...this.remotes.values()].map((r) => r.refresh()));
    if (!this.stopped) this.opts.onChange([...this.remotes.values()]);
  }
}
