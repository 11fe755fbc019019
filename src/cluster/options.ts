import { hostname } from "node:os";
import { TesseraError } from "../errors.js";

/** `tessera start` values that are more than a number: peers, devices, cluster names, the node name. */

/** Ports a node listens on unless told otherwise: HTTP, and peers on the next one. */
export const DEFAULT_HTTP_PORT = 52480;
export const DEFAULT_PEER_PORT = DEFAULT_HTTP_PORT + 1;

export interface StaticPeerAddress {
  host: string;
  port: number;
  /** As the user wrote it (shown in logs and `tessera status`). */
  text: string;
}

/**
 * `--peers` entries, comma-separated: `host` (the default peer port), `host:port`, `[v6addr]:port`
 * or `[v6addr]`. The port may be the peer's HTTP port: the node finds its peer port from it.
 */
export function parsePeers(text: string): StaticPeerAddress[] {
  const out: StaticPeerAddress[] = [];
  const parts = text.split(",").map((s) => s.trim());
  if (parts.every((p) => p === "")) throw new TesseraError("--peers is empty (give host, host:port or [ipv6]:port entries, separated by commas)");
  for (const part of parts.filter(Boolean)) {
    const m = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+))(?::(\d+))?$/.exec(part);
    const port = m?.[3] === undefined ? DEFAULT_PEER_PORT : Number(m[3]);
    if (!m || !(port > 0 && port < 65536)) {
      throw new TesseraError(`--peers wants host, host:port or [ipv6]:port entries separated by commas (port 1–65535), got '${part}'`);
    }
    out.push({ host: (m[1] ?? m[2])!, port, text: part });
  }
  return out;
}

export const DEVICES = ["auto", "cpu", "webgpu", "cuda"] as const;

/** Why a cluster name is not allowed, or null when it is. */
export function clusterNameProblem(c: string): string | null {
  return /^[A-Za-z0-9._-]{1,64}$/.test(c) ? null : "1–64 letters, digits, '.', '_' or '-'";
}

export function defaultNodeName(): string {
  return hostname() || "tessera";
}
