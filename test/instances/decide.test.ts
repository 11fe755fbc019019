import { test } from "node:test";
import assert from "node:assert/strict";
import { apply, emptyState, type ClusterEvent, type ClusterState, type NodeProfile } from "../../src/cluster/state.js";
import type { InstanceRecord } from "../../src/cluster/instance-state.js";
import { createInstance, DEFAULT_POLICY, reconcile } from "../../src/instances/decide.js";
import { placementCluster } from "../../src/instances/placement-input.js";
import type { PlacementModel } from "../../src/placement/index.js";
import type { ResolvedModel } from "../../src/instances/model-source.js";

// The master's decisions, on hand-built states: which events it orders, and when.

const MiB = 2 ** 20;
const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";
const C = "cccccccccccccccc";

const summary: PlacementModel = {
  name: "m",
  layers: 4,
  hiddenSize: 256,
  numHeads: 8,
  numKvHeads: 2,
  headDim: 32,
  intermediateSize: 768,
  vocabSize: 16384,
  contextLength: 4096,
  blocks: { attnOutput: 32, ffnDown: 32 },
  layer: { qo: { weights: 131072, heldBytes: 40 * MiB, stream: 131072 }, kv: { weights: 32768, heldBytes: 10 * MiB, stream: 32768 }, mlp: { weights: 589824, heldBytes: 50 * MiB, stream: 589824 }, otherBytes: 0 },
  embeddingBytes: 10 * MiB,
  head: { weights: 4194304, heldBytes: 20 * MiB, stream: 4194304 },
};
const resolved: ResolvedModel = { model: "/m.gguf", source: { path: "/m.gguf", digest: "d".repeat(64) }, summary };

function profile(memoryMiB: number): NodeProfile {
  const bytes = memoryMiB * MiB;
  return { memory: { totalBytes: bytes, availableBytes: bytes }, cpu: { model: "x", cores: 2 }, providers: ["cpu"], device: "auto", threads: 1, worker: true, matmulGflops: 50, decodeBytesPerSec: 1e10, platform: "linux", arch: "x64" };
}

function fold(events: ClusterEvent[], from: ClusterState = emptyState()): ClusterState {
  let s = from;
  for (const e of events) s = apply(s, { index: s.index + 1, term: 1, at: 0, event: e });
  return s;
}

/** Three nodes of `memoryMiB` each (the model needs ~630 MiB on one node, ~410 and ~350 on two). */
const MEM = 450;
function cluster(memoryMiB = MEM, ids = [A, B, C]): ClusterState {
  const events: ClusterEvent[] = [{ type: "master-elected", master: ids[0]!, term: 1 }];
  ids.forEach((id, k) => {
    events.push({ type: "node-joined", node: { id, name: `n${k}`, host: "127.0.0.1", httpPort: 1, peerPort: 2, startedAt: k, version: "t" } });
    events.push({ type: "node-profile", id, profile: profile(memoryMiB) });
  });
  return fold(events);
}

function created(state: ClusterState, keep = false): { state: ClusterState; instance: InstanceRecord } {
  const { instance } = createInstance(state, "0123456789ab", resolved, { strategy: "pipeline", ctx: 256, keep }, 1000);
  assert.ok(instance, "placed");
  return { state: fold([{ type: "instance-placed", instance }], state), instance };
}

const readyAll = (i: InstanceRecord): ClusterEvent[] => i.ranks.map((_, r) => ({ type: "rank-status", id: i.id, generation: i.generation, rank: r, status: "ready", progress: 1 }));

