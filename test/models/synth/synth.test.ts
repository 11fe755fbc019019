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
import { assertWithinBlocks, boundOf } from "../formats/bounds.js";

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

/** Tensors checked after each round trip: a quantized matrix, the embedding, and two norms that must not be mixed up. */
const CHECKED = ["blk.1.ffn_down.weight", "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"];
/** A row range away from the start, so a reader that ignores the offset reads other rows. */
const ROWS: [number, number] = [5, 13];

/**
 * Writes, opens and checks that config, tensor set and values match what was generated: F32 tensors
 * exactly, quantized ones within each block's own bound (test/models/formats/bounds.ts). Each check is
 * also run on wrong data (neighbouring rows, zeros, the other norm) and must fail there.
 */
async function roundTrip(o: Omit<SynthOptions, "out">): Promise<void> {
  const out = join(dir, `${o.arch}-${o.format}-${o.quant}-${o.vocab ?? "qwen3"}${o.tied ? "-tied" : ""}${o.format === "gguf" ? ".gguf" : ""}`);
  await synthesize({ ...o, out });
  const source: ModelSource = await openModel(out);
  try {
    const cfg = synthConfig({ ...o, out });
    assert.deepEqual(source.config, cfg);
    assert.equal(source.format, o.format);
    const specs = synthWeights(cfg, o.seed ?? 0, o.vocab === "spm" ? { lo: 259, hi: cfg.vocabSize } : { lo: 256, hi: 60000 });
    assert.deepEqual(source.tensors().map((t) => t.name).sort(), specs.map((s) => s.name).sort());
    const written = (name: string, rows: [number, number]): Float32Array => {
      const spec = specs.find((s) => s.name === name)!;
      return spec.shape.length === 2 ? spec.rows(rows[0], rows[1]) : spec.rows(0, 1);
    };
    for (const name of CHECKED) {
      const spec = specs.find((s) => s.name === name)!;
      const matrix = spec.shape.length === 2;
      const raw = await source.read(name, matrix ? { rows: ROWS } : undefined);
      const got = values(raw);
      const check = (want: Float32Array, label: string) =>
        assertWithinBlocks(got, want, {
          rowLength: spec.shape[spec.shape.length - 1]!,
          ...boundOf(raw.info.type, { groupSize: raw.info.groupSize, scaleType: raw.scaleType }),
          label,
        });
      const label = `${o.format} ${o.quant} ${name} (${raw.info.type})`;
      check(written(name, ROWS), label);
      // Negative controls: the same check rejects data that is not this tensor's.
      assert.throws(() => check(new Float32Array(got.length), label), assert.AssertionError, `${label}: zeros pass the check`);
      if (matrix) {
        assert.throws(() => check(written(name, [ROWS[0] + 1, ROWS[1] + 1]), label), assert.AssertionError, `${label}: the next rows pass the check`);
      } else {
        const other = name.includes("attn_norm") ? name.replace("attn_norm", "ffn_norm") : name.replace("ffn_norm", "attn_norm");
        assert.throws(() => check(written(other, ROWS), label), assert.AssertionError, `${label}: ${other} passes the check`);
      }
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
  const archs = ["llama", "qwen2", "qwen3"] as const;
  let i = 0;
  for (const quant of ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"] as const) {
    await roundTrip({ arch: archs[i++ % 3]!, preset: "tiny", format: "gguf", quant, vocab: "spm", seed: 3 });
  }
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "f16", vocab: "spm", seed: 3, tied: true });
});

test("safetensors and MLX folders read back through openModel, with the Qwen3 tokenizer", async () => {
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "safetensors", quant: "f32", seed: 5 });
  await roundTrip({ arch: "llama", preset: "tiny", format: "safetensors", quant: "bf16", seed: 5 });
  await roundTrip({ arch: "qwen2", preset: "tiny", format: "mlx", quant: "mlx8", seed: 5 });
  await roundTrip({ arch: "qwen3", preset: "tiny", format: "mlx", quant: "mlx4", seed: 5 });
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
  assert.deepEqual(errors, ["tessera synth: --out is required (the file or folder to write)", "tessera synth: --seed must be a whole number from 0 to 4294967295, got 'abc'"]);
});
