import { InferenceError } from "./errors.js";

/**
 * The per-model request queue: `slots` requests run at once (1 while an engine runs one sequence;
 * continuous batching raises it), at most `maxQueued` wait, in arrival order. A full queue refuses
 * new requests (overloaded: HTTP 429). A waiter whose signal aborts leaves the queue at once.
 */
export class RequestQueue {
  private active = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(
    readonly slots: number,
    readonly maxQueued: number,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new Error(`RequestQueue: slots must be ≥ 1, got ${slots}`);
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new Error(`RequestQueue: maxQueued must be ≥ 0, got ${maxQueued}`);
  }

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Waits for a slot; resolves with the function that frees it (call it exactly once). */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(cancelled());
    if (this.active < this.slots && this.waiting.length === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueued) {
      return Promise.reject(new InferenceError("overloaded", `the model's queue is full (${this.maxQueued} requests waiting); try again later`, { retryAfterS: 1 }));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          this.active++;
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(cancelled());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      while (this.active < this.slots && this.waiting.length > 0) this.waiting.shift()!.grant();
    };
  }
}

function cancelled(): InferenceError {
  return new InferenceError("cancelled", "the request was cancelled");
}
