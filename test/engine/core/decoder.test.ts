import { test } from "node:test";
import assert from "node:assert/strict";
import type { Architecture, ModelSource, TensorType } from "../../../src/models/types.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ReferenceDecoder } from "../../../src/engine/reference.js";
import { loadEmbedding, loadHead, loadLayer } from "../../../src/engine/weights/load.js";
import { randomSource, tinyConfig } from "./fixtures.js";
import { relErr } from "./compare.js";
import { dividedInvFreq, llama3InvFreq, plainInvFreq } from "./rope-reference.js";

async function reference(src: ModelSource, invFreq: Float64Array): Promise<ReferenceDecoder> {
  const layers = [];
  for (let l = 0; l < src.config.numLayers; l++) layers.push(await loadLayer(src, l));
  const emb = await loadEmbedding(src);
  const head = await loadHead(src, emb);
  return new ReferenceDecoder(src.config, layers, emb, head.norm, head.lmHead, src.ropeInterleaved, invFreq);
}

/** The schedule every case runs: a 5-token prefill (all logits), 3 single tokens, then a 3-token chunk on top of the cache. */
const PROMPT = [3, 17, 42, 5, 88];
const DECODE = [7, 64, 1];
const CHUNK = [9, 30, 61];

/** The graph's logit rows for the schedule: one per prompt position, one per decode step, the chunk's last. */
async function graphLogits(src: ModelSource): Promise<Float32Array[]> {
  const stepper = await createStepper(src, { threads: 1, contextLength: 32 });
  try {
    const V = stepper.vocabSize;
    const rows: Float32Array[] = [];
    const all = stepper.forward(Int32Array.from(PROMPT), { allLogits: true });
    assert.equal(all.length, PROMPT.length * V);
    for (let i = 0; i < PROMPT.length; i++) rows.push(all.slice(i * V, (i + 1) * V));
    for (const t of DECODE) rows.push(stepper.forward(Int32Array.of(t)).slice());
    rows.push(stepper.forward(Int32Array.from(CHUNK)).slice());
    assert.equal(stepper.position, PROMPT.length + DECODE.length + CHUNK.length);
    return rows;
  } finally {
    await stepper.dispose();
  }
}

/** The one-token-at-a-time reference's rows for the same schedule, with the given rope frequencies. */
async function referenceLogits(src: ModelSource, invFreq: Float64Array): Promise<Float32Array[]> {
  const ref = await reference(src, invFreq);
  const rows = [...PROMPT, ...DECODE].map((t) => ref.step(t));
  let last: Float32Array = new Float32Array(0);
  for (const t of CHUNK) last = ref.step(t);
  rows.push(last);
  return rows;
}

/** Largest relative error over the schedule's rows. */
function worst(got: Float32Array[], want: Float32Array[]): number {
  assert.equal(got.length, want.length);
  return Math.max(...got.map((g, i) => relErr(g, want[i]!)));
}

async function checkAgainstReference(src: ModelSource, tol: number): Promise<void> {
  const e = worst(await graphLogits(src), await referenceLogits(src, plainInvFreq(src.config.ropeTheta, src.config.headDim)));
  assert.ok(e < tol, `graph vs reference: relative error ${e}`);
}

const cases: { arch: Architecture; interleaved: boolean }[] = [
  { arch: "llama", interleaved: false },
  { arch: "llama", interleaved: true },
  { arch: "qwen2", interleaved: false },
  { arch: "qwen3", interleaved: false },
];

for (const { arch, interleaved } of cases) {
  test(`${arch}${interleaved ? " (interleaved rope)" : ""}: f32 graph equals the JS reference`, async () => {
    await checkAgainstReference(randomSource(tinyConfig(arch), { seed: 7, ropeInterleaved: interleaved }), 1e-4);
  });
}

test("llama3 rope scaling and tied embeddings: graph equals the reference on the published frequencies", async () => {
  const scaling = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 16 };
  const cfg = tinyConfig("llama", { tiedEmbeddings: true, ropeTheta: 500000, ropeScaling: { kind: "llama3", ...scaling } });
  const src = randomSource(cfg, { seed: 3 });
  const got = await graphLogits(src);
  const e = worst(got, await referenceLogits(src, llama3InvFreq(500000, cfg.headDim, scaling)));
  assert.ok(e < 1e-4, `graph vs reference with llama3 frequencies: relative error ${e}`);
  // Negative control: the same graph against unscaled rope is far off, so the scaling is really applied.
  const unscaled = worst(got, await referenceLogits(src, plainInvFreq(500000, cfg.headDim)));
  assert.ok(unscaled > 1e-2, `graph vs unscaled reference: relative error only ${unscaled}`);
});

test("GGUF rope_freqs.weight divides the rope frequencies (llama3 scaling stored as a tensor)", async () => {
  const src = randomSource(tinyConfig("llama"), { seed: 4, ropeFreqs: true, ropeInterleaved: true });
  // The factors as stored, read without the engine's loader: raw F32 bytes.
  const raw = await src.read("rope_freqs.weight");
  const factors = new Float32Array(raw.data.slice().buffer);
  assert.equal(factors.length, src.config.headDim / 2);
  assert.ok(factors.every((f) => f > 1), "the fixture's factors must all change their pair");
  const got = await graphLogits(src);
  const e = worst(got, await referenceLogits(src, dividedInvFreq(src.config.ropeTheta, src.config.headDim, factors)));
  assert.ok(e < 1e-4, `graph vs reference with divided frequencies: relative error ${e}`);
  const ignored = worst(got, await referenceLogits(src, plainInvFreq(src.config.ropeTheta, src.config.headDim)));
  assert.ok(ignored > 1e-2, `graph vs reference without the factors: relative error only ${ignored}`);
});

// MatMulNBits (accuracy_level 4) quantizes activations to int8 per block, so the graph is no
// longer bit-close to the float reference on the same weights; a few percent of the largest logit.
const quantCases: TensorType[] = ["Q8_0", "Q4_0", "Q4_K", "Q6_K"];
for (const linearType of quantCases) {
  test(`qwen3 with ${linearType} weights: graph tracks the reference on the dequantized weights`, async () => {
    const cfg = tinyConfig("qwen3", { hiddenSize: 256, intermediateSize: 512, numHeads: 8, numKvHeads: 4, headDim: 32 });
    await checkAgainstReference(randomSource(cfg, { seed: 11, linearType, scale: 0.06 }), 0.05);
  });
}

test("mixed storage types per tensor (separate q/k/v and gate/up matmuls) equal the reference", async () => {
  const cfg = tinyConfig("qwen2", { hiddenSize: 256, intermediateSize: 512, numHeads: 8, numKvHeads: 4, headDim: 32 });
  const types: Record<string, TensorType> = { attn_v: "Q6_K", ffn_up: "Q8_0", ffn_down: "Q5_K", attn_output: "F16" };
  const typeOf = (name: string): TensorType | undefined => types[name.split(".")[2]];
  await checkAgainstReference(randomSource(cfg, { seed: 12, linearType: "Q4_K", scale: 0.06, typeOf }), 0.05);
});
