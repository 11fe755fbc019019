import { createHmac } from "node:crypto";
import { networkInterfaces } from "node:os";
import { encode } from "@msgpack/msgpack";
import { Discovery } from "./discovery.js";
import { electMaster, type Member } from "./election.js";
import { clusterKey } from "./handshake.js";
import type { Identity } from "./identity.js";
import type { PeerMessage } from "./messages.js";
import { PeerSet, type Peer } from "./peer-set.js";
import { baseProfile, probeMachine, type ProbeResult } from "./profile.js";
import { Replica } from "./replica.js";
import { peerPortFromHttp, StaticPeers, type StaticPeerStatus } from "./static-peers.js";
import { isNoop, linkKey, mayPropose, MAX_EVENT_BYTES, type ClusterEvent, type ClusterState, type LinkMeasurement, type NodeProfile, type NodeRecord } from "./state.js";

/**
 * Soft state another module keeps in the log for this node: given the replicated state, returns the
 * events that would make it show that module's facts (none when it already does). Called on every
 * heartbeat and after report(); each event must be one mayPropose allows for this node.
 */
export type Reporter = (state: ClusterState, self: string) => ClusterEvent[];

/**
 * The control plane of one node: over its peer links (peer-set.ts) it elects the master from the
 * live members and keeps the replicated state (replica.ts).
 * The master orders events; followers apply them in order, catch up on gaps, and keep re-reporting
 * their own soft state (profile, link measurements) until the state shows it.
 */
export interface ClusterNodeOptions {
  identity: Identity;
  dataDir: string;
  name: string;
  /** Bind address for the peer port. */
  host: string;
  peerPort: number;
  httpPort: number;
  cluster: string;
  secret?: string;
  /** --peers: text is the address as the user wrote it (default host:port). */
  peers: { host: string; port: number; text?: string }[];
  discovery: boolean;
  worker: boolean;
  threads: number;
  device: string;
  memoryLimit?: number;
  /** Time between link measurements to one peer (jittered ±20 %). */
  measureEveryMs: number;
  heartbeatMs: number;
  /** Silence after which a peer is lost. */
  silenceMs: number;
  version: string;
  /** Skip the MatMul/provider probe (unit tests). */
  probe?: boolean;
  log(message: string): void;
}

const GOSSIP_EVERY_TICKS = 5;
/** A command the master has not answered by then fails (the master may have gone). */
const COMMAND_TIMEOUT_MS = 30000;

/** The master's answer to a command: an HTTP-like status and a JSON body. */
export interface CommandReply {
  status: number;
  body: unknown;
}

/** Runs a command on the master: `from` is the node that sent it (this node's id when local). */
export type CommandHandler = (from: string, body: Record<string, unknown>) => Promise<CommandReply>;
const PROFILE_EVERY_MS = 10000;

export class ClusterNode {
  readonly id: string;
  readonly startedAt = Date.now();
  readonly replica = new Replica();
  readonly open: boolean;
  private readonly peers: PeerSet;
  private readonly statics: StaticPeers;
  /** Logged "alone" for the current stretch without peers. */
  private saidAlone = false;
  private readonly key: Buffer;
  private readonly ownLinks = new Map<string, LinkMeasurement>();
  private ownProfile: NodeProfile;
  private probe: ProbeResult | null = null;
  private discovery: Discovery | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private profileAt = 0;
  private isMaster = false;
  private master: string | null = null;
  private syncAskedAt = 0;
  private measuring: Promise<void> = Promise.resolve();
  private readonly reporters = new Set<Reporter>();
  private stopped = false;
  private selfHost = "127.0.0.1";
  private commandHandler: CommandHandler | null = null;
  private commandSeq = 0;
  private readonly commandsOut = new Map<number, { peer: string; done: (r: CommandReply) => void }>();
  peerPort: number;
  httpPort: number;

