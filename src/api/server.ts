import Fastify, { type FastifyInstance } from "fastify";
import { TesseraError } from "../errors.js";

/**
 * The node's HTTP server. Each area contributes a RouteModule (cluster endpoints, metrics, and
 * later the model APIs and the dashboard); the server only wires them up and listens.
 */
export type RouteModule = (app: FastifyInstance) => void | Promise<void>;

export interface ApiServer {
  app: FastifyInstance;
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(opts: { host: string; port: number; routes: RouteModule[] }): Promise<ApiServer> {
  const app = Fastify({ logger: false, forceCloseConnections: true });
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
