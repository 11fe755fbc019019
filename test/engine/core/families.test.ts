import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig, ModelSource, TensorType } from "../../../src/models/types.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ReferenceDecoder, familyInvFreq } from "../../../src/engine/reference.js";
import { loadEmbedding, loadHead, loadLayer, loadRopeFreqs } from "../../../src/engine/weights/load.js";
import { tinyConfig } from "./fixtures.js";
import { archSource } from "./arch-source.js";
import { relErr } from "./compare.js";
import { buildTpMlpGraph } from "../../../src/engine/graph/decoder.js";
import type { TpSlice } from "../../../src/placement/split.js";
import { SyncSession, ort } from "../../../src/engine/onnx/session.js";
import { tpSplit } from "../../../src/placement/split.js";

/**
 * The ONNX graphs of the model families' features against the plain JS reference decoder
 * (src/engine/reference.ts): sliding-window attention (past the window), per-layer rope bases,
 * mixture of experts (float and quantized experts), with random weights laid out by each
 * architecture's file. Prefill, single-token decode, then a chunk on top of the cache.
 */
async function reference(src: ModelSource, cfg: ModelConfig = src.config): Promise<ReferenceDecoder> {
  const layers = [];
  for (let l = 0; l < cfg.numLayers; l++) layers.push(await loadLayer(src, l));
  const emb = await loadEmbedding(src);
  const head = await loadHead(src, emb);
  return new ReferenceDecoder(cfg, layers, emb, head.norm, head.lmHead, src.ropeInterleaved, familyInvFreq(cfg, await loadRopeFreqs(src)));
}

const PROMPT = [3, 17, 42, 5, 88, 13, 21, 34, 55, 8];
const DECODE = [7, 64, 1, 2];
const CHUNK = [9, 30, 61];

/** Every position's logits from both; returns the largest relative error per phase. */
async function compare(src: ModelSource, ref: ReferenceDecoder): Promise<number[]> {
  const stepper = await createStepper(src, { threads: 1, contextLength: 64 });
  try {
    const V = stepper.vocabSize;
    const errs = [0, 0, 0];
    const all = stepper.forward(Int32Array.from(PROMPT), { allLogits: true });
    PROMPT.forEach((t, i) => (errs[0] = Math.max(errs[0]!, relErr(all.subarray(i * V, (i + 1) * V), ref.step(t)))));
    for (const t of DECODE) errs[1] = Math.max(errs[1]!, relErr(stepper.forward(Int32Array.of(t)), ref.step(t)));
    const last = stepper.forward(Int32Array.from(CHUNK));
    let want: Float32Array = new Float32Array(0);
    for (const t of CHUNK) want = ref.step(t);
    errs[2] = relErr(last, want);
    assert.equal(stepper.position, PROMPT.length + DECODE.length + CHUNK.length);
    return errs;
  } finally {
    await stepper.dispose();
  }
}

async function check(cfg: ModelConfig, tol: number, types: { linearType?: TensorType; expertType?: TensorType } = {}): Promise<void> {
  const src = archSource(cfg, { seed: 11, ...types });
  const errs = await compare(src, await reference(src));
  for (const [i, phase] of ["prefill", "decode", "chunk"].entries()) assert.ok(errs[i]! < tol, `${phase}: relative error ${errs[i]}`);
}

test("sliding window on every layer (Mistral): graph equals the reference past the window; without the window it does not", async () => {
  const cfg = tinyConfig("llama", { slidingWindow: 4 });
  await check(cfg, 1e-4);
  // Negative control: the reference without the window differs once the window is passed.
  const src = archSource(cfg, { seed: 11 });
  const full = await reference(src, { ...cfg, slidingWindow: undefined });
  const errs = await compare(src, full);
  assert.ok(errs[0]! > 1e-2, `prefill of ${PROMPT.length} tokens with a window of 4 should differ from full attention (${errs[0]})`);
});

test("sliding window on some layers with their own rope base (Gemma 3 style)", async () => {
  await check(tinyConfig("qwen3", { slidingWindow: 3, slidingLayers: [true, false], ropeThetaSliding: 10000, ropeTheta: 1e6 }), 1e-4);
});

// Each expert runs as an ordinary gated MLP (moe.ts): float experts exactly; quantized ones through
// MatMulNBits' int8 activations, like every other quantized matmul (hence the looser bound).
const MOE = { numExperts: 4, expertsPerToken: 2, expertFfnSize: 64 };
for (const [type, tol] of [["F32", 1e-4], ["F16", 1e-4], ["Q8_0", 0.05], ["Q4_0", 0.05]] as const) {
  test(`mixture of experts, ${type} experts: graph equals the reference`, async () => {
    await check(tinyConfig("llama", { moe: MOE }), tol, { expertType: type });
  });
}

test("mixture of experts, Q4_K and MLX-style affine experts (float zero points) run without requantization", async () => {
  const cfg = tinyConfig("llama", { hiddenSize: 256, numHeads: 8, numKvHeads: 4, headDim: 32, moe: { ...MOE, expertFfnSize: 256 } });
  const src = archSource(cfg, { seed: 11, expertType: "Q4_K", scale: 0.06 });
  const errs = await compare(src, await reference(src));
  for (const e of errs) assert.ok(e < 0.05, `relative error ${e}`);
});

test("mixture of experts with every weight Q4_0 tracks the reference (int8 activations elsewhere)", async () => {
  const cfg = tinyConfig("qwen3", { hiddenSize: 256, numHeads: 8, numKvHeads: 4, headDim: 32, moe: { ...MOE, expertFfnSize: 128 } });
  const src = archSource(cfg, { seed: 11, linearType: "Q4_0", scale: 0.06 });
  const errs = await compare(src, await reference(src));
  for (const e of errs) assert.ok(e < 0.05, `relative error ${e}`);
});

test("mixture of experts, 2-way tensor parallel: the ranks' expert slices sum to the whole MLP; one alone does not", async () => {
  const cfg = tinyConfig("qwen3", { moe: { ...MOE, expertFfnSize: 128 } });
  const src = archSource(cfg, { seed: 5, expertType: "Q4_0" });
  const blocks = { attnOutput: 1, ffnDown: 1, expertDown: 32 };
  const [full] = tpSplit(cfg, 1, blocks);
  const halves = tpSplit(cfg, 2, blocks);
  assert.deepEqual(halves.map((s) => s.expertRows), [[0, 64], [64, 128]]);
  const run = async (slice: TpSlice, x: Float32Array, n: number) => {
    const g = buildTpMlpGraph(cfg, 1, await loadLayer(src, 1, slice));
    const s = SyncSession.create(g.toBytes(), g.blobs, { threads: 1, spinning: false });
    try {
      return s.run({ hidden_in: new ort.Tensor("float32", x, [1, n, cfg.hiddenSize]) }, { partial: null }).partial.data as Float32Array;
    } finally {
      s.dispose();
    }
  };
  for (const n of [5, 1]) {
    const x = Float32Array.from({ length: n * cfg.hiddenSize }, (_, i) => Math.sin(i * 0.37) * 2);
    const want = await run(full!, x, n);
    const parts = [await run(halves[0]!, x, n), await run(halves[1]!, x, n)];
    assert.ok(relErr(parts[0]!.map((v, i) => v + parts[1]![i]!), want) < 1e-5, `${n} tokens`);
    assert.ok(relErr(parts[0]!, want) > 0.1);
  }
  assert.throws(() => tpSplit({ ...cfg, moe: { ...MOE, expertFfnSize: 32 } }, 2, blocks), /expert width 32 has only 1 quantization blocks of 32, fewer than 2/);
});
