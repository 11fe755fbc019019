import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { checkAuth, checkHello, makeAuth, makeHello, type Hello, type Role } from "./handshake.js";
import type { Identity } from "./identity.js";
import { encodeBulkFrame, encodeFrame, FrameDecoder } from "./frames.js";
import { isPeerMessage, type PeerMessage } from "./messages.js";
import { TokenBucket } from "./rate-limit.js";

/**
 * One TCP connection to a peer: framing, the handshake of handshake.ts, limits, liveness.
 * Emits "up" once both sides are authenticated, "message" for each valid PeerMessage, and
 * "closed" (reason) exactly once. Any violation — bad handshake, malformed, oversized or
 * unexpected frame, flooding, a peer that stops reading, silence — closes the link with a reason.
 */
export const LIMITS = {
  preAuthFrameBytes: 4 * 1024,
  frameBytes: 8 * 1024 * 1024,
  handshakeMs: 5000,
  /** Messages per second a peer may send (burst: 2 s worth). */
  messagesPerSec: 2000,
  /** Bytes per second a peer may send (burst: 2 s worth); a bandwidth probe is 4 MiB. */
  bytesPerSec: 64 * 1024 * 1024,
  /** Unsent bytes queued for a peer that does not read. */
  maxQueuedBytes: 32 * 1024 * 1024,
};

export interface PeerLinkOptions {
  socket: Socket;
  role: Role;
  identity: Identity;
  cluster: string;
  key: Buffer;
  /** For a dialled link: the id we expect (from discovery or gossip); a different id is refused. */
  expectedId?: string;
  /** Silence after which the peer counts as lost. */
  silenceMs: number;
}

export class PeerLink extends EventEmitter<{ up: []; message: [PeerMessage]; closed: [string] }> {
  readonly role: Role;
  /** The peer's IP address (a dialled socket knows it only once connected). */
  remoteAddress: string;
  peerId: string | null = null;
  /** Id of the node that dialled: decides which of two duplicate links survives. */
  initiatorId: string | null = null;
  authenticated = false;
  closed = false;
  lastHeard = performance.now();
  /** For a link that never came up, why (a dialler reports it): the socket's error code, if any. */
  errorCode: string | undefined;
  /** Bytes arrived before the peer's hello (something answered). */
  gotData = false;
  /** What answered speaks HTTP: the address is a node's HTTP port, or not a node at all. */
  answeredHttp = false;

  private readonly socket: Socket;
  private readonly decoder = new FrameDecoder(LIMITS.preAuthFrameBytes);
  private readonly messages = new TokenBucket(LIMITS.messagesPerSec, LIMITS.messagesPerSec * 2);
  private readonly bytes = new TokenBucket(LIMITS.bytesPerSec, LIMITS.bytesPerSec * 2);
  private readonly mine: Hello;
  private theirs: Hello | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: PeerLinkOptions) {
    super();
    this.role = opts.role;
    this.socket = opts.socket;
    this.remoteAddress = normalizeAddress(opts.socket.remoteAddress ?? "");
    this.mine = makeHello(opts.identity);
    this.socket.setNoDelay(true);
    this.socket.once("connect", () => (this.remoteAddress = normalizeAddress(this.socket.remoteAddress ?? "")));
    this.socket.on("data", (d: Buffer) => this.onData(d));
    this.socket.on("error", (e) => {
      this.errorCode ??= (e as NodeJS.ErrnoException).code;
      this.close(`socket error: ${e.message}`, false);
    });
    this.socket.on("close", () => this.close("connection closed", false));
    const started = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      if (!this.authenticated && now - started > LIMITS.handshakeMs) this.close("handshake timed out");
      else if (this.authenticated && now - this.lastHeard > opts.silenceMs) this.close(`silent for ${Math.round(now - this.lastHeard)} ms`);
    }, 250);
    if (this.role === "initiator") this.write(this.mine);
  }

  send(message: PeerMessage): boolean {
    if (this.closed || !this.authenticated) return false;
    return this.write(message);
  }

  /** Bytes queued in the kernel-side buffer of this socket (for pacing bulk probes). */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  close(reason: string, sayBye = true): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (sayBye && this.authenticated && !this.socket.destroyed) {
      this.socket.end(encodeFrame({ t: "bye", reason }));
      setTimeout(() => this.socket.destroy(), 200).unref();
    } else {
      this.socket.destroy();
    }
    this.emit("closed", reason);
  }

  private write(message: unknown): boolean {
    if (this.socket.writableLength > LIMITS.maxQueuedBytes) {
      this.close("peer is not reading (send queue full)");
      return false;
    }
    const m = message as PeerMessage;
    if (m.t === "bulk") {
      for (const part of encodeBulkFrame(m.n, m.data)) this.socket.write(part);
    } else {
      this.socket.write(encodeFrame(message));
    }
    return true;
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    this.lastHeard = performance.now();
    if (!this.gotData && !this.theirs) {
      this.gotData = true;
      // Our hello made an HTTP server answer "HTTP/1.1 400": no peer protocol here.
      if (data.subarray(0, 5).toString("latin1") === "HTTP/") {
        this.answeredHttp = true;
        return this.close("it answers HTTP, not the peer protocol");
      }
    }
    if (!this.bytes.take(data.length)) return this.close("flooding (bytes per second over the limit)");
    let frames: unknown[];
    try {
      frames = this.decoder.push(data);
    } catch (e) {
      return this.close((e as Error).message);
    }
    for (const f of frames) {
      if (this.closed) return;
      if (!this.messages.take()) return this.close("flooding (messages per second over the limit)");
      if (!this.authenticated) this.onHandshake(f);
      else if (isPeerMessage(f)) this.emit("message", f);
      else return this.close(`invalid message '${describe(f)}'`);
    }
  }

  private onHandshake(f: unknown): void {
    const { identity, cluster, key, expectedId } = this.opts;
    if (!this.theirs) {
      const err = checkHello(f, identity.id);
      if (err) return this.close(`handshake refused: ${err}`);
      const hello = f as Hello;
      if (expectedId && hello.id !== expectedId) return this.close(`handshake refused: expected node ${expectedId}, found ${hello.id}`);
      this.theirs = hello;
      this.peerId = hello.id;
      if (this.role === "responder") this.write(this.mine);
      else this.write(makeAuth(key, cluster, "initiator", identity, this.mine, hello));
      return;
    }
    const peerRole: Role = this.role === "initiator" ? "responder" : "initiator";
    const err = checkAuth(f, key, cluster, peerRole, this.mine, this.theirs);
    if (err) return this.close(`authentication failed: ${err}`);
    if (this.role === "responder") this.write(makeAuth(key, cluster, "responder", identity, this.mine, this.theirs));
    this.authenticated = true;
    this.initiatorId = this.role === "initiator" ? identity.id : this.theirs.id;
    this.decoder.maxFrameBytes = LIMITS.frameBytes;
    this.lastHeard = performance.now();
    this.emit("up");
  }
}

function describe(f: unknown): string {
  const t = typeof f === "object" && f !== null ? (f as Record<string, unknown>).t : undefined;
  return typeof t === "string" ? t.slice(0, 32) : typeof f;
}

export function normalizeAddress(a: string): string {
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}
