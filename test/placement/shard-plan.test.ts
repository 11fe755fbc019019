import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../../src/models/types.js";
import { isTesseraError } from "../../src/errors.js";
import { presetConfig } from "../../src/models/synth/presets.js";
import { checkPlan, makePlan, proportionalSplit, rankPlaces } from "../../src/placement/shard-plan.js";
import { evenSplit, tpSplit } from "../../src/placement/split.js";

const Q = { attnOutput: 32, ffnDown: 32 };
const F = { attnOutput: 1, ffnDown: 1 };
const oneB: ModelConfig = presetConfig("llama", "1b", 32000);
const tiny: ModelConfig = presetConfig("llama", "tiny", 4096);

const refused = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e) => isTesseraError(e) && pattern.test((e as Error).message), `expected a TesseraError matching ${pattern}`);

test("layers are split in proportion to stage weights, every stage at least one layer", () => {
  assert.deepEqual(proportionalSplit(16, [1, 1]), [8, 8]);
  assert.deepEqual(proportionalSplit(4, [3, 1]), [3, 1]);
  assert.deepEqual(proportionalSplit(4, [1, 1, 1]), [2, 1, 1]);
  assert.deepEqual(proportionalSplit(16, [1, 100]), [1, 15]);
  assert.deepEqual(proportionalSplit(10, [2, 1, 1]), [5, 3, 2]);
  const plan = makePlan(oneB, { pp: 3, tp: 2, weights: [2, 1, 1] });
  assert.deepEqual(plan.stages.map((s) => s.layers), [[0, 8], [8, 12], [12, 16]]);
  assert.deepEqual(rankPlaces(plan).map((p) => [p.world, p.stage, p.tpRank]), [[1, 0, 0], [2, 0, 1], [3, 1, 0], [4, 1, 1], [5, 2, 0], [6, 2, 1]]);
  refused(() => makePlan(tiny, { pp: 3, tp: 1 }), /3 pipeline stages for a model with only 2 layers/);
  refused(() => makePlan(tiny, { pp: 2, tp: 1, weights: [1, 0] }), /positive/);
});

test("a plan must cover every layer exactly once, in order", () => {
  checkPlan(oneB, { stages: [{ layers: [0, 5], tp: 1 }, { layers: [5, 16], tp: 1 }] }, Q);
  refused(() => checkPlan(oneB, { stages: [{ layers: [0, 5], tp: 1 }, { layers: [6, 16], tp: 1 }] }, Q), /stage 1: layers \[5, 6\) are not run/);
  refused(() => checkPlan(oneB, { stages: [{ layers: [0, 5], tp: 1 }, { layers: [4, 16], tp: 1 }] }, Q), /layer 4 is already run/);
  refused(() => checkPlan(oneB, { stages: [{ layers: [0, 15], tp: 1 }] }, Q), /layers \[15, 16\) are not run/);
  refused(() => checkPlan(oneB, { stages: [{ layers: [0, 17], tp: 1 }] }, Q), /past the model's 16 layers/);
  refused(() => checkPlan(oneB, { stages: [] }, Q), /at least one stage/);
});

test("uneven tensor-parallel split: 8 KV heads over 3 ranks", () => {
  const s = tpSplit(oneB, 3, Q);
  assert.deepEqual(s.map((x) => x.kvHeads), [3, 3, 2]);
  assert.deepEqual(s.map((x) => x.heads), [12, 12, 8]);
  assert.deepEqual(s.map((x) => x.qRows), [[0, 768], [768, 1536], [1536, 2048]]);
  assert.deepEqual(s.map((x) => x.kvRows), [[0, 192], [192, 384], [384, 512]]);
  // 8192 / 32 = 256 blocks → 86, 85, 85
  assert.deepEqual(s.map((x) => x.ffnRows), [[0, 2752], [2752, 5472], [5472, 8192]]);
  assert.deepEqual(evenSplit(7, 3), [3, 2, 2]);
});

test("groups larger than the KV head count replicate KV heads and split their query group", () => {
  const s = tpSplit(tiny, 4, F); // 4 heads, 2 KV heads
  assert.deepEqual(s.map((x) => [x.heads, x.kvHeads]), [[1, 1], [1, 1], [1, 1], [1, 1]]);
  assert.deepEqual(s.map((x) => x.kvRows), [[0, 16], [0, 16], [16, 32], [16, 32]]);
  assert.deepEqual(s.map((x) => x.oCols), [[0, 16], [16, 32], [32, 48], [48, 64]]);
  const big = tpSplit(oneB, 16, Q);
  assert.deepEqual(big.map((x) => x.heads), new Array(16).fill(2));
  assert.deepEqual(big[3]!.kvRows, [64, 128]);
});

test("plans the model cannot support are refused with the reason", () => {
  refused(() => tpSplit(tiny, 3, F), /group of 3 cannot share the model's 2 KV heads/);
  refused(() => tpSplit(tiny, 8, F), /larger than the model's 4 attention heads/);
  // one 16-wide head per rank cuts attn_output inside a 32-column quantization block
  refused(() => tpSplit(tiny, 4, Q), /quantization blocks of 32/);
  refused(() => checkPlan(tiny, makePlan(tiny, { pp: 1, tp: 3 }), F), /^stage 0: .*cannot share/);
  refused(() => tpSplit({ ...tiny, intermediateSize: 96 }, 4, Q), /only 3 quantization blocks/);
});
