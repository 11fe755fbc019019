import { TesseraError } from "../../errors.js";
import type { ModelConfig } from "../types.js";

/**
 * Model shapes for synthetic models. hidden is a power of two (the weight construction uses Hadamard
 * codes); head_dim is a multiple of 16; `1b` is the
 * benchmark shape (TinyLlama-like: 2048 hidden, 16 layers, 32/8 heads, FFN 8192).
 */
export const PRESETS = {
  tiny: { hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 256, spmVocab: 4096 },
  small: { hiddenSize: 256, numLayers: 4, numHeads: 8, numKvHeads: 2, intermediateSize: 768, spmVocab: 16384 },
  "1b": { hiddenSize: 2048, numLayers: 16, numHeads: 32, numKvHeads: 8, intermediateSize: 8192, spmVocab: 32000 },
} as const;

export type PresetName = keyof typeof PRESETS;

/**
 * The synthetic-model variants `tessera synth --arch` writes: each architecture file's models, plus
 * Mistral (a llama with a sliding window) and Mixtral (a llama with experts). Each takes the preset's
 * shape and sets what its family has.
 */
const VARIANTS = {
  llama: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "llama", ropeTheta: 10000 }),
  qwen2: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "qwen2", qkvBias: true }),
  qwen3: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "qwen3", qkNorm: true }),
} satisfies Record<string, (c: ModelConfig) => ModelConfig>;

export type SynthArch = keyof typeof VARIANTS;
export const ARCHITECTURES = Object.keys(VARIANTS) as SynthArch[];

export function isPreset(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export function isSynthArch(name: string): name is SynthArch {
  return Object.hasOwn(VARIANTS, name);
}

export function presetConfig(arch: SynthArch, preset: PresetName, vocabSize: number, opts: { tied?: boolean } = {}): ModelConfig {
  const p = PRESETS[preset];
  if (!isSynthArch(arch)) throw new TesseraError(`unknown architecture '${arch}' (choose ${ARCHITECTURES.join(", ")})`);
  return VARIANTS[arch]({
    architecture: "llama",
    hiddenSize: p.hiddenSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    headDim: p.hiddenSize / p.numHeads,
    intermediateSize: p.intermediateSize,
    vocabSize,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    contextLength: 4096,
    tiedEmbeddings: opts.tied ?? false,
    qkvBias: false,
    qkNorm: false,
  });
}
