import Fastify, { type FastifyInstance } from "fastify";
import { TesseraError } from "../errors.js";
import { InferenceError } from "../inference/errors.js";
import { authHook, type AuthOptions } from "./http/auth.js";
import { DEFAULT_BODY_LIMIT } from "./http/body.js";
import { sendError, styleOfPath } from "./errors.js";

/**
 * The node's HTTP server. Each area contributes a RouteModule (cluster endpoints, metrics, the
 * model APIs, and later the dashboard); the server wires them up, checks API keys, answers unknown
 * routes in the shape of the API their path belongs to, and listens.
 */
export type RouteModule = (app: FastifyInstance) => void | Promise<void>;

export interface ApiServer {
  app: FastifyInstance;
  port: number;
  close(): Promise<void>;
}

export interface ApiServerOptions {
  host: string;
  port: number;
  routes: RouteModule[];
  auth?: AuthOptions;
  /** Largest request body in bytes (default 8 MiB); larger ones get 413. */
  bodyLimit?: number;
  /** Called for every answered request (route pattern, or "unmatched"). */
  onResponse?: (route: string, method: string, status: number) => void;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT });
  if (opts.onResponse) {
    const report = opts.onResponse;
    // On the raw response: streamed (hijacked) replies never reach fastify's onResponse hook.
    app.addHook("onRequest", (req, reply, done) => {
      reply.raw.once("close", () => report(req.routeOptions.url ?? "unmatched", req.method, reply.raw.statusCode));
      done();
    });
  }
  if (opts.auth?.key) app.addHook("onRequest", authHook(opts.auth));
  app.setNotFoundHandler((req, reply) => sendError(reply, styleOfPath(req.url), new InferenceError("not_found", `no route ${req.method} ${req.url.split("?")[0]}`)));
  for (const r of opts.routes) await app.register(async (scope) => r(scope));
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EADDRINUSE" ? "the port is in use (another node? pick one with --port)" : (e as Error).message;
    throw new TesseraError(`cannot listen for HTTP: ${why}`, `${opts.host}:${opts.port}`);
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  return { app, port, close: () => app.close() };
}
