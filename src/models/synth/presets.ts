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

type Sized<T> = Record<PresetName, T>;
const by = <T>(tiny: T, small: T, big: T): Sized<T> => ({ tiny, small, "1b": big });

/** Mistral's window: short on the test presets so tests run past it. */
const MISTRAL_WINDOW = by(16, 32, 4096);
/** Mixtral: 8 experts, 2 per token, of the model's FFN width (narrower on 1b to keep it ~1.6 B parameters). */
const MIXTRAL_FFN = by(256, 768, 2048);
/** Qwen3-MoE-like: many narrow experts. 1b: ~1.6 B parameters, ~0.2 B active per token. */
const QWEN3MOE = by(
  { numExperts: 8, expertsPerToken: 2, expertFfnSize: 64 },
  { numExperts: 16, expertsPerToken: 4, expertFfnSize: 128 },
  { numExperts: 32, expertsPerToken: 4, expertFfnSize: 512 },
);
/** Gemma 3: layers and the sliding period (every period-th layer global), window; tiny keeps a second sliding layer. */
const GEMMA3 = by({ layers: 3, period: 3, window: 16 }, { layers: 4, period: 4, window: 32 }, { layers: 16, period: 6, window: 512 });

/**
 * The synthetic-model variants `tessera synth --arch` writes: each architecture file's models, plus
 * Mistral (a llama with a sliding window) and Mixtral (a llama with experts). Each takes the preset's
 * shape and sets what its family has.
 */
const VARIANTS = {
  llama: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "llama", ropeTheta: 10000 }),
  qwen2: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "qwen2", qkvBias: true }),
  qwen3: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "qwen3", qkNorm: true }),
  mistral: (c: ModelConfig, p: PresetName): ModelConfig => ({ ...c, architecture: "llama", ropeTheta: 10000, slidingWindow: MISTRAL_WINDOW[p] }),
  mixtral: (c: ModelConfig, p: PresetName): ModelConfig => ({
    ...c,
    architecture: "llama",
    ropeTheta: 10000,
    intermediateSize: MIXTRAL_FFN[p],
    moe: { numExperts: 8, expertsPerToken: 2, expertFfnSize: MIXTRAL_FFN[p] },
  }),
  qwen3moe: (c: ModelConfig, p: PresetName): ModelConfig => ({ ...c, architecture: "qwen3moe", qkNorm: true, moe: QWEN3MOE[p] }),
  gemma3: (c: ModelConfig, p: PresetName): ModelConfig => {
    const g = GEMMA3[p];
    return {
      ...c,
      architecture: "gemma3",
      numLayers: g.layers,
      qkNorm: true,
      hiddenAct: "gelu_tanh",
      embeddingScale: Math.sqrt(c.hiddenSize),
      attentionScale: 1 / Math.sqrt(c.headDim),
      slidingWindow: g.window,
      slidingLayers: Array.from({ length: g.layers }, (_, l) => l % g.period < g.period - 1),
      ropeThetaSliding: 10000,
      // the larger Gemma 3 models scale the global layers' rope linearly
      ropeScaling: { kind: "linear", factor: 2 },
    };
  },
  phi3: (c: ModelConfig): ModelConfig => ({ ...c, architecture: "phi3", ropeTheta: 10000, rmsNormEps: 1e-5 }),
} satisfies Record<string, (c: ModelConfig, p: PresetName) => ModelConfig>;

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
  }, preset);
}
