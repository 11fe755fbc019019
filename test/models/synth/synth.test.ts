import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize, synthConfig, type SynthOptions } from "../../../src/models/synth/synthesize.js";
import { synthWeights, permuteForInterleavedRope } from "../../../src/models/synth/weights.js";
import { openModel } from "../../../src/models/open.js";
import { GgufFile } from "../../../src/models/gguf/index.js";
import { dequantize } from "../../../src/models/quant/index.js";
import { dequantizeMlx } from "../../../src/models/safetensors/index.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import { TesseraError } from "../../../src/errors.js";
import { main } from "../../../src/cli/main.js";
import type { ModelSource, RawTensor } from "../../../src/models/types.js";

const dir = await mkdtemp(join(tmpdir(), "tessera-synth-"));
after(() => rm(dir, { recursive: true, force: true }));

const sha = async (path: string) => createHash("sha256").update(await readFile(path)).digest("hex");

function values(raw: RawTensor): Float32Array {
  const n = raw.shape.reduce((a, b) => a * b, 1);
  if (raw.info.type === "MLX4" || raw.info.type === "MLX8") {
    const [rows, cols] = raw.shape as [number, number];
    return dequantizeMlx({ weight: raw.data, scales: raw.scales!, biases: raw.biases! }, rows, cols, raw.info.type === "MLX4" ? 4 : 8, raw.info.groupSize!, raw.scaleType!);
  }
  return dequantize(raw.info.type, raw.data, n);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Writes, opens and checks that config, tensor set and (dequantized) values match what was generated. */
async function roundTrip(o: Omit<SynthOptions, "out">, tolerance: number): Promise<void> {
  const out = join(dir, `${o.arch}-${o.format}-${o.quant}-${o.vocab ?? "qwen3"}${o.tied ? "-tied" : ""}${o.format === "gguf" ? ".gguf" : ""}`);
  await synthesize({ ...o, out });
  const source: ModelSource = await openModel(out);
  try {
    const cfg = synthConfig({ ...o, out });
    assert.deepEqual(source.config, cfg);
    assert.equal(source.format, o.format);
    const specs = synthWeights(cfg, o.seed ?? 0, o.vocab === "spm" ? { lo: 259, hi: cfg.vocabSize } : { lo: 256, hi: 60000 });
    assert.deepEqual(source.tensors().map((t) => t.name).sort(), specs.map((s) => s.name).sort());
    for (const name of ["blk.1.ffn_down.weight", "token_embd.weight", "blk.0.attn_norm.weight"]) {
      const spec = specs.find((s) => s.name === name)!;
      const rows = spec.shape.length === 2 ? 8 : 1;
      const raw = await source.read(name, spec.shape.length === 2 ? { rows: [0, rows] } : undefined);
      assert.ok(maxAbsDiff(values(raw), spec.rows(0, rows)) <= tolerance * (name === "token_embd.weight" ? 4 : 1), `${o.format} ${o.quant} ${name}`);
    }
  } finally {
    await source.close();
  }
}

test("same seed writes identical bytes, another seed different ones", async () => {
  const base = { arch: "qwen2", preset: "tiny", format: "gguf", quant: "q4_0", vocab: "spm" } as const;
  await synthesize({ ...base, seed: 7, out: join(dir, "a.gguf") });
  await synthesize({ ...base, seed: 7, out: join(dir, "b.gguf") });
  await synthesize({ ...base, seed: 8, out: join(dir, "c.gguf") });
  assert.equal(await sha(join(dir, "a.gguf")), await sha(join(dir, "b.gguf")));
  assert.notEqual(await sha(join(dir, "a.gguf")), await sha(join(dir, "c.gguf")));
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes("partial")), []);
  // Value types as llama.cpp's converter writes them (older readers take scores as raw f32).
  const g = await GgufFile.open(join(dir, "a.gguf"));
  try {
    const t = (k: string) => g.typedMetadata.get(k) as { type: string; itemType?: string };
    assert.equal(t("tokenizer.ggml.scores").itemType, "f32");
    assert.equal(t("tokenizer.ggml.token_type").itemType, "i32");
    assert.equal(t("tokenizer.ggml.bos_token_id").type, "u32");
    assert.equal(t("qwen2.attention.layer_norm_rms_epsilon").type, "f32");
  } finally {
    await g.close();
  }
});

test("every GGUF quantization reads back through openModel", async () => {
  const tol: Record<string, number> = { f32: 0, f16: 2e-3, bf16: 2e-2, q8_0: 2e-2, q4_0: 0.25, q4_k: 0.25, q6_k: 0.06 };
  const archs = ["llama", "qwen2", "qwen3"] as const;
  let i = 0;
  for (const quant of ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"] as const) {
    await roundTrip({ arch: archs[i++ % 3]!, preset: "tiny", format: "gguf", quant, vocab: "spm", seed: 3 }, tol[quant]!);
  }
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "f16", vocab: "spm", seed: 3, tied: true }, tol.f16!);
});

