import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { TesseraError } from "../../errors.js";

/**
 * One GET with redirects followed by hand, so that credentials go only where they belong: headers
 * marked `auth` (Authorization, peer signatures) are sent to the first URL's origin only, never to
 * the CDN a hub redirects to (signed URLs need none). Range and the rest go everywhere.
 * Resolves with the final response (any status); the caller reads or discards its body.
 */
export interface GetOptions {
  headers?: Record<string, string>;
  /** Headers sent only to the origin of the URL asked for. */
  auth?: Record<string, string>;
  signal?: AbortSignal;
  /** Per-request socket inactivity limit (default 30 s). */
  timeoutMs?: number;
  maxRedirects?: number;
}

export interface GetResult {
  res: IncomingMessage;
  /** The URL that answered (after redirects). */
  url: string;
}

const USER_AGENT = "tessera";

export async function httpGet(url: string, o: GetOptions = {}): Promise<GetResult> {
  const origin = new URL(url).origin;
  let current = url;
  for (let hop = 0; hop <= (o.maxRedirects ?? 10); hop++) {
    const u = new URL(current);
    const headers: Record<string, string> = { "user-agent": USER_AGENT, ...o.headers, ...(u.origin === origin ? o.auth : {}) };
    const res = await once(u, headers, o);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, u).toString();
      continue;
    }
    return { res, url: current };
  }
  throw new TesseraError(`more than ${o.maxRedirects ?? 10} redirects`, url);
}

function once(u: URL, headers: Record<string, string>, o: GetOptions): Promise<IncomingMessage> {
  if (o.signal?.aborted) return Promise.reject(abortError(o.signal));
  const request = u.protocol === "https:" ? httpsRequest : u.protocol === "http:" ? httpRequest : undefined;
  if (!request) return Promise.reject(new TesseraError(`unsupported URL scheme ${u.protocol}`, u.toString()));
  return new Promise((resolve, reject) => {
    const req = request(u, { method: "GET", headers, signal: o.signal });
    req.setTimeout(o.timeoutMs ?? 30000, () => req.destroy(new Error(`no answer for ${Math.round((o.timeoutMs ?? 30000) / 1000)} s`)));
    req.once("response", (res) => {
      // the same inactivity limit while the body streams
      res.socket?.setTimeout(o.timeoutMs ?? 30000, () => res.destroy(new Error("the transfer stalled")));
      resolve(res);
    });
    req.once("error", (e) => reject(o.signal?.aborted ? abortError(o.signal) : e));
    req.end();
  });
}

export function abortError(signal: AbortSignal): Error {
  // An abort() without a reason gives a DOMException "AbortError"; callers get one error type for all.
  const reason = signal.reason as unknown;
  if (reason instanceof Error && reason.name !== "AbortError") return reason;
  return new AbortedError(typeof reason === "string" ? reason : "cancelled");
}

export class AbortedError extends Error {
  override readonly name: string = "AbortedError";
}

/** Stopped by a node shutting down: the pull stays "downloading" and resumes on the next start. */
export class Interrupted extends AbortedError {}

/** Reads a small body (JSON, an error text) with a size cap. */
export async function readBody(res: IncomingMessage, max = 16 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > max) {
      res.destroy();
      throw new Error(`response larger than ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** "bytes 100-199/1000" → { start: 100, end: 200, total: 1000 }; "bytes *\/1000" → { total: 1000 }. */
export function parseContentRange(v: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return undefined;
  return {
    ...(m[1] !== undefined ? { start: Number(m[1]), end: Number(m[2]) + 1 } : {}),
    ...(m[3] !== "*" ? { total: Number(m[3]) } : {}),
  };
}