  constructor(private readonly opts: ClusterNodeOptions) {
    this.id = opts.identity.id;
    this.open = !opts.secret;
    this.key = clusterKey(opts.cluster, opts.secret);
    this.peers = new PeerSet({ identity: opts.identity, cluster: opts.cluster, key: this.key, silenceMs: opts.silenceMs, log: opts.log });
    this.peers.on("up", (p) => this.onUp(p));
    this.peers.on("info", (p, first) => this.onInfo(p, first));
    this.peers.on("message", (p, m) => this.onMessage(p, m));
    this.peers.on("down", (p, reason) => this.onDown(p, reason));
    this.statics = new StaticPeers({ log: opts.log, redirect: (key, port) => this.peers.redirect(key, port), peerPortFromHttp });
    this.peers.on("static-dial", (e) => this.statics.onDial(e));
    this.peerPort = opts.peerPort;
    this.httpPort = opts.httpPort;
    this.ownProfile = baseProfile(opts, null);
  }

  get name(): string {
    return this.opts.name;
  }

  get cluster(): string {
    return this.opts.cluster;
  }

  get masterId(): string | null {
    return this.master;
  }

  /** Ids of peers with an authenticated link that told us who they are. */
  get livePeers(): string[] {
    return this.peers.members().map((p) => p.id);
  }

  /** What became of each --peers address. */
  staticPeers(): StaticPeerStatus[] {
    return this.statics.list();
  }

  /**
   * Discovery is off and no peer is linked, with no --peers or every one of them failing: nothing
   * will bring another node here by itself.
   */
  get alone(): boolean {
    return !this.opts.discovery && this.peers.members().length === 0 && (this.statics.size === 0 || this.statics.allFailed);
  }

  /** True while this node orders the log. */
  get mastering(): boolean {
    return this.isMaster;
  }

  /** The address peers reach this node at (as it advertises itself). */
  get host(): string {
    return this.selfHost;
  }

  /** The bind address of this node's listeners (runners listen on it too). */
  get bindHost(): string {
    return this.opts.host;
  }

  get dataDir(): string {
    return this.opts.dataDir;
  }

  /** Threads per runner process (--threads). */
  get threads(): number {
    return this.opts.threads;
  }

  get device(): string {
    return this.opts.device;
  }

  /**
   * The data-plane key of an instance, 64 hex digits: HMAC of the instance id under the cluster
   * key (itself derived from the cluster secret). Every node of the cluster derives the same one;
   * runners get only this, never the secret.
   */
  dataPlaneKey(instance: string): string {
    return createHmac("sha256", this.key).update(`tessera data plane\0${instance}`).digest("hex");
  }

  /**
   * Puts an event about this node into the replicated log: ordered directly on the master, sent
   * to the master from a follower (which accepts it only if mayPropose allows it for the sender).
   * Returns false when there is no master to send it to; callers re-submit soft state as needed.
   */
  submit(event: ClusterEvent): boolean {
    if (this.isMaster) {
      if (!isNoop(this.replica.state, event)) this.order(event);
      return true;
    }
    const l = this.master ? this.peers.peers.get(this.master) : undefined;
    return l ? l.link.send({ t: "propose", event }) : false;
  }

  /** The master runs commands with `handler` (set it on every node: any node may become master). */
  handleCommands(handler: CommandHandler): void {
    this.commandHandler = handler;
  }

