import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { openModel } from "../../../src/models/open.js";
import { writeGguf, gv } from "../../../src/models/gguf/index.js";
import { writeSafetensors, writeShardedSafetensors, quantizeMlx, dequantizeMlx, type SafetensorsTensorToWrite } from "../../../src/models/safetensors/index.js";
import { quantize, dequantize } from "../../../src/models/quant/index.js";
import { hfToCanonical } from "../../../src/models/source/names.js";
import { TesseraError } from "../../../src/errors.js";
import type { Architecture } from "../../../src/models/types.js";
import { gaussian, withTempDir } from "./helpers.js";

const H = 64, HEADS = 4, KV = 2, HD = 16, FFN = 96, VOCAB = 40, LAYERS = 2;

/** HF-named tensors of a tiny model: [name, shape]. */
function hfTensors(arch: Architecture, tied = false): [string, number[]][] {
  const out: [string, number[]][] = [["model.embed_tokens.weight", [VOCAB, H]], ["model.norm.weight", [H]]];
  if (!tied) out.push(["lm_head.weight", [VOCAB, H]]);
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [H]], [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [HEADS * HD, H]], [`${p}self_attn.k_proj.weight`, [KV * HD, H]],
      [`${p}self_attn.v_proj.weight`, [KV * HD, H]], [`${p}self_attn.o_proj.weight`, [H, HEADS * HD]],
      [`${p}mlp.gate_proj.weight`, [FFN, H]], [`${p}mlp.up_proj.weight`, [FFN, H]], [`${p}mlp.down_proj.weight`, [H, FFN]],
    );
    if (arch === "qwen3") out.push([`${p}self_attn.q_norm.weight`, [HD]], [`${p}self_attn.k_norm.weight`, [HD]]);
    if (arch === "qwen2") out.push([`${p}self_attn.q_proj.bias`, [HEADS * HD]], [`${p}self_attn.k_proj.bias`, [KV * HD]], [`${p}self_attn.v_proj.bias`, [KV * HD]]);
  }
  return out;
}

function hfConfig(arch: Architecture, extra: Record<string, unknown> = {}) {
  return {
    model_type: arch, hidden_size: H, num_hidden_layers: LAYERS, num_attention_heads: HEADS, num_key_value_heads: KV,
    head_dim: HD, intermediate_size: FFN, vocab_size: VOCAB, rms_norm_eps: 1e-6, rope_theta: 10000,
    max_position_embeddings: 256, tie_word_embeddings: false, ...extra,
  };
}

const valuesOf = (name: string, n: number) => gaussian(n, [...name].reduce((a, c) => a * 31 + c.charCodeAt(0), 7) >>> 0, 0.05);

test("GGUF model: config from metadata, canonical tensors, reads and slices", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "tiny.gguf");
    const tensors = hfTensors("llama").map(([hf, shape]) => {
      const name = hfToCanonical(hf)!;
      const type = shape.length === 1 ? "F32" as const : "Q8_0" as const;
      return { name, type, shape, data: quantize(type, valuesOf(name, shape.reduce((a, b) => a * b))) };
    });
    const meta = [
      ["general.architecture", gv.str("llama")], ["llama.embedding_length", gv.u32(H)], ["llama.block_count", gv.u32(LAYERS)],
      ["llama.feed_forward_length", gv.u32(FFN)], ["llama.attention.head_count", gv.u32(HEADS)],
      ["llama.attention.head_count_kv", gv.u32(KV)], ["llama.vocab_size", gv.u32(VOCAB)], ["llama.context_length", gv.u32(256)],
      ["llama.attention.layer_norm_rms_epsilon", gv.f32(1e-5)], ["llama.rope.freq_base", gv.f32(10000)],
    ] as const;
    await writeGguf(path, { metadata: meta as never, tensors });
    const m = await openModel(path);
    try {
      assert.equal(m.format, "gguf");
      assert.equal(m.ropeInterleaved, true);
      assert.equal(m.config.hiddenSize, H);
      assert.equal(m.config.numKvHeads, KV);
      const q = m.info("blk.1.attn_q.weight")!;
      assert.deepEqual(q, { name: "blk.1.attn_q.weight", type: "Q8_0", shape: [64, 64], byteLength: 64 * 2 * 34, groupSize: 32 });
      const whole = await m.read("blk.1.attn_q.weight");
      assert.deepEqual(whole.data, tensors.find((t) => t.name === "blk.1.attn_q.weight")!.data);
      const head2 = await m.read("blk.1.attn_q.weight", { rows: [2 * HD, 3 * HD] });
      assert.deepEqual(head2.data, whole.data.subarray(2 * HD * 68, 3 * HD * 68));
    } finally {
      await m.close();
    }
    // The same file with metadata that disagrees with the tensors.
    const bad = join(dir, "bad.gguf");
    await writeGguf(bad, { metadata: meta.map(([k, v]) => [k, k === "llama.feed_forward_length" ? gv.u32(128) : v]) as never, tensors });
    await assert.rejects(openModel(bad), (e: unknown) => e instanceof TesseraError && e.message.startsWith(bad) && /blk.0.ffn_gate.weight has shape \[96, 64\], the config implies \[128, 64\]/.test(e.message));
  });
});

