/**
 * The requests this node is serving, so one can be cancelled by id (`DELETE /requests/{id}`) as
 * well as by the client going away. An id is the resolved request's id or any API object id made
 * from it (chatcmpl-…, cmpl-…, resp_…, msg_…): they share their 24 hex characters.
 */
export class RunningRequests {
  private readonly running = new Map<string, { id: string; model: string; since: number; controller: AbortController }>();

  /** Registers a request; its signal aborts on cancel or when `also` aborts. Call done() when it ends. */
  start(id: string, model: string, also?: AbortSignal): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    const key = keyOf(id);
    this.running.set(key, { id, model, since: Date.now(), controller });
    const signal = also ? AbortSignal.any([controller.signal, also]) : controller.signal;
    return { signal, done: () => this.running.get(key)?.controller === controller && this.running.delete(key) };
  }

  cancel(id: string): boolean {
    const r = this.running.get(keyOf(id));
    if (!r) return false;
    r.controller.abort();
    return true;
  }

  list(): { id: string; model: string; since: number }[] {
    return [...this.running.values()].map(({ id, model, since }) => ({ id, model, since }));
  }
}

/** The 24 hex characters that a request id and every object id made from it share. */
export function keyOf(id: string): string {
  return id.replace(/^(chatcmpl-|cmpl-|resp_|msg_|req_)/, "").replace(/-/g, "").slice(0, 24).toLowerCase();
}
