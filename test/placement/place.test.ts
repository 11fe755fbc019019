import { test } from "node:test";
import assert from "node:assert/strict";
import { isTesseraError } from "../../src/errors.js";
import {
  driverBytes,
  HELD_BYTES_PER_WEIGHT,
  RUNNER_BASE_BYTES,
  place,
  placementModel,
  predictDecode,
  type PlacementCluster,
  type PlacementModel,
  type PlacementNode,
} from "../../src/placement/index.js";
import { ACTIVATION_TOKENS } from "../../src/placement/memory.js";
import { randomSource, tinyConfig } from "../engine/core/fixtures.js";

// Synthetic topologies for a 1b-like model (16 layers, 2048 hidden, 32/8 heads, FFN 8192) whose
// weights are given in round numbers, so every expected layer count below is worked out by hand.

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const CTX = 1024;

const model: PlacementModel = {
  name: "test-1b",
  layers: 16,
  hiddenSize: 2048,
  numHeads: 32,
  numKvHeads: 8,
  headDim: 64,
  intermediateSize: 8192,
  vocabSize: 32000,
  contextLength: 4096,
  blocks: { attnOutput: 32, ffnDown: 32 },
  // 100 MiB held per layer; streamed weights per layer ≈ the 1b model's 60.8 M
  layer: {
    qo: { weights: 8.4e6, heldBytes: 20 * MiB, stream: 8.4e6 },
    kv: { weights: 2.1e6, heldBytes: 5 * MiB, stream: 2.1e6 },
    mlp: { weights: 50.3e6, heldBytes: 75 * MiB, stream: 50.3e6 },
    otherBytes: 0,
  },
  embeddingBytes: 50 * MiB,
  head: { weights: 65.5e6, heldBytes: 60 * MiB, stream: 65.5e6 },
};

// Per layer at ctx 1024: 100 MiB of weights + KV 2 × 8 KV heads × 64 × 1024 × 4 B = 4 MiB.
const PER_LAYER = 104 * MiB;
// Activations of a 512-token chunk: 512 × (4 × 2048 + 2 × 8192) × 4 B = 48 MiB (+ the last stage's logits row).
const ACT = ACTIVATION_TOKENS * (4 * 2048 + 2 * 8192) * 4;
const LOGITS = 32000 * 4;

function node(id: string, freeBytes: number, decodeBytesPerSec = 10e9): PlacementNode {
  return { id, name: `n-${id}`, freeBytes, decodeBytesPerSec, matmulGflops: 100 };
}

function mesh(ids: string[], rttMs: number, bw = 1.2e9) {
  const out = [];
  for (const a of ids) for (const b of ids) if (a !== b) out.push({ from: a, to: b, rttMs, bandwidthBytesPerSec: bw });
  return out;
}

test("heterogeneous memory: a pipeline gives the smaller node only the layers it can hold", () => {
  // Single on a (1.5 GiB) needs base 120 + 16 × 104 + 50 + 60 + 48 MiB + the driver: ~2 GiB, does not fit.
  const cluster: PlacementCluster = { nodes: [node("a", 1.5 * GiB), node("b", 1 * GiB)], links: mesh(["a", "b"], 0.2) };
  const plans = place(model, cluster, { ctx: CTX });
  const best = plans[0]!;
  assert.equal(best.strategy, "pipeline");
  // b is the last stage: base + lm_head + activations + logits row + n × 104 MiB ≤ 1 GiB → n ≤ 7.
  const fixedB = RUNNER_BASE_BYTES + 60 * MiB + ACT + LOGITS;
  const maxB = Math.floor((GiB - fixedB) / PER_LAYER);
  assert.equal(maxB, 7);
  assert.deepEqual(best.stages, [{ layers: [0, 9], nodes: ["a"] }, { layers: [9, 16], nodes: ["b"] }]);
  assert.equal(best.home, "a");
  assert.ok(best.memoryBytes.b! <= GiB && best.memoryBytes.a! <= 1.5 * GiB);
  // a holds base + embedding + activations + 9 layers, and the driver
  assert.equal(best.memoryBytes.a, RUNNER_BASE_BYTES + 50 * MiB + ACT + 9 * PER_LAYER + driverBytes(model));
  const single = plans.filter((p) => p.strategy === "single");
  assert.equal(single.length, 2);
  for (const p of single) assert.match(p.reason!, /^needs 2\.0 GiB on n-[ab] \(layers \[0, 16\), the driver\) but it has 1\.[05] GiB free$/);
  // Negative control: with equal room the same pipeline splits 8 + 8.
  const even = place(model, { nodes: [node("a", 1.5 * GiB), node("b", 1.5 * GiB)], links: mesh(["a", "b"], 0.2) }, { ctx: CTX, strategy: "pipeline" });
  assert.deepEqual(even[0]!.stages.map((s) => s.layers), [[0, 8], [8, 16]]);
});

