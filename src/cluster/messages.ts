import { isClusterState, isControlEvent, isLogEntry, isNodeId, type ClusterEvent, type ClusterState, type LogEntry } from "./state.js";

/**
 * Messages on an authenticated peer link (each one msgpack frame, field `t` names the kind):
 *   info      first message after auth: who the sender is and where it listens
 *   peers     peers the sender is linked to (gossip, so static peers need only one address)
 *   hb        heartbeat every second: the sender's view of term, index and master
 *   propose   follower → master: an event about the sender (profile, link measurement)
 *   ev        master → followers: one ordered log entry
 *   sync      follower → master: "send me what follows `since` in `term`"
 *   entries   master → follower: a run of log entries answering sync
 *   snapshot  master → follower: whole state + recent log, when entries cannot answer sync
 *   cmd       any node → master: a command (n: the sender's request number; body: checked by its handler)
 *   cmd-reply master → that node: the answer to cmd n (status like HTTP's, body)
 *   ping/pong RTT probes; bulk/bulk-end/bulk-ack a bandwidth probe
 *   bye       the sender is closing the link
 */
export interface PeerAddress {
  id: string;
  host: string;
  port: number;
}

export type PeerMessage =
  | { t: "info"; name: string; startedAt: number; httpPort: number; peerPort: number; version: string }
  | { t: "peers"; peers: PeerAddress[] }
  | { t: "hb"; term: number; index: number; master: string | null }
  | { t: "propose"; event: ClusterEvent }
  | { t: "ev"; entry: LogEntry }
  | { t: "sync"; term: number; master: string | null; since: number }
  | { t: "entries"; term: number; entries: LogEntry[] }
  | { t: "snapshot"; state: ClusterState; log: LogEntry[] }
  | { t: "cmd"; n: number; body: unknown }
  | { t: "cmd-reply"; n: number; status: number; body: unknown }
  | { t: "ping"; n: number }
  | { t: "pong"; n: number }
  | { t: "bulk"; n: number; data: Uint8Array }
  | { t: "bulk-end"; n: number; bytes: number }
  | { t: "bulk-ack"; n: number; bytes: number }
  | { t: "bye"; reason: string };

export const MAX_LOG_BATCH = 400;
export const MAX_PEERS_GOSSIP = 256;

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
const isPort = (x: unknown): boolean => isInt(x) && (x as number) <= 65535;
const isStr = (x: unknown, max = 256): x is string => typeof x === "string" && x.length <= max;

function isPeerAddress(x: unknown): x is PeerAddress {
  return isObj(x) && isNodeId(x.id) && isStr(x.host) && isPort(x.port);
}

function isEntryList(x: unknown): x is LogEntry[] {
  return Array.isArray(x) && x.length <= MAX_LOG_BATCH && x.every(isLogEntry);
}

/** The one gate every post-auth frame passes; anything else is a protocol violation. */
export function isPeerMessage(x: unknown): x is PeerMessage {
  if (!isObj(x)) return false;
  switch (x.t) {
    case "info":
      return isStr(x.name) && typeof x.startedAt === "number" && x.startedAt >= 0 && isPort(x.httpPort) && isPort(x.peerPort) && isStr(x.version, 64);
    case "peers":
      return Array.isArray(x.peers) && x.peers.length <= MAX_PEERS_GOSSIP && x.peers.every(isPeerAddress);
    case "hb":
      return isInt(x.term) && isInt(x.index) && (x.master === null || isNodeId(x.master));
    case "propose":
      return isControlEvent(x.event);
    case "ev":
      return isLogEntry(x.entry);
    case "sync":
      return isInt(x.term) && isInt(x.since) && (x.master === null || isNodeId(x.master));
    case "entries":
      return isInt(x.term) && isEntryList(x.entries);
    case "snapshot":
      return isClusterState(x.state) && isEntryList(x.log);
    case "cmd":
      return isInt(x.n) && isObj(x.body);
    case "cmd-reply":
      return isInt(x.n) && isInt(x.status) && (x.status as number) < 600;
    case "ping":
    case "pong":
      return isInt(x.n);
    case "bulk":
      return isInt(x.n) && x.data instanceof Uint8Array;
    case "bulk-end":
    case "bulk-ack":
      return isInt(x.n) && isInt(x.bytes);
    case "bye":
      return isStr(x.reason);
    default:
      return false;
  }
}