async function writeHfModel(
  dir: string, arch: Architecture,
  opts: { mlxBits?: 4 | 8; sharded?: boolean; config?: Record<string, unknown>; overrides?: Record<string, { bits: 4 | 8 } | false> } = {},
) {
  await mkdir(dir, { recursive: true });
  const groupSize = 32;
  const files: SafetensorsTensorToWrite[] = [];
  const expected = new Map<string, Float32Array>();
  for (const [name, shape] of hfTensors(arch)) {
    const n = shape.reduce((a, b) => a * b);
    const values = valuesOf(name, n);
    const module = name.slice(0, -".weight".length);
    const override = opts.overrides?.[module];
    const bits = override === false ? undefined : override?.bits ?? opts.mlxBits;
    if (bits && shape.length === 2 && name.endsWith(".weight")) {
      const [rows, cols] = shape as [number, number];
      const q = quantizeMlx(values, rows, cols, bits, groupSize, "BF16");
      files.push({ name, dtype: "U32", shape: [rows, (cols * bits) / 32], data: q.weight });
      files.push({ name: `${module}.scales`, dtype: "BF16", shape: [rows, cols / groupSize], data: q.scales });
      files.push({ name: `${module}.biases`, dtype: "BF16", shape: [rows, cols / groupSize], data: q.biases });
      expected.set(hfToCanonical(name)!, dequantizeMlx(q, rows, cols, bits, groupSize, "BF16"));
    } else {
      const data = quantize("BF16", values);
      files.push({ name, dtype: "BF16", shape, data });
      expected.set(hfToCanonical(name)!, dequantize("BF16", data, n));
    }
  }
  const quantization = { group_size: groupSize, bits: opts.mlxBits, ...Object.fromEntries(Object.entries(opts.overrides ?? {}).map(([k, v]) => [k, v && { group_size: groupSize, bits: v.bits }])) };
  const quant = opts.mlxBits ? { quantization } : {};
  await writeFile(join(dir, "config.json"), JSON.stringify(hfConfig(arch, { ...quant, ...opts.config })));
  if (opts.sharded) await writeShardedSafetensors(dir, files, { maxShardBytes: 8000 });
  else await writeSafetensors(join(dir, "model.safetensors"), files);
  return expected;
}

test("safetensors models (qwen2 with biases, sharded qwen3) map HF names to canonical ones", async () => {
  await withTempDir(async (dir) => {
    for (const [arch, sharded] of [["qwen2", false], ["qwen3", true]] as const) {
      const d = join(dir, arch);
      const expected = await writeHfModel(d, arch, { sharded });
      const m = await openModel(d);
      assert.equal(m.format, "safetensors");
      assert.equal(m.ropeInterleaved, false);
      assert.equal(m.config.architecture, arch);
      assert.deepEqual(new Set(m.tensors().map((t) => t.name)), new Set(expected.keys()));
      for (const [name, values] of expected) {
        const r = await m.read(name);
        assert.equal(r.info.type, "BF16");
        assert.deepEqual(dequantize("BF16", r.data, values.length), values, name);
      }
      await m.close();
    }
    const viaIndex = await openModel(join(dir, "qwen3", "model.safetensors.index.json"));
    assert.equal(viaIndex.config.qkNorm, true);
    await viaIndex.close();
    // A single .safetensors file with config.json beside it.
    const single = await openModel(join(dir, "qwen2", "model.safetensors"));
    assert.equal(single.config.qkvBias, true);
    assert.deepEqual(single.info("blk.0.attn_k.bias")!.shape, [KV * HD]);
    await single.close();
  });
});

