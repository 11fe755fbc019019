import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Identity } from "./identity.js";
import { nodeIdFromPublicKey, verifySignature } from "./identity.js";

/**
 * Mutual authentication of a peer link. Order (initiator = the side that dialled):
 *   initiator → hello {v, id, pub, nonce}
 *   responder → hello {v, id, pub, nonce}
 *   initiator → auth  {proof, sig}     proof = HMAC(clusterKey, transcript(initiator)), sig = Ed25519(transcript)
 *   responder → auth  {proof, sig}     only after the initiator's proof checked out
 * The transcript binds the cluster name, the role, both ids and both fresh nonces, so a proof cannot
 * be replayed on another connection, and the signature proves the sender owns the id it claims.
 * The responder proves nothing to a dialler that has not proved itself first, so a stranger
 * learns only the responder's id and public key.
 * Open LAN mode (no secret) uses an empty secret: open nodes accept each other, and a node with a
 * secret refuses them.
 */
/** 2: instances (instance-state.ts), models and downloads (model-events.ts) in the replicated state; a v1 node would drop those events as invalid. */
export const PROTOCOL_VERSION = 2;

export type Role = "initiator" | "responder";

export interface Hello {
  t: "hello";
  v: number;
  id: string;
  pub: Uint8Array;
  nonce: Uint8Array;
}

export interface Auth {
  t: "auth";
  proof: Uint8Array;
  sig: Uint8Array;
}

export function clusterKey(cluster: string, secret: string | undefined): Buffer {
  return createHmac("sha256", secret ?? "").update(`tessera cluster key\0${cluster}`).digest();
}

export function makeHello(identity: Identity): Hello {
  return { t: "hello", v: PROTOCOL_VERSION, id: identity.id, pub: identity.publicKey, nonce: new Uint8Array(randomBytes(32)) };
}

const isBytes = (x: unknown, n: number): x is Uint8Array => x instanceof Uint8Array && x.length === n;

/** Checks a peer's hello: shape, version, and that its id is the hash of its public key. Returns an error text or null. */
export function checkHello(x: unknown, selfId: string): string | null {
  if (typeof x !== "object" || x === null) return "hello is not an object";
  const h = x as Record<string, unknown>;
  if (h.t !== "hello") return `expected hello, got '${String(h.t).slice(0, 32)}'`;
  if (h.v !== PROTOCOL_VERSION) return `protocol version ${String(h.v)} (this node speaks ${PROTOCOL_VERSION})`;
  if (typeof h.id !== "string" || !isBytes(h.pub, 32) || !isBytes(h.nonce, 32)) return "malformed hello";
  if (nodeIdFromPublicKey(h.pub) !== h.id) return "node id does not match its public key";
  if (h.id === selfId) return "connected to itself";
  return null;
}

function transcript(cluster: string, role: Role, senderId: string, receiverId: string, senderNonce: Uint8Array, receiverNonce: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(`tessera-auth-v${PROTOCOL_VERSION}\0${cluster}\0${role}\0${senderId}\0${receiverId}\0`),
    senderNonce,
    receiverNonce,
  ]);
}

export function makeAuth(key: Buffer, cluster: string, role: Role, identity: Identity, mine: Hello, theirs: Hello): Auth {
  const t = transcript(cluster, role, identity.id, theirs.id, mine.nonce, theirs.nonce);
  return { t: "auth", proof: new Uint8Array(createHmac("sha256", key).update(t).digest()), sig: identity.sign(t) };
}

/** Verifies the peer's auth message against what it must have signed. */
export function checkAuth(x: unknown, key: Buffer, cluster: string, peerRole: Role, mine: Hello, theirs: Hello): string | null {
  if (typeof x !== "object" || x === null) return "auth is not an object";
  const a = x as Record<string, unknown>;
  if (a.t !== "auth") return `expected auth, got '${String(a.t).slice(0, 32)}'`;
  if (!isBytes(a.proof, 32) || !isBytes(a.sig, 64)) return "malformed auth";
  const t = transcript(cluster, peerRole, theirs.id, mine.id, theirs.nonce, mine.nonce);
  const expected = createHmac("sha256", key).update(t).digest();
  if (!timingSafeEqual(expected, a.proof)) return "wrong cluster secret or cluster name";
  if (!verifySignature(theirs.pub, t, a.sig)) return "bad signature";
  return null;
}
