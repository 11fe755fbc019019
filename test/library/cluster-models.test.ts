import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelHolding } from "../../src/cluster/model-events.js";
import { apply, emptyState, type ClusterEvent, type ClusterState } from "../../src/cluster/state.js";
import { clusterModels, resolveModel } from "../../src/library/cluster-models.js";

const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";
const D1 = "1".repeat(64);
const D2 = "2".repeat(63) + "f";

const holding = (digest: string, name: string, complete = true): ModelHolding => ({
  digest,
  name,
  complete,
  meta: { format: "gguf", architecture: "qwen3", parameters: 1, bytes: 1, quantization: "Q8_0", contextLength: null, layers: null },
  files: [{ name: "m.gguf", bytes: 1 }],
});

function state(events: ClusterEvent[]): ClusterState {
  let s = emptyState();
  const all: ClusterEvent[] = [
    { type: "master-elected", master: A, term: 1 },
    ...[A, B].map((id, i) => ({ type: "node-joined", node: { id, name: `n${i}`, host: "h", httpPort: 1, peerPort: 2, startedAt: 1, version: "0" } }) as ClusterEvent),
    ...events,
  ];
  all.forEach((event, i) => (s = apply(s, { index: i + 1, term: 1, at: 0, event })));
  return s;
}

test("one entry per digest; ids from the holders' names, kept apart when two models share one", () => {
  const s = state([
    { type: "model-held", node: A, model: holding(D1, "demo") },
    { type: "model-held", node: B, model: holding(D1, "demo-copy", false) },
    { type: "model-held", node: B, model: holding(D2, "demo") },
  ]);
  const list = clusterModels(s);
  assert.deepEqual(list.map((m) => m.id), ["demo", `demo-${D2.slice(0, 8)}`]);
  const demo = list[0]!;
  assert.deepEqual(demo.names, ["demo", "demo-copy"], "the complete copy's name first");
  assert.deepEqual(demo.holders.map((h) => [h.nodeName, h.complete]), [["n0", true], ["n1", false]]);

  assert.equal(resolveModel(s, "demo")?.digest, D1);
  assert.equal(resolveModel(s, "demo-copy")?.digest, D1, "any holder's name");
  assert.equal(resolveModel(s, "2222222222")?.digest, D2, "a digest prefix");
  assert.equal(resolveModel(s, "nothing"), undefined);
  assert.equal(resolveModel(s, "1234"), undefined, "too short for a digest prefix");
});
