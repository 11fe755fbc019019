import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFromGguf, configFromHfConfig } from "../../src/models/config.js";
import { isTesseraError } from "../../src/errors.js";
import { GgufFile, writeGguf, type GgufValue } from "../../src/models/gguf/index.js";
import { openModel } from "../../src/models/open.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { ARCHS } from "../../src/models/arch/registry.js";
import { ARCHITECTURES } from "../../src/models/synth/presets.js";
import { formatReport, inspectModel } from "../../src/models/inspect.js";

/**
 * The architecture files: what each reads from GGUF metadata and config.json, and that a feature the
 * engine lacks is refused when the model is opened, with the feature named — never ignored.
 */
const dir = await mkdtemp(join(tmpdir(), "tessera-arch-"));
after(() => rm(dir, { recursive: true, force: true }));

const base = {
  hidden_size: 256,
  intermediate_size: 512,
  num_attention_heads: 8,
  num_hidden_layers: 4,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 8192,
  vocab_size: 1000,
};

function meta(arch: string, extra: Record<string, unknown> = {}): Map<string, unknown> {
  return new Map<string, unknown>(
    Object.entries({
      "general.architecture": arch,
      [`${arch}.context_length`]: 4096,
      [`${arch}.embedding_length`]: 256,
      [`${arch}.block_count`]: 4,
      [`${arch}.feed_forward_length`]: 512,
      [`${arch}.attention.head_count`]: 8,
      [`${arch}.attention.head_count_kv`]: 4,
      [`${arch}.attention.layer_norm_rms_epsilon`]: 1e-6,
      [`${arch}.vocab_size`]: 1000,
      ...extra,
    }),
  );
}

const refused = (feature: RegExp) => (e: unknown) => isTesseraError(e) && feature.test(e.message) && /is not supported/.test(e.message);

test("every architecture file is in the registry under its own GGUF name and HF model types", () => {
  const gguf = ARCHS.map((a) => a.gguf);
  assert.equal(new Set(gguf).size, gguf.length);
  const types = ARCHS.flatMap((a) => a.hfModelTypes);
  assert.equal(new Set(types).size, types.length);
});

test("Mistral: sliding_window on every layer (HF) and llama.attention.sliding_window (GGUF)", () => {
  const m = configFromHfConfig({ ...base, model_type: "mistral", sliding_window: 4096 }, "c");
  assert.equal(m.architecture, "llama");
  assert.equal(m.slidingWindow, 4096);
  assert.equal(m.slidingLayers, undefined);
  assert.equal(configFromHfConfig({ ...base, model_type: "mistral", sliding_window: null }, "c").slidingWindow, undefined);
  const g = configFromGguf(meta("llama", { "llama.attention.sliding_window": 32 }), "m.gguf");
  assert.equal(g.slidingWindow, 32);
});

test("Qwen: the window only with use_sliding_window, from max_window_layers on; explicit layer_types win", () => {
  const off = configFromHfConfig({ ...base, model_type: "qwen2", sliding_window: 4096, use_sliding_window: false, max_window_layers: 2 }, "c");
  assert.equal(off.slidingWindow, undefined);
  const on = configFromHfConfig({ ...base, model_type: "qwen3", sliding_window: 64, use_sliding_window: true, max_window_layers: 2 }, "c");
  assert.deepEqual(on.slidingLayers, [false, false, true, true]);
  const types = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"];
  const t = configFromHfConfig({ ...base, model_type: "qwen3", sliding_window: 64, layer_types: types }, "c");
  assert.deepEqual(t.slidingLayers, [true, false, true, false]);
});

test("Mixtral: experts from num_local_experts (HF) and llama.expert_count (GGUF), linear rope scaling read", () => {
  const m = configFromHfConfig({ ...base, model_type: "mixtral", num_local_experts: 8, num_experts_per_tok: 2, rope_scaling: { rope_type: "linear", factor: 4 } }, "c");
  assert.deepEqual(m.moe, { numExperts: 8, expertsPerToken: 2, expertFfnSize: 512 });
  assert.deepEqual(m.ropeScaling, { kind: "linear", factor: 4 });
  const g = configFromGguf(meta("llama", { "llama.expert_count": 8, "llama.expert_used_count": 2, "llama.rope.scaling.factor": 2 }), "m.gguf");
  assert.deepEqual(g.moe, { numExperts: 8, expertsPerToken: 2, expertFfnSize: 512 });
  // llama.cpp's default scaling type is linear
  assert.deepEqual(g.ropeScaling, { kind: "linear", factor: 2 });
  assert.throws(() => configFromHfConfig({ ...base, model_type: "mixtral", num_local_experts: 2, num_experts_per_tok: 3 }, "c"), /3 experts per token of only 2/);
});