test("one slow node gets fewer layers, in proportion to its measured decode speed", () => {
  const cluster: PlacementCluster = { nodes: [node("a", 4 * GiB, 20e9), node("b", 4 * GiB, 10e9)], links: mesh(["a", "b"], 0.2) };
  const best = place(model, cluster, { ctx: CTX, strategy: "pipeline" })[0]!;
  // 16 layers at speeds 2 : 1 → 10.67 + 5.33 → 11 + 5
  assert.deepEqual(best.stages, [{ layers: [0, 11], nodes: ["a"] }, { layers: [11, 16], nodes: ["b"] }]);
  const equal = place(model, { ...cluster, nodes: [node("a", 4 * GiB), node("b", 4 * GiB)] }, { ctx: CTX, strategy: "pipeline" })[0]!;
  assert.deepEqual(equal.stages.map((s) => s.layers), [[0, 8], [8, 16]]);
  // Unforced, one fast node that holds it all beats any split.
  assert.deepEqual(place(model, cluster, { ctx: CTX })[0]!.nodes, ["a"]);
});

test("a fast pair and a slow third node: tensor parallel on the pair", () => {
  const links = [
    ...mesh(["a", "b"], 0.05),
    ...mesh(["a", "c"], 5, 10e6),
    ...mesh(["b", "c"], 5, 10e6),
  ];
  const cluster: PlacementCluster = { nodes: [node("a", 1.5 * GiB), node("b", 1.5 * GiB), node("c", 1.5 * GiB)], links };
  const plans = place(model, cluster, { ctx: CTX });
  const best = plans[0]!;
  assert.equal(best.strategy, "tensor");
  assert.deepEqual(best.nodes, ["a", "b"]);
  assert.equal(best.ranks.length, 2);
  assert.deepEqual(best.ranks.map((r) => [r.node, r.tpRank, r.tpSize, r.layers]), [["a", 0, 2, [0, 16]], ["b", 1, 2, [0, 16]]]);
  const ppPair = plans.find((p) => p.strategy === "pipeline" && p.nodes.join() === "a,b")!;
  assert.ok(ppPair.feasible && ppPair.predicted.decodeTps < best.predicted.decodeTps, "PP on the pair is slower than TP on it");
  for (const p of plans.filter((x) => x.nodes.includes("c") && x.feasible)) {
    assert.ok(p.predicted.decodeTps < ppPair.predicted.decodeTps, `${p.strategy} over ${p.nodes} crosses the slow links`);
  }
  // Negative control: make the pair's link slow too and tensor parallelism loses to the pipeline.
  const slow = place(model, { ...cluster, links: mesh(["a", "b", "c"], 5, 10e6) }, { ctx: CTX })[0]!;
  assert.equal(slow.strategy, "pipeline");
});

test("two fast pairs joined by a slow link: hybrid (tensor pairs as pipeline stages)", () => {
  const links = [...mesh(["a", "b"], 0.05), ...mesh(["c", "d"], 0.05), ...mesh(["a", "c"], 3, 50e6), ...mesh(["a", "d"], 3, 50e6), ...mesh(["b", "c"], 3, 50e6), ...mesh(["b", "d"], 3, 50e6)];
  const cluster: PlacementCluster = { nodes: ["a", "b", "c", "d"].map((id) => node(id, 0.7 * GiB)), links };
  const best = place(model, cluster, { ctx: CTX })[0]!;
  assert.equal(best.strategy, "hybrid");
  assert.deepEqual(best.stages.map((s) => [...s.nodes].sort()), [["a", "b"], ["c", "d"]]);
  assert.deepEqual(best.stages.map((s) => s.layers), [[0, 8], [8, 16]]);
});

