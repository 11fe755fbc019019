import { TesseraError } from "../errors.js";

/**
 * The HTTP API of a running node, for the commands that talk to one (status, launch, ps, stop).
 * `--url` (or TESSERA_URL) picks the node; the default is this machine's.
 */
export const DEFAULT_URL = "http://127.0.0.1:52480";

export function baseUrl(url: string | undefined): string {
  return (url ?? DEFAULT_URL).replace(/\/+$/, "");
}

/**
 * One request; the JSON answer with its status. A node that does not answer is a TesseraError
 * saying so; an error status is returned as is (the caller turns its {error:{message}} into words).
 */
export async function request(base: string, method: string, path: string, body?: unknown, timeoutMs = 60000): Promise<{ status: number; body: any }> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new TesseraError(`no tessera node answers (${(e as Error).message}); is \`tessera start\` running there?`, base);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}

/** GET that must succeed. */
export async function getJson(base: string, path: string, timeoutMs = 5000): Promise<any> {
  const r = await request(base, "GET", path, undefined, timeoutMs);
  if (r.status !== 200) throw new TesseraError(errorText(r), base);
  return r.body;
}

/** The message of an {error: {message}} answer, or the status. */
export function errorText(r: { status: number; body: any }): string {
  const m = r.body?.error?.message ?? r.body?.error;
  return typeof m === "string" ? m : `HTTP ${r.status}`;
}
