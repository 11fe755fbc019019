import { test } from "node:test";
import assert from "node:assert/strict";
import type { Architecture, ModelSource, TensorType } from "../../../src/models/types.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ReferenceDecoder } from "../../../src/engine/reference.js";
import { loadEmbedding, loadHead, loadLayer, loadRopeFreqs } from "../../../src/engine/weights/load.js";
import { randomSource, tinyConfig } from "./fixtures.js";
import { relErr } from "./compare.js";

async function reference(src: ModelSource): Promise<ReferenceDecoder> {
  const layers = [];
  for (let l = 0; l < src.config.numLayers; l++) layers.push(await loadLayer(src, l));
  const emb = await loadEmbedding(src);
  const head = await loadHead(src, emb);
  return new ReferenceDecoder(src.config, layers, emb, head.norm, head.lmHead, src.ropeInterleaved, await loadRopeFreqs(src));
}

/**
 * Prefill 5 tokens (all logits), decode 3 single tokens, then a 3-token chunk on top of the
 * cache: every logit row must match the one-token-at-a-time reference.
 */
async function checkAgainstReference(src: ModelSource, tol: number): Promise<void> {
  const ref = await reference(src);
  const stepper = await createStepper(src, { threads: 1, contextLength: 32 });
  try {
    const V = stepper.vocabSize;
    const prompt = [3, 17, 42, 5, 88];
    const all = stepper.forward(Int32Array.from(prompt), { allLogits: true });
    assert.equal(all.length, prompt.length * V);
    prompt.forEach((t, i) => {
      const e = relErr(all.subarray(i * V, (i + 1) * V), ref.step(t));
      assert.ok(e < tol, `prefill position ${i}: relative error ${e}`);
    });
    for (const t of [7, 64, 1]) {
      const e = relErr(stepper.forward(Int32Array.of(t)), ref.step(t));
      assert.ok(e < tol, `decode at ${stepper.position}: relative error ${e}`);
    }
    const chunk = [9, 30, 61];
    const last = stepper.forward(Int32Array.from(chunk));
    let expected: Float32Array = new Float32Array(0);
    for (const t of chunk) expected = ref.step(t);
    const e = relErr(last, expected);
    assert.ok(e < tol, `chunk after cache: relative error ${e}`);
    assert.equal(stepper.position, 11);
  } finally {
    await stepper.dispose();
  }
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

test("llama3 rope scaling and tied embeddings: graph equals the reference", async () => {
  const cfg = tinyConfig("llama", {
    tiedEmbeddings: true,
    ropeTheta: 500000,
    ropeScaling: { kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 16 },
  });
  await checkAgainstReference(randomSource(cfg, { seed: 3 }), 1e-4);
});

test("GGUF rope_freqs.weight (llama3 scaling as a tensor) is applied", async () => {
  await checkAgainstReference(randomSource(tinyConfig("llama"), { seed: 4, ropeFreqs: true, ropeInterleaved: true }), 1e-4);
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
