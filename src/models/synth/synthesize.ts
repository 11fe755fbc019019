import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TesseraError } from "../../errors.js";
import { writeGguf, type GgufValue } from "../gguf/index.js";
import { quantize } from "../quant/index.js";
import { LAYOUTS, byteSize } from "../quant/types.js";
import { quantizeMlx, writeSafetensors, writeShardedSafetensors, type SafetensorsTensorToWrite } from "../safetensors/index.js";
import { archOf } from "../arch/registry.js";
import type { ModelConfig, TensorType } from "../types.js";
import { hfConfigJson, hfName } from "./layout.js";
import { ARCHITECTURES, PRESETS, isPreset, isSynthArch, presetConfig, type PresetName, type SynthArch } from "./presets.js";
import { isPowerOfTwo, permuteForInterleavedRope, recall, remember, synthWeights, type SynthTensorSpec } from "./weights.js";
import { qwen3GgufVocab, qwen3TokenizerFiles, spmGgufVocab, type GgufVocabEntries } from "./vocab.js";

export type SynthFormat = "gguf" | "safetensors" | "mlx";
export type SynthQuant = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k" | "q6_k" | "mlx4" | "mlx8";
export type SynthVocab = "qwen3" | "spm";

export const FORMATS: readonly SynthFormat[] = ["gguf", "safetensors", "mlx"];
export const QUANTS: readonly SynthQuant[] = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k", "mlx4", "mlx8"];
export const VOCABS: readonly SynthVocab[] = ["qwen3", "spm"];

export interface SynthOptions {
  arch: SynthArch;
  preset: PresetName;
  format: SynthFormat;
  quant?: SynthQuant;
  out: string;
  seed?: number;
  vocab?: SynthVocab;
  tied?: boolean;
  /**
   * Test only: write llama GGUF q/k rows without llama.cpp's rope permutation, i.e. a deliberately wrong
   * model, so tests can check that a wrong attention gives visibly different tokens.
   */
  skipRopePermutation?: boolean;
  /** GGUF general.name (default tessera-synth-<preset>) and general.description. */
  name?: string;
  description?: string;
  /** Called after each tensor with bytes written so far and the total. */
  onProgress?: (done: number, total: number, tensor: string) => void;
}

export interface SynthResult {
  path: string;
  config: ModelConfig;
  bytes: number;
  format: SynthFormat;
  quant: SynthQuant;
}

const GGUF_TYPES: Partial<Record<SynthQuant, TensorType>> = {
  f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0", q4_0: "Q4_0", q4_k: "Q4_K", q6_k: "Q6_K",
};
/** llama.cpp's general.file_type (enum llama_ftype) for each choice. */
const FILE_TYPES: Partial<Record<SynthQuant, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 15, q6_k: 18, bf16: 32 };

/** Checks the option combination and fills defaults; every problem is a TesseraError naming the flag. */
export function resolveOptions(o: SynthOptions): Required<Omit<SynthOptions, "onProgress" | "name" | "description">> & Pick<SynthOptions, "onProgress" | "name" | "description"> {
  if (!isSynthArch(o.arch)) throw new TesseraError(`--arch must be one of ${ARCHITECTURES.join(", ")}, got '${o.arch}'`);
  if (!isPreset(o.preset)) throw new TesseraError(`--preset must be ${Object.keys(PRESETS).join(", ")}, got '${o.preset}'`);
  if (!FORMATS.includes(o.format)) throw new TesseraError(`--format must be ${FORMATS.join(", ")}, got '${o.format}'`);
  const quant = o.quant ?? (o.format === "mlx" ? "mlx4" : "f16");
  if (!QUANTS.includes(quant)) throw new TesseraError(`--quant must be one of ${QUANTS.join(", ")}, got '${quant}'`);
  if (o.format === "gguf" && !GGUF_TYPES[quant]) throw new TesseraError(`--quant ${quant} cannot be written as GGUF (use f32, f16, bf16, q8_0, q4_0, q4_k or q6_k)`);
  if (o.format === "safetensors" && !["f32", "f16", "bf16"].includes(quant)) throw new TesseraError(`--quant ${quant} cannot be written as safetensors (use f32, f16 or bf16; mlx4/mlx8 with --format mlx)`);
  if (o.format === "mlx" && quant !== "mlx4" && quant !== "mlx8") throw new TesseraError(`--format mlx needs --quant mlx4 or mlx8, got '${quant}'`);
  const vocab = o.vocab ?? "qwen3";
  if (!VOCABS.includes(vocab)) throw new TesseraError(`--vocab must be qwen3 or spm, got '${vocab}'`);
  if (vocab === "spm" && o.format !== "gguf") throw new TesseraError("--vocab spm is only available with --format gguf");
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new TesseraError(`--seed must be an integer in [0, 2^32), got '${seed}'`);
  if (!o.out) throw new TesseraError("--out is required");
  return { ...o, quant, vocab, seed, tied: o.tied ?? false, skipRopePermutation: o.skipRopePermutation ?? false };
}

