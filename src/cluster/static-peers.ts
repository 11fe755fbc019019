import type { StaticPeerAddress } from "./options.js";
import type { StaticDialEvent } from "./peer-set.js";

/**
 * The peers named with --peers: what became of dialling each one, for the log (rate-limited) and
 * for `tessera status`. A peer given by its HTTP port answers our hello with "HTTP/1.1 400"; its
 * peer port is then read from GET /cluster and dialled instead.
 *
 * States: connecting (not tried yet, or retrying after a change) · connected · unreachable (refused,
 * timed out, no route) · unresolvable (no such host) · not-tessera (something else answers) ·
 * refused (a Tessera node that would not let us in: other secret or cluster) · self (it is this node).
 */
export type StaticPeerState = "connecting" | "connected" | "unreachable" | "unresolvable" | "not-tessera" | "refused" | "self";

export interface StaticPeerStatus {
  /** As given to --peers. */
  address: string;
  /** host:port dialled now (a peer port found through an HTTP port differs from the address). */
  dialing: string;
  state: StaticPeerState;
  reason: string | null;
  /** The node there, once known. */
  nodeId: string | null;
  /** When the state last changed (ms since the epoch). */
  since: number;
}

export interface DialOutcome {
  state: StaticPeerState;
  reason: string;
}

/** What a failed link saw (PeerLink fields). */
export interface FailedLink {
  reason: string;
  errorCode?: string;
  gotData: boolean;
  answeredHttp: boolean;
  peerId: string | null;
}

const DNS_ERRORS = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"]);

/** Why dialling host:port failed, in the user's terms. Pure. */
export function classifyDialFailure(link: FailedLink, host: string, port: number): DialOutcome {
  const code = link.errorCode;
  if (code && DNS_ERRORS.has(code)) return { state: "unresolvable", reason: `cannot resolve host '${host}' (${code})` };
  if (code === "ECONNREFUSED") return { state: "unreachable", reason: `connection refused: nothing listens on port ${port}` };
  if (link.reason.includes("connected to itself")) return { state: "self", reason: "this is the node itself" };
  if (link.answeredHttp) return { state: "not-tessera", reason: "it answers HTTP, not the Tessera peer protocol" };
  if (link.peerId) return { state: "refused", reason: refusal(link.reason) };
  if (!link.gotData && (code || link.reason.includes("timed out") && !link.reason.includes("handshake"))) {
    return { state: "unreachable", reason: link.reason.replace(/^socket error: /, "") };
  }
  if (!link.gotData && link.reason.includes("handshake timed out")) return { state: "not-tessera", reason: "it accepted the connection but never greeted (not a Tessera peer port?)" };
  if (!link.gotData) return { state: "not-tessera", reason: "it closed the connection without a greeting (not a Tessera peer port, or a node that is shutting down)" };
  return { state: "not-tessera", reason: `it does not speak the Tessera peer protocol (${link.reason})` };
}

function refusal(reason: string): string {
  if (reason === "connection closed") return "the node there refused us (a different --secret or --cluster?)";
  if (reason.includes("wrong cluster secret")) return "the node there has a different --secret or --cluster";
  return `the node there refused us: ${reason}`;
}

export interface StaticPeersOptions {
  log(message: string): void;
  /** Dial another port for this peer from now on. */
  redirect(key: string, port: number): void;
  /** The peer port of the node whose HTTP API is at host:port (throws with a reason if there is none). */
  peerPortFromHttp?: (host: string, port: number) => Promise<{ id: string; peerPort: number }>;
  /** The same failure is logged again at most this often (default 60 s). */
  repeatMs?: number;
  now?: () => number;
}

interface Entry {
  status: StaticPeerStatus;
  host: string;
  loggedAt: number;
  loggedWhat: string;
  /** An HTTP port was resolved (or is being): do not resolve again. */
  resolving: boolean;
}

export class StaticPeers {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly repeatMs: number;

  constructor(private readonly o: StaticPeersOptions) {
    this.now = o.now ?? Date.now;
    this.repeatMs = o.repeatMs ?? 60_000;
  }

  /** Starts tracking a peer under the key its dialer uses. */
  add(key: string, a: StaticPeerAddress): void {
    if (this.entries.has(key)) return;
    this.entries.set(key, {
      host: a.host,
      status: { address: a.text, dialing: hostPort(a.host, a.port), state: "connecting", reason: null, nodeId: null, since: this.now() },
      loggedAt: -Infinity,
      loggedWhat: "",
      resolving: false,
    });
  }

