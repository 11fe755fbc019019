import type { ErrorKind, InferenceError } from "../../inference/errors.js";

/** OpenAI's error object: `{error: {message, type, param, code}}` (also the `data:` of a failed stream). */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const TYPES: Record<ErrorKind, [type: string, code: string | null]> = {
  invalid_request: ["invalid_request_error", null],
  not_found: ["invalid_request_error", "model_not_found"],
  context_overflow: ["invalid_request_error", "context_length_exceeded"],
  overloaded: ["rate_limit_error", "rate_limit_exceeded"],
  unavailable: ["server_error", "model_not_available"],
  too_large: ["invalid_request_error", "request_too_large"],
  unauthorized: ["invalid_request_error", "invalid_api_key"],
  cancelled: ["invalid_request_error", "cancelled"],
  internal: ["server_error", null],
};

export function openaiErrorBody(e: InferenceError): OpenAIErrorBody {
  const [type, code] = TYPES[e.kind];
  return { error: { message: e.message, type, param: e.param ?? null, code } };
}