function ggufVocab(vocab: SynthVocab, preset: PresetName): GgufVocabEntries {
  return vocab === "spm" ? spmGgufVocab(PRESETS[preset].spmVocab) : qwen3GgufVocab();
}

/** Synthetic model config for these options (what `synthesize` will write). */
export function synthConfig(o: SynthOptions): ModelConfig {
  const r = resolveOptions(o);
  const vocabSize = r.vocab === "spm" ? PRESETS[r.preset].spmVocab : qwen3GgufVocab().vocabSize;
  const cfg = presetConfig(r.arch, r.preset, vocabSize, { tied: r.tied });
  if (!isPowerOfTwo(cfg.hiddenSize)) throw new Error("synthetic hidden size must be a power of two");
  return cfg;
}

/** Representative output tokens come from ordinary text tokens (below the specials and rare tokens). */
function repRange(vocab: SynthVocab, vocabSize: number) {
  return vocab === "spm" ? { lo: 259, hi: vocabSize } : { lo: 256, hi: Math.min(vocabSize, 60000) };
}

/** Type a matrix is stored in: the requested one, or Q8_0 where rows don't fit K-quant blocks (as llama.cpp falls back). */
function matrixType(want: TensorType, cols: number): TensorType {
  return cols % LAYOUTS[want].blockSize === 0 ? want : "Q8_0";
}

const CHUNK_ELEMENTS = 1 << 20;

function encodeTensor(spec: SynthTensorSpec, type: TensorType, permute?: { heads: number; headDim: number }): Uint8Array {
  const key = spec.cacheKey && `${spec.cacheKey}|${type}`;
  const hit = key ? recall(key) : undefined;
  if (hit instanceof Uint8Array) return hit;
  const bytes = encodeTensorValues(spec, type, permute);
  if (key) remember(key, bytes);
  return bytes;
}

/** The spec with `delta` added to every value (vectors). */
function shifted(spec: SynthTensorSpec, delta: number): SynthTensorSpec {
  return { name: spec.name, shape: spec.shape, rows: (r0, r1) => spec.rows(r0, r1).map((v) => v + delta) };
}

