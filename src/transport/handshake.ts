import net from "node:net";
import { performance } from "node:perf_hooks";
import { TesseraError } from "../errors.js";
import { FrameKind, PROTOCOL_MAGIC, readU32, writeU32 } from "./frame.js";
import { Link } from "./link.js";
import { NONCE_BYTES, PROOF_BYTES, helloProof, nonce, sameProof, welcomeProof } from "./auth.js";
import type { GroupListener } from "./listener.js";

export interface PeerAddress {
  host: string;
  port: number;
}

export interface FormOptions {
  rank: number;
  size: number;
  peers: readonly PeerAddress[];
  groupId: string;
  /** The instance key every rank holds (auth.ts). */
  key: Buffer;
  timeoutMs: number;
  maxPayloadBytes: number;
  /** Filled in, by peer rank, as links come up. */
  links: (Link | undefined)[];
  labelOf(r: number): string;
  /** Takes over a link once its peer is known (sets its handlers). */
  established(link: Link): void;
}

const DIAL_RETRY_MS = 50;
/** Frames an unproven connection may send: a HELLO with a group id, nothing like a tensor. */
const HANDSHAKE_MAX_BYTES = 4096;

/**
 * Connects one rank to all others, one TCP link per pair: this rank dials every lower rank (retrying
 * until the deadline, as peers start in any order) and accepts every higher one. The listener speaks
 * first, CHALLENGE with a fresh nonce; the dialer answers HELLO (group id, rank, size, its nonce and
 * a proof of the instance key over both nonces); the listener checks the proof before anything else
 * and answers WELCOME with its own proof, or REFUSE with a reason. Any other frame before that is a
 * protocol violation: no tensor is read from an unproven connection. `done` resolves when every link
 * is up; `abort` ends the attempt early (e.g. a peer reported a failure).
 */
export function formLinks(listener: GroupListener, o: FormOptions): { done: Promise<void>; abort(e: TesseraError): void } {
  let abort: (e: TesseraError) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    const deadline = performance.now() + o.timeoutMs;
    let settled = false;
    const finish = (e?: TesseraError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) reject(e);
      else resolve();
    };
    abort = (e) => finish(new TesseraError(`the group failed while forming: ${e.message}`, `rank ${o.rank}`));
    const missing = (): number[] => [...Array(o.size).keys()].filter((r) => r !== o.rank && !o.links[r]);
    const established = (link: Link): void => {
      o.links[link.peerRank] = link;
      o.established(link);
      if (missing().length === 0) finish();
    };
    const timer = setTimeout(() => {
      const ranks = missing().map((r) => o.labelOf(r));
      finish(new TesseraError(`timed out after ${o.timeoutMs} ms waiting for ${ranks.join(", ")} to join group '${o.groupId}'`, `rank ${o.rank}`));
    }, o.timeoutMs);
    if (missing().length === 0) return finish();
    listener.take((socket) => accept(socket, o, established));
    for (let r = 0; r < o.rank; r++) dial(r, o, deadline, established, finish, () => settled);
  });
  return { done, abort: (e) => abort(e) };
}

function accept(socket: net.Socket, o: FormOptions, established: (l: Link) => void): void {
  const from = `connection from ${socket.remoteAddress}:${socket.remotePort}`;
  const link = new Link(socket, from, HANDSHAKE_MAX_BYTES);
  const mine = nonce();
  link.onControl = (kind, payload) => {
    if (kind !== FrameKind.HELLO) return link.fail(new TesseraError(`sent frame kind ${kind} before HELLO`, from));
    const hello = decodeHello(payload);
    const refuse = (why: string): void => {
      link.sendControl(FrameKind.REFUSE, Buffer.from(why));
      link.close("refused");
    };
    if (!hello) return refuse("not a Tessera data-plane HELLO");
    if (!sameProof(hello.proof, helloProof(o.key, hello.groupId, hello.rank, hello.size, mine, hello.nonce))) {
      return refuse("authentication failed: no proof of this instance's key");
    }
    if (hello.groupId !== o.groupId) return refuse(`group '${hello.groupId}' ≠ this rank's group '${o.groupId}'`);
    if (hello.size !== o.size) return refuse(`group size ${hello.size} ≠ this rank's group size ${o.size}`);
    if (hello.rank <= o.rank || hello.rank >= o.size) return refuse(`rank ${hello.rank} may not dial rank ${o.rank}`);
    if (o.links[hello.rank]) return refuse(`rank ${hello.rank} is already connected`);
    link.peerRank = hello.rank;
    link.label = o.labelOf(hello.rank);
    link.setMaxPayload(o.maxPayloadBytes);
    link.sendControl(FrameKind.WELCOME, encodeWelcome(o.rank, o.size, welcomeProof(o.key, o.groupId, o.rank, hello.rank, mine, hello.nonce)));
    established(link);
  };
  link.sendControl(FrameKind.CHALLENGE, encodeChallenge(mine));
}

