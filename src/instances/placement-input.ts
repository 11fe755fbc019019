import type { ClusterState } from "../cluster/state.js";
import { reservedBytes } from "../cluster/instance-state.js";
import type { PlacementCluster } from "../placement/index.js";

/**
 * The cluster as placement sees it, from the replicated state: worker nodes that reported a profile,
 * each with the memory it can still give, and the measured links.
 *
 * A node's budget is its memory (capped by --memory-limit) as far as it is available: available
 * memory already excludes what running instances use, so their reservations are added back before
 * the whole reservation is taken off — free = min(total, available + reserved) − reserved.
 * `except` leaves one instance's reservation out (re-placing it).
 */
export function placementCluster(state: ClusterState, except?: string): PlacementCluster {
  const others = Object.fromEntries(Object.entries(state.instances).filter(([id]) => id !== except));
  const reserved = reservedBytes(others);
  const nodes = Object.values(state.nodes)
    .filter((n) => n.profile?.worker)
    .map((n) => {
      const p = n.profile!;
      const r = reserved[n.id] ?? 0;
      const free = Math.min(p.memory.totalBytes, p.memory.availableBytes + r) - r;
      return { id: n.id, name: n.name, freeBytes: free, decodeBytesPerSec: p.decodeBytesPerSec ?? null, matmulGflops: p.matmulGflops };
    });
  const links = Object.values(state.links).map((l) => ({ from: l.from, to: l.to, rttMs: l.rttMs, bandwidthBytesPerSec: l.bandwidthBytesPerSec }));
  return { nodes, links };
}
