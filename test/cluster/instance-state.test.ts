import { test } from "node:test";
import assert from "node:assert/strict";
import { apply, emptyState, isClusterState, isControlEvent, mayPropose, type ClusterEvent, type ClusterState } from "../../src/cluster/state.js";
import { reservedBytes, type InstanceRecord } from "../../src/cluster/instance-state.js";
import type { PlacementModel } from "../../src/placement/index.js";

const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";
const C = "cccccccccccccccc";
const ID = "0123456789ab";

const summary: PlacementModel = {
  name: "/models/m.gguf",
  layers: 4,
  hiddenSize: 256,
  numHeads: 8,
  numKvHeads: 2,
  headDim: 32,
  intermediateSize: 768,
  vocabSize: 16384,
  contextLength: 4096,
  blocks: { attnOutput: 32, ffnDown: 32 },
  layer: { qo: { weights: 1, heldBytes: 1, stream: 1 }, kv: { weights: 1, heldBytes: 1, stream: 1 }, mlp: { weights: 1, heldBytes: 1, stream: 1 }, otherBytes: 0 },
  embeddingBytes: 10,
  head: { weights: 1, heldBytes: 1, stream: 1 },
};

function instance(over: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id: ID,
    model: "/models/m.gguf",
    source: { path: "/models/m.gguf", digest: "ab".repeat(32) },
    summary,
    request: { strategy: "pipeline" },
    keep: true,
    generation: 1,
    strategy: "pipeline",
    plan: { stages: [{ layers: [0, 2], nodes: [A] }, { layers: [2, 4], nodes: [B] }], ctx: 256, memoryBytes: { [A]: 300, [B]: 200 } },
    home: A,
    ranks: [
      { node: A, status: "starting", progress: 0 },
      { node: A, status: "starting", progress: 0 },
      { node: B, status: "starting", progress: 0 },
    ],
    status: "starting",
    failures: 0,
    retryAt: null,
    predicted: { decodeTps: 100, ttftMs: 20 },
    createdAt: 5,
    placedAt: 5,
    ...over,
  };
}

function fold(events: ClusterEvent[], from: ClusterState = emptyState()): ClusterState {
  let s = from;
  for (const e of events) {
    assert.ok(isControlEvent(e), `well formed: ${JSON.stringify(e).slice(0, 200)}`);
    s = apply(s, { index: s.index + 1, term: 1, at: 0, event: e });
  }
  return s;
}

const rank = (r: number, status: "loading" | "ready" | "failed", extra: object = {}): ClusterEvent => ({ type: "rank-status", id: ID, generation: 1, rank: r, status, progress: status === "loading" ? 0.5 : 1, ...extra });

test("a placed instance becomes ready when every rank is, and a failed rank fails it naming the rank", () => {
  const placed = fold([{ type: "instance-placed", instance: instance() }]);
  assert.equal(placed.instances[ID]!.status, "starting");
  assert.deepEqual(Object.keys(placed.kept), [ID]);
  assert.equal(placed.keptVersion, 1);
  const loading = fold([rank(1, "loading", { ports: { world: 4000, live: 4001 }, pid: 77 })], placed);
  assert.deepEqual(loading.instances[ID]!.ranks[1], { node: A, status: "loading", progress: 0.5, ports: { world: 4000, live: 4001 }, pid: 77 });
  const two = fold([rank(0, "ready"), rank(1, "ready")], loading);
  assert.equal(two.instances[ID]!.status, "starting", "not all ranks are ready");
  assert.deepEqual(two.instances[ID]!.ranks[1]!.ports, { world: 4000, live: 4001 }, "a later report keeps the ports");
  const ready = fold([rank(2, "ready", { measured: { decodeTps: 80 } })], two);
  assert.equal(ready.instances[ID]!.status, "ready");
  assert.deepEqual(ready.instances[ID]!.measured, { decodeTps: 80 });
  const failed = fold([rank(2, "failed", { error: "exited (SIGKILL)" })], ready);
  const f = failed.instances[ID]!;
  assert.equal(f.status, "failed");
  assert.equal(f.reason, `rank 2 on node ${B}: exited (SIGKILL)`);
  assert.equal(f.failures, 1);
  // once failed, late reports from the torn-down placement change nothing
  assert.deepEqual(fold([rank(1, "ready")], failed).instances, failed.instances);
  const waiting = fold([{ type: "instance-status", id: ID, generation: 1, status: "waiting", reason: "no room", retryAt: 99 }], failed);
  assert.deepEqual([waiting.instances[ID]!.status, waiting.instances[ID]!.failures, waiting.instances[ID]!.retryAt], ["waiting", 1, 99]);
  // a re-placement (generation 2) starts over; reports about generation 1 are ignored
  const again = fold([{ type: "instance-placed", instance: instance({ generation: 2, failures: 1 }) }], waiting);
  assert.equal(again.keptVersion, 1, "re-placing a deployment does not change the kept set");
  assert.deepEqual(fold([rank(1, "ready")], again).instances, again.instances);
});