function encodeTensorValues(spec: SynthTensorSpec, type: TensorType, permute?: { heads: number; headDim: number }): Uint8Array {
  const rows = spec.shape.length === 1 ? 1 : spec.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const cols = spec.shape.at(-1)!;
  if (spec.shape.length === 1) return quantize(type, spec.rows(0, 1));
  if (permute) return quantize(type, permuteForInterleavedRope(spec.rows(0, rows), permute.heads, permute.headDim, cols));
  const out = new Uint8Array(byteSize(type, rows * cols)!);
  const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
  let pos = 0;
  for (let r = 0; r < rows; r += step) {
    const bytes = quantize(type, spec.rows(r, Math.min(rows, r + step)));
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

async function replaceWithTemp(out: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${out}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    await write(tmp);
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

export async function synthesize(options: SynthOptions): Promise<SynthResult> {
  const o = resolveOptions(options);
  const cfg = synthConfig(o);
  const specs = synthWeights(cfg, o.seed, repRange(o.vocab, cfg.vocabSize));
  const result = o.format === "gguf" ? await writeGgufModel(o, cfg, specs) : await writeHfModel(o, cfg, specs);
  return { path: o.out, config: cfg, bytes: result, format: o.format, quant: o.quant };
}

async function writeGgufModel(o: ReturnType<typeof resolveOptions>, cfg: ModelConfig, specs: SynthTensorSpec[]): Promise<number> {
  const want = GGUF_TYPES[o.quant]!;
  const vocab = ggufVocab(o.vocab, o.preset);
  const arch = archOf(cfg);
  const a = arch.gguf;
  const meta: [string, GgufValue][] = [
    ["general.architecture", { type: "string", value: a }],
    // not the architecture's name: llama.cpp adjusts the vocabulary of models *named* like Phi-3
    ["general.name", { type: "string", value: o.name ?? `tessera-synth-${o.preset}` }],
    ...(o.description ? [["general.description", { type: "string", value: o.description }] as [string, GgufValue]] : []),
    ["tessera.synth.arch", { type: "string", value: o.arch }],
    ["general.alignment", { type: "u32", value: 32 }],
    ["general.file_type", { type: "u32", value: FILE_TYPES[o.quant]! }],
    ["general.quantization_version", { type: "u32", value: 2 }],
    ["tessera.synth.seed", { type: "u32", value: o.seed }],
    [`${a}.context_length`, { type: "u32", value: cfg.contextLength }],
    [`${a}.embedding_length`, { type: "u32", value: cfg.hiddenSize }],
    [`${a}.block_count`, { type: "u32", value: cfg.numLayers }],
    [`${a}.feed_forward_length`, { type: "u32", value: cfg.intermediateSize }],
    [`${a}.attention.head_count`, { type: "u32", value: cfg.numHeads }],
    [`${a}.attention.head_count_kv`, { type: "u32", value: cfg.numKvHeads }],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: "f32", value: cfg.rmsNormEps }],
    [`${a}.rope.dimension_count`, { type: "u32", value: cfg.headDim }],
    [`${a}.rope.freq_base`, { type: "f32", value: cfg.ropeTheta }],
    [`${a}.vocab_size`, { type: "u32", value: cfg.vocabSize }],
  ];
  if (cfg.ropeScaling?.kind === "linear") {
    meta.push([`${a}.rope.scaling.type`, { type: "string", value: "linear" }]);
    meta.push([`${a}.rope.scaling.factor`, { type: "f32", value: cfg.ropeScaling.factor }]);
  }
  meta.push(...(arch.ggufExtraMeta?.(cfg) ?? []));
  for (const [k, v] of vocab.entries) meta.push([k, ggufValue(k, v)]);

  const tensors = specs.map((spec) => {
    const isMatrix = spec.shape.length >= 2;
    // llama.cpp never quantizes a mixture-of-experts router (ffn_gate_inp): it stays F32.
    const type: TensorType = !isMatrix || /ffn_gate_inp\.weight$/.test(spec.name) ? "F32" : matrixType(want, spec.shape.at(-1)!);
    const interleaved = arch.ggufRopeInterleaved && !o.skipRopePermutation;
    const permute =
      interleaved && /attn_q\.weight$/.test(spec.name) ? { heads: cfg.numHeads, headDim: cfg.headDim }
      : interleaved && /attn_k\.weight$/.test(spec.name) ? { heads: cfg.numKvHeads, headDim: cfg.headDim }
      : undefined;
    return { spec, type, permute, bytes: byteSize(type, spec.shape.reduce((x, y) => x * y, 1))! };
  });
  const total = tensors.reduce((s, t) => s + t.bytes, 0);
  let done = 0;
  await replaceWithTemp(o.out, (tmp) =>
    writeGguf(tmp, {
      metadata: meta,
      tensors: tensors.map((t) => ({
        name: t.spec.name,
        type: t.type,
        shape: t.spec.shape,
        data: () => {
          const bytes = encodeTensor(t.spec, t.type, t.permute);
          done += bytes.length;
          o.onProgress?.(done, total, t.spec.name);
          return bytes;
        },
      })),
    }),
  );
  return total;
}

/** GGUF value types as llama.cpp's converter writes the tokenizer keys (scores f32, token types i32, ids u32). */
function ggufValue(key: string, v: unknown): GgufValue {
  if (typeof v === "string") return { type: "string", value: v };
  if (typeof v === "boolean") return { type: "bool", value: v };
  if (typeof v === "number") return { type: "u32", value: v };
  if (Array.isArray(v)) {
    if (key === "tokenizer.ggml.scores") return { type: "array", itemType: "f32", value: v as number[] };
    if (key === "tokenizer.ggml.token_type") return { type: "array", itemType: "i32", value: v as number[] };
    if (typeof v[0] === "string") return { type: "array", itemType: "string", value: v as string[] };
  }
  throw new Error(`no GGUF type for metadata ${key}`);
}

const SHARD_BYTES = 2 * 1024 ** 3;

async function writeHfModel(o: ReturnType<typeof resolveOptions>, cfg: ModelConfig, specs: SynthTensorSpec[]): Promise<number> {
  const mlxBits = o.quant === "mlx4" ? 4 : o.quant === "mlx8" ? 8 : undefined;
  const groupSize = 64;
  const dense: TensorType = o.quant === "f32" ? "F32" : o.quant === "bf16" ? "BF16" : "F16";
  const dtypeName = { F32: "float32", F16: "float16", BF16: "bfloat16" }[dense as "F32" | "F16" | "BF16"];
  const files: SafetensorsTensorToWrite[] = [];
  let total = 0;
  let done = 0;
  const progress = (n: number, name: string) => {
    done += n;
    o.onProgress?.(done, total, name);
  };
  const arch = archOf(cfg);
  const overrides: Record<string, unknown> = {};
  /** MLX packed values + scales + biases of `rows` × `cols` values, stored under `shape` (outer dims) × packed columns. */
  const pushMlx = (name: string, values: () => Float32Array, rows: number, cols: number, bits: 4 | 8, outer: number[]) => {
    let q: ReturnType<typeof quantizeMlx> | undefined;
    const get = () => (q ??= quantizeMlx(values(), rows, cols, bits, groupSize, dense === "F32" ? "F32" : dense));
    const base = name.replace(/\.weight$/, "");
    const scaleBytes = ((rows * cols) / groupSize) * (dense === "F32" ? 4 : 2);
    total += (rows * cols * bits) / 8 + 2 * scaleBytes;
    files.push({ name, dtype: "U32", shape: [...outer, (cols * bits) / 32], data: () => { const w = get().weight; progress(w.length, name); return w; } });
    files.push({ name: base + ".scales", dtype: dense, shape: [...outer, cols / groupSize], data: () => { const s = get().scales; progress(s.length, name); return s; } });
    files.push({
      name: base + ".biases", dtype: dense, shape: [...outer, cols / groupSize],
      data: () => { const b = get().biases; q = undefined; progress(b.length, name); return b; },
    });
  };
  const pushDense = (name: string, spec: SynthTensorSpec) => {
    const n = spec.shape.reduce((x, y) => x * y, 1);
    total += byteSize(dense, n)!;
    files.push({ name, dtype: dense, shape: spec.shape, data: () => { const b = encodeTensor(spec, dense); progress(b.length, name); return b; } });
  };
  for (const raw of specs) {
    // Gemma's HF norms store w for a (1 + w) multiplier; the canonical values are the multiplier.
    const spec = arch.hfNormOffset && /_norm\.weight$/.test(raw.name) ? shifted(raw, -arch.hfNormOffset) : raw;
    const cols = spec.shape.at(-1)!;
    if (spec.shape.length === 3) {
      const [E, R] = spec.shape as [number, number, number];
      if (mlxBits && cols % groupSize === 0) {
        pushMlx(hfName(spec.name, cfg), () => spec.rows(0, E * R), E * R, cols, mlxBits, [E, R]);
      } else {
        // transformers checkpoints: one tensor per expert
        for (let e = 0; e < E; e++) pushDense(hfName(spec.name, cfg, e), { name: `${spec.name}#${e}`, shape: [R, cols], rows: (r0, r1) => spec.rows(e * R + r0, e * R + r1) });
      }
      continue;
    }
    const name = hfName(spec.name, cfg);
    const rows = spec.shape[0]!;
    if (mlxBits && spec.shape.length === 2 && cols % groupSize === 0) {
      // mlx-lm keeps mixture-of-experts routers at 8 bits
      const router = /ffn_gate_inp\.weight$/.test(spec.name);
      if (router && mlxBits !== 8) overrides[name.replace(/\.weight$/, "")] = { group_size: groupSize, bits: 8 };
      pushMlx(name, () => spec.rows(0, rows), rows, cols, router ? 8 : mlxBits, [rows]);
      continue;
    }
    pushDense(name, spec);
  }
  const tok = qwen3TokenizerFiles();
  const vocab = qwen3GgufVocab();
  const extra: Record<string, unknown> = {};
  if (mlxBits) {
    extra.quantization = { group_size: groupSize, bits: mlxBits, ...overrides };
    extra.quantization_config = { group_size: groupSize, bits: mlxBits, ...overrides };
  }
  const config = hfConfigJson(cfg, dtypeName, { bos: vocab.bosId, eos: vocab.eosId }, extra);
  await replaceWithTemp(o.out, async (tmp) => {
    await mkdir(tmp, { recursive: true });
    await writeFile(join(tmp, "config.json"), JSON.stringify(config, null, 2) + "\n");
    await writeFile(join(tmp, "generation_config.json"), JSON.stringify({ bos_token_id: vocab.bosId, eos_token_id: [vocab.eosId, vocab.bosId] }, null, 2) + "\n");
    await writeFile(join(tmp, "tokenizer.json"), tok.tokenizerJson);
    await writeFile(join(tmp, "tokenizer_config.json"), tok.tokenizerConfigJson);
    const metadata = { format: o.format === "mlx" ? "mlx" : "pt", "tessera.synth.seed": String(o.seed) };
    if (total <= SHARD_BYTES) await writeSafetensors(join(tmp, "model.safetensors"), files, metadata);
    else await writeShardedSafetensors(tmp, files, { maxShardBytes: SHARD_BYTES, metadata });
  });
  return total;
}