test("a model that fits nowhere: every plan is rejected with its reason", () => {
  const cluster: PlacementCluster = { nodes: [node("a", 256 * MiB), node("b", 256 * MiB), node("c", 300 * MiB)], links: mesh(["a", "b", "c"], 0.2) };
  const plans = place(model, cluster, { ctx: CTX });
  assert.ok(plans.length >= 9);
  for (const p of plans) {
    assert.equal(p.feasible, false);
    assert.match(p.reason!, /needs \d+(\.\d)? [MG]iB on n-[abc] \(.*\) but it has (256\.0 MiB|300\.0 MiB) free/);
  }
  // ... and the TP group of 3 cannot split the KV heads of a model with 2.
  const two = place({ ...model, numKvHeads: 2 }, cluster, { ctx: CTX, strategy: "tensor" });
  const tp3 = two.find((p) => p.strategy === "tensor" && p.nodes.length === 3)!;
  assert.match(tp3.reason!, /cannot share the model's 2 KV heads/);
});

test("forced strategy, node set and minimum node count", () => {
  const cluster: PlacementCluster = { nodes: [node("a", 4 * GiB), node("b", 4 * GiB), node("c", 4 * GiB)], links: mesh(["a", "b", "c"], 0.2) };
  const tensor = place(model, cluster, { ctx: CTX, strategy: "tensor" });
  assert.equal(tensor[0]!.strategy, "tensor");
  for (const p of tensor.filter((x) => x.strategy !== "tensor")) assert.equal(p.reason, "strategy 'tensor' was requested");
  const onBC = place(model, cluster, { ctx: CTX, nodes: ["c", "b"] });
  assert.ok(onBC.every((p) => p.nodes.every((n) => n === "b" || n === "c")));
  const min2 = place(model, cluster, { ctx: CTX, minNodes: 2 });
  assert.ok(min2[0]!.nodes.length >= 2);
  assert.equal(min2.find((p) => p.strategy === "single")!.reason, "uses 1 node, fewer than the 2 requested");
  const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e) => isTesseraError(e) && re.test((e as Error).message));
  bad(() => place(model, cluster, { nodes: ["zz"] }), /node 'zz' is not a worker node/);
  bad(() => place(model, cluster, { strategy: "ring" as never }), /strategy must be one of/);
  bad(() => place(model, cluster, { ctx: 100000 }), /more than the 4096 tokens/);
});

test("the same input gives the same plans, whatever order nodes and links come in", () => {
  const nodes = [node("c", 1 * GiB, 9e9), node("a", 1.2 * GiB), node("b", 0.8 * GiB, 12e9), node("d", 1 * GiB)];
  const links = mesh(["a", "b", "c", "d"], 0.3);
  const one = place(model, { nodes, links }, { ctx: CTX });
  const two = place(model, { nodes, links }, { ctx: CTX });
  const shuffled = place(model, { nodes: [nodes[2]!, nodes[0]!, nodes[3]!, nodes[1]!], links: [...links].reverse() }, { ctx: CTX });
  assert.deepEqual(two, one);
  assert.deepEqual(shuffled, one);
});

test("KV for the requested context is counted", () => {
  const cluster: PlacementCluster = { nodes: [node("a", 2.1 * GiB)], links: [] };
  const small = place(model, cluster, { ctx: 1024 })[0]!;
  const big = place(model, cluster, { ctx: 4096 })[0]!;
  // 16 layers × 2 × 8 × 64 × 3072 more positions × 4 B = 192 MiB more
  assert.equal(big.memoryBytes.a! - small.memoryBytes.a!, 192 * MiB);
  assert.equal(small.feasible, true);
  assert.equal(big.feasible, false);
});

test("parallel sizes KV for every slot, and a pipeline gives the smaller node fewer layers for it", () => {
  const cluster: PlacementCluster = { nodes: [node("a", 2.1 * GiB)], links: [] };
  const one = place(model, cluster, { ctx: 1024, parallel: 1 })[0]!;
  const four = place(model, cluster, { ctx: 1024, parallel: 4 })[0]!;
  // 3 more slots × 16 layers × 2 × 8 × 64 × 1024 positions × 4 B = 3 × 64 MiB
  assert.equal(four.memoryBytes.a! - one.memoryBytes.a!, 192 * MiB);
  assert.equal(one.parallel, 1);
  assert.equal(four.parallel, 4);
  assert.equal(one.feasible, true);
  assert.equal(four.feasible, false);
  // with room for either, the layer split moves: b's 1 GiB holds 7 layers of 104 MiB, but only 6 of 116 MiB (4 slots' KV)
  const pair: PlacementCluster = { nodes: [node("a", 1.5 * GiB), node("b", 1 * GiB)], links: mesh(["a", "b"], 0.2) };
  const split = (parallel: number) => place(model, pair, { ctx: CTX, parallel, strategy: "pipeline" })[0]!.stages.map((s) => s.layers);
  assert.deepEqual(split(1), [[0, 9], [9, 16]]);
  assert.deepEqual(split(4), [[0, 10], [10, 16]]);
  for (const bad of [0, 1.5, 33]) assert.throws(() => place(model, cluster, { parallel: bad }), /parallel must be an integer from 1 to 32/);
});

