import { InferenceError } from "./errors.js";

/**
 * The per-model request queue: `slots` requests run at once (1 while an engine runs one sequence;
 * an engine that batches, its KV slots: batch-scheduler.ts), at most `maxQueued` wait, in arrival order. A full queue refuses
 * new requests (overloaded: HTTP 429). A waiter whose signal aborts leaves the queue at once.
 */
export class RequestQueue {
  private active = 0;
  private readonly waiting: { grant: () => void }[] = [];
  private _slots: number;

  constructor(
    slots: number,
    readonly maxQueued: number,
  ) {
    checkSlots(slots);
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new Error(`RequestQueue: maxQueued must be ≥ 0, got ${maxQueued}`);
    this._slots = slots;
  }

  get slots(): number {
    return this._slots;
  }

  /** Changes how many run at once (an engine that batches says how many once loaded); waiters get new slots at once. */
  setSlots(slots: number): void {
    checkSlots(slots);
    this._slots = slots;
    this.grant();
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
      this.grant();
    };
  }

  private grant(): void {
    while (this.active < this._slots && this.waiting.length > 0) this.waiting.shift()!.grant();
  }
}

function checkSlots(slots: number): void {
  if (!Number.isInteger(slots) || slots < 1) throw new Error(`RequestQueue: slots must be ≥ 1, got ${slots}`);
}

function cancelled(): InferenceError {
  return new InferenceError("cancelled", "the request was cancelled");
}
