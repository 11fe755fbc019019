import type { ErrorKind, InferenceError } from "../../inference/errors.js";

/** Anthropic's error: `{type: "error", error: {type, message}}` (also the data of `event: error`). */
export interface AnthropicErrorBody {
  type: "error";
  error: { type: string; message: string };
}

const TYPES: Record<ErrorKind, string> = {
  invalid_request: "invalid_request_error",
  not_found: "not_found_error",
  context_overflow: "invalid_request_error",
  overloaded: "rate_limit_error",
  unavailable: "overloaded_error",
  too_large: "request_too_large",
  unauthorized: "authentication_error",
  cancelled: "invalid_request_error",
  internal: "api_error",
};

export function anthropicErrorBody(e: InferenceError): AnthropicErrorBody {
  return { type: "error", error: { type: TYPES[e.kind], message: e.message } };
}
