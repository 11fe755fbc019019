import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { ClusterState } from "../cluster/state.js";
import { linkKey } from "../cluster/state.js";
import type { ByteSource } from "../models/download/transfer.js";
import type { ModelStore } from "../models/registry/store.js";
import { checkPeerRequest, signPeerRequest } from "./peer-auth.js";

/**
 * Peer-to-peer model bytes. Serving: GET /peer/models/<digest>/<file> on the node's HTTP port, for
 * authenticated members only (peer-auth.ts), with Range (one range; 206, 416 past the end). Only
 * complete local copies are served. Fetching: `peerSources` lists the nodes that hold a file, best
 * first, as ByteSources the downloader tries before the hub.
 *
 * Order of peers: measured bandwidth of this node's link to them (cluster links, highest first),
 * then peers on a private (LAN) address before others, then node id. So a LAN peer comes before a
 * peer over a VPN, and every peer before the internet.
 */
export interface PeerServeStats {
  /** Body bytes served to peers, per file path. */
  bytes: Map<string, number>;
  requests: number;
}

export function peerFilePath(digest: string, file: string): string {
  return `/peer/models/${digest}/${encodeURIComponent(file)}`;
}

export function peerFileRoutes(store: ModelStore, key: Buffer, state: () => ClusterState, stats: PeerServeStats) {
  return (app: FastifyInstance) => {
    app.get("/peer/models/:digest/:file", (req, reply) => {
      const { digest, file } = req.params as { digest: string; file: string };
      const path = req.url.split("?")[0]!;
      const auth = checkPeerRequest(key, req.headers["x-tessera-peer"], path, (id) => id in state().nodes);
      if ("error" in auth) return reply.code(403).send({ error: auth.error });
      const m = store.models.find((x) => x.digest === digest && x.complete);
      const f = m?.files.find((x) => x.name === file);
      if (!m || !f) return reply.code(404).send({ error: `this node holds no complete copy of ${digest.slice(0, 12)} with a file '${file}'` });
      const full = join(m.dir, f.name);
      reply.hijack();
      void serveFile(full, req.headers.range, reply.raw, stats).catch(() => reply.raw.destroy());
    });
  };
}

async function serveFile(path: string, range: string | undefined, res: import("node:http").ServerResponse, stats: PeerServeStats): Promise<void> {
  stats.requests++;
  const size = (await stat(path)).size;
  let start = 0;
  let end = size;
  if (range) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (!m) {
      res.writeHead(400, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ error: `unsupported Range '${range}' (one range, bytes=a-b)` }));
    }
    start = Number(m[1]);
    end = m[2] ? Math.min(size, Number(m[2]) + 1) : size;
    if (start >= size || end <= start) {
      res.writeHead(416, { "content-range": `bytes */${size}` });
      return void res.end();
    }
    res.writeHead(206, { "content-range": `bytes ${start}-${end - 1}/${size}`, "content-length": String(end - start), "accept-ranges": "bytes" });
  } else {
    res.writeHead(200, { "content-length": String(size), "accept-ranges": "bytes" });
  }
  const stream = createReadStream(path, { start, end: end - 1, highWaterMark: 1 << 20 });
  stream.on("data", (c) => stats.bytes.set(path, (stats.bytes.get(path) ?? 0) + (c as Buffer).length));
  stream.pipe(res);
  await new Promise<void>((resolve, reject) => {
    stream.once("error", reject);
    res.once("close", resolve);
  });
}

export interface WantedFile {
  name: string;
  size: number;
  sha256?: string;
  /** The model's digest, when known (shards, instances). */
  digest?: string;
}

/** Nodes (other than `self`) holding a complete copy of the file, best first, as download sources. */
export function peerSources(state: ClusterState, self: string, want: WantedFile, key: Buffer): ByteSource[] {
  const found: { node: string; digest: string; bandwidth: number; lan: boolean }[] = [];
  for (const [node, held] of Object.entries(state.models)) {
    if (node === self || !state.nodes[node]) continue;
    for (const m of Object.values(held)) {
      if (!m.complete) continue;
      if (want.digest && m.digest !== want.digest) continue;
      const f = m.files.find((x) => x.name === want.name && x.bytes === want.size);
      if (!f) continue;
      if (!want.digest && want.sha256 && f.sha256 && f.sha256 !== want.sha256) continue;
      found.push({ node, digest: m.digest, bandwidth: state.links[linkKey(self, node)]?.bandwidthBytesPerSec ?? 0, lan: isPrivate(state.nodes[node]!.host) });
      break;
    }
  }
  found.sort((a, b) => b.bandwidth - a.bandwidth || Number(b.lan) - Number(a.lan) || (a.node < b.node ? -1 : 1));
  return found.map(({ node, digest }) => {
    const n = state.nodes[node]!;
    const path = peerFilePath(digest, want.name);
    const host = n.host.includes(":") ? `[${n.host}]` : n.host;
    return { label: `peer ${node}`, url: `http://${host}:${n.httpPort}${path}`, auth: () => signPeerRequest(key, self, path) };
  });
}

/** Loopback, RFC 1918, link-local and IPv6 unique-local addresses. */
export function isPrivate(host: string): boolean {
  return /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(host) || host === "::1" || /^f[cd][0-9a-f]{2}:/i.test(host) || /^fe80:/i.test(host);
}
