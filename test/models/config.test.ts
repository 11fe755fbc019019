import { test } from "node:test";
import assert from "node:assert/strict";
import { configFromGguf, configFromHfConfig } from "../../src/models/config.js";
import { TesseraError } from "../../src/errors.js";

const llama3 = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 8192,
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  max_position_embeddings: 131072,
  tie_word_embeddings: true,
  vocab_size: 128256,
};

test("HF config.json: Llama 3.2 with llama3 rope scaling and tied embeddings", () => {
  const c = configFromHfConfig(llama3, "config.json");
  assert.equal(c.architecture, "llama");
  assert.equal(c.headDim, 64);
  assert.equal(c.numKvHeads, 8);
  assert.equal(c.ropeTheta, 500000);
  assert.deepEqual(c.ropeScaling, { kind: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192 });
  assert.equal(c.contextLength, 131072);
  assert.equal(c.tiedEmbeddings, true);
  assert.equal(c.qkvBias, false);
  assert.equal(c.qkNorm, false);
});

test("HF config.json: Mistral is a llama, Qwen2 has q/k/v bias, Qwen3 has q/k norm and explicit head_dim", () => {
  const mistral = configFromHfConfig({ ...llama3, model_type: "mistral", architectures: ["MistralForCausalLM"], rope_scaling: null, tie_word_embeddings: false }, "m");
  assert.equal(mistral.architecture, "llama");
  assert.equal(mistral.ropeScaling, undefined);
  assert.equal(mistral.tiedEmbeddings, false);
  const qwen2 = configFromHfConfig({ ...llama3, model_type: "qwen2", rope_scaling: null }, "q2");
  assert.equal(qwen2.architecture, "qwen2");
  assert.equal(qwen2.qkvBias, true);
  const qwen3 = configFromHfConfig({ ...llama3, model_type: "qwen3", head_dim: 128, rope_scaling: null }, "q3");
  assert.equal(qwen3.headDim, 128);
  assert.equal(qwen3.qkNorm, true);
});

test("HF config.json: clear errors for other architectures and broken fields", () => {
  assert.throws(() => configFromHfConfig({ ...llama3, model_type: "mamba" }, "/m/config.json"), (e: unknown) => e instanceof TesseraError && /^\/m\/config\.json: unsupported architecture 'mamba' \(supported: llama, mistral, mixtral, qwen2, qwen3/.test(e.message));
  assert.throws(() => configFromHfConfig({ ...llama3, hidden_size: undefined }, "c"), /missing the number 'hidden_size'/);
  assert.throws(() => configFromHfConfig({ ...llama3, num_key_value_heads: 7 }, "c"), /not a multiple of numKvHeads/);
  assert.throws(() => configFromHfConfig({ ...llama3, rope_scaling: { type: "yarn", factor: 4 } }, "c"), /llama: rope scaling 'yarn' is not supported/);
  assert.throws(() => configFromHfConfig([], "c"), /not a JSON object/);
});

function ggufMeta(arch: string, extra: Record<string, unknown> = {}): Map<string, unknown> {
  return new Map<string, unknown>(
    Object.entries({
      "general.architecture": arch,
      [`${arch}.context_length`]: 4096,
      [`${arch}.embedding_length`]: 1024,
      [`${arch}.block_count`]: 4,
      [`${arch}.feed_forward_length`]: 3072,
      [`${arch}.attention.head_count`]: 16,
      [`${arch}.attention.head_count_kv`]: 8,
      [`${arch}.attention.layer_norm_rms_epsilon`]: 1e-6,
      [`${arch}.rope.freq_base`]: 1000000,
      "tokenizer.ggml.tokens": ["a", "b", "c"],
      ...extra,
    }),
  );
}

test("GGUF metadata: qwen3 key_length, vocab from tokens, tied when output.weight is absent", () => {
  const c = configFromGguf(ggufMeta("qwen3", { "qwen3.attention.key_length": 128, "qwen3.attention.value_length": 128 }), "m.gguf", ["token_embd.weight"]);
  assert.equal(c.headDim, 128);
  assert.equal(c.vocabSize, 3);
  assert.equal(c.tiedEmbeddings, true);
  assert.equal(c.qkNorm, true);
  assert.equal(c.ropeTheta, 1000000);
  const untied = configFromGguf(ggufMeta("llama", { "llama.vocab_size": 32000n }), "m.gguf", ["token_embd.weight", "output.weight"]);
  assert.equal(untied.tiedEmbeddings, false);
  assert.equal(untied.vocabSize, 32000);
  assert.equal(untied.headDim, 64);
});

test("GGUF metadata: clear errors", () => {
  assert.throws(() => configFromGguf(ggufMeta("mamba"), "m.gguf"), /m\.gguf: unsupported architecture 'mamba'/);
  assert.throws(() => configFromGguf(new Map(), "m.gguf"), /no general\.architecture/);
  const meta = ggufMeta("llama");
  meta.delete("llama.block_count");
  assert.throws(() => configFromGguf(meta, "m.gguf"), /missing llama\.block_count/);
});
