import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "../errors.js";

/**
 * A node's identity: an Ed25519 key pair kept in <data-dir>/identity, so the node id survives
 * restarts (no ghost nodes). File layout (JSON, mode 0600):
 *   { "version": 1, "publicKey": base64 SPKI DER, "privateKey": base64 PKCS#8 DER }
 */
export interface Identity {
  /** First 16 hex digits of sha256(raw 32-byte public key). */
  readonly id: string;
  /** Raw 32-byte Ed25519 public key, as sent in the handshake. */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function nodeIdFromPublicKey(raw: Uint8Array): string {
  return createHash("sha256").update(raw).digest("hex").slice(0, 16);
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new TesseraError(`an Ed25519 public key has 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: "der", type: "spki" });
}

export function verifySignature(rawPublicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, message, publicKeyFromRaw(rawPublicKey), signature);
  } catch {
    return false;
  }
}

function fromKeys(publicKey: KeyObject, privateKey: KeyObject): Identity {
  const spki = publicKey.export({ format: "der", type: "spki" });
  const raw = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    id: nodeIdFromPublicKey(raw),
    publicKey: raw,
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}

/** A fresh identity kept in memory only (tests, tools). */
export function ephemeralIdentity(): Identity {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return fromKeys(publicKey, privateKey);
}

/** Loads <dir>/identity, creating it (0600) on first start. */
export function loadOrCreateIdentity(dir: string): Identity {
  const file = join(dir, "identity");
  let text: string | undefined;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new TesseraError(`cannot read node identity: ${(e as Error).message}`, file);
  }
  if (text === undefined) {
    mkdirSync(dir, { recursive: true });
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const body = {
      version: 1,
      publicKey: publicKey.export({ format: "der", type: "spki" }).toString("base64"),
      privateKey: privateKey.export({ format: "der", type: "pkcs8" }).toString("base64"),
    };
    writeFileSync(file, JSON.stringify(body) + "\n", { mode: 0o600, flag: "wx" });
    chmodSync(file, 0o600);
    return fromKeys(publicKey, privateKey);
  }
  try {
    const body = JSON.parse(text) as { version?: unknown; publicKey?: unknown; privateKey?: unknown };
    if (body.version !== 1 || typeof body.publicKey !== "string" || typeof body.privateKey !== "string") throw new Error("unexpected layout");
    const privateKey = createPrivateKey({ key: Buffer.from(body.privateKey, "base64"), format: "der", type: "pkcs8" });
    const publicKey = createPublicKey(privateKey);
    if (publicKey.export({ format: "der", type: "spki" }).toString("base64") !== body.publicKey) throw new Error("public key does not match private key");
    return fromKeys(publicKey, privateKey);
  } catch (e) {
    throw new TesseraError(`not a valid node identity (${(e as Error).message}); move it away to create a new one`, file);
  }
}
