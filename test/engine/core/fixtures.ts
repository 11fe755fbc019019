import type { Architecture, ModelConfig, ModelSource, RawTensor, TensorInfo, TensorSlice, TensorType } from "../../../src/models/types.js";
import { LAYOUTS, byteSize, quantize } from "../../../src/models/quant/index.js";

/** Deterministic PRNG (mulberry32) with a normal sampler, so tests are reproducible. */
export function rng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    uniform,
    normal: () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform()),
  };
}

export function tinyConfig(arch: Architecture, over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: arch,
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    intermediateSize: 128,
    vocabSize: 96,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    contextLength: 128,
    tiedEmbeddings: false,
    qkvBias: arch === "qwen2",
    qkNorm: arch === "qwen3",
    ...over,
  };
}

/**
 * An in-memory ModelSource with random weights. Linear weights are stored as `linearType`
 * (quantized with the models/quant writer); norms and biases are F32. Slices are cut like a file
 * reader would: whole rows, or block-aligned column ranges of every row.
 */
export function randomSource(
  cfg: ModelConfig,
  opts: {
    seed?: number;
    linearType?: TensorType;
    /** Per-tensor storage type, overriding linearType (mixed-quantization files). */
    typeOf?: (name: string) => TensorType | undefined;
    ropeInterleaved?: boolean;
    scale?: number;
    ropeFreqs?: boolean;
  } = {},
): ModelSource {
  const r = rng(opts.seed ?? 1);
  const linearType = opts.linearType ?? "F32";
  const scale = opts.scale ?? 0.15;
  const tensors = new Map<string, { info: TensorInfo; data: Uint8Array }>();
  const add = (name: string, shape: number[], defaultType: TensorType, gen: () => number): void => {
    const type = (shape.length === 2 && opts.typeOf?.(name)) || defaultType;
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, gen);
    const data = quantize(type, values);
    tensors.set(name, { info: { name, type, shape, byteLength: data.byteLength, groupSize: LAYOUTS[type].blockSize }, data });
  };
  const w = (): number => r.normal() * scale;
  const norm = (): number => 1 + r.normal() * 0.1;
  const { hiddenSize: H, numHeads, numKvHeads, headDim: D, intermediateSize: F, vocabSize: V } = cfg;
  add("token_embd.weight", [V, H], linearType, () => r.normal());
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `blk.${l}.`;
    add(p + "attn_norm.weight", [H], "F32", norm);
    add(p + "ffn_norm.weight", [H], "F32", norm);
    add(p + "attn_q.weight", [numHeads * D, H], linearType, w);
    add(p + "attn_k.weight", [numKvHeads * D, H], linearType, w);
    add(p + "attn_v.weight", [numKvHeads * D, H], linearType, w);
    add(p + "attn_output.weight", [H, numHeads * D], linearType, w);
    add(p + "ffn_gate.weight", [F, H], linearType, w);
    add(p + "ffn_up.weight", [F, H], linearType, w);
    add(p + "ffn_down.weight", [H, F], linearType, w);
    if (cfg.qkvBias) {
      add(p + "attn_q.bias", [numHeads * D], "F32", w);
      add(p + "attn_k.bias", [numKvHeads * D], "F32", w);
      add(p + "attn_v.bias", [numKvHeads * D], "F32", w);
    }
    if (cfg.qkNorm) {
      add(p + "attn_q_norm.weight", [D], "F32", norm);
      add(p + "attn_k_norm.weight", [D], "F32", norm);
    }
  }
  add("output_norm.weight", [H], "F32", norm);
  if (!cfg.tiedEmbeddings) add("output.weight", [V, H], linearType, w);
  if (opts.ropeFreqs) add("rope_freqs.weight", [D / 2], "F32", () => 1 + 7 * r.uniform());
  return {
    path: `memory:${cfg.architecture}`,
    format: "gguf",
    config: cfg,
    ropeInterleaved: opts.ropeInterleaved ?? false,
    tensors: () => [...tensors.values()].map((t) => t.info),
    info: (name) => tensors.get(name)?.info,
    async read(name: string, slice?: TensorSlice): Promise<RawTensor> {
      const t = tensors.get(name);
      if (!t) throw new Error(`no tensor ${name}`);
      const { info, data } = t;
      const cols = info.shape.length === 2 ? info.shape[1] : info.shape[0];
      const rows = info.shape.length === 2 ? info.shape[0] : 1;
      const [r0, r1] = slice?.rows ?? [0, rows];
      const [c0, c1] = slice?.cols ?? [0, cols];
      const rowBytes = byteSize(info.type, cols)!;
      const b0 = byteSize(info.type, c0)!;
      const b1 = byteSize(info.type, c1)!;
      const out = new Uint8Array((r1 - r0) * (b1 - b0));
      for (let i = r0; i < r1; i++) out.set(data.subarray(i * rowBytes + b0, i * rowBytes + b1), (i - r0) * (b1 - b0));
      const shape = info.shape.length === 2 ? [r1 - r0, c1 - c0] : [c1 - c0];
      return { info, shape, data: out };
    },
    async close() {},
  };
}
