/**
 * The dashboard's only way to the node: fetch against the public HTTP API of the node that served
 * the page. With an API key set on the node, the first 401 opens the key prompt; the key is kept in
 * this browser (localStorage) and sent as `Authorization: Bearer KEY`.
 */
const KEY_STORAGE = "tessera.apiKey";

export const auth = $state({ key: localStorage.getItem(KEY_STORAGE) ?? "", needed: false, rejected: false, version: 0 });

export function setKey(key: string): void {
  auth.key = key.trim();
  if (auth.key) localStorage.setItem(KEY_STORAGE, auth.key);
  else localStorage.removeItem(KEY_STORAGE);
  auth.needed = false;
  auth.rejected = false;
  // Views and the cluster stream watch this to retry what failed.
  auth.version++;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return auth.key ? { authorization: `Bearer ${auth.key}`, ...extra } : extra;
}

/** The message inside any of the API's error shapes ({error: "..."} or {error: {message}}). */
function errorMessage(body: unknown, status: number): string {
  const e = (body as { error?: unknown } | null)?.error;
  if (typeof e === "string") return e;
  if (e && typeof (e as { message?: unknown }).message === "string") return (e as { message: string }).message;
  return `HTTP ${status}`;
}

/** A fetch with the key; a 401 marks the key as needed (or wrong) and throws. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, { ...init, headers: headers((init.headers as Record<string, string>) ?? {}) });
  if (res.status === 401) {
    auth.rejected = auth.key !== "";
    auth.needed = true;
    const body = await res.json().catch(() => null);
    throw new ApiError(401, errorMessage(body, 401));
  }
  return res;
}

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const { json, ...rest } = init;
  const res = await request(path, json === undefined ? rest : { ...rest, body: JSON.stringify(json), headers: { "content-type": "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, errorMessage(body, res.status));
  return body as T;
}
