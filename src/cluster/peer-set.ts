import { EventEmitter } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { keepConnection } from "./election.js";
import type { Identity } from "./identity.js";
import { LinkProber } from "./link-probe.js";
import type { PeerAddress, PeerMessage } from "./messages.js";
import { PeerLink } from "./peer-link.js";

/**
 * The authenticated links of one node, at most one per peer: accepts connections, keeps dialling
 * the addresses it knows (static --peers, discovery, gossip) with backoff, and settles duplicate
 * links. Emits "up" when a peer's link is authenticated, "info" when the peer said who it is,
 * "message" for everything else but link probes (answered here), and "down" when a link is gone.
 */
export interface PeerInfo {
  name: string;
  startedAt: number;
  httpPort: number;
  peerPort: number;
  version: string;
}

export interface Peer {
  id: string;
  link: PeerLink;
  upAt: number;
  /** Null until the peer's info message; only peers with info are members. */
  info: PeerInfo | null;
  prober: LinkProber;
  measureTimer: NodeJS.Timeout | null;
  /** The term the peer's last heartbeat carried. */
  term: number;
}

export interface PeerSetOptions {
  identity: Identity;
  cluster: string;
  key: Buffer;
  silenceMs: number;
  log(message: string): void;
}

/** An address to keep dialling. */
interface Dialable {
  /** Its key in the dialables map (static peers: the address as first given). */
  key: string;
  host: string;
  port: number;
  id: string | null;
  static: boolean;
  since: number;
  nextDial: number;
  backoffMs: number;
  dialing: boolean;
}

const DUPLICATE_GRACE_MS = 2000;
const MAX_BACKOFF_MS = 4000;
const CONNECT_TIMEOUT_MS = 2000;
const MAX_PENDING = 64;
/** A learnt peer is dialled by the smaller id first; the other side waits this long before trying too. */
const LEARNT_DIAL_DELAY_MS = 3000;

/** A dial of a static peer (--peers) that ended: up with the peer's id, or failed with the link that says why. */
export type StaticDialEvent = { key: string; host: string; port: number } & ({ up: true; id: string } | { up: false; link: PeerLink; reason: string });

