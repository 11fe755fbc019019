import { test } from "node:test";
import assert from "node:assert/strict";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ShardEngine } from "../../../src/engine/session/shard.js";
import { isTesseraError } from "../../../src/errors.js";
import { randomSource, tinyConfig } from "./fixtures.js";
import { relErr } from "./compare.js";

const src = randomSource(tinyConfig("qwen3"), { seed: 5 });

test("a forward that would overflow the KV cache is a clear error and changes nothing", async () => {
  const s = await createStepper(src, { threads: 1, contextLength: 8 });
  try {
    assert.equal(s.contextLength, 8);
    s.forward(Int32Array.from([1, 2, 3, 4, 5, 6]));
    assert.throws(
      () => s.forward(Int32Array.from([7, 8, 9])),
      (e) => isTesseraError(e) && /context overflow: 6 cached \+ 3 new tokens exceed the context length of 8/.test(e.message),
    );
    assert.equal(s.position, 6);
    s.forward(Int32Array.from([7, 8]));
    assert.equal(s.position, 8);
    assert.throws(() => s.forward(Int32Array.of(1)), (e) => isTesseraError(e));
  } finally {
    await s.dispose();
  }
});

test("truncate rewinds the cache: the continuation equals a fresh run of the same tokens", async () => {
  const a = await createStepper(src, { threads: 1, contextLength: 16 });
  const b = await createStepper(src, { threads: 1, contextLength: 16 });
  try {
    a.forward(Int32Array.from([10, 11, 12, 13, 14]));
    a.truncate(2);
    assert.equal(a.position, 2);
    const got = a.forward(Int32Array.from([40, 41, 42]));
    const want = b.forward(Int32Array.from([10, 11, 40, 41, 42]));
    // Cached keys and the step's own keys are summed in separate parts (attention.ts), so a
    // different split of the same tokens differs by float rounding only (measured 2e-7).
    assert.ok(relErr(got, want) < 1e-6, `relative error ${relErr(got, want)}`);
    a.truncate(0);
    assert.deepEqual(a.forward(Int32Array.of(3)), (b.truncate(0), b.forward(Int32Array.of(3))));
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

test("bad tokens, head sizes and devices are clear errors", async () => {
  const s = await createStepper(src, { threads: 1, contextLength: 8 });
  try {
    assert.throws(() => s.forward(Int32Array.of(96)), (e) => isTesseraError(e) && /outside the vocabulary/.test(e.message));
    assert.throws(() => s.forward(new Int32Array(0)), (e) => isTesseraError(e));
  } finally {
    await s.dispose();
  }
  await assert.rejects(
    createStepper(randomSource(tinyConfig("llama", { headDim: 7, hiddenSize: 28 })), { threads: 1 }),
    (e) => isTesseraError(e) && /head_dim 7 is odd/.test(e.message),
  );
  const missing = { ...src, info: (n: string) => (n === "blk.1.ffn_up.weight" ? undefined : src.info(n)) };
  await assert.rejects(createStepper(missing, { threads: 1 }), (e) => isTesseraError(e) && /blk\.1\.ffn_up\.weight is missing/.test(e.message));
});

test("two pipeline stages [0, 1) → [1, 2) give the single-shard logits", async () => {
  const whole = await createStepper(src, { threads: 1, contextLength: 16 });
  const first = await ShardEngine.create(src, { threads: 1, contextLength: 16, layers: [0, 1], spinning: false });
  const last = await ShardEngine.create(src, { threads: 1, contextLength: 16, layers: [1, 2], spinning: false });
  try {
    assert.ok(first.isFirst && !first.isLast && last.isLast && !last.isFirst);
    for (const tokens of [[5, 6, 7, 8], [9], [10]]) {
      const ids = Int32Array.from(tokens);
      const hidden = first.run(first.embed(ids), ids.length);
      assert.equal(hidden.length, ids.length * src.config.hiddenSize);
      const got = last.run(hidden, ids.length);
      const want = whole.forward(ids);
      const err = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
      assert.ok(err < 1e-4, `max difference ${err}`);
    }
    await assert.rejects(ShardEngine.create(src, { layers: [1, 1] }), (e) => isTesseraError(e) && /invalid layer range/.test(e.message));
  } finally {
    await whole.dispose();
    first.dispose();
    last.dispose();
  }
});
