import type { InferenceError } from "../../inference/errors.js";

/** Ollama's error: `{error: "message"}` (also a line of a failed NDJSON stream). */
export function ollamaErrorBody(e: InferenceError): { error: string } {
  return { error: e.message };
}
