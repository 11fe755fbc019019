import { anthropicRoutes } from "./anthropic/routes.js";
import type { Serving } from "./generation.js";
import { ollamaRoutes } from "./ollama/routes.js";
import { openaiRoutes } from "./openai/routes.js";
import type { RouteModule } from "./server.js";

/** The three model APIs, each in its own scope (its own body parsing and error shape). */
export function servingRoutes(serving: Serving): RouteModule[] {
  return [openaiRoutes(serving), ollamaRoutes(serving), anthropicRoutes(serving)];
}