  /**
   * Sends a command to the master and waits for its answer: run here when this node is the master.
   * Answers 503 when there is no master to ask, or it went away before answering.
   */
  command(body: Record<string, unknown>): Promise<CommandReply> {
    if (this.isMaster) return this.runCommand(this.id, body);
    const l = this.master ? this.peers.peers.get(this.master) : undefined;
    if (!l) return Promise.resolve({ status: 503, body: { error: { message: "no master yet: the cluster is electing one" } } });
    const n = ++this.commandSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish({ status: 504, body: { error: { message: `the master did not answer within ${COMMAND_TIMEOUT_MS / 1000} s` } } }), COMMAND_TIMEOUT_MS);
      const finish = (r: CommandReply): void => {
        clearTimeout(timer);
        this.commandsOut.delete(n);
        resolve(r);
      };
      this.commandsOut.set(n, { peer: l.id, done: finish });
      if (!l.link.send({ t: "cmd", n, body })) finish({ status: 503, body: { error: { message: "lost the link to the master" } } });
    });
  }

  private async runCommand(from: string, body: Record<string, unknown>): Promise<CommandReply> {
    if (!this.commandHandler) return { status: 503, body: { error: { message: "this node takes no commands yet" } } };
    try {
      return await this.commandHandler(from, body);
    } catch (e) {
      return { status: 500, body: { error: { message: (e as Error).message } } };
    }
  }

  /** Registers a reporter (see Reporter); returns its removal. */
  addReporter(r: Reporter): () => void {
    this.reporters.add(r);
    return () => this.reporters.delete(r);
  }

  /** Puts changed soft state into the log now rather than at the next heartbeat. */
  report(): void {
    if (!this.stopped) this.reportOwn();
  }

  async listen(): Promise<void> {
    this.peerPort = await this.peers.listen(this.opts.host, this.opts.peerPort);
  }

  /** Starts heartbeats, dialling and discovery; call after listen() and once the HTTP port is known. */
  start(httpPort: number): void {
    this.httpPort = httpPort;
    this.selfHost = advertisedHost(this.opts.host);
    for (const p of this.opts.peers) {
      const key = this.peers.remember(p.host, p.port, null, true);
      if (key) this.statics.add(key, { host: p.host, port: p.port, text: p.text ?? `${p.host}:${p.port}` });
    }
    if (this.opts.discovery) {
      this.discovery = new Discovery({
        id: this.id,
        cluster: this.opts.cluster,
        peerPort: this.peerPort,
        httpPort,
        onPeer: (p) => this.peers.remember(p.host, p.port, p.id, false),
        log: this.opts.log,
      });
    }
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.heartbeatMs);
    if (this.opts.probe !== false) {
      void probeMachine(this.opts.dataDir, this.opts.threads).then((r) => {
        this.probe = r;
        if (!r) this.opts.log("machine probe failed; reporting no MatMul throughput");
        this.refreshProfile();
      });
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([this.peers.stop(), this.discovery?.stop()]);
  }

  // ---- peers ----

  private onUp(peer: Peer): void {
    peer.link.send({ t: "info", name: this.opts.name, startedAt: this.startedAt, httpPort: this.httpPort, peerPort: this.peerPort, version: this.opts.version });
    peer.link.send(this.heartbeat());
    this.scheduleMeasure(peer, 300 + Math.random() * 1200);
  }

  private onInfo(peer: Peer, first: boolean): void {
    if (first) this.opts.log(`peer ${peer.id} (${peer.info!.name}) joined from ${peer.link.remoteAddress}`);
    this.membershipChanged();
    if (first) this.gossip();
  }

  private onDown(peer: Peer, reason: string): void {
    this.ownLinks.delete(peer.id);
    for (const c of [...this.commandsOut.values()]) {
      if (c.peer === peer.id) c.done({ status: 503, body: { error: { message: `the master went away (${reason}) before answering; try again` } } });
    }
    this.opts.log(`peer ${peer.id} (${peer.info?.name ?? "?"}) disconnected: ${reason}`);
    this.membershipChanged();
  }

  // ---- messages ----

  private onMessage(from: Peer, m: PeerMessage): void {
    const peer = from.id;
    switch (m.t) {
      case "peers":
        for (const p of m.peers) this.peers.remember(p.host, p.port, p.id, false);
        return;
      case "hb":
        from.term = m.term;
        if (!this.isMaster && peer === this.master && (m.term !== this.replica.state.term || m.index > this.replica.state.index || this.replica.state.master !== peer)) {
          this.askSync(from);
        }
        return;
      case "propose":
        if (this.isMaster && from.info && mayPropose(peer, m.event, this.replica.state) && eventSize(m.event) <= MAX_EVENT_BYTES && !isNoop(this.replica.state, m.event)) {
          this.order(m.event);
        }
        return;
      case "ev":
        if (this.isMaster || peer !== this.master) return;
        if (this.replica.receive(m.entry) === "gap") this.askSync(from);
        else this.afterSync();
        return;
      case "cmd":
        if (!this.isMaster) return void from.link.send({ t: "cmd-reply", n: m.n, status: 503, body: { error: { message: "not the master (it changed); try again" } } });
        void this.runCommand(peer, m.body as Record<string, unknown>).then((r) => from.link.send({ t: "cmd-reply", n: m.n, status: r.status, body: r.body }));
        return;
      case "cmd-reply": {
        const c = this.commandsOut.get(m.n);
        if (c && c.peer === peer) c.done({ status: m.status, body: m.body });
        return;
      }
      case "sync":
        if (!this.isMaster) return;
        for (const reply of this.replica.answerSync(this.id, m.term, m.master, m.since)) from.link.send(reply);
        return;
      case "entries":
        if (this.isMaster || peer !== this.master || m.term !== this.replica.state.term) return;
        for (const e of m.entries) if (this.replica.receive(e) === "gap") return this.askSync(from);
        this.syncAskedAt = 0;
        this.afterSync();
        return;
      case "snapshot":
        if (this.isMaster || peer !== this.master) return;
        this.replica.reset(m.state, m.log);
        this.syncAskedAt = 0;
        this.afterSync();
        return;
      default:
        return;
    }
  }

  private askSync(peer: Peer): void {
    const now = Date.now();
    if (now - this.syncAskedAt < 500) return;
    this.syncAskedAt = now;
    const s = this.replica.state;
    peer.link.send({ t: "sync", term: s.term, master: s.master, since: s.index });
  }

  private afterSync(): void {
    if (this.replica.state.master === this.master) this.reportOwn();
  }

  private heartbeat(): PeerMessage {
    const s = this.replica.state;
    return { t: "hb", term: s.term, index: s.index, master: this.master };
  }

  // ---- election and ordering ----

  private members(): Member[] {
    const out: Member[] = [{ id: this.id, startedAt: this.startedAt }];
    for (const p of this.peers.members()) out.push({ id: p.id, startedAt: p.info!.startedAt });
    return out;
  }

  private membershipChanged(): void {
    if (this.stopped) return;
    const elected = electMaster(this.members());
    if (elected !== this.master) {
      this.opts.log(elected === this.id ? "elected master" : `master is ${elected}`);
      this.master = elected;
    }
    if (elected === this.id) {
      if (!this.isMaster) this.becomeMaster();
      this.reconcileMembers();
    } else {
      this.isMaster = false;
      const l = elected ? this.peers.peers.get(elected) : undefined;
      const s = this.replica.state;
      if (l && (s.master !== elected || l.term !== s.term)) this.askSync(l);
    }
  }

  private becomeMaster(): void {
    this.isMaster = true;
    let term = this.replica.state.term;
    for (const p of this.peers.peers.values()) term = Math.max(term, p.term);
    this.replica.append({ type: "master-elected", master: this.id, term: term + 1 });
    this.broadcastLast();
  }

  /** Master: membership in the state follows the live links. */
  private reconcileMembers(): void {
    const nodes = this.replica.state.nodes;
    const live = new Map<string, NodeRecord>();
    live.set(this.id, {
      id: this.id,
      name: this.opts.name,
      host: this.selfHost,
      httpPort: this.httpPort,
      peerPort: this.peerPort,
      startedAt: this.startedAt,
      version: this.opts.version,
    });
    for (const { id, info, link } of this.peers.members()) {
      live.set(id, { id, name: info!.name, host: link.remoteAddress, httpPort: info!.httpPort, peerPort: info!.peerPort, startedAt: info!.startedAt, version: info!.version });
    }
    for (const id of Object.keys(nodes)) if (!live.has(id)) this.order({ type: "node-left", id, reason: "lost" });
    for (const [id, rec] of live) {
      const cur = nodes[id];
      if (!cur || cur.startedAt !== rec.startedAt || cur.name !== rec.name || cur.httpPort !== rec.httpPort || cur.peerPort !== rec.peerPort) {
        this.order({ type: "node-joined", node: rec });
      }
    }
    this.reportOwn();
  }

  private order(event: ClusterEvent): void {
    if (!this.isMaster) return;
    this.replica.append(event);
    this.broadcastLast();
  }

  private broadcastLast(): void {
    this.peers.broadcast({ t: "ev", entry: this.replica.log[this.replica.log.length - 1]! });
  }

  /** Puts this node's own soft state into the log wherever the state does not show it yet. */
  private reportOwn(): void {
    const s = this.replica.state;
    if (!s.nodes[this.id] || s.master !== this.master) return;
    const pending: ClusterEvent[] = [];
    if (JSON.stringify(s.nodes[this.id]!.profile) !== JSON.stringify(this.ownProfile)) pending.push({ type: "node-profile", id: this.id, profile: this.ownProfile });
    for (const [peer, m] of this.ownLinks) {
      if (!s.nodes[peer]) continue;
      if (JSON.stringify(s.links[linkKey(this.id, peer)]) !== JSON.stringify(m)) pending.push({ type: "link-measured", link: m });
    }
    for (const r of this.reporters) pending.push(...r(s, this.id));
    for (const e of pending) this.submit(e);
  }

  private tick(): void {
    if (this.stopped) return;
    this.ticks++;
    const hb = this.heartbeat();
    for (const p of this.peers.peers.values()) {
      p.link.send(hb);
      p.prober.beat();
    }
    if (this.ticks % GOSSIP_EVERY_TICKS === 1) this.gossip();
    if (Date.now() - this.profileAt > PROFILE_EVERY_MS) this.refreshProfile();
    this.peers.dialSome();
    this.membershipChanged();
    this.reportOwn();
    this.sayIfAlone();
  }

  private sayIfAlone(): void {
    // Not on the tick inside start(): the node's own start-up lines come first.
    if (this.ticks < 2) return;
    const alone = this.alone;
    if (alone && !this.saidAlone) {
      this.opts.log(
        this.statics.size === 0
          ? "this node is alone: discovery is off (--no-discovery) and no --peers were given"
          : "this node is alone: none of its --peers is reachable and discovery is off (see `tessera status`)",
      );
    }
    this.saidAlone = alone;
  }

  /** Tells every peer which peers this node is linked to, so static peers need one address only. */
  private gossip(): void {
    this.peers.broadcast({ t: "peers", peers: this.peers.addresses() });
  }

  private refreshProfile(): void {
    this.profileAt = Date.now();
    const next = baseProfile(this.opts, this.probe);
    const prev = this.ownProfile;
    // Available memory moves all the time; re-report it only when it moved by 5 % of the total.
    const moved = Math.abs(next.memory.availableBytes - prev.memory.availableBytes) > 0.05 * next.memory.totalBytes;
    if (!moved) next.memory.availableBytes = prev.memory.availableBytes;
    this.ownProfile = next;
    this.reportOwn();
  }

  // ---- link measurements ----

  private scheduleMeasure(peer: Peer, delayMs: number): void {
    peer.measureTimer = setTimeout(() => {
      peer.measureTimer = null;
      // One probe at a time per node, so bulk transfers do not share (and skew) the wire.
      this.measuring = this.measuring.then(() => this.measure(peer));
    }, delayMs);
  }

  private async measure(peer: Peer): Promise<void> {
    const current = () => this.peers.peers.get(peer.id) === peer && !this.stopped;
    if (!current() || peer.link.closed) return;
    try {
      const sample = await peer.prober.measure();
      if (!current()) return;
      this.ownLinks.set(peer.id, { from: this.id, to: peer.id, rttMs: round(sample.rttMs, 3), bandwidthBytesPerSec: Math.round(sample.bandwidthBytesPerSec), measuredAt: Date.now() });
      this.reportOwn();
    } catch (e) {
      if (!peer.link.closed) this.opts.log(`link probe to ${peer.id} failed: ${(e as Error).message}`);
    }
    if (current()) this.scheduleMeasure(peer, this.opts.measureEveryMs * (0.8 + 0.4 * Math.random()));
  }
}

function eventSize(e: ClusterEvent): number {
  return encode(e, { ignoreUndefined: true }).byteLength;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The address others most likely reach this node at: the bind address, else the first external IPv4. */
function advertisedHost(bind: string): string {
  if (bind && bind !== "0.0.0.0" && bind !== "::") return bind;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