test("deleting an instance drops it, its deployment and its reservation", () => {
  const s = fold([{ type: "instance-placed", instance: instance() }, { type: "instance-placed", instance: instance({ id: "ba9876543210", keep: false, plan: { ...instance().plan, memoryBytes: { [B]: 50 } } }) }]);
  assert.deepEqual(reservedBytes(s.instances), { [A]: 300, [B]: 250 });
  const gone = fold([{ type: "instance-deleted", id: ID, reason: "DELETE" }], s);
  assert.deepEqual(Object.keys(gone.instances), ["ba9876543210"]);
  assert.deepEqual(gone.kept, {});
  assert.equal(gone.keptVersion, 2);
  assert.deepEqual(reservedBytes(gone.instances), { [B]: 50 });
  const failed = fold([{ type: "instance-status", id: "ba9876543210", generation: 1, status: "failed", reason: "x", retryAt: null }], gone);
  assert.deepEqual(reservedBytes(failed.instances), {}, "a failed instance reserves nothing");
});

test("only the node that runs a rank may report it; a kept set is restored only when newer", () => {
  const s = fold([{ type: "instance-placed", instance: instance() }]);
  assert.ok(mayPropose(A, rank(1, "ready"), s));
  assert.ok(!mayPropose(B, rank(1, "ready"), s), "rank 1 runs on A");
  assert.ok(mayPropose(B, rank(2, "ready"), s));
  assert.ok(!mayPropose(B, { ...(rank(2, "ready") as object), generation: 2 } as ClusterEvent, s), "not the current placement");
  assert.ok(!mayPropose(A, { type: "instance-deleted", id: ID, reason: "x" }, s));
  assert.ok(!mayPropose(A, { type: "instance-placed", instance: instance() }, s));
  const kept = { id: "111111111111", model: "m", source: { path: "m", digest: "d" }, summary, request: {}, createdAt: 1 };
  assert.ok(!mayPropose(C, { type: "kept-restored", version: 1, kept: [kept] }, s), "version 1 is not newer than the state's");
  assert.ok(mayPropose(C, { type: "kept-restored", version: 2, kept: [kept] }, s));
  const restored = fold([{ type: "kept-restored", version: 7, kept: [kept] }], s);
  assert.deepEqual(Object.keys(restored.kept), ["111111111111"]);
  assert.equal(restored.keptVersion, 7);
  assert.deepEqual(fold([{ type: "kept-restored", version: 5, kept: [] }], restored).kept, restored.kept);
});

test("malformed instance events and snapshots are refused", () => {
  const good = instance();
  assert.ok(isControlEvent({ type: "instance-placed", instance: good }));
  const bad: unknown[] = [
    { type: "instance-placed", instance: { ...good, id: "short" } },
    { type: "instance-placed", instance: { ...good, ranks: [good.ranks[0]] } },
    { type: "instance-placed", instance: { ...good, strategy: "ring" } },
    { type: "instance-placed", instance: { ...good, summary: { ...summary, layers: 0 } } },
    { type: "instance-placed", instance: { ...good, plan: { ...good.plan, stages: [{ layers: [2, 1], nodes: [A] }] } } },
    { type: "rank-status", id: ID, generation: 1, rank: 1, status: "ready", progress: 1.5 },
    { type: "rank-status", id: ID, generation: 0, rank: 1, status: "ready", progress: 1 },
    { type: "rank-status", id: ID, generation: 1, rank: 1, status: "done", progress: 1 },
    { type: "rank-status", id: ID, generation: 1, rank: 1, status: "loading", progress: 0, ports: { world: 70000, live: 1 } },
    { type: "instance-status", id: ID, generation: 1, status: "ready", reason: "x", retryAt: null },
    { type: "kept-restored", version: 0, kept: [] },
  ];
  for (const e of bad) assert.ok(!isControlEvent(e), JSON.stringify(e).slice(0, 120));
  const s = fold([{ type: "instance-placed", instance: good }]);
  assert.ok(isClusterState(JSON.parse(JSON.stringify(s))));
  assert.ok(!isClusterState({ ...s, instances: { other: good } }), "an instance under another id");
  assert.ok(!isClusterState({ ...s, keptVersion: -1 }));
});
