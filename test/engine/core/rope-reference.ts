/**
 * Rotary inverse frequencies written out for tests, independently of src/engine/graph/rope.ts, so
 * that a bug there cannot hide behind a reference built from the same code.
 */

/** Plain rope: inv[i] = θ^(−2i/d) for each of the d/2 pairs. */
export function plainInvFreq(theta: number, headDim: number): Float64Array {
  return Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
}

/**
 * Llama 3.1's frequency scaling as Meta's reference code (`apply_scaling` in llama/model.py) states it:
 * wavelengths shorter than old_context / high_freq_factor are kept, longer than
 * old_context / low_freq_factor divided by scale_factor, and the band between blends the two by
 * smooth = (old_context / wavelength − low) / (high − low).
 */
export function llama3InvFreq(
  theta: number,
  headDim: number,
  s: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContextLength: number },
): Float64Array {
  const lowFreqWavelen = s.originalContextLength / s.lowFreqFactor;
  const highFreqWavelen = s.originalContextLength / s.highFreqFactor;
  return plainInvFreq(theta, headDim).map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) return freq;
    if (wavelen > lowFreqWavelen) return freq / s.factor;
    const smooth = (s.originalContextLength / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return ((1 - smooth) * freq) / s.factor + smooth * freq;
  });
}

/** GGUF `rope_freqs.weight` as llama.cpp applies it (ggml_rope_ext's freq_factors): θ_i / factor_i. */
export function dividedInvFreq(theta: number, headDim: number, factors: ArrayLike<number>): Float64Array {
  return plainInvFreq(theta, headDim).map((f, i) => f / factors[i]!);
}

/**
 * Llama 3.1 8B's scaled frequencies (θ 500000, head_dim 128, factor 8, low 1, high 4, original context
 * 8192) at a few pairs, computed once in float64 with Python from Meta's formula: pairs 0–28 are
 * kept, 29–34 blended, 35 on divided by 8.
 */
export const LLAMA31_8B = {
  theta: 500000,
  headDim: 128,
  scaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192 },
  invFreq: new Map<number, number>([
    [0, 1.0],
    [1, 0.8146172338565447],
    [20, 0.016560440080994446],
    [28, 0.0032114459947525913],
    [29, 0.002166570763503359],
    [30, 0.0013718935677611381],
    [31, 0.0008567514129196321],
    [32, 0.0005248461609929547],
    [33, 0.00031269375038406517],
    [34, 0.00017850781276799638],
    [35, 9.556212353964683e-5],
    [40, 3.428102195952591e-5],
    [63, 3.068925988914511e-7],
  ]),
} as const;
