import { anthropicRoutes } from "./anthropic/routes.js";
import { InferenceError } from "../inference/errors.js";
import { useErrorStyle } from "./errors.js";
import type { Serving } from "./generation.js";
import { ollamaRoutes } from "./ollama/routes.js";
import { openaiRoutes } from "./openai/routes.js";
import type { RouteModule } from "./server.js";

/** The three model APIs, each in its own scope (its own body parsing and error shape), and the running requests. */
export function servingRoutes(serving: Serving): RouteModule[] {
  return [openaiRoutes(serving), ollamaRoutes(serving), anthropicRoutes(serving), requestRoutes(serving)];
}

/**
 * GET /requests: the generations running on this node's API ({id, model, since}).
 * DELETE /requests/{id}: cancels one (the id, or any API object id made from it: chatcmpl-…,
 * msg_…, resp_…); 404 when nothing with that id runs here.
 */
export function requestRoutes(serving: Serving): RouteModule {
  return (app) => {
    useErrorStyle(app, "tessera", serving.log);
    app.get("/requests", async () => serving.requests.list());
    app.delete("/requests/:id", async (req) => {
      const { id } = req.params as { id: string };
      if (!serving.requests.cancel(id)) throw new InferenceError("not_found", `no running request '${id}' on this node`);
      return { cancelled: true };
    });
  };
}
