import type { FastifyInstance } from "fastify";
import type { InstanceManager } from "../instances/manager.js";
import { RequestError } from "../instances/requests.js";
import { isTesseraError } from "../errors.js";
import { resolveRequest, type InferenceRequest } from "../inference/request.js";
import { InferenceError } from "../inference/errors.js";
import type { RouteModule } from "./server.js";

/**
 * Instances (shapes in src/instances/views.ts):
 *   POST   /instances            {model, strategy?, nodes?, minNodes?, ctx?, parallel?, keep?} → 201 instance | 4xx {error:{message, plans?}}
 *   GET    /instances            every instance in the cluster
 *   GET    /instances/previews   ?model=&ctx=&strategy=&nodes=&minNodes= → {model, ctx, plans} (all plans, best first, with reasons)
 *   GET    /instances/:id        one instance | 404
 *   DELETE /instances/:id        → 200 {id, deleted} | 404
 *   POST   /instances/:id/generate  a canonical InferenceRequest (inference/request.ts), answered on the instance's home node
 *                                (elsewhere 409 naming the home); not streamed — the model APIs are the serving layer's
 * Any node answers; creates and deletes are forwarded to the master.
 */
export function instanceRoutes(instances: InstanceManager): RouteModule {
  return (app: FastifyInstance) => {
    app.post("/instances", async (req, reply) => {
      const a = await instances.create(req.body);
      return reply.code(a.status).send(a.body);
    });

    app.get("/instances", async () => instances.list());

    app.get("/instances/previews", async (req, reply) => {
      const a = await instances.previews(req.query);
      return reply.code(a.status).send(a.body);
    });

    app.get("/instances/:id", async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const v = instances.get(id);
      return v ? v : reply.code(404).send({ error: { message: `no instance ${id}` } });
    });

    app.delete("/instances/:id", async (req, reply) => {
      const a = await instances.delete((req.params as { id: string }).id);
      return reply.code(a.status).send(a.body);
    });

    app.post("/instances/:id/generate", async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const body = req.body as InferenceRequest;
      if (typeof body !== "object" || body === null || typeof body.input !== "object" || body.input === null) {
        return reply.code(400).send({ error: { message: "the body must be an InferenceRequest: {input: {kind: \"tokens\", tokens: [ids]} | {kind: \"text\", text} | {kind: \"chat\", messages}, maxTokens?, temperature?, seed?, ...}" } });
      }
      try {
        return await instances.generate(id, resolveRequest(body));
      } catch (e) {
        const status = e instanceof RequestError ? e.status : e instanceof InferenceError || isTesseraError(e) ? 400 : 500;
        return reply.code(status).send({ error: { message: (e as Error).message } });
      }
    });
  };
}