test("unsupported features are refused, named, from config.json and from GGUF metadata", () => {
  const hf: [Record<string, unknown>, RegExp][] = [
    [{ model_type: "llama", rope_scaling: { rope_type: "yarn", factor: 4 } }, /rope scaling 'yarn'/],
    [{ model_type: "llama", rope_scaling: { rope_type: "longrope", factor: 4 } }, /rope scaling 'longrope'/],
    [{ model_type: "llama", mlp_bias: true }, /MLP biases/],
    [{ model_type: "qwen3", attention_bias: true }, /q\/k\/v biases/],
    [{ model_type: "llama", partial_rotary_factor: 0.5 }, /partial rotary embedding/],
    [{ model_type: "qwen2", attn_logit_softcapping: 50 }, /attention logit soft-capping/],
  ];
  for (const [extra, feature] of hf) assert.throws(() => configFromHfConfig({ ...base, ...extra }, "c"), refused(feature), JSON.stringify(extra));
  const gguf: [string, Record<string, unknown>, RegExp][] = [
    ["llama", { "llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4 }, /rope scaling 'yarn'/],
    ["qwen2", { "qwen2.attn_logit_softcapping": 50 }, /attention logit soft-capping/],
    ["qwen3", { "qwen3.rope.dimension_count": 16 }, /partial rotary embedding \(rope over 16 of 32/],
    ["llama", { "llama.attention.head_count_kv": [4, 4, 2, 2] }, /KV head count per layer/],
    ["qwen3", { "qwen3.attention.key_length": 32, "qwen3.attention.value_length": 64 }, /value head size/],
  ];
  for (const [arch, extra, feature] of gguf) assert.throws(() => configFromGguf(meta(arch, extra), "m.gguf"), refused(feature), JSON.stringify(extra));
});

/** A copy of a GGUF file with metadata changed. */
async function withMetadata(path: string, out: string, set: Record<string, GgufValue>): Promise<string> {
  const src = await GgufFile.open(path);
  try {
    const metadata = new Map(src.typedMetadata);
    for (const [k, v] of Object.entries(set)) metadata.set(k, v);
    await writeGguf(out, {
      metadata,
      tensors: src.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: async () => (await src.read(t.name)).data })),
    });
  } finally {
    await src.close();
  }
  return out;
}

test("opening a model file that needs an unsupported feature fails with the feature named; the same file without it opens", async () => {
  const path = join(dir, "qwen3.gguf");
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "f16", out: path, seed: 1, vocab: "spm" });
  const good = await openModel(path);
  await good.close();
  const yarn = await withMetadata(path, join(dir, "yarn.gguf"), {
    "qwen3.rope.scaling.type": { type: "string", value: "yarn" },
    "qwen3.rope.scaling.factor": { type: "f32", value: 4 },
  });
  await assert.rejects(openModel(yarn), (e) => refused(/qwen3: rope scaling 'yarn'/)(e) && (e as Error).message.startsWith(yarn));
  const capped = await withMetadata(path, join(dir, "softcap.gguf"), { "qwen3.attn_logit_softcapping": { type: "f32", value: 50 } });
  await assert.rejects(openModel(capped), refused(/attention logit soft-capping/));
});

test("every synthetic family opens as what it was written as, and inspect names its features", async () => {
  const expect: Record<string, [string, RegExp]> = {
    llama: ["llama", /^ {2}architecture {2}llama$/m],
    qwen2: ["qwen2", /q\/k\/v bias/],
    qwen3: ["qwen3", /q\/k norm/],
    mistral: ["llama", /sliding window 16 on 2 of 2 layers/],
    mixtral: ["llama", /8 experts, 2 per token, width 256/],
    qwen3moe: ["qwen3moe", /8 experts, 2 per token, width 64/],
    gemma3: ["gemma3", /sliding window 16 on 2 of 3 layers.*GELU/],
    phi3: ["phi3", /^ {2}architecture {2}phi3$/m],
  };
  assert.deepEqual(Object.keys(expect).sort(), [...ARCHITECTURES].sort());
  for (const arch of ARCHITECTURES) {
    const out = join(dir, `synth-${arch}.gguf`);
    await synthesize({ arch, preset: "tiny", format: "gguf", quant: "q8_0", out, seed: 2, vocab: "spm" });
    const report = await inspectModel(out);
    assert.equal(report.architecture, expect[arch]![0], arch);
    assert.match(formatReport(report), expect[arch]![1], arch);
  }
});