  list(): StaticPeerStatus[] {
    return [...this.entries.values()].map((e) => ({ ...e.status }));
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every static peer has failed at least once and none is connected (or being resolved). */
  get allFailed(): boolean {
    return this.entries.size > 0 && [...this.entries.values()].every((e) => e.status.state !== "connecting" && e.status.state !== "connected");
  }

  onDial(ev: StaticDialEvent): void {
    const e = this.entries.get(ev.key);
    if (!e) return;
    e.status.dialing = hostPort(ev.host, ev.port);
    if (ev.up) {
      e.status.nodeId = ev.id;
      this.set(e, { state: "connected", reason: "" });
      return;
    }
    const outcome = classifyDialFailure(
      { reason: ev.reason, errorCode: ev.link.errorCode, gotData: ev.link.gotData, answeredHttp: ev.link.answeredHttp, peerId: ev.link.peerId },
      ev.host,
      ev.port,
    );
    if (ev.link.peerId) e.status.nodeId = ev.link.peerId;
    if (ev.link.answeredHttp && !e.resolving && this.o.peerPortFromHttp) {
      e.resolving = true;
      this.set(e, { state: "connecting", reason: "it answers HTTP: looking for the peer port of the node there" }, false);
      void this.resolve(ev.key, e, ev.host, ev.port);
      return;
    }
    // the HTTP lookup's answer (found, or why not) says more than a redial's "answers HTTP"
    if (e.resolving && ev.link.answeredHttp) return;
    this.set(e, outcome);
  }

  private async resolve(key: string, e: Entry, host: string, port: number): Promise<void> {
    try {
      const { id, peerPort } = await this.o.peerPortFromHttp!(host, port);
      e.status.nodeId = id;
      this.o.log(`--peers ${e.status.address} is the HTTP port of node ${id}: dialling its peer port ${peerPort}`);
      e.status.dialing = hostPort(host, peerPort);
      this.set(e, { state: "connecting", reason: `peer port ${peerPort}, found through the HTTP port` }, false);
      this.o.redirect(key, peerPort);
    } catch (err) {
      this.set(e, { state: "not-tessera", reason: `it answers HTTP but is not a Tessera node (${(err as Error).message})` });
    }
  }

  private set(e: Entry, o: DialOutcome, log = true): void {
    const s = e.status;
    const changed = s.state !== o.state || (s.reason ?? "") !== o.reason;
    if (s.state !== o.state) s.since = this.now();
    s.state = o.state;
    s.reason = o.reason || null;
    if (!log || o.state === "connected" || o.state === "connecting") return;
    const what = `${o.state}: ${o.reason}`;
    const t = this.now();
    if (!changed && what === e.loggedWhat && t - e.loggedAt < this.repeatMs) return;
    const again = what === e.loggedWhat;
    e.loggedAt = t;
    e.loggedWhat = what;
    this.o.log(`--peers ${s.address}${s.dialing !== s.address ? ` (${s.dialing})` : ""}: ${again ? "still " : ""}${o.state} — ${o.reason}${o.state === "self" ? "" : " (retrying)"}`);
  }
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** GET http://host:port/cluster: the peer port of the Tessera node whose HTTP API is there. */
export async function peerPortFromHttp(host: string, port: number, timeoutMs = 3000): Promise<{ id: string; peerPort: number }> {
  let body: unknown;
  try {
    const res = await fetch(`http://${hostPort(host, port)}/cluster`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`GET /cluster: HTTP ${res.status}`);
    body = await res.json();
  } catch (e) {
    throw new Error((e as Error).message.startsWith("GET") ? (e as Error).message : `GET /cluster: ${(e as Error).message}`);
  }
  const self = (body as { self?: { id?: unknown; peerPort?: unknown } } | null)?.self;
  const peerPort = self?.peerPort;
  if (typeof self?.id !== "string" || !/^[0-9a-f]{16}$/.test(self.id) || typeof peerPort !== "number" || !Number.isInteger(peerPort) || peerPort < 1 || peerPort > 65535) {
    throw new Error("GET /cluster did not describe a node");
  }
  return { id: self.id, peerPort };
}
