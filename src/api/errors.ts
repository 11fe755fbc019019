import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { InferenceError, isInferenceError, toWire, type ErrorKind } from "../inference/errors.js";
import { isTesseraError } from "../errors.js";
import { anthropicErrorBody } from "./anthropic/errors.js";
import { ollamaErrorBody } from "./ollama/errors.js";
import { openaiErrorBody } from "./openai/errors.js";

/** Which API's error shape a path answers in. `tessera`: node-to-node and the node's own routes. */
export type ApiStyle = "openai" | "ollama" | "anthropic" | "tessera";

export const HTTP_STATUS: Record<ErrorKind, number> = {
  invalid_request: 400,
  not_found: 404,
  context_overflow: 400,
  overloaded: 429,
  unavailable: 503,
  too_large: 413,
  unauthorized: 401,
  // nginx's "client closed request": nobody reads it, but logs and metrics do
  cancelled: 499,
  internal: 500,
};

export function styleOfPath(url: string): ApiStyle {
  const path = url.split("?")[0]!;
  if (path.startsWith("/v1/messages")) return "anthropic";
  if (path.startsWith("/v1/")) return "openai";
  if (path === "/" || path.startsWith("/api/")) return "ollama";
  return "tessera";
}

/** Any error (ours, fastify's body and routing errors, a bug) as an InferenceError with the right kind. */
export function asInferenceError(e: unknown): InferenceError {
  if (isInferenceError(e)) return e;
  const f = e as Partial<FastifyError>;
  if (f && typeof f === "object" && typeof f.code === "string" && f.code.startsWith("FST_")) {
    if (f.code === "FST_ERR_CTP_BODY_TOO_LARGE" || f.statusCode === 413) return new InferenceError("too_large", "the request body is too large");
    if (typeof f.statusCode === "number" && f.statusCode >= 400 && f.statusCode < 500) return new InferenceError("invalid_request", f.message ?? "bad request");
  }
  if (isTesseraError(e)) return new InferenceError("internal", e.message);
  return new InferenceError("internal", e instanceof Error ? e.message : String(e));
}

export function errorBody(style: ApiStyle, e: InferenceError): unknown {
  switch (style) {
    case "openai":
      return openaiErrorBody(e);
    case "ollama":
      return ollamaErrorBody(e);
    case "anthropic":
      return anthropicErrorBody(e);
    case "tessera":
      return { error: toWire(e) };
  }
}

export function sendError(reply: FastifyReply, style: ApiStyle, err: unknown): FastifyReply {
  const e = asInferenceError(err);
  if (e.retryAfterS !== undefined) reply.header("retry-after", String(Math.ceil(e.retryAfterS)));
  return reply.code(HTTP_STATUS[e.kind]).send(errorBody(style, e));
}

/** Every error in this scope answers in the API's own shape (body parse errors and 413 included). */
export function useErrorStyle(app: FastifyInstance, style: ApiStyle, log?: (message: string) => void): void {
  app.setErrorHandler((err, _req, reply) => {
    const e = asInferenceError(err);
    if (e.kind === "internal" && log) log(`request failed: ${(err as Error)?.stack ?? String(err)}`);
    return sendError(reply, style, e);
  });
}