test("MLX 4- and 8-bit models: reads carry scales and biases; row/column slices match the whole", async () => {
  await withTempDir(async (dir) => {
    for (const bits of [4, 8] as const) {
      const d = join(dir, `mlx${bits}`);
      const expected = await writeHfModel(d, "qwen3", { mlxBits: bits });
      const m = await openModel(d);
      assert.equal(m.format, "mlx");
      const info = m.info("blk.0.ffn_down.weight")!;
      assert.deepEqual(info, { name: "blk.0.ffn_down.weight", type: bits === 4 ? "MLX4" : "MLX8", shape: [H, FFN], byteLength: (H * FFN * bits) / 8, groupSize: 32 });
      for (const [name, values] of expected) {
        const r = await m.read(name);
        const got = r.scales ? dequantizeMlx({ weight: r.data, scales: r.scales, biases: r.biases! }, r.shape[0]!, r.shape[1]!, bits, 32, r.scaleType!) : dequantize("BF16", r.data, values.length);
        assert.deepEqual(got, values, name);
      }
      const whole = expected.get("blk.1.ffn_down.weight")!;
      const part = await m.read("blk.1.ffn_down.weight", { rows: [10, 20], cols: [32, 96] });
      assert.deepEqual(part.shape, [10, 64]);
      const got = dequantizeMlx({ weight: part.data, scales: part.scales!, biases: part.biases! }, 10, 64, bits, 32, "BF16");
      for (let r = 0; r < 10; r++) assert.deepEqual(got.subarray(r * 64, r * 64 + 64), whole.subarray((10 + r) * FFN + 32, (10 + r) * FFN + 96));
      await assert.rejects(m.read("blk.1.ffn_down.weight", { cols: [16, 48] }), /not aligned to MLX groups of 32/);
      await m.close();
    }
  });
});

test("MLX per-module overrides: an 8-bit module and an unquantized one inside a 4-bit model", async () => {
  await withTempDir(async (dir) => {
    const expected = await writeHfModel(dir, "qwen3", { mlxBits: 4, overrides: { lm_head: { bits: 8 }, "model.layers.1.mlp.up_proj": false } });
    const m = await openModel(dir);
    assert.equal(m.info("output.weight")!.type, "MLX8");
    assert.equal(m.info("blk.1.ffn_up.weight")!.type, "BF16");
    assert.equal(m.info("blk.0.ffn_up.weight")!.type, "MLX4");
    const r = await m.read("output.weight");
    assert.deepEqual(dequantizeMlx({ weight: r.data, scales: r.scales!, biases: r.biases! }, VOCAB, H, 8, 32, "BF16"), expected.get("output.weight"));
    await m.close();
  });
});

test("config.json that disagrees with the tensors, and other bad folders, give clear errors", async () => {
  await withTempDir(async (dir) => {
    const check = async (path: string, subject: string, re: RegExp) => {
      await assert.rejects(openModel(path), (e: unknown) => {
        assert.ok(e instanceof TesseraError, String(e));
        assert.ok(e.message.includes(subject), e.message);
        assert.match(e.message, re);
        return true;
      });
    };
    const a = join(dir, "a");
    await writeHfModel(a, "qwen3", { config: { intermediate_size: 128 } });
    await check(a, join(a, "config.json"), /disagrees with the tensors: blk.0.ffn_gate.weight has shape \[96, 64\], the config implies \[128, 64\]/);
    const b = join(dir, "b");
    await writeHfModel(b, "qwen3", { config: { num_hidden_layers: 1 } });
    await check(b, "config.json", /says 1 layers but tensor blk.1/);
    const c = join(dir, "c");
    await writeHfModel(c, "qwen3", { config: { num_hidden_layers: 3 } });
    await check(c, "config.json", /tensor blk.2.attn_norm.weight is missing/);
    const m = join(dir, "m");
    await writeHfModel(m, "qwen3", { mlxBits: 4, config: { quantization: { group_size: 64, bits: 4 } } });
    await check(m, "config.json", /says 4-bit, group 64, which disagrees with tensor/);
    const e = join(dir, "empty");
    await mkdir(e);
    await check(e, e, /holds no model/);
    await check(join(dir, "nothing"), "nothing", /no such file or folder/);
    const junk = join(dir, "junk.bin");
    await writeFile(junk, "hello world");
    await check(junk, junk, /not a model file/);
    const gg = join(dir, "fake.gguf");
    await writeFile(gg, "GGUX and more bytes");
    await check(gg, gg, /not a GGUF file/);
  });
});
