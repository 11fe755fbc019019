import { timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { InferenceError } from "../../inference/errors.js";
import { sendError, styleOfPath } from "../errors.js";
import { INTERNAL_PREFIX, NODE_TOKEN_HEADER } from "../internal-routes.js";
import { PEER_HEADER } from "../../library/peer-auth.js";

/**
 * API keys. With a key set, every route but the public ones needs it, in any of the three APIs'
 * header styles: `Authorization: Bearer KEY` (OpenAI, Ollama) or `x-api-key: KEY` (Anthropic).
 * `loopbackExempt` (secret mode with a generated key): callers on this machine need none.
 */
export interface AuthOptions {
  key?: string;
  loopbackExempt?: boolean;
  /** Secret mode: the token other nodes of the cluster show on the internal routes (internal-routes.ts). */
  nodeToken?: string;
}

/** Paths that never need a key: the health check and the dashboard's static assets. */
const PUBLIC_PATHS = new Set(["/healthz", "/favicon.ico"]);
const PUBLIC_PREFIXES = ["/dashboard/", "/assets/"];

export function isPublicPath(url: string): boolean {
  const path = url.split("?")[0]!;
  return PUBLIC_PATHS.has(path) || path === "/dashboard" || PUBLIC_PREFIXES.some((p) => path.startsWith(p));
}

/**
 * The dashboard's page at GET /: a browser's request (Accept: text/html) is routed to the page,
 * never to Ollama's "Ollama is running" (dashboard-routes.ts), so it needs no key either; other
 * clients' GET / stays behind the key.
 */
export function isDashboardPage(req: Pick<FastifyRequest, "method" | "url" | "headers">): boolean {
  return (req.method === "GET" || req.method === "HEAD") && req.url.split("?")[0] === "/" && /\btext\/html\b/.test(String(req.headers.accept ?? ""));
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** The key a request presents, from either header style. */
export function presentedKey(headers: FastifyRequest["headers"]): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1]!.trim();
  }
  const x = headers["x-api-key"];
  return typeof x === "string" ? x.trim() : undefined;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A fastify onRequest hook enforcing the key; answers 401 in the shape of the API the path belongs to. */
export function authHook(opts: AuthOptions) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = opts.key;
    if (!key || isPublicPath(req.url) || isDashboardPage(req)) return;
    if (opts.loopbackExempt && isLoopback(req.socket.remoteAddress)) return;
    // Model bytes for peers (library/peer-files.ts) check their own signed header against the
    // cluster key: a pull from a peer must not need the API key as well.
    if (req.url.startsWith("/peer/") && typeof req.headers[PEER_HEADER] === "string") return;
    const token = req.headers[NODE_TOKEN_HEADER];
    if (opts.nodeToken && typeof token === "string" && req.url.startsWith(`${INTERNAL_PREFIX}/`) && same(token, opts.nodeToken)) return;
    const given = presentedKey(req.headers);
    if (given !== undefined && same(given, key)) return;
    const message = given === undefined ? "this node needs an API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'" : "the API key is not valid";
    await sendError(reply, styleOfPath(req.url), new InferenceError("unauthorized", message));
  };
}
