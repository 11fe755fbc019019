import { test } from "node:test";
import assert from "node:assert/strict";
import { KV_WINDOW_STEP, KvCache } from "../../../src/engine/session/kv-cache.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ort } from "../../../src/engine/onnx/session.js";
import { relErr } from "./compare.js";
import { randomSource, tinyConfig } from "./fixtures.js";

/** One step of `n` tokens as the attention graph sees it: checks the inputs, stores marked rows. */
function appendRows(kv: KvCache, n: number): void {
  kv.prepare(n);
  const feeds: Record<string, ort.Tensor> = {};
  const outs: Record<string, ort.Tensor | null> = {};
  kv.bind(feeds, outs, n);
  const w = kv.window;
  const bias = feeds.past_bias!.data as Float32Array;
  assert.equal(bias.length, w);
  for (let p = 0; p < w; p++) assert.equal(bias[p], p < kv.length ? 0 : -Infinity);
  assert.deepEqual(Array.from(feeds.positions!.data as BigInt64Array, Number), Array.from({ length: n }, (_, i) => kv.length + i));
  const causal = feeds.causal_bias!.data as Float32Array;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(causal[i * n + j], j <= i ? 0 : -Infinity);
  const result: Record<string, ort.Tensor> = {};
  kv.layers.forEach((l, i) => {
    const t = feeds[`past_key_${l}`]!;
    assert.deepEqual(t.dims, [1, kv.kvHeads, w, kv.headDim]);
    assert.ok(`new_key_${l}` in outs && `new_value_${l}` in outs);
    for (const name of [`new_key_${l}`, `new_value_${l}`]) {
      const data = new Float32Array(kv.kvHeads * n * kv.headDim);
      for (let h = 0; h < kv.kvHeads; h++) {
        for (let p = 0; p < n; p++) data.fill(value(i, h, kv.length + p), (h * n + p) * kv.headDim, (h * n + p + 1) * kv.headDim);
      }
      result[name] = new ort.Tensor("float32", data, [1, kv.kvHeads, n, kv.headDim]);
    }
  });
  kv.store(result, n);
}

const value = (i: number, h: number, p: number) => i * 1e6 + h * 1e4 + p + 1;

function assertRows(kv: KvCache): void {
  kv.layers.forEach((_, i) => {
    for (let h = 0; h < kv.kvHeads; h++) {
      const rows = kv.keyRows(i, h);
      assert.equal(rows.length, kv.length * kv.headDim);
      for (let p = 0; p < kv.length; p++) assert.equal(rows[p * kv.headDim], value(i, h, p), `layer ${i} head ${h} pos ${p}`);
    }
  });
}

test("the bound KV window grows and shrinks with the tokens cached and keeps every row", () => {
  const kv = new KvCache([3, 4], 3, 300, 16);
  assert.equal(kv.window, KV_WINDOW_STEP);
  appendRows(kv, 40);
  assert.equal(kv.window, KV_WINDOW_STEP);
  assertRows(kv);
  for (let i = 0; i < 60; i++) appendRows(kv, 1);
  assert.equal(kv.length, 100);
  assert.equal(kv.window, 2 * KV_WINDOW_STEP, "window = tokens rounded up to the step");
  assertRows(kv);
  appendRows(kv, 150);
  assert.equal(kv.window, 256);
  assertRows(kv);
  appendRows(kv, 50);
  assert.equal(kv.window, 300, "never beyond the capacity");
  assertRows(kv);
  assert.throws(() => kv.prepare(1), /context overflow/);
  kv.truncate(70);
  assert.equal(kv.window, 128);
  assertRows(kv);
  appendRows(kv, 5);
  assertRows(kv);
  kv.truncate(0);
  assert.equal(kv.window, KV_WINDOW_STEP);
  assert.equal(kv.length, 0);
  // A long prefill from an empty cache reads one step of (masked) past, not its own length.
  appendRows(kv, 200);
  assert.equal(kv.window, 256);
  assertRows(kv);
});

test("decoding across KV window boundaries gives the logits of one prefill of the same tokens", async () => {
  // A model trained for 512 positions: a larger --ctx than that is refused (models/context.ts).
  const src = randomSource(tinyConfig("llama", { contextLength: 512 }), { seed: 11 });
  const stepwise = await createStepper(src, { threads: 1, contextLength: 512 });
  const whole = await createStepper(src, { threads: 1, contextLength: 512 });
  try {
    const tokens = Int32Array.from({ length: 150 }, (_, i) => (i * 37 + 5) % src.config.vocabSize);
    const all = whole.forward(tokens, { allLogits: true });
    const V = whole.vocabSize;
    stepwise.forward(tokens.subarray(0, 20));
    let worst = 0;
    for (let p = 20; p < tokens.length; p++) {
      const got = stepwise.forward(tokens.subarray(p, p + 1));
      worst = Math.max(worst, relErr(got, all.subarray(p * V, (p + 1) * V)));
    }
    assert.ok(worst < 1e-5, `relative error ${worst}`);
    // Shrinking the window on truncate keeps the cached rows: continue from position 70.
    stepwise.truncate(70);
    const again = stepwise.forward(tokens.subarray(70, 71));
    assert.ok(relErr(again, all.subarray(70 * V, 71 * V)) < 1e-5);
  } finally {
    await stepwise.dispose();
    await whole.dispose();
  }
});
