import type { FastifyInstance } from "fastify";
import { unixSeconds } from "../ids.js";
import type { ModelCard } from "../../inference/service.js";
import { modelCard, modelId, type Serving } from "../generation.js";


const STARTED = unixSeconds();

/** OpenAI's model object, plus where it runs and whether it is loaded (extra fields clients ignore). */
export function modelObject(c: ModelCard) {
  return {
    id: c.id,
    object: "model",
    created: c.loadedAt !== undefined ? unixSeconds(c.loadedAt) : STARTED,
    owned_by: "tessera",
    node: c.node,
    state: c.state,
    ...(c.info ? { context_length: c.info.contextLength } : {}),
  };
}

/** GET /v1/models (`data`, and the same list as `models` for clients that read that) and GET /v1/models/{id}. */
export function models(serving: Serving) {
  return (app: FastifyInstance) => {
    app.get("/v1/models", async () => {
      const list = serving.models.uniqueModels().map(modelObject);
      return { object: "list", data: list, models: list };
    });
    // ids may hold slashes (org/name)
    app.get("/v1/models/*", async (req) => {
      const name = (req.params as { "*": string })["*"];
      const id = modelId(serving, decodeURIComponent(name));
      return modelObject(modelCard(serving, id)!);
    });
  };
}
