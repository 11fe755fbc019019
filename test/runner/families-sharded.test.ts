import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../../src/models/types.js";
import { openModel } from "../../src/models/open.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import type { ReadCounts } from "../../src/models/source/counting.js";
import { makePlan, type ShardPlan } from "../../src/placement/shard-plan.js";
import { CONTEXT, ModelFiles, configOf, trace, type ModelSpec } from "./models.js";
import { relErr } from "../engine/core/compare.js";
import { waitGone } from "./processes.js";

/**
 * The new families sharded over real runner processes give the single process's greedy tokens (64
 * steps) and logits within the bounds of sharded.test.ts: mixture of experts under PP 2, TP 2 (every
 * expert sliced: each rank holds half of every expert) and PP 2 × TP 2, Gemma 3's post norms (applied
 * after the all-reduce) and Phi-3's fused q/k/v and gate/up (a rank reads its rows of each part).
 * Each rank reports the bytes it read from the file: under TP its expert bytes are exactly its share.
 */
const TOLERANCE_EXACT = 1e-4;
const TOLERANCE_TP_QUANTIZED = 5e-3;

const models = new ModelFiles();
before(() => models.open());
after(() => models.close());

/** Stored bytes of the expert tensors of layers [a, b). */
async function expertBytes(path: string, [a, b]: [number, number]): Promise<number> {
  const src = await openModel(path);
  try {
    return src.tensors().filter((t) => /_exps\.weight$/.test(t.name) && Number(t.name.split(".")[1]) >= a && Number(t.name.split(".")[1]) < b).reduce((s, t) => s + t.byteLength, 0);
  } finally {
    await src.close();
  }
}

async function checkSharded(spec: ModelSpec, makeIt: (cfg: ModelConfig) => ShardPlan): Promise<ReadCounts[]> {
  const path = await models.path(spec);
  const plan = makeIt(await configOf(path));
  const ref = await models.reference(spec);
  const tpQuantized = plan.stages.some((s) => s.tp > 1) && !spec.quant.startsWith("f");
  const tol = tpQuantized ? TOLERANCE_TP_QUANTIZED : TOLERANCE_EXACT;
  const driver = await ShardedDriver.start({ plan, modelPath: path, contextLength: CONTEXT });
  const pids = driver.runners.pids;
  try {
    const got = await trace((t, all) => driver.forward(t, { allLogits: all }), driver.vocabSize);
    assert.ok(relErr(got.promptLogits, ref.promptLogits) < tol, `prompt logits differ by ${relErr(got.promptLogits, ref.promptLogits)}`);
    assert.deepEqual(got.tokens, ref.tokens);
    const worst = Math.max(...got.logits.map((l, i) => relErr(l, ref.logits[i]!)));
    assert.ok(worst < tol, `decode logits differ by ${worst}`);
    assert.ok(new Set(ref.tokens).size > 3);
    return driver.runners.readCounts!;
  } finally {
    await driver.close();
    assert.deepEqual(await waitGone(pids, 5000), [], "runner processes left behind");
  }
}

const moe = { arch: "qwen3moe", preset: "tiny", quant: "q4_0" } as const;

test("qwen3moe PP 2: one layer (and its experts) per stage", async () => {
  const reads = await checkSharded(moe, (c) => makePlan(c, { pp: 2, tp: 1 }));
  const path = await models.path(moe);
  assert.deepEqual(reads.map((r) => r.expertBytes), [await expertBytes(path, [0, 1]), await expertBytes(path, [1, 2])]);
});

test("qwen3moe TP 2: each rank holds half of every expert, and reads exactly that", async () => {
  const reads = await checkSharded(moe, (c) => makePlan(c, { pp: 1, tp: 2 }));
  const all = await expertBytes(await models.path(moe), [0, 2]);
  assert.ok(all > 0);
  assert.deepEqual(reads.map((r) => r.expertBytes), [all / 2, all / 2]);
});

test("qwen3moe PP 2 × TP 2: a quarter of the experts per rank", async () => {
  const reads = await checkSharded(moe, (c) => makePlan(c, { pp: 2, tp: 2 }));
  const path = await models.path(moe);
  const [l0, l1] = [await expertBytes(path, [0, 1]), await expertBytes(path, [1, 2])];
  assert.deepEqual(reads.map((r) => r.expertBytes), [l0 / 2, l0 / 2, l1 / 2, l1 / 2]);
});

test("gemma3 TP 2 (post norms after the all-reduce, sliding layers): f16", async () => {
  await checkSharded({ arch: "gemma3", preset: "tiny", quant: "f16" }, (c) => makePlan(c, { pp: 1, tp: 2 }));
});

test("phi3 PP 2 × TP 2 (fused q/k/v and gate/up read by rows): q8_0", async () => {
  await checkSharded({ arch: "phi3", preset: "small", quant: "q8_0" }, (c) => makePlan(c, { pp: 2, tp: 2 }));
});
