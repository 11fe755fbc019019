import { test } from "node:test";
import assert from "node:assert/strict";
import { TesseraError } from "../../src/errors.js";
import { DEFAULT_CONTEXT, maxContext, resolveContextLength } from "../../src/models/context.js";
import type { ModelConfig, TensorInfo } from "../../src/models/types.js";
import { checkMemoryFits, estimateShardMemory } from "../../src/engine/memory.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { estimatePlanMemory } from "../../src/runner/plan-memory.js";

const cfg: ModelConfig = {
  architecture: "llama",
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  intermediateSize: 256,
  vocabSize: 1000,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  contextLength: 4096,
  tiedEmbeddings: false,
  qkvBias: false,
  qkNorm: false,
};

test("context: the default is the model's own capped at 4096; beyond the trained length is refused", () => {
  assert.equal(resolveContextLength(cfg, undefined), DEFAULT_CONTEXT);
  assert.equal(resolveContextLength({ ...cfg, contextLength: 2048 }, undefined), 2048);
  assert.equal(resolveContextLength(cfg, 4096), 4096);
  assert.equal(resolveContextLength(cfg, 100), 100);
  assert.throws(() => resolveContextLength(cfg, 4097, "m.gguf"), (e: unknown) => e instanceof TesseraError && e.message === "m.gguf: --ctx 4097 is beyond the 4096 tokens this model was trained for (--ctx 4096 at most)");
  assert.throws(() => resolveContextLength(cfg, 99_999_999), /--ctx 99999999 is beyond the 4096 tokens/);
  assert.throws(() => resolveContextLength(cfg, 0), /--ctx must be a whole number ≥ 1/);
  assert.throws(() => resolveContextLength(cfg, 5000, undefined, "a context of 5000 tokens (--prompt-tokens)"), /a context of 5000 tokens \(--prompt-tokens\) is beyond/);
  // Rope scaling that stretches the original context further than the stated length allows more.
  const llama3 = { kind: "llama3" as const, factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192 };
  const scaled: ModelConfig = { ...cfg, contextLength: 8192, ropeScaling: llama3 };
  assert.equal(maxContext(scaled), 32768);
  assert.equal(resolveContextLength(scaled, 32768), 32768);
  assert.throws(() => resolveContextLength(scaled, 32769), /beyond the 32768 tokens/);
  assert.equal(maxContext({ ...cfg, contextLength: 131072, ropeScaling: { ...llama3, factor: 8 } }), 131072);
});

// Stored tensors of the fake model: Q4_0 layers (18 bytes per 32 weights), F16 embedding, Q8_0 output.
const q4 = (n: number) => (n / 32) * 18;
const tensors: TensorInfo[] = [
  { name: "token_embd.weight", type: "F16", shape: [1000, 64], byteLength: 1000 * 64 * 2 },
  { name: "output.weight", type: "Q8_0", shape: [1000, 64], byteLength: (1000 * 64 / 32) * 34 },
  { name: "output_norm.weight", type: "F32", shape: [64], byteLength: 256 },
  ...[0, 1].flatMap((l): TensorInfo[] => [
    { name: `blk.${l}.attn_q.weight`, type: "Q4_0", shape: [64, 64], byteLength: q4(64 * 64) },
    { name: `blk.${l}.ffn_up.weight`, type: "Q4_0", shape: [256, 64], byteLength: q4(256 * 64) },
    { name: `blk.${l}.attn_norm.weight`, type: "F32", shape: [64], byteLength: 256 },
  ]),
];

test("memory estimate: weights as the engine holds them, the KV cache for the context, attention scratch", () => {
  const layer = 1.6 * (q4(64 * 64) + q4(256 * 64)) + 256; // quantized × 1.6, F32 norm × 1
  const embedding = 1000 * 64 * 2; // looked up in JS at its stored size
  const head = 1.6 * (1000 * 64 / 32) * 34;
  const e = estimateShardMemory(cfg, tensors, { contextLength: 4096 });
  assert.equal(e.weightBytes, Math.round(2 * layer + embedding + head + 256));
  assert.equal(e.kvBytes, 2 * 2 * 2 * 4096 * 16 * 4); // layers × K,V × kv heads × ctx × head dim × float32
  assert.equal(e.scratchBytes, 2 * 4 * 512 * 4096 * 4 + 4096 * 16 * 4); // scores + softmax of a 512 chunk, rope cos/sin
  assert.equal(e.totalBytes, e.weightBytes + e.kvBytes + e.scratchBytes);

  // A middle pipeline stage holds its layers only; a tensor-parallel rank a share of them.
  const mid = estimateShardMemory({ ...cfg, numLayers: 3 }, tensors, { layers: [1, 2], contextLength: 100 });
  assert.equal(mid.weightBytes, Math.round(layer));
  const rank = estimateShardMemory(cfg, tensors, { layers: [0, 1], tp: 2, contextLength: 100 });
  assert.equal(rank.weightBytes, Math.round(layer / 2 + embedding));
  assert.equal(rank.kvBytes, 1 * 2 * 1 * 100 * 16 * 4);
  // The whole plan on one machine is the sum of its ranks.
  const plan = estimatePlanMemory(cfg, tensors, makePlan(cfg, { pp: 2, tp: 2 }), 100);
  const ranks = [0, 0, 1, 1].map((l) => estimateShardMemory(cfg, tensors, { layers: [l, l + 1], tp: 2, contextLength: 100 }));
  assert.equal(plan.totalBytes, ranks.reduce((s, r) => s + r.totalBytes, 0));
});

test("memory check: refuses with the need, its parts and what is free; passes when it fits", () => {
  const e = { weightBytes: 2 * 2 ** 30, kvBytes: 6 * 2 ** 30, scratchBytes: 2 ** 30, totalBytes: 9 * 2 ** 30 };
  checkMemoryFits(e, 9 * 2 ** 30, 100000);
  assert.throws(
    () => checkMemoryFits(e, 4 * 2 ** 30, 100000, "m.gguf"),
    (err: unknown) =>
      err instanceof TesseraError &&
      err.message === "m.gguf: needs about 9.0 GiB of memory (weights 2.0 GiB, KV cache for 100000 tokens 6.0 GiB, working memory 1.0 GiB) but only 4.0 GiB is available; a smaller --ctx needs less",
  );
  assert.doesNotMatch(
    (() => {
      try {
        checkMemoryFits({ ...e, kvBytes: 0, scratchBytes: 0, totalBytes: e.weightBytes }, 2 ** 30, 10);
      } catch (x) {
        return (x as Error).message;
      }
      return "";
    })(),
    /smaller --ctx/,
    "no --ctx advice when the weights alone do not fit",
  );
});
