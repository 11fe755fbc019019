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

/** Beyond this much an oversized body is not read to its end: the connection is closed instead. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

/**
 * Makes every body in this (encapsulated) scope go through parseJsonBody, at most the server's
 * bodyLimit bytes.
 * A larger body is read to its end and discarded before the 413, so the client, still sending, gets
 * the answer instead of a broken pipe (fastify's own limit answers and closes mid-upload).
 */
export function acceptJsonBodies(app: FastifyInstance): void {
  const limit = app.initialConfig.bodyLimit ?? DEFAULT_BODY_LIMIT;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, payload, done) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (finished) return;
      finished = true;
      done(err, value);
    };
    payload.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
      else if (size > DRAIN_LIMIT) payload.destroy();
    });
    payload.on("end", () => {
      if (size > limit) return finish(new InferenceError("too_large", `the body is larger than ${limit} bytes`));
      try {
        finish(null, parseJsonBody(Buffer.concat(chunks, size)));
      } catch (e) {
        finish(e as Error);
      }
    });
    payload.on("error", (e) => finish(e));
    // the client stopped sending (or an endless body was cut off)
    payload.on("close", () => finish(new InferenceError(size > limit ? "too_large" : "invalid_request", size > limit ? `the body is larger than ${limit} bytes` : "the body was not received completely")));
  });
}
