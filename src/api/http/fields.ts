import { InferenceError } from "../../inference/errors.js";

/**
 * Readers for fields of a JSON request body. Each throws one InferenceError (invalid_request) that
 * names the field as the client wrote it; a field that is absent or null reads as undefined.
 * They look at one level only, so a hostile deeply nested value costs nothing.
 */
export type Json = Record<string, unknown>;

export function bad(param: string, message: string): InferenceError {
  return new InferenceError("invalid_request", `${param}: ${message}`, { param });
}

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The body as a JSON object. */
export function objectBody(body: unknown): Json {
  if (!isObject(body)) throw new InferenceError("invalid_request", body === undefined ? "the request has no body (a JSON object)" : "the body must be a JSON object");
  return body;
}

function present(o: Json, key: string): unknown {
  const v = Object.hasOwn(o, key) ? o[key] : undefined;
  return v === null ? undefined : v;
}

export function optString(o: Json, key: string, param = key): string | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw bad(param, "must be a string");
  return v;
}

export function reqString(o: Json, key: string, param = key): string {
  const v = optString(o, key, param);
  if (v === undefined) throw bad(param, "is required");
  return v;
}

export function optBoolean(o: Json, key: string, param = key): boolean | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw bad(param, "must be true or false");
  return v;
}

export interface NumberRange {
  min?: number;
  max?: number;
  integer?: boolean;
}

export function optNumber(o: Json, key: string, range: NumberRange = {}, param = key): number | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(param, "must be a number");
  if (range.integer && !Number.isSafeInteger(v)) throw bad(param, "must be an integer");
  if (range.min !== undefined && v < range.min) throw bad(param, `must be ≥ ${range.min}, got ${v}`);
  if (range.max !== undefined && v > range.max) throw bad(param, `must be ≤ ${range.max}, got ${v}`);
  return v;
}

/** A max-tokens style field: an integer ≥ 1 (and no larger than 2^31 - 1). */
export function optCount(o: Json, key: string, param = key): number | undefined {
  return optNumber(o, key, { integer: true, min: 1, max: 0x7fffffff }, param);
}

/** A seed: any safe integer, folded into the engine's 32 bits (OpenAI seeds are 64-bit). */
export function optSeed(o: Json, key: string, param = key): number | undefined {
  const v = optNumber(o, key, { integer: true }, param);
  return v === undefined ? undefined : ((v % 0x100000000) + 0x100000000) % 0x100000000;
}

/** A string or a list of strings (OpenAI's `stop`). */
export function optStringList(o: Json, key: string, param = key): string[] | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw bad(param, "must be a string or an array of strings");
  return v as string[];
}

export function optArray(o: Json, key: string, param = key): unknown[] | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw bad(param, "must be an array");
  return v;
}

export function optObject(o: Json, key: string, param = key): Json | undefined {
  const v = present(o, key);
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(param, "must be an object");
  return v;
}
