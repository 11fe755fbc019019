import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RouteModule } from "./server.js";

/**
 * The web dashboard (dashboard/, built by `npm run build:dashboard` into dist/dashboard): its
 * index.html at GET / for browsers, at /dashboard and /dashboard/* (any unknown path there falls
 * back to index.html), and its hashed assets at /assets/*. Every one of these is public
 * (http/auth.ts): the page asks for the API key itself when the API answers 401.
 *
 * GET / is shared with the Ollama API, whose clients expect "Ollama is running" there: only a
 * request that accepts text/html gets the page (a fastify route constraint on the Accept header),
 * so everything else still reaches the Ollama route.
 */
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** The page's own script and styles only; API calls go to this node. Inline styles: Svelte's style attributes. */
const PAGE_POLICY = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

interface StaticFile {
  body: Buffer;
  type: string;
}

/** dist/dashboard of the package this module belongs to (from dist/src/api or, under tsx, src/api). */
export function defaultDashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, "dist", "dashboard");
}

/** Every file of the built dashboard, read once: the bundle is small and never changes while a node runs. */
function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(`/${relative(root, full).split(sep).join("/")}`, { body: readFileSync(full), type: CONTENT_TYPES[extname(name)] ?? "application/octet-stream" });
    }
  };
  if (existsSync(join(root, "index.html"))) walk(root);
  return files;
}

const HTML_STRATEGY = "acceptsHtml";

export function dashboardRoutes(opts: { dir?: string } = {}): RouteModule {
  return (app: FastifyInstance) => {
    const root = opts.dir ?? defaultDashboardDir();
    let files: Map<string, StaticFile> | undefined;
    const get = (path: string) => (files ??= loadFiles(root)).get(path);

    const page = (reply: FastifyReply) => {
      const index = get("/index.html");
      if (!index) return reply.code(503).type("text/plain; charset=utf-8").send("The dashboard is not built: run `npm run build:dashboard` (npm install does it).");
      return reply.header("cache-control", "no-cache").header("content-security-policy", PAGE_POLICY).header("x-content-type-options", "nosniff").type(index.type).send(index.body);
    };
    const asset = (path: string, reply: FastifyReply) => {
      const f = get(path);
      if (!f) return undefined;
      // Vite puts a content hash in every asset name: a changed file gets a new name.
      const cache = path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";
      return reply.header("cache-control", cache).header("x-content-type-options", "nosniff").type(f.type).send(f.body);
    };

    if (!app.hasConstraintStrategy(HTML_STRATEGY)) {
      app.addConstraintStrategy({
        name: HTML_STRATEGY,
        storage() {
          const handlers = new Map<string, unknown>();
          return { get: (k: string) => (handlers.get(k) ?? null) as never, set: (k: string, v: unknown) => void handlers.set(k, v) };
        },
        deriveConstraint: (req: { headers: Record<string, string | string[] | undefined> }) => (/\btext\/html\b/.test(String(req.headers.accept ?? "")) ? "yes" : undefined),
        // Without text/html the request goes to the unconstrained GET / (Ollama's), if any.
        mustMatchWhenDerived: false,
      });
    }
    app.route({ method: "GET", url: "/", constraints: { [HTML_STRATEGY]: "yes" }, handler: (_req, reply) => page(reply) });

    app.get("/assets/*", (req: FastifyRequest, reply) => asset(req.url.split("?")[0]!, reply) ?? reply.code(404).type("text/plain; charset=utf-8").send("no such asset"));

    const underDashboard = (req: FastifyRequest, reply: FastifyReply) => {
      const path = req.url.split("?")[0]!.replace(/^\/dashboard/, "") || "/";
      return (path !== "/" && path !== "/index.html" ? asset(path, reply) : undefined) ?? page(reply);
    };
    app.get("/dashboard", underDashboard);
    app.get("/dashboard/*", underDashboard);
  };
}
