import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isKeptInstance, type KeptInstance } from "../cluster/instance-state.js";
import type { ClusterNode } from "../cluster/node.js";

/**
 * The kept set (deployments) in this node's data dir, so it outlives a restart of every node.
 * File <data-dir>/kept-instances.json: { version: number, kept: KeptInstance[] }, version being the
 * state's keptVersion it was written from.
 *
 * At start the node holds what it read; once a master exists and the state's kept set is older, the
 * node proposes its own (kept-restored; the master takes it only if it is newer than the state's).
 * From then on the file follows the state. A node that was away while a deployment was deleted
 * holds an older version than the cluster, so it does not bring the deployment back.
 */
export const KEPT_FILE = "kept-instances.json";

export class KeptStore {
  private pending: { version: number; kept: KeptInstance[] } | null;
  private written: string;
  private proposedAt = 0;

  constructor(
    private readonly node: ClusterNode,
    private readonly dir: string,
    private readonly log: (m: string) => void,
  ) {
    const saved = readKept(join(dir, KEPT_FILE), log);
    this.pending = saved && saved.version > 0 ? saved : null;
    this.written = saved ? JSON.stringify(saved) : "";
    if (this.pending?.kept.length) log(`${this.pending.kept.length} kept instance(s) in ${KEPT_FILE} (version ${this.pending.version}): restoring once the cluster has a master`);
  }

  sync(): void {
    const s = this.node.replica.state;
    if (!s.master || this.node.masterId !== s.master) return;
    if (this.pending) {
      if (s.keptVersion >= this.pending.version) {
        this.pending = null;
      } else {
        const now = Date.now();
        if (now - this.proposedAt > 1000 && this.node.submit({ type: "kept-restored", version: this.pending.version, kept: this.pending.kept })) this.proposedAt = now;
        return;
      }
    }
    const next = JSON.stringify({ version: s.keptVersion, kept: Object.values(s.kept) });
    if (next === this.written) return;
    try {
      const file = join(this.dir, KEPT_FILE);
      writeFileSync(`${file}.tmp`, next + "\n");
      renameSync(`${file}.tmp`, file);
      this.written = next;
    } catch (e) {
      this.log(`cannot save the kept instances: ${(e as Error).message}`);
    }
  }
}

function readKept(file: string, log: (m: string) => void): { version: number; kept: KeptInstance[] } | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  try {
    const x = JSON.parse(text) as { version?: unknown; kept?: unknown };
    if (Number.isInteger(x.version) && Array.isArray(x.kept) && x.kept.every(isKeptInstance)) return { version: x.version as number, kept: x.kept };
  } catch {
    /* reported below */
  }
  log(`ignoring ${file}: not a kept-instances file`);
  return null;
}
