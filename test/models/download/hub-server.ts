import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local stand-in for the Hugging Face hub, speaking the subset the downloader uses (see
 * src/models/download/hub.ts): model info with LFS sha256 and git blob ids, resolve URLs that
 * redirect LFS files to a "CDN" path, Range requests (206, and 416 past the end), gated repos.
 * It counts what it serves and can misbehave on purpose: cut a response after N bytes, flip a
 * byte once, ignore Range, stall.
 */
export interface RepoFile {
  name: string;
  data: Uint8Array;
  /** Served through the CDN redirect with an LFS sha256 (else inline, with a git blob id). */
  lfs?: boolean;
}

export interface Repo {
  id: string;
  files: RepoFile[];
  gated?: boolean;
  commit?: string;
}

export interface Faults {
  /** Cut the next response of this file after this many body bytes. */
  cutAfter?: Map<string, number>;
  /** Flip the byte at this offset in the next response that carries it. */
  corruptOnce?: Map<string, number>;
  /** Answer Range requests with the whole file (200). */
  ignoreRange?: boolean;
  /** Send body bytes at most this fast (bytes per second). */
  bytesPerSec?: number;
}

export interface Served {
  /** Body bytes sent per file name. */
  bytes: Map<string, number>;
  /** Every request: method, path, range header, whether it carried Authorization. */
  requests: { path: string; range?: string; auth: boolean }[];
}

export class HubServer {
  private server: Server | null = null;
  /** The "CDN": another origin (port), as the real hub's LFS redirects go to another host. */
  private cdn: Server | null = null;
  cdnPort = 0;
  readonly served: Served = { bytes: new Map(), requests: [] };
  readonly faults: Faults = {};
  port = 0;

  constructor(
    private readonly repos: Repo[],
    readonly token = "hf_test_token",
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  totalServed(): number {
    let n = 0;
    for (const v of this.served.bytes.values()) n += v;
    return n;
  }

  resetCounts(): void {
    this.served.bytes.clear();
    this.served.requests.length = 0;
  }

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.port = (this.server!.address() as AddressInfo).port;
    this.cdn = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.cdn!.listen(0, "127.0.0.1", resolve));
    this.cdnPort = (this.cdn!.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of [this.server, this.cdn]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    this.server = null;
    this.cdn = null;
  }

  private repo(org: string, name: string): Repo | undefined {
    return this.repos.find((r) => r.id === `${org}/${name}`);
  }

  private authorized(req: IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${this.token}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, "http://x");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    this.served.requests.push({ path: url.pathname, range: req.headers.range, auth: !!req.headers.authorization });
    // /api/models/ORG/REPO/revision/REV
    if (parts[0] === "api" && parts[1] === "models" && parts[4] === "revision") {
      const repo = this.repo(parts[2]!, parts[3]!);
      if (!repo) return error(res, 401, "RepoNotFound");
      if (parts[5] !== "main" && parts[5] !== commitOf(repo)) return error(res, 404, "RevisionNotFound");
      const body = {
        id: repo.id,
        sha: commitOf(repo),
        gated: repo.gated ? "manual" : false,
        siblings: repo.files.map((f) => ({
          rfilename: f.name,
          size: f.data.length,
          blobId: gitBlobSha1(f.data),
          ...(f.lfs ? { lfs: { sha256: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
        })),
      };
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify(body));
    }
    // /ORG/REPO/resolve/REV/FILE...
    if (parts[2] === "resolve") {
      const repo = this.repo(parts[0]!, parts[1]!);
      if (!repo) return error(res, 401, "RepoNotFound");
      if (repo.gated && !this.authorized(req)) return error(res, 401, "GatedRepo");
      if (parts[3] !== commitOf(repo) && parts[3] !== "main") return error(res, 404, "RevisionNotFound");
      const file = repo.files.find((f) => f.name === parts.slice(4).join("/"));
      if (!file) return error(res, 404, "EntryNotFound");
      if (file.lfs) {
        res.writeHead(302, { location: `http://127.0.0.1:${this.cdnPort}/cdn/${sha256(file.data)}?name=${encodeURIComponent(file.name)}&signature=x` });
        return void res.end();
      }
      return this.serve(req, res, file);
    }
    if (parts[0] === "cdn") {
      const name = url.searchParams.get("name")!;
      const file = this.repos.flatMap((r) => r.files).find((f) => f.name === name && sha256(f.data) === parts[1]);
      if (!file) return error(res, 404, "EntryNotFound");
      return this.serve(req, res, file);
    }
    error(res, 404, "EntryNotFound");
  }

  private async serve(req: IncomingMessage, res: ServerResponse, file: RepoFile): Promise<void> {
    const size = file.data.length;
    let start = 0;
    let end = size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (m && !this.faults.ignoreRange) {
      start = Number(m[1]);
      end = m[2] ? Math.min(size, Number(m[2]) + 1) : size;
      if (start >= size) {
        res.writeHead(416, { "content-range": `bytes */${size}` });
        return void res.end();
      }
      res.writeHead(206, { "content-range": `bytes ${start}-${end - 1}/${size}`, "content-length": String(end - start), "accept-ranges": "bytes" });
    } else {
      res.writeHead(200, { "content-length": String(size), "accept-ranges": "bytes" });
    }
    let body = Buffer.from(file.data.subarray(start, end));
    const corrupt = this.faults.corruptOnce?.get(file.name);
    if (corrupt !== undefined && corrupt >= start && corrupt < end) {
      body = Buffer.from(body);
      body[corrupt - start]! ^= 0xff;
      this.faults.corruptOnce!.delete(file.name);
    }
    const cut = this.faults.cutAfter?.get(file.name);
    if (cut !== undefined) this.faults.cutAfter!.delete(file.name);
    const limit = cut !== undefined ? Math.min(cut, body.length) : body.length;
    const chunk = 64 * 1024;
    for (let at = 0; at < limit; at += chunk) {
      const part = body.subarray(at, Math.min(limit, at + chunk));
      this.served.bytes.set(file.name, (this.served.bytes.get(file.name) ?? 0) + part.length);
      // when the response is to be cut, each chunk is flushed first, so the client gets exactly `cut` bytes
      if (cut !== undefined) await new Promise((r) => res.write(part, r));
      else if (!res.write(part)) await new Promise((r) => res.once("drain", r));
      if (this.faults.bytesPerSec) await new Promise((r) => setTimeout(r, (1000 * part.length) / this.faults.bytesPerSec!));
      if (res.destroyed) return;
    }
    if (cut !== undefined) return void res.destroy();
    res.end();
  }
}

function error(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { "x-error-code": code, "content-type": "application/json" });
  res.end(JSON.stringify({ error: code }));
}

function commitOf(repo: Repo): string {
  return repo.commit ?? "0123456789abcdef0123456789abcdef01234567";
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** git's blob id: sha1 of "blob <size>\0" + content (what the hub reports for non-LFS files). */
export function gitBlobSha1(data: Uint8Array): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}
