import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { isTesseraError } from "../../src/errors.js";
import type { ModelConfig } from "../../src/models/types.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import { makePlan, type ShardPlan } from "../../src/placement/shard-plan.js";
import { CONTEXT, ModelFiles, configOf, PROMPT, trace, type ModelSpec } from "./models.js";
import { relErr } from "../engine/core/compare.js";
import { waitGone } from "./processes.js";
import { argmax } from "../../src/engine/sampling/select.js";

// Sharded runs over real runner processes and loopback TCP must give the single process's greedy
// tokens for 64 steps, and logits within TOLERANCE of its largest logit. The sharded graphs sum the
// same products in another order (partials across ranks, residual adds outside the fused norm), and
// MatMulNBits' int8 activation blocks are the same on every rank (column slices fall on block
// edges). With float weights, and for pipeline stages (the same graph, cut), the difference is float32
// rounding: measured ≤ 4e-6 relative. With quantized weights under tensor parallelism MatMulNBits'
// int8 activation quantization sees each rank's slice of o_proj/ffn_down input separately: measured
// ≤ 1.1e-3. Greedy tokens must match exactly either way.
const TOLERANCE_EXACT = 1e-4;
const TOLERANCE_TP_QUANTIZED = 5e-3;
// 8-bit partial sums (--compress-activations) err by up to max|block| / 254 per all-reduce (quantize.ts):
// measured ≤ 7.7e-4 (f16) and ≤ 3.6e-3 (q8_0, q4_0) relative over 64 steps, same greedy tokens.
const TOLERANCE_COMPRESSED = 1e-2;

const models = new ModelFiles();
before(() => models.open());
after(() => models.close());

async function checkSharded(spec: ModelSpec, makeIt: (cfg: ModelConfig) => ShardPlan): Promise<void> {
  const path = await models.path(spec);
  const plan = makeIt(await configOf(path));
  const ref = await models.reference(spec);
  const tpQuantized = plan.stages.some((s) => s.tp > 1) && !spec.quant.startsWith("f");
  const TOLERANCE = tpQuantized ? TOLERANCE_TP_QUANTIZED : TOLERANCE_EXACT;
  const driver = await ShardedDriver.start({ plan, modelPath: path, contextLength: CONTEXT });
  const pids = driver.runners.pids;
  try {
    const got = await trace((t, all) => driver.forward(t, { allLogits: all }), driver.vocabSize);
    assert.equal(got.promptLogits.length, PROMPT.length * driver.vocabSize);
    assert.ok(relErr(got.promptLogits, ref.promptLogits) < TOLERANCE, `prompt logits differ by ${relErr(got.promptLogits, ref.promptLogits)}`);
    assert.deepEqual(got.tokens, ref.tokens);
    const worst = Math.max(...got.logits.map((l, i) => relErr(l, ref.logits[i]!)));
    assert.ok(worst < TOLERANCE, `decode logits differ by ${worst}`);
    // The tokens are not a constant: the model really generates.
    assert.ok(new Set(ref.tokens).size > 3);
    // truncate + recompute reproduces a step exactly
    driver.truncate(PROMPT.length);
    const again = await driver.forward(Int32Array.of(got.tokens[0]!));
    assert.ok(relErr(again, ref.logits[1]!) < TOLERANCE);
  } finally {
    await driver.close();
  }
  assert.deepEqual(await waitGone(pids, 5000), [], "runner processes left behind");
}

test("PP 2: llama tiny q4_0, one layer per stage", () => checkSharded({ arch: "llama", preset: "tiny", quant: "q4_0" }, (c) => makePlan(c, { pp: 2, tp: 1 })));

test("PP 3: qwen3 small f16, layers 2 + 1 + 1", () =>
  checkSharded({ arch: "qwen3", preset: "small", quant: "f16" }, (c) => {
    const p = makePlan(c, { pp: 3, tp: 1 });
    assert.deepEqual(p.stages.map((s) => s.layers), [[0, 2], [2, 3], [3, 4]]);
    return p;
  }));

test("PP 2 uneven (weights 3:1): llama small q8_0, layers 3 + 1", () =>
  checkSharded({ arch: "llama", preset: "small", quant: "q8_0" }, (c) => {
    const p = makePlan(c, { pp: 2, tp: 1, weights: [3, 1] });
    assert.deepEqual(p.stages.map((s) => s.layers), [[0, 3], [3, 4]]);
    return p;
  }));

test("TP 2: qwen3 tiny q8_0", () => checkSharded({ arch: "qwen3", preset: "tiny", quant: "q8_0" }, (c) => makePlan(c, { pp: 1, tp: 2 })));

test("TP 4 (2 KV heads, each replicated on 2 ranks): qwen3 small q4_0", () =>
  checkSharded({ arch: "qwen3", preset: "small", quant: "q4_0" }, (c) => makePlan(c, { pp: 1, tp: 4 })));

test("PP 2 × TP 2: llama small q8_0", () => checkSharded({ arch: "llama", preset: "small", quant: "q8_0" }, (c) => makePlan(c, { pp: 2, tp: 2 })));