function dial(
  r: number,
  o: FormOptions,
  deadline: number,
  established: (l: Link) => void,
  finish: (e?: TesseraError) => void,
  isSettled: () => boolean,
): void {
  const peer = o.peers[r]!;
  const label = o.labelOf(r);
  const retry = (why: string): void => {
    if (isSettled()) return;
    if (performance.now() + DIAL_RETRY_MS > deadline) return finish(new TesseraError(`could not connect: ${why}`, label));
    setTimeout(() => dial(r, o, deadline, established, finish, isSettled), DIAL_RETRY_MS);
  };
  const socket = net.connect({ host: peer.host, port: peer.port, noDelay: true });
  const onError = (e: NodeJS.ErrnoException): void => retry(e.code ?? e.message);
  socket.once("error", onError);
  socket.once("connect", () => {
    socket.off("error", onError);
    if (isSettled()) return void socket.destroy();
    const link = new Link(socket, label, HANDSHAKE_MAX_BYTES);
    let welcomed = false;
    const mine = nonce();
    let theirs: Uint8Array | undefined;
    // closed before WELCOME: the port may belong to a relay whose target is not up yet
    link.onLost = (e) => {
      if (!welcomed) retry(e.message);
    };
    link.onControl = (kind, payload) => {
      if (kind === FrameKind.REFUSE) {
        finish(new TesseraError(`refused this rank: ${Buffer.from(payload).toString()}`, label));
        return link.fail(new TesseraError("refused"));
      }
      if (!theirs) {
        const c = kind === FrameKind.CHALLENGE ? decodeChallenge(payload) : undefined;
        if (!c) {
          finish(new TesseraError("answered with a bad handshake (is this the right address?)", label));
          return link.fail(new TesseraError("bad CHALLENGE"));
        }
        theirs = c;
        return link.sendControl(FrameKind.HELLO, encodeHello(o.rank, o.size, o.groupId, mine, helloProof(o.key, o.groupId, o.rank, o.size, theirs, mine)));
      }
      const w = kind === FrameKind.WELCOME ? decodeWelcome(payload) : undefined;
      if (!w || w.rank !== r || w.size !== o.size) {
        finish(new TesseraError("answered with a bad handshake (is this the right address?)", label));
        return link.fail(new TesseraError("bad WELCOME"));
      }
      if (!sameProof(w.proof, welcomeProof(o.key, o.groupId, r, o.rank, theirs, mine))) {
        finish(new TesseraError("answered without proof of this instance's key", label));
        return link.fail(new TesseraError("bad WELCOME proof"));
      }
      welcomed = true;
      link.peerRank = r;
      link.setMaxPayload(o.maxPayloadBytes);
      established(link);
    };
  });
}

function encodeChallenge(n: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + NONCE_BYTES);
  writeU32(out, 0, PROTOCOL_MAGIC);
  out.set(n, 4);
  return out;
}

function decodeChallenge(p: Uint8Array): Uint8Array | undefined {
  if (p.length !== 4 + NONCE_BYTES || readU32(p, 0) !== PROTOCOL_MAGIC) return undefined;
  return p.slice(4);
}

function encodeHello(rank: number, size: number, groupId: string, n: Uint8Array, proof: Uint8Array): Uint8Array {
  const id = Buffer.from(groupId);
  const out = new Uint8Array(12 + NONCE_BYTES + PROOF_BYTES + id.length);
  writeU32(out, 0, PROTOCOL_MAGIC);
  writeU32(out, 4, rank);
  writeU32(out, 8, size);
  out.set(n, 12);
  out.set(proof, 12 + NONCE_BYTES);
  out.set(id, 12 + NONCE_BYTES + PROOF_BYTES);
  return out;
}

function decodeHello(p: Uint8Array): { rank: number; size: number; groupId: string; nonce: Uint8Array; proof: Uint8Array } | undefined {
  const head = 12 + NONCE_BYTES + PROOF_BYTES;
  if (p.length < head || readU32(p, 0) !== PROTOCOL_MAGIC) return undefined;
  return {
    rank: readU32(p, 4),
    size: readU32(p, 8),
    nonce: p.slice(12, 12 + NONCE_BYTES),
    proof: p.slice(12 + NONCE_BYTES, head),
    groupId: Buffer.from(p.subarray(head)).toString(),
  };
}

function encodeWelcome(rank: number, size: number, proof: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + PROOF_BYTES);
  writeU32(out, 0, PROTOCOL_MAGIC);
  writeU32(out, 4, rank);
  writeU32(out, 8, size);
  out.set(proof, 12);
  return out;
}

function decodeWelcome(p: Uint8Array): { rank: number; size: number; proof: Uint8Array } | undefined {
  if (p.length !== 12 + PROOF_BYTES || readU32(p, 0) !== PROTOCOL_MAGIC) return undefined;
  return { rank: readU32(p, 4), size: readU32(p, 8), proof: p.slice(12) };
}
