import { MAX_LOG_BATCH, type PeerMessage } from "./messages.js";
import { apply, emptyState, type ClusterEvent, type ClusterState, type LogEntry } from "./state.js";

/**
 * A node's copy of the replicated log and the state it folds to. The master appends; followers
 * receive entries in order, say when there is a gap, and can be reset to the master's snapshot.
 * Listeners hear every applied entry and every reset (the HTTP stream forwards them).
 * Keeps the last LOG_KEEP entries for /cluster/events and catch-up.
 */
export const LOG_KEEP = 5000;

export type ReceiveResult = "applied" | "duplicate" | "gap";

export class Replica {
  state: ClusterState = emptyState();
  log: LogEntry[] = [];
  private readonly entryListeners = new Set<(e: LogEntry) => void>();
  private readonly resetListeners = new Set<(s: ClusterState) => void>();

  onEntry(f: (e: LogEntry) => void): () => void {
    this.entryListeners.add(f);
    return () => this.entryListeners.delete(f);
  }

  onReset(f: (s: ClusterState) => void): () => void {
    this.resetListeners.add(f);
    return () => this.resetListeners.delete(f);
  }

  /** Master only: orders `event` as the next entry. A master-elected event opens its term. */
  append(event: ClusterEvent, at = Date.now()): LogEntry {
    const term = event.type === "master-elected" ? event.term : this.state.term;
    const entry: LogEntry = { index: this.state.index + 1, term, at, event };
    this.commit(entry);
    return entry;
  }

  /** Follower: an entry from the master this node follows. */
  receive(entry: LogEntry): ReceiveResult {
    if (entry.term === this.state.term && entry.index === this.state.index + 1) {
      this.commit(entry);
      return "applied";
    }
    if (entry.term === this.state.term && entry.index <= this.state.index) return "duplicate";
    return "gap";
  }

  /** Follower: replaces everything with the master's snapshot. */
  reset(state: ClusterState, log: LogEntry[]): void {
    this.state = state;
    this.log = log.slice(-LOG_KEEP);
    for (const f of this.resetListeners) f(state);
  }

  /** Master: what answers a follower at (term, master, since): entry batches, or a snapshot if its log is not ours. */
  answerSync(selfId: string, term: number, master: string | null, since: number): PeerMessage[] {
    const first = this.log[0]?.index ?? this.state.index + 1;
    const sameHistory = term === this.state.term && master === selfId && this.state.master === selfId;
    if (!sameHistory || since > this.state.index || since < first - 1) {
      return [{ t: "snapshot", state: this.state, log: this.log.slice(-MAX_LOG_BATCH) }];
    }
    const rest = this.log.slice(since - first + 1);
    const out: PeerMessage[] = [];
    for (let i = 0; i < rest.length; i += MAX_LOG_BATCH) out.push({ t: "entries", term, entries: rest.slice(i, i + MAX_LOG_BATCH) });
    return out;
  }

  /** Entries after index `since` (at most `limit`), and the first index still kept. */
  since(since: number, limit = 1000): { first: number; entries: LogEntry[] } {
    const first = this.log[0]?.index ?? this.state.index + 1;
    const from = Math.max(0, since - first + 1);
    return { first, entries: this.log.slice(from, from + limit) };
  }

  private commit(entry: LogEntry): void {
    this.state = apply(this.state, entry);
    this.log.push(entry);
    if (this.log.length > LOG_KEEP + 500) this.log = this.log.slice(-LOG_KEEP);
    for (const f of this.entryListeners) f(entry);
  }
}
