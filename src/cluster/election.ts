/**
 * Deterministic master election over the live members a node sees (itself included): the most
 * senior node (earliest start), ties broken by the smaller id. Every node of a fully connected
 * component computes the same answer; a restarted node is junior, so it does not take the role back.
 */
export interface Member {
  id: string;
  startedAt: number;
}

export function electMaster(members: readonly Member[]): string | null {
  let best: Member | null = null;
  for (const m of members) {
    if (!best || m.startedAt < best.startedAt || (m.startedAt === best.startedAt && m.id < best.id)) best = m;
  }
  return best?.id ?? null;
}

/** Of two connections between the same pair, both sides keep the one dialled by the smaller id. */
export function keepConnection(a: { initiator: string }, b: { initiator: string }): "a" | "b" {
  return a.initiator <= b.initiator ? "a" : "b";
}
