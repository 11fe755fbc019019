import { isTesseraError, TesseraError } from "../errors.js";

/**
 * What went wrong with a request, in terms every hop understands: the worker thread, a node that
 * forwards to another, and each HTTP API (which maps a kind to its own status and error shape).
 *
 *   invalid_request   the request itself is wrong (param names the field)
 *   not_found         no such model
 *   context_overflow  the prompt does not fit the model's context
 *   overloaded        the model's queue is full; try again later
 *   unavailable       the model is not running and will not be started (or could not be); retryAfterS
 *   too_large         the body is over the size limit
 *   unauthorized      missing or wrong API key
 *   cancelled         the client went away or cancelled it
 *   internal          a bug or a failure the client cannot fix
 */
export type ErrorKind =
  | "invalid_request"
  | "not_found"
  | "context_overflow"
  | "overloaded"
  | "unavailable"
  | "too_large"
  | "unauthorized"
  | "cancelled"
  | "internal";

export const ERROR_KINDS: readonly ErrorKind[] = [
  "invalid_request", "not_found", "context_overflow", "overloaded", "unavailable", "too_large", "unauthorized", "cancelled", "internal",
];

export interface InferenceErrorOptions {
  /** The request field at fault (API field names where the adapter knows them). */
  param?: string;
  /** Seconds after which trying again may work (overloaded, unavailable). */
  retryAfterS?: number;
  cause?: unknown;
}

/** A failed request. It is a TesseraError, so the CLI prints its message alone. */
export class InferenceError extends TesseraError {
  readonly kind: ErrorKind;
  readonly param?: string;
  readonly retryAfterS?: number;

  constructor(kind: ErrorKind, message: string, opts: InferenceErrorOptions = {}) {
    super(message, undefined, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    if (opts.param !== undefined) this.param = opts.param;
    if (opts.retryAfterS !== undefined) this.retryAfterS = opts.retryAfterS;
  }
}

export function isInferenceError(e: unknown): e is InferenceError {
  return e instanceof InferenceError;
}

/**
 * The one wire format of an error, wherever a request travels (worker messages, node-to-node
 * streams). `user`: a TesseraError (a message meant for people) rather than a programming error.
 */
export interface ErrorWire {
  kind: ErrorKind;
  message: string;
  param?: string;
  retryAfterS?: number;
  user: boolean;
  stack?: string;
}

export function toWire(e: unknown): ErrorWire {
  if (isInferenceError(e)) {
    return { kind: e.kind, message: e.message, user: true, ...(e.param !== undefined ? { param: e.param } : {}), ...(e.retryAfterS !== undefined ? { retryAfterS: e.retryAfterS } : {}) };
  }
  if (isTesseraError(e)) return { kind: "internal", message: e.message, user: true };
  if (e instanceof Error) return { kind: "internal", message: e.message, user: false, stack: e.stack };
  return { kind: "internal", message: String(e), user: false };
}

/** Back from the wire: an InferenceError, or a plain Error (with the remote stack) for a programming error. */
export function fromWire(w: ErrorWire): Error {
  const kind = ERROR_KINDS.includes(w.kind) ? w.kind : "internal";
  if (w.user || kind !== "internal") return new InferenceError(kind, w.message, { param: w.param, retryAfterS: w.retryAfterS });
  const e = new Error(w.message);
  if (w.stack) e.stack = w.stack;
  return e;
}

/** The kind of any error: an InferenceError's own, "internal" for everything else. */
export function errorKind(e: unknown): ErrorKind {
  return isInferenceError(e) ? e.kind : "internal";
}
