import type { RankPorts, RankRecord, RankStatus } from "../cluster/instance-state.js";
import type { ClusterNode } from "../cluster/node.js";

/** What this node says about one of its ranks (a rank-status event without its type). */
export interface RankReport {
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

const RESEND_MS = 1000;

/**
 * Gets a node's reports about its ranks into the replicated state: the latest report per rank is
 * (re)sent to the master until the state shows it — a report sent while there was no master, or
 * lost with a failover, is not lost. Reports about a placement that is no longer current are dropped.
 */
export class RankReporter {
  private readonly wanted = new Map<string, { report: RankReport; sentAt: number }>();

  constructor(private readonly node: ClusterNode) {}

  report(r: RankReport): void {
    this.wanted.set(`${r.id}/${r.generation}/${r.rank}`, { report: r, sentAt: 0 });
    this.flush();
  }

  flush(): void {
    const s = this.node.replica.state;
    const now = Date.now();
    for (const [key, w] of this.wanted) {
      const r = w.report;
      const i = s.instances[r.id];
      if (!i || i.generation !== r.generation || (i.status !== "starting" && i.status !== "ready")) {
        this.wanted.delete(key);
        continue;
      }
      if (shows(i.ranks[r.rank], r) && (!r.measured || i.measured?.decodeTps === r.measured.decodeTps)) {
        this.wanted.delete(key);
        continue;
      }
      if (now - w.sentAt < RESEND_MS) continue;
      if (this.node.submit({ type: "rank-status", ...r })) w.sentAt = now;
    }
  }
}

function shows(rec: RankRecord | undefined, r: RankReport): boolean {
  if (!rec || rec.status !== r.status || rec.progress !== r.progress) return false;
  if (r.ports && JSON.stringify(rec.ports) !== JSON.stringify(r.ports)) return false;
  return r.pid === undefined || rec.pid === r.pid;
}
