import type { FastifyInstance } from "fastify";
import type { Serving } from "../generation.js";
import { acceptJsonBodies } from "../http/body.js";
import { useErrorStyle } from "../errors.js";
import { chatCompletions } from "./chat.js";
import { completions } from "./completions.js";
import { models } from "./models.js";
import { responses } from "./responses.js";

/** The OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/responses, /v1/models. */
export function openaiRoutes(serving: Serving) {
  return async (app: FastifyInstance) => {
    acceptJsonBodies(app);
    useErrorStyle(app, "openai", serving.log);
    for (const r of [chatCompletions, completions, responses, models]) await r(serving)(app);
  };
}
