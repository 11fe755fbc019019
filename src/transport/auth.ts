import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Proofs that a data-plane connection comes from a rank of the same instance. Every rank of an
 * instance holds the same 32-byte key (the node derives it from the cluster secret and the instance
 * id; runners never see the secret itself). A group link (handshake.ts) and a liveness link
 * (liveness-thread.ts) each start with a fresh nonce from the listener; the dialer answers with an
 * HMAC over the nonces and what it claims (group, rank), and the group listener answers with its own
 * proof. A dialer without the key is refused before any tensor is read. Groups joined without a key
 * use OPEN_KEY, so the protocol is the same everywhere.
 */
export const OPEN_KEY = createHash("sha256").update("tessera data plane: no key").digest();
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;

/** The key as bytes: given as 64 hex digits (how it travels to runner processes) or bytes; OPEN_KEY when absent. */
export function dataKey(key: string | Uint8Array | undefined): Buffer {
  if (key === undefined) return OPEN_KEY;
  const b = typeof key === "string" ? Buffer.from(key, "hex") : Buffer.from(key);
  if (b.length !== 32) throw new Error(`a data-plane key is 32 bytes, got ${b.length}`);
  return b;
}

export function nonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function mac(key: Buffer, ...parts: (string | Uint8Array)[]): Buffer {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(typeof p === "string" ? Buffer.from(`${p}\0`) : p);
  return h.digest();
}

/** The dialer's proof: it knows the key, for this group, as this rank of this size, on this connection. */
export function helloProof(key: Buffer, groupId: string, rank: number, size: number, listenerNonce: Uint8Array, dialerNonce: Uint8Array): Buffer {
  return mac(key, "tessera data hello", groupId, String(rank), String(size), listenerNonce, dialerNonce);
}

/** The listener's answer: it knows the key too, for the same group and connection. */
export function welcomeProof(key: Buffer, groupId: string, rank: number, dialerRank: number, listenerNonce: Uint8Array, dialerNonce: Uint8Array): Buffer {
  return mac(key, "tessera data welcome", groupId, String(rank), String(dialerRank), listenerNonce, dialerNonce);
}

/** A liveness dialer's proof (hex), for its id in this group, on the connection that sent `nonceHex`. */
export function livenessProof(key: Buffer, groupId: string, id: number, nonceHex: string): string {
  return mac(key, "tessera liveness", groupId, String(id), nonceHex).toString("hex");
}

export function sameProof(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
