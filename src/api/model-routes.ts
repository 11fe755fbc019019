import type { FastifyInstance, FastifyReply } from "fastify";
import type { ClusterNode } from "../cluster/node.js";
import { isTesseraError } from "../errors.js";
import { clusterDownloads, clusterModels, resolveModel } from "../library/cluster-models.js";
import type { ModelLibrary } from "../library/library.js";
import { CATALOG } from "../models/catalog/catalog.js";
import { variantNames } from "../models/catalog/reference.js";
import type { LocalModel } from "../models/registry/store.js";
import type { RouteModule } from "./server.js";

/**
 * Model endpoints:
 *   GET    /models         { models: ClusterModel[], downloads: ClusterDownload[] } (library/cluster-models.ts):
 *                          every model any node holds, one entry per digest, with its holders
 *   GET    /models/catalog the built-in catalog (models/catalog/catalog.ts) with each entry's variant names
 *   GET    /models/:ref    one of them by id, name or digest (prefix), plus `local` when this node holds it
 *   POST   /models         { path, name? }: registers a model file or folder on this node → 201 LocalModelView
 *   DELETE /models/:ref    removes this node's copy (files of a downloaded one; the registration of an added one)
 *   POST   /models/pull    { model, name?, quant?, format? }: starts a pull on this node → 202 { id, status }
 *                          (model: catalog name, hf.co/ORG/REPO[:TAG], URL, or a model another node holds)
 *   GET    /downloads      this node's pulls (DownloadStatus[]); the cluster's are in GET /models
 *   GET    /downloads/:id  one of them
 *   DELETE /downloads/:id  cancels it; ?discard=1 also deletes its partial files (else a later pull resumes)
 *   POST   /models/shard   { model, layers: [a, b], tp?: { rank, size } }: fetches one rank's part of a
 *                          GGUF model onto this node (library/shard.ts) → { path, fetchedBytes, whole }
 * Errors: { error } with 400 (bad input), 404 (no such model), 409 (name taken).
 */
export interface LocalModelView {
  id: string;
  digest: string;
  path: string;
  origin: LocalModel["origin"];
  complete: boolean;
  meta: LocalModel["meta"];
}

export function localView(m: LocalModel): LocalModelView {
  return { id: m.id, digest: m.digest, path: m.path, origin: m.origin, complete: m.complete, meta: m.meta };
}

function fail(reply: FastifyReply, e: unknown) {
  if (!isTesseraError(e)) throw e;
  const code = /taken/.test(e.message) ? 409 : /^no model|no such file|^no node in the cluster holds/.test(e.message) ? 404 : 400;
  return reply.code(code).send({ error: e.message });
}

export function modelRoutes(node: ClusterNode, library: ModelLibrary): RouteModule {
  return (app: FastifyInstance) => {
    app.get("/models", async () => ({ models: clusterModels(node.replica.state), downloads: clusterDownloads(node.replica.state) }));

    app.get("/models/catalog", async () => CATALOG.map((e) => ({ ...e, variants: variantNames(e) })));

    app.get("/models/:ref", async (req, reply) => {
      const ref = (req.params as { ref: string }).ref;
      const local = library.store.find(ref);
      const model = resolveModel(node.replica.state, ref) ?? (local ? resolveModel(node.replica.state, local.digest) : undefined);
      if (!model && !local) return reply.code(404).send({ error: `no model '${ref}' in the cluster` });
      return { ...(model ?? {}), ...(local ? { local: localView(local) } : {}) };
    });

    app.post("/models", async (req, reply) => {
      const body = req.body as { path?: unknown; name?: unknown } | undefined;
      if (typeof body?.path !== "string" || body.path === "") return reply.code(400).send({ error: "body must be JSON { path, name? } with the model file or folder on this node" });
      if (body.name !== undefined && typeof body.name !== "string") return reply.code(400).send({ error: "name must be a string" });
      try {
        const m = await library.add(body.path, body.name);
        return reply.code(201).send(localView(m));
      } catch (e) {
        return fail(reply, e);
      }
    });

    app.post("/models/pull", async (req, reply) => {
      const b = req.body as { model?: unknown; name?: unknown; quant?: unknown; format?: unknown } | undefined;
      if (typeof b?.model !== "string" || !b.model) return reply.code(400).send({ error: "body must be JSON { model, name?, quant?, format? }" });
      if (b.format !== undefined && b.format !== "gguf" && b.format !== "mlx") return reply.code(400).send({ error: "format must be gguf or mlx" });
      for (const k of ["name", "quant"] as const) if (b[k] !== undefined && typeof b[k] !== "string") return reply.code(400).send({ error: `${k} must be a string` });
      try {
        const { id, done } = await library.pulls.pull({ model: b.model, name: b.name as string | undefined, quant: b.quant as string | undefined, format: b.format as "gguf" | "mlx" | undefined });
        done.catch(() => {});
        return reply.code(202).send({ id, status: library.downloads.get(id) });
      } catch (e) {
        return fail(reply, e);
      }
    });

    app.get("/downloads", async () => [...library.downloads.values()]);

    app.get("/downloads/:id", async (req, reply) => {
      const d = library.downloads.get((req.params as { id: string }).id);
      return d ?? reply.code(404).send({ error: "no such download on this node" });
    });

    app.delete("/downloads/:id", async (req, reply) => {
      const discard = ["1", "true"].includes(String((req.query as Record<string, unknown>).discard ?? ""));
      const ok = await library.pulls.cancel((req.params as { id: string }).id, discard);
      return ok ? { cancelled: true, discarded: discard } : reply.code(404).send({ error: "no such download on this node" });
    });

    app.post("/models/shard", async (req, reply) => {
      const b = req.body as { model?: unknown; layers?: unknown; tp?: { rank?: unknown; size?: unknown } } | undefined;
      const layers = b?.layers;
      if (typeof b?.model !== "string" || !Array.isArray(layers) || layers.length !== 2 || !layers.every((x) => Number.isInteger(x) && x >= 0) || layers[0] >= layers[1]) {
        return reply.code(400).send({ error: "body must be JSON { model, layers: [a, b], tp?: { rank, size } }" });
      }
      const tp = b.tp;
      if (tp !== undefined && !(Number.isInteger(tp.rank) && Number.isInteger(tp.size) && (tp.rank as number) >= 0 && (tp.rank as number) < (tp.size as number))) {
        return reply.code(400).send({ error: "tp must be { rank, size } with 0 ≤ rank < size" });
      }
      try {
        return await library.fetchShard({ model: b.model, layers: layers as [number, number], ...(tp ? { tp: { rank: tp.rank as number, size: tp.size as number } } : {}) });
      } catch (e) {
        return fail(reply, e);
      }
    });

    app.delete("/models/:ref", async (req, reply) => {
      const ref = (req.params as { ref: string }).ref;
      try {
        const m = await library.remove(ref);
        return { removed: m.id, digest: m.digest };
      } catch (e) {
        if (isTesseraError(e) && /^no model/.test(e.message)) {
          const elsewhere = resolveModel(node.replica.state, ref);
          const where = elsewhere ? ` (held by ${elsewhere.holders.map((h) => h.nodeName).join(", ")}: delete it there)` : "";
          return reply.code(404).send({ error: `this node holds no model '${ref}'${where}` });
        }
        return fail(reply, e);
      }
    });
  };
}
