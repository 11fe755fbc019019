import { test } from "node:test";
import assert from "node:assert/strict";
import { RequestQueue } from "../../../src/inference/scheduler.js";
import { InferenceError } from "../../../src/inference/errors.js";

const kindOf = (e: unknown) => (e instanceof InferenceError ? e.kind : String(e));

test("one slot: requests run one at a time, in arrival order", async () => {
  const q = new RequestQueue(1, 10);
  const order: number[] = [];
  const first = await q.acquire();
  const waiters = [1, 2, 3].map((i) => q.acquire().then((release) => (order.push(i), release)));
  assert.deepEqual([q.running, q.queued], [1, 3]);
  first();
  first(); // a second call frees nothing more
  for (const w of waiters) (await w)();
  assert.deepEqual(order, [1, 2, 3]);
  assert.deepEqual([q.running, q.queued], [0, 0]);
});

test("a full queue refuses with overloaded; an aborted waiter leaves the queue at once", async () => {
  const q = new RequestQueue(1, 2);
  const held = await q.acquire();
  const ac = new AbortController();
  const a = q.acquire(ac.signal);
  const b = q.acquire();
  await assert.rejects(q.acquire(), (e: unknown) => kindOf(e) === "overloaded" && (e as InferenceError).retryAfterS === 1);
  ac.abort();
  await assert.rejects(a, (e: unknown) => kindOf(e) === "cancelled");
  assert.equal(q.queued, 1);
  // the room the aborted waiter left is usable
  const c = q.acquire();
  assert.equal(q.queued, 2);
  held();
  (await b)();
  (await c)();
  assert.deepEqual([q.running, q.queued], [0, 0]);
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(q.acquire(pre.signal), (e: unknown) => kindOf(e) === "cancelled");
});

test("several slots run together", async () => {
  const q = new RequestQueue(2, 0);
  const a = await q.acquire();
  const b = await q.acquire();
  await assert.rejects(q.acquire(), (e: unknown) => kindOf(e) === "overloaded");
  a();
  const c = await q.acquire();
  b();
  c();
  assert.equal(q.running, 0);
});

test("setSlots: an engine that batches lets its waiters in at once; fewer slots hold new ones back", async () => {
  const q = new RequestQueue(1, 10);
  const held = await q.acquire();
  let granted = 0;
  const waiters = [1, 2, 3].map(() => q.acquire().then((release) => (granted++, release)));
  await new Promise((r) => setImmediate(r));
  assert.equal(granted, 0, "one slot: the three wait");
  q.setSlots(3);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([granted, q.running, q.queued, q.slots], [2, 3, 1, 3]);
  q.setSlots(1);
  held();
  (await waiters[0]!)();
  await new Promise((r) => setImmediate(r));
  assert.equal(granted, 2, "running (1) is not below one slot: the last still waits");
  (await waiters[1]!)();
  await new Promise((r) => setImmediate(r));
  assert.equal(granted, 3);
  (await waiters[2]!)();
  assert.throws(() => q.setSlots(0), /slots must be ≥ 1/);
});