test("with no parallel asked for, a plan gets as many slots (up to 4) as fit in 75 % of its nodes' free memory", () => {
  // The whole model on one node at ctx 1024: base, embedding, lm_head, activations, logits row, the
  // driver, 16 layers of 100 MiB, and 4 MiB of KV per layer per slot.
  const total = (slots: number) => RUNNER_BASE_BYTES + 50 * MiB + 60 * MiB + ACT + LOGITS + driverBytes(model) + 16 * 100 * MiB + slots * 16 * 4 * MiB;
  const on = (free: number, request = {}) => place(model, { nodes: [node("a", free)], links: [] }, { ctx: 1024, ...request })[0]!;
  const three = on(Math.ceil(total(3) / 0.75));
  assert.equal(three.parallel, 3);
  assert.equal(three.memoryBytes.a, total(3));
  // one byte less and the third slot is over the share
  assert.equal(on(Math.ceil(total(3) / 0.75) - 1).parallel, 2);
  assert.equal(on(total(4) / 0.75 + 10 * GiB).parallel, 4, "never more than 4 by default");
  // Just room for one slot (not within the share): still placed, with one slot.
  const tight = on(total(1));
  assert.equal(tight.feasible, true);
  assert.equal(tight.parallel, 1);
  // Control: asked for, parallel 1 stays 1 however much room there is.
  assert.equal(on(64 * GiB, { parallel: 1 }).parallel, 1);
  // Each candidate on its own: on a roomy and a tight node, the roomy single gets 4 slots, the tight pipeline over both keeps 1.
  const pair: PlacementCluster = { nodes: [node("a", 8 * GiB), node("b", 0.6 * GiB)], links: mesh(["a", "b"], 0.2) };
  const plans = place(model, pair, { ctx: 1024 });
  assert.equal(plans.find((p) => p.strategy === "single" && p.nodes[0] === "a")!.parallel, 4);
  const pp = plans.find((p) => p.strategy === "pipeline")!;
  assert.equal(pp.feasible, true);
  assert.equal(pp.parallel, 1);
});

test("placementModel counts weights and held bytes per group from the header", () => {
  const cfg = tinyConfig("llama", { numLayers: 3 });
  const src = randomSource(cfg, { linearType: "Q8_0" });
  const m = placementModel(src, "tiny");
  // hidden 64, 4 heads × 16, 2 KV heads × 16, FFN 128, vocab 96
  assert.equal(m.layer.qo.weights, 2 * 64 * 64);
  assert.equal(m.layer.kv.weights, 2 * 32 * 64);
  assert.equal(m.layer.mlp.weights, 3 * 128 * 64);
  assert.ok(Math.abs(m.layer.qo.heldBytes - 2 * 64 * 64 * HELD_BYTES_PER_WEIGHT.Q8_0) < 1e-6);
  assert.equal(m.layer.otherBytes, 2 * 64 * 4);
  assert.equal(m.embeddingBytes, 96 * 64 * 34 / 32, "the embedding at its stored Q8_0 size");
  assert.equal(m.head.weights, 96 * 64);
  assert.deepEqual(m.blocks, { attnOutput: 32, ffnDown: 32 });
  assert.equal(m.layers, 3);
});

test("predictDecode: one process predicts itself; TP pays per layer for its links, PP per stage", () => {
  const base = { singleMsPerToken: 40, layers: 16, hiddenSize: 2048, vocabSize: 32000 };
  assert.ok(Math.abs(predictDecode({ ...base, pp: 1, tp: 1, rttMs: 0.1 }).msPerToken - 40) < 1e-9);
  const tpFast = predictDecode({ ...base, pp: 1, tp: 2, rttMs: 0.05 });
  const tpSlow = predictDecode({ ...base, pp: 1, tp: 2, rttMs: 2 });
  const pp = predictDecode({ ...base, pp: 2, tp: 1, rttMs: 0.05 });
  assert.ok(tpFast.msPerToken < 40 && tpFast.msPerToken > 20);
  assert.ok(tpSlow.msPerToken > 40, "32 all-reduces at 2 ms make TP 2 slower than one process");
  assert.ok(pp.msPerToken > 40 && pp.msPerToken < 43);
  assert.ok(Math.abs(tpSlow.allReduceMs - tpFast.allReduceMs - 32 * 1.95) < 1e-9);
});