test("safetensors and MLX folders read back through openModel, with the Qwen3 tokenizer", async () => {
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "safetensors", quant: "f32", seed: 5 }, 0);
  await roundTrip({ arch: "llama", preset: "tiny", format: "safetensors", quant: "bf16", seed: 5 }, 2e-2);
  await roundTrip({ arch: "qwen2", preset: "tiny", format: "mlx", quant: "mlx8", seed: 5 }, 0.05);
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "mlx", quant: "mlx4", seed: 5 }, 0.6);
  const folder = join(dir, "qwen3-safetensors-f32-qwen3");
  const config = JSON.parse(await readFile(join(folder, "config.json"), "utf8"));
  assert.equal(config.model_type, "qwen3");
  assert.deepEqual(config.architectures, ["Qwen3ForCausalLM"]);
  const mlx = JSON.parse(await readFile(join(dir, "qwen3-mlx-mlx4-qwen3", "config.json"), "utf8"));
  assert.deepEqual(mlx.quantization, { group_size: 64, bits: 4 });
  const tok = await loadTokenizer(folder);
  assert.equal(tok.vocabSize, config.vocab_size);
  assert.equal(tok.decode(tok.encode("Hello world!")), "Hello world!");
  const source = await openModel(folder);
  try {
    const fromSource = await loadTokenizer(source);
    assert.deepEqual(fromSource.stopIds, tok.stopIds);
  } finally {
    await source.close();
  }
});

test("GGUF llama stores q/k rows permuted for interleaved rope; safetensors does not", async () => {
  const o = { arch: "llama", preset: "tiny", seed: 11, quant: "f32", vocab: "qwen3" } as const;
  await synthesize({ ...o, format: "gguf", out: join(dir, "perm.gguf") });
  await synthesize({ ...o, format: "safetensors", out: join(dir, "perm-st") });
  const g = await openModel(join(dir, "perm.gguf"));
  const s = await openModel(join(dir, "perm-st"));
  try {
    assert.equal(g.ropeInterleaved, true);
    assert.equal(s.ropeInterleaved, false);
    const cfg = g.config;
    for (const [name, heads] of [["blk.0.attn_q.weight", cfg.numHeads], ["blk.0.attn_k.weight", cfg.numKvHeads]] as const) {
      const hf = values(await s.read(name));
      const gg = values(await g.read(name));
      assert.notDeepEqual(gg, hf);
      assert.deepEqual(gg, permuteForInterleavedRope(hf, heads, cfg.headDim, cfg.hiddenSize));
    }
    assert.deepEqual(values(await g.read("blk.0.attn_v.weight")), values(await s.read("blk.0.attn_v.weight")));
  } finally {
    await g.close();
    await s.close();
  }
});

test("bad options are clear errors naming the flag", async () => {
  const ok = { arch: "llama", preset: "tiny", format: "gguf", out: join(dir, "x.gguf") } as const;
  const cases: [Partial<SynthOptions>, RegExp][] = [
    [{ arch: "gpt2" as never }, /--arch must be one of llama, qwen2, qwen3.*, got 'gpt2'/],
    [{ preset: "huge" as never }, /--preset must be tiny, small, 1b, got 'huge'/],
    [{ format: "onnx" as never }, /--format must be/],
    [{ quant: "mlx4" }, /--quant mlx4 cannot be written as GGUF/],
    [{ format: "safetensors", quant: "q4_0" }, /cannot be written as safetensors/],
    [{ format: "mlx", quant: "f16" }, /--format mlx needs --quant mlx4 or mlx8/],
    [{ format: "safetensors", vocab: "spm" }, /--vocab spm is only available with --format gguf/],
    [{ seed: -1 }, /--seed must be an integer/],
  ];
  for (const [change, message] of cases) {
    await assert.rejects(synthesize({ ...ok, ...change } as SynthOptions), (e: unknown) => e instanceof TesseraError && message.test(e.message));
  }
  const errors: string[] = [];
  const original = console.error;
  console.error = (m: string) => errors.push(m);
  try {
    assert.equal(await main(["synth", "--arch", "llama", "--preset", "tiny", "--format", "gguf"]), 1);
    assert.equal(await main(["synth", "--arch", "llama", "--preset", "tiny", "--format", "gguf", "--out", "x", "--seed", "abc"]), 1);
  } finally {
    console.error = original;
  }
  assert.deepEqual(errors, ["tessera synth: --out is required", "tessera synth: --seed must be an integer ≥ 0, got 'abc'"]);
});
