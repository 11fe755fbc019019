import { TesseraError } from "../../errors.js";
import type { Architecture, ModelConfig } from "../types.js";

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
export const ARCHITECTURES: readonly Architecture[] = ["llama", "qwen2", "qwen3"];

export function isPreset(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export function presetConfig(arch: Architecture, preset: PresetName, vocabSize: number, opts: { tied?: boolean } = {}): ModelConfig {
  const p = PRESETS[preset];
  if (!ARCHITECTURES.includes(arch)) throw new TesseraError(`unknown architecture '${arch}' (choose ${ARCHITECTURES.join(", ")})`);
  return {
    architecture: arch,
    hiddenSize: p.hiddenSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    headDim: p.hiddenSize / p.numHeads,
    intermediateSize: p.intermediateSize,
    vocabSize,
    rmsNormEps: 1e-6,
    ropeTheta: arch === "llama" ? 10000 : 1000000,
    contextLength: 4096,
    tiedEmbeddings: opts.tied ?? false,
    qkvBias: arch === "qwen2",
    qkNorm: arch === "qwen3",
  };
}