test("a new instance takes the best plan that fits; none fitting gives every plan with its reason", () => {
  const { instance } = created(cluster());
  assert.equal(instance.strategy, "pipeline");
  assert.equal(instance.plan.stages.length, 2);
  assert.deepEqual(instance.ranks.map((r) => r.status), ["starting", "starting", "starting"]);
  assert.equal(instance.ranks[0]!.node, instance.home);
  const none = createInstance(cluster(100), "0123456789ab", resolved, { ctx: 256 }, 0);
  assert.equal(none.instance, undefined);
  assert.ok(none.plans.length > 0 && none.plans.every((p) => !p.feasible && /free|cannot share the model's 2 KV heads/.test(p.reason!)));
});

test("placement counts what placed instances reserve, and frees it when they fail", () => {
  const { state, instance } = created(cluster());
  const free = Object.fromEntries(placementCluster(state).nodes.map((n) => [n.id, n.freeBytes]));
  for (const [node, bytes] of Object.entries(instance.plan.memoryBytes)) assert.equal(free[node], MEM * MiB - bytes);
  assert.equal(placementCluster(state, instance.id).nodes.every((n) => n.freeBytes === MEM * MiB), true, "re-placing it, its own reservation is not counted");
  const failed = fold([{ type: "rank-status", id: instance.id, generation: 1, rank: 1, status: "failed", progress: 0, error: "x" }], state);
  assert.ok(placementCluster(failed).nodes.every((n) => n.freeBytes === MEM * MiB));
});

test("a node that leaves fails its instances at once; they are re-placed on the others", () => {
  const { state, instance } = created(cluster());
  const ready = fold(readyAll(instance), state);
  assert.equal(ready.instances[instance.id]!.status, "ready");
  const gone = instance.ranks[2]!.node;
  const left = fold([{ type: "node-left", id: gone, reason: "lost" }], ready);
  const [e] = reconcile(left, 5000);
  // the state no longer knows its name: the id it is
  assert.deepEqual(e, { type: "instance-status", id: instance.id, generation: 1, status: "failed", reason: `node ${gone} left the cluster`, retryAt: 0 });
  const failed = fold([e!], left);
  // decided: retry after the first backoff
  const [sched] = reconcile(failed, 5000);
  assert.equal((sched as { retryAt: number }).retryAt, 5000 + DEFAULT_POLICY.backoffMs(1));
  const waiting = fold([sched!], failed);
  assert.deepEqual(reconcile(waiting, 5500), [], "nothing before the retry time");
  const [placed] = reconcile(waiting, 6000);
  assert.equal(placed!.type, "instance-placed");
  const again = (placed as { instance: InstanceRecord }).instance;
  assert.equal(again.generation, 2);
  assert.equal(again.failures, 1);
  assert.ok(again.ranks.every((r) => r.node !== gone));
  assert.equal(again.reason, undefined);
  const back = fold([placed!, ...readyAll(again)], waiting);
  assert.equal(back.instances[instance.id]!.failures, 0, "ready again: the failures in a row start over");
});

test("an instance that is not kept gives up after MAX failures in a row; a kept one waits for room", () => {
  const { state, instance } = created(cluster());
  const failing = fold([{ type: "rank-status", id: instance.id, generation: 1, rank: 1, status: "failed", progress: 0, error: "boom" }], state);
  const worn = { ...failing, instances: { [instance.id]: { ...failing.instances[instance.id]!, failures: DEFAULT_POLICY.maxFailures } } };
  const [e] = reconcile(worn, 9000);
  assert.deepEqual(e, { type: "instance-status", id: instance.id, generation: 1, status: "failed", reason: `rank 1 on node ${state.nodes[instance.ranks[1]!.node]!.name}: boom (gave up after 4 failures in a row)`, retryAt: null });
  assert.deepEqual(reconcile(fold([e!], worn), 99_999), [], "given up: nothing more happens");
  const kept = { ...worn, instances: { [instance.id]: { ...worn.instances[instance.id]!, keep: true } }, kept: { [instance.id]: { id: instance.id, model: "m", source: resolved.source, summary, request: {}, createdAt: 0 } } };
  const [k] = reconcile(kept, 9000);
  assert.equal((k as { retryAt: number }).retryAt, 9000 + DEFAULT_POLICY.backoffMs(4), "a kept instance keeps trying");
  // no room any more (two nodes left, 100 MiB each): kept → waiting, not kept → failed for good
  const small = (s: ClusterState): ClusterState => ({ ...s, nodes: Object.fromEntries(Object.entries(s.nodes).map(([id, n]) => [id, { ...n, profile: profile(100) }])) });
  const due = fold([{ type: "instance-status", id: instance.id, generation: 1, status: "failed", reason: "boom", retryAt: 10 }], small(kept));
  const [w] = reconcile(due, 20);
  assert.equal((w as { status: string }).status, "waiting");
  assert.match((w as { reason: string }).reason, /^cannot be placed now: no plan fits/);
  const notKept = fold([{ type: "instance-status", id: instance.id, generation: 1, status: "failed", reason: "boom", retryAt: 10 }], small(failing));
  const [f] = reconcile(notKept, 20);
  assert.equal((f as { retryAt: null }).retryAt, null);
  assert.match((f as { reason: string }).reason, /^boom; cannot be placed again: no plan fits \(best: pipeline on 2 nodes: needs .* free/);
});

test("a placement not ready in time fails, naming the ranks that are not", () => {
  const { state, instance } = created(cluster());
  const some = fold([{ type: "rank-status", id: instance.id, generation: 1, rank: 1, status: "ready", progress: 1 }], state);
  assert.deepEqual(reconcile(some, 1000 + DEFAULT_POLICY.startTimeoutMs), []);
  const [e] = reconcile(some, 1001 + DEFAULT_POLICY.startTimeoutMs);
  assert.equal((e as { reason: string }).reason, "not ready after 600 s (driver starting, rank 2 starting)");
});

test("a deployment with no instance (every node restarted) is placed again, or shown waiting", () => {
  const restored = fold([{ type: "kept-restored", version: 3, kept: [{ id: "0123456789ab", model: "/m.gguf", source: resolved.source, summary, request: { strategy: "pipeline", ctx: 256 }, createdAt: 7 }] }], cluster());
  const [e] = reconcile(restored, 100);
  assert.equal(e!.type, "instance-placed");
  const i = (e as { instance: InstanceRecord }).instance;
  assert.deepEqual([i.id, i.keep, i.generation, i.status, i.createdAt], ["0123456789ab", true, 1, "starting", 7]);
  const alone = fold([{ type: "kept-restored", version: 3, kept: Object.values(restored.kept) }], cluster(MEM, [A]));
  const [w] = reconcile(alone, 100);
  const wi = (w as { instance: InstanceRecord }).instance;
  assert.equal(wi.status, "waiting");
  assert.match(wi.reason!, /cannot be placed now/);
  assert.deepEqual(placementCluster(fold([w!], alone)).nodes.map((n) => n.freeBytes), [MEM * MiB], "a waiting instance reserves nothing");
  // an instance marked kept whose deployment is gone from the kept set is deleted
  const { state, instance } = created(cluster(), true);
  const dropped = { ...state, kept: {} };
  assert.deepEqual(reconcile(dropped, 0), [{ type: "instance-deleted", id: instance.id, reason: "no longer in the kept set" }]);
});
