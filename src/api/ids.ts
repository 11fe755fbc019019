/** Seconds since the epoch, as OpenAI's `created` fields. */
export function unixSeconds(ms = Date.now()): number {
  return Math.floor(ms / 1000);
}

/**
 * An API object id from the request id: prefix + its first 24 hex characters (chatcmpl-…, msg_…,
 * resp_…). requests.ts finds a running request by any of them.
 */
export function objectId(prefix: string, requestId: string): string {
  return `${prefix}${requestId.replace(/-/g, "").slice(0, 24)}`;
}
