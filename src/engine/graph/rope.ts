import type { ModelConfig } from "../../models/types.js";

/**
 * Rotary embedding tables for onnxruntime's RotaryEmbedding: cos/sin [positions, headDim/2],
 * entry [p, i] = cos/sin(p · invFreq[i]). Pairing (interleaved or half-split) is the op's attribute;
 * the frequencies are the same either way.
 */
export type RopeConfig = Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">;

/**
 * `freqFactors`: GGUF's `rope_freqs.weight` (llama.cpp stores llama3 scaling as per-frequency
 * divisors); when given it replaces `ropeScaling`.
 */
export function ropeInvFreq(cfg: RopeConfig, freqFactors?: Float32Array): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
  if (freqFactors) {
    for (let i = 0; i < half; i++) inv[i] /= freqFactors[i];
    return inv;
  }
  const s = cfg.ropeScaling;
  if (s?.kind === "linear") {
    for (let i = 0; i < half; i++) inv[i] /= s.factor;
    return inv;
  }
  if (s?.kind === "llama3") {
    // Llama 3.1: long wavelengths are divided by `factor`, short ones kept, a smooth blend between.
    const lowWavelen = s.originalContextLength / s.lowFreqFactor;
    const highWavelen = s.originalContextLength / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[i] = inv[i] / s.factor;
      } else {
        const smooth = (s.originalContextLength / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

export function ropeTables(cfg: RopeConfig, positions: number, freqFactors?: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg, freqFactors);
  const half = inv.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * inv[i];
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}
