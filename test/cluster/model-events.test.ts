import { test } from "node:test";
import assert from "node:assert/strict";
import { encode, decode } from "@msgpack/msgpack";
import { modelEventsFor, type DownloadStatus, type ModelHolding } from "../../src/cluster/model-events.js";
import { apply, emptyState, isClusterState, isControlEvent, isNoop, mayPropose, type ClusterEvent, type LogEntry, type NodeRecord } from "../../src/cluster/state.js";

const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";
const D1 = "1".repeat(64);
const D2 = "2".repeat(64);

const record = (id: string): NodeRecord => ({ id, name: id.slice(0, 2), host: "10.0.0.1", httpPort: 1, peerPort: 2, startedAt: 1, version: "0" });
const holding = (digest: string, name: string, complete = true): ModelHolding => ({
  digest,
  name,
  complete,
  meta: { format: "gguf", architecture: "qwen3", parameters: 1000, bytes: 5000, quantization: "Q8_0", contextLength: 4096, layers: 2 },
  files: [{ name: `${name}.gguf`, bytes: 5000 }],
});
const download = (id: string, done: number): DownloadStatus => ({ id, model: `hf.co/x/${id}`, state: "downloading", bytesDone: done, bytesTotal: 100, bytesPerSec: 10, etaSec: 3, from: "hub" });

function fold(events: ClusterEvent[]) {
  let s = emptyState();
  events.forEach((event, i) => {
    const entry: LogEntry = { index: i + 1, term: 1, at: i, event };
    s = apply(s, entry);
  });
  return s;
}

const members: ClusterEvent[] = [
  { type: "master-elected", master: A, term: 1 },
  { type: "node-joined", node: record(A) },
  { type: "node-joined", node: record(B) },
];

test("holdings and downloads fold per node, and leave with their node", () => {
  const s = fold([
    ...members,
    { type: "model-held", node: A, model: holding(D1, "demo") },
    { type: "model-held", node: B, model: holding(D1, "demo-copy") },
    { type: "model-held", node: B, model: holding(D2, "other") },
    { type: "download-status", node: B, download: download("big", 40) },
    { type: "model-held", node: "cccccccccccccccc", model: holding(D2, "ghost") },
  ]);
  assert.deepEqual(Object.keys(s.models).sort(), [A, B], "a node that is not a member holds nothing");
  assert.deepEqual(Object.keys(s.models[B]!).sort(), [D1, D2]);
  assert.equal(s.downloads[B]!.big!.bytesDone, 40);
  assert.ok(isClusterState(decode(encode(s))), "the state survives a snapshot round trip and passes its guard");

  const dropped = apply(s, { index: 99, term: 1, at: 0, event: { type: "model-dropped", node: B, digest: D2 } });
  assert.deepEqual(Object.keys(dropped.models[B]!), [D1]);
  const left = apply(s, { index: 99, term: 1, at: 0, event: { type: "node-left", id: B, reason: "lost" } });
  assert.deepEqual(Object.keys(left.models), [A]);
  assert.deepEqual(left.downloads, {});
});

test("a node proposes facts about itself only, and repeats are no-ops", () => {
  const e: ClusterEvent = { type: "model-held", node: B, model: holding(D1, "x") };
  assert.ok(isControlEvent(e));
  const s0 = fold(members);
  assert.equal(mayPropose(B, e, s0), true);
  assert.equal(mayPropose(A, e, s0), false, "A may not claim that B holds a model");
  const s = fold([...members, e]);
  assert.equal(isNoop(s, e), true);
  // key order does not make a repeat look new
  const reordered = { type: "model-held", node: B, model: { files: e.model.files, meta: e.model.meta, complete: true, name: "x", digest: D1 } } as ClusterEvent;
  assert.equal(isNoop(s, reordered), true);
  assert.equal(isNoop(s, { type: "model-held", node: B, model: holding(D1, "renamed") }), false);
});

test("the guards refuse malformed model events", () => {
  const good = holding(D1, "ok");
  assert.ok(isControlEvent({ type: "model-held", node: A, model: good }));
  const bad: unknown[] = [
    { type: "model-held", node: A, model: { ...good, digest: "xyz" } },
    { type: "model-held", node: A, model: { ...good, name: "../etc" } },
    { type: "model-held", node: A, model: { ...good, files: [{ name: "../../passwd", bytes: 1 }] } },
    { type: "model-held", node: A, model: { ...good, meta: { ...good.meta, parameters: -1 } } },
    { type: "model-held", node: A, model: { ...good, meta: { ...good.meta, description: "x".repeat(5000) } } },
    { type: "model-held", node: "nope", model: good },
    { type: "download-status", node: A, download: { ...download("a", 1), state: "exploded" } },
    { type: "download-status", node: A, download: { ...download("a", 1), bytesPerSec: NaN } },
    { type: "model-dropped", node: A, digest: 5 },
  ];
  for (const e of bad) assert.equal(isControlEvent(e), false, JSON.stringify(e).slice(0, 120));
  const s = fold([...members, { type: "model-held", node: A, model: good }]);
  const corrupt = structuredClone(s);
  corrupt.models[A]![D1]!.digest = D2; // keyed under the wrong digest
  assert.equal(isClusterState(corrupt), false);
});

test("modelEventsFor brings the state to the node's facts and then says nothing", () => {
  let s = fold([...members, { type: "model-held", node: A, model: holding(D2, "gone") }, { type: "download-status", node: A, download: download("old", 1) }]);
  const held = [holding(D1, "demo")];
  const dls = [download("big", 10)];
  const events = modelEventsFor(s, A, held, dls);
  assert.deepEqual(events.map((e) => e.type).sort(), ["download-removed", "download-status", "model-dropped", "model-held"]);
  let i = s.index;
  for (const event of events) s = apply(s, { index: ++i, term: 1, at: 0, event });
  assert.deepEqual(modelEventsFor(s, A, held, dls), []);
  assert.deepEqual(Object.keys(s.models[A]!), [D1]);
  assert.deepEqual(Object.keys(s.downloads[A]!), ["big"]);
  assert.equal(modelEventsFor(s, A, held, [download("big", 11)]).length, 1, "progress is a new fact");
});