test("PP 3 pipelined prefill: micro-batches of 3 tokens in flight at once give the one-process logits and tokens", async () => {
  const spec = { arch: "qwen3", preset: "small", quant: "f16" } as const;
  const path = await models.path(spec);
  const ref = await models.reference(spec);
  const driver = await ShardedDriver.start({ plan: makePlan(await configOf(path), { pp: 3, tp: 1 }), modelPath: path, contextLength: CONTEXT, microBatch: 3 });
  const V = driver.vocabSize;
  try {
    for (let round = 0; round < 2; round++) {
      // 8 prompt tokens: micro-batches 3 + 3, then the last 2 return the logits
      const before = driver.stepsSent;
      const last = await driver.forward(PROMPT);
      assert.equal(driver.stepsSent - before, 3, "the prompt did not go out as 3 micro-batches");
      assert.equal(driver.position, PROMPT.length);
      assert.ok(relErr(last, ref.promptLogits.subarray((PROMPT.length - 1) * V)) < TOLERANCE_EXACT);
      let logits = last;
      for (let i = 0; i < 8; i++) {
        assert.equal(argmax(logits, V), ref.tokens[i]);
        logits = await driver.forward(Int32Array.of(ref.tokens[i]!));
      }
      assert.ok(relErr(logits, ref.logits[8]!) < TOLERANCE_EXACT);
      driver.truncate(0);
    }
    // Control: asking for every position's logits sends the prompt whole, and the count shows it.
    const before = driver.stepsSent;
    const all = await driver.forward(PROMPT, { allLogits: true });
    assert.equal(driver.stepsSent - before, 1);
    assert.ok(relErr(all, ref.promptLogits) < TOLERANCE_EXACT);
    driver.truncate(0);
    // an input that would overflow the context sends no micro-batch at all
    await assert.rejects(driver.forward(new Int32Array(CONTEXT + 1)), /context overflow/);
    assert.equal(driver.position, 0);
  } finally {
    await driver.close();
  }
});

test("TP 2 with 8-bit partial sums (--compress-activations): llama small f16", async () => {
  const spec = { arch: "llama", preset: "small", quant: "f16" } as const;
  const path = await models.path(spec);
  const ref = await models.reference(spec);
  const plan = makePlan(await configOf(path), { pp: 1, tp: 2 });
  const driver = await ShardedDriver.start({ plan, modelPath: path, contextLength: CONTEXT, compressActivations: true });
  try {
    const got = await trace((t, all) => driver.forward(t, { allLogits: all }), driver.vocabSize);
    const prompt = relErr(got.promptLogits, ref.promptLogits);
    assert.ok(prompt < TOLERANCE_COMPRESSED, `prompt logits differ by ${prompt}`);
    // uncompressed, f16 weights under TP 2 differ by float32 rounding only (< TOLERANCE_EXACT)
    assert.ok(prompt > 1e-5, `prompt logits differ by only ${prompt}: were the partial sums compressed?`);
    assert.deepEqual(got.tokens, ref.tokens);
    const worst = Math.max(...got.logits.map((l, i) => relErr(l, ref.logits[i]!)));
    assert.ok(worst < TOLERANCE_COMPRESSED, `decode logits differ by ${worst}`);
  } finally {
    await driver.close();
  }
});

test("a group the heads cannot split over is refused before any process starts", async () => {
  const path = await models.path({ arch: "llama", preset: "tiny", quant: "q8_0" });
  const cfg = await configOf(path);
  await assert.rejects(
    ShardedDriver.start({ plan: makePlan(cfg, { pp: 1, tp: 3 }), modelPath: path, contextLength: CONTEXT }),
    (e) => isTesseraError(e) && /group of 3 cannot share the model's 2 KV heads/.test((e as Error).message),
  );
  // 4 ranks of one 16-wide head each would cut attn_output's 32-column q8_0 blocks
  await assert.rejects(
    ShardedDriver.start({ plan: makePlan(cfg, { pp: 1, tp: 4 }), modelPath: path, contextLength: CONTEXT }),
    (e) => isTesseraError(e) && /quantization blocks of 32/.test((e as Error).message),
  );
});

test("killing one rank mid-generation fails the others within 5 s, naming it, and leaves no process", async () => {
  const path = await models.path({ arch: "llama", preset: "small", quant: "q8_0" });
  const cfg = await configOf(path);
  const driver = await ShardedDriver.start({ plan: makePlan(cfg, { pp: 2, tp: 2 }), modelPath: path, contextLength: CONTEXT });
  const pids = driver.runners.pids;
  try {
    await driver.forward(PROMPT);
    for (let i = 0; i < 4; i++) await driver.forward(Int32Array.of(400 + i));
    const victim = driver.runners.places.find((p) => p.stage === 1 && p.tpRank === 1)!;
    process.kill(pids[victim.world - 1]!, "SIGKILL");
    const t0 = Date.now();
    const others = pids.filter((_, i) => i !== victim.world - 1);
    assert.deepEqual(await waitGone(others, 5000), [], "the other runners did not exit within 5 s");
    assert.ok(Date.now() - t0 < 5000);
    await assert.rejects(driver.forward(Int32Array.of(5)), (e) => isTesseraError(e) && new RegExp(`rank ${victim.world}\\b`).test((e as Error).message));
    // each survivor said why it stopped, naming a rank
    for (const p of driver.runners.places) {
      if (p.world !== victim.world) assert.match(driver.runners.stderrOf(p.world), /rank \d/);
    }
  } finally {
    await driver.close(1000);
  }
  assert.deepEqual(await waitGone(pids, 2000), []);
});
