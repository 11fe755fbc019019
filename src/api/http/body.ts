import type { FastifyInstance } from "fastify";
import { InferenceError } from "../../inference/errors.js";

/** Largest request body the model APIs accept (larger: 413). A 128k-token prompt is ~0.5 MB of text. */
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses a request body as JSON whatever its content type (curl -d sends form encoding; Ollama and
 * most clients do not care), refusing bytes that are not UTF-8 instead of replacing them. An empty
 * body is `undefined`.
 */
export function parseJsonBody(buf: Buffer): unknown {
  if (buf.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    throw new InferenceError("invalid_request", "the body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InferenceError("invalid_request", `the body is not valid JSON: ${(e as Error).message}`);
  }
}

/** Makes every body in this (encapsulated) scope go through parseJsonBody. */
export function acceptJsonBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
}