export class PeerSet extends EventEmitter<{
  up: [Peer];
  info: [Peer, boolean];
  message: [Peer, PeerMessage];
  down: [Peer, string];
  "static-dial": [StaticDialEvent];
}> {
  readonly peers = new Map<string, Peer>();
  private readonly pending = new Set<PeerLink>();
  private readonly dialables = new Map<string, Dialable>();
  private server: Server | null = null;
  private stopped = false;
  private readonly id: string;

  constructor(private readonly opts: PeerSetOptions) {
    super();
    this.id = opts.identity.id;
  }

  /** Peers that told us who they are. */
  members(): Peer[] {
    return [...this.peers.values()].filter((p) => p.info);
  }

  /** Where this node's members listen, for gossip. */
  addresses(): PeerAddress[] {
    return this.members().map((p) => ({ id: p.id, host: p.link.remoteAddress, port: p.info!.peerPort }));
  }

  broadcast(m: PeerMessage): void {
    for (const p of this.members()) p.link.send(m);
  }

  async listen(host: string, port: number): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (e) => this.opts.log(`peer server: ${e.message}`));
    return (server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.peers.values()) {
      if (p.measureTimer) clearTimeout(p.measureTimer);
      p.link.close("shutting down");
    }
    for (const l of this.pending) l.close("shutting down");
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Adds an address to keep dialling until a link to it is up (static: from --peers). Returns its key. */
  remember(host: string, port: number, id: string | null, isStatic: boolean): string | undefined {
    if (id === this.id) return undefined;
    const key = id && !isStatic ? `id:${id}` : `${host}:${port}`;
    const d = this.dialables.get(key);
    if (d) {
      if (d.host !== host || d.port !== port) Object.assign(d, { host, port, nextDial: 0 });
      return key;
    }
    this.dialables.set(key, { key, host, port, id, static: isStatic, since: Date.now(), nextDial: 0, backoffMs: 1000, dialing: false });
    this.dialSome();
    return key;
  }

  /** Dials a remembered static peer at another port from now on (its HTTP port was given). */
  redirect(key: string, port: number): void {
    const d = this.dialables.get(key);
    if (d && d.port !== port) Object.assign(d, { port, nextDial: 0, backoffMs: 1000 });
  }

  dialSome(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const d of this.dialables.values()) {
      if (d.dialing || now < d.nextDial) continue;
      if (d.id && this.peers.has(d.id)) continue;
      if (d.id && !d.static && d.id < this.id && now - d.since < LEARNT_DIAL_DELAY_MS) continue;
      this.dial(d);
    }
  }

  private accept(socket: Socket): void {
    // Strangers get a few seconds each to authenticate; cap how many may be trying at once.
    if (this.stopped || this.pending.size >= MAX_PENDING) return void socket.destroy();
    const { identity, cluster, key, silenceMs } = this.opts;
    this.track(new PeerLink({ socket, role: "responder", identity, cluster, key, silenceMs }), null);
  }

  private dial(d: Dialable): void {
    d.dialing = true;
    const socket = connect({ host: d.host, port: d.port });
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error("connect timed out")));
    socket.once("connect", () => socket.setTimeout(0));
    const { identity, cluster, key, silenceMs } = this.opts;
    this.track(new PeerLink({ socket, role: "initiator", identity, cluster, key, expectedId: d.id ?? undefined, silenceMs }), d);
  }

  private track(link: PeerLink, d: Dialable | null): void {
    this.pending.add(link);
    const where = d ? `${d.host}:${d.port}` : link.remoteAddress;
    link.once("up", () => {
      this.pending.delete(link);
      if (d) Object.assign(d, { dialing: false, backoffMs: 1000, id: link.peerId });
      if (d?.static) this.emit("static-dial", { key: d.key, host: d.host, port: d.port, up: true, id: link.peerId! });
      this.register(link);
    });
    link.once("closed", (reason) => {
      this.pending.delete(link);
      if (d) {
        d.dialing = false;
        d.nextDial = Date.now() + d.backoffMs;
        d.backoffMs = Math.min(d.backoffMs * 2, MAX_BACKOFF_MS);
        if (reason.includes("connected to itself")) this.forget(d);
      }
      // A static peer's failures are reported (rate-limited) by whoever listens; a learnt address
      // that is down is retried quietly; a refusal is worth a line.
      if (d?.static && !link.authenticated) {
        this.emit("static-dial", { key: d.key, host: d.host, port: d.port, up: false, link, reason });
        return;
      }
      if (!link.authenticated && (!d || link.peerId)) {
        const why = d && reason === "connection closed" ? "refused by the peer (wrong --secret or --cluster?)" : reason;
        this.opts.log(`peer ${link.peerId ?? "?"} at ${where}: ${why}`);
      }
    });
  }

  private forget(d: Dialable): void {
    for (const [k, v] of this.dialables) if (v === d) this.dialables.delete(k);
  }

  private register(link: PeerLink): void {
    const id = link.peerId!;
    if (this.stopped) return link.close("shutting down");
    const existing = this.peers.get(id);
    if (existing) {
      // A long-established link that the peer dials again is stale (the peer restarted or lost
      // it); two fresh ones are a dial race, settled the same way on both sides.
      const stale = Date.now() - existing.upAt > DUPLICATE_GRACE_MS;
      const keepNew = stale || keepConnection({ initiator: existing.link.initiatorId! }, { initiator: link.initiatorId! }) === "b";
      if (!keepNew) return link.close("duplicate link");
      this.drop(existing);
    }
    const peer: Peer = { id, link, upAt: Date.now(), info: existing?.info ?? null, prober: new LinkProber((m) => link.send(m)), measureTimer: null, term: 0 };
    this.peers.set(id, peer);
    existing?.link.close("replaced by a newer link");
    link.on("message", (m) => {
      if (this.peers.get(id) !== peer || peer.prober.handle(m)) return;
      if (m.t === "info") {
        const first = !peer.info;
        peer.info = { name: m.name, startedAt: m.startedAt, httpPort: m.httpPort, peerPort: m.peerPort, version: m.version };
        this.emit("info", peer, first);
      } else if (m.t === "bye") {
        link.close(`peer left: ${m.reason}`, false);
      } else {
        this.emit("message", peer, m);
      }
    });
    link.once("closed", (reason) => {
      if (this.peers.get(id) !== peer) return;
      this.drop(peer);
      this.peers.delete(id);
      this.emit("down", peer, reason);
    });
    this.emit("up", peer);
  }

  private drop(peer: Peer): void {
    peer.prober.cancel();
    if (peer.measureTimer) clearTimeout(peer.measureTimer);
    peer.measureTimer = null;
  }
}
