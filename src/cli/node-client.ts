import { TesseraError } from "../errors.js";

/**
 * Calls a running node's HTTP API. `unreachable` tells "no node there" (the command may then work on
 * this machine's files directly) from an answer with an error, which becomes a TesseraError with the
 * node's own message.
 */
export const DEFAULT_NODE_URL = "http://127.0.0.1:52480";

export class NodeUnreachable extends TesseraError {}

export function nodeBase(url: string | undefined): string {
  return (url ?? DEFAULT_NODE_URL).replace(/\/+$/, "");
}

export async function callNode<T>(base: string, method: string, path: string, body?: unknown, timeoutMs = 10000): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new NodeUnreachable(`no tessera node answers (${cause}); is \`tessera start\` running there?`, base);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const message = (json as { error?: unknown } | undefined)?.error;
    throw new TesseraError(typeof message === "string" ? message : `HTTP ${res.status} from ${method} ${path}`);
  }
  return json as T;
}
