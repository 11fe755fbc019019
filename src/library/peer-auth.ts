import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Authentication of model-byte requests between nodes (GET /peer/models/...). The bytes travel over
 * plain HTTP between nodes, not over the control plane's peer links (bulk transfers there would hold
 * up heartbeats), so each request proves knowledge of the cluster key (cluster/handshake.ts's
 * clusterKey of the cluster name and secret) itself:
 *   x-tessera-peer: <node id>.<unix ms>.<hex HMAC-SHA256(key, "tessera-peer-get\0" + path + "\0" + node id + "\0" + unix ms)>
 * A request is accepted when the MAC checks out, the time is within MAX_SKEW_MS of the server's
 * clock, and the node id is a member of the cluster state. In open LAN mode the key comes from an
 * empty secret, like the peer links: any tessera node on the network may read.
 */
export const PEER_HEADER = "x-tessera-peer";
export const MAX_SKEW_MS = 120_000;

function mac(key: Buffer, path: string, node: string, at: number): Buffer {
  return createHmac("sha256", key).update(`tessera-peer-get\0${path}\0${node}\0${at}`).digest();
}

export function signPeerRequest(key: Buffer, node: string, path: string, now = Date.now()): Record<string, string> {
  return { [PEER_HEADER]: `${node}.${now}.${mac(key, path, node, now).toString("hex")}` };
}

/** The node id that signed the request, or an error text. */
export function checkPeerRequest(key: Buffer, header: string | string[] | undefined, path: string, isMember: (id: string) => boolean, now = Date.now()): { node: string } | { error: string } {
  if (typeof header !== "string") return { error: `missing ${PEER_HEADER} header` };
  const m = /^([0-9a-f]{16})\.(\d{1,16})\.([0-9a-f]{64})$/.exec(header);
  if (!m) return { error: `malformed ${PEER_HEADER} header` };
  const [, node, atText, hex] = m;
  const at = Number(atText);
  if (Math.abs(now - at) > MAX_SKEW_MS) return { error: "request time too far from this node's clock" };
  if (!timingSafeEqual(mac(key, path, node!, at), Buffer.from(hex!, "hex"))) return { error: "bad signature (wrong cluster secret?)" };
  if (!isMember(node!)) return { error: `node ${node} is not a member of this cluster` };
  return { node: node! };
}
