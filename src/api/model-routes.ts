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
  const code = /taken/.test(e.message) ? 409 : /^no model|no such file/.test(e.message) ? 404 : 400;
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
