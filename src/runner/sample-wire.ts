import type { ResolvedSamplingParams, SampleResult, TokenLogprob } from "../engine/sampling/index.js";

/** The order the driver sends a request's sampling parameters in (float64 each; the seed is < 2^32, exact). */
export const SAMPLING_FIELDS = [
  "temperature",
  "topK",
  "topP",
  "minP",
  "repetitionPenalty",
  "presencePenalty",
  "frequencyPenalty",
  "penaltyLastN",
  "seed",
] as const satisfies readonly (keyof ResolvedSamplingParams)[];

export function encodeSampling(p: ResolvedSamplingParams): Float64Array {
  return Float64Array.from(SAMPLING_FIELDS, (k) => p[k]);
}

export function decodeSampling(v: Float64Array): ResolvedSamplingParams {
  const p = {} as Record<(typeof SAMPLING_FIELDS)[number], number>;
  SAMPLING_FIELDS.forEach((k, i) => (p[k] = v[i]!));
  return p;
}

/**
 * A sampled token on the wire, float64 (SAMPLE_LAYOUT):
 *   [0] token   [1] its logprob, NaN when the request asked for none   [2] k = alternatives that follow
 *   [3 + 2j] token j   [4 + 2j] its logprob          (j < k, best first)
 */
export const sampleWireLength = (logprobs: number): number => 3 + 2 * Math.max(0, logprobs);

export function encodeSample(r: SampleResult, out: Float64Array): Float64Array {
  out[0] = r.token;
  out[1] = r.logprobs ? r.logprobs.logprob : NaN;
  const top = r.logprobs?.top ?? [];
  out[2] = top.length;
  top.forEach((t, j) => {
    out[3 + 2 * j] = t.token;
    out[4 + 2 * j] = t.logprob;
  });
  return out.subarray(0, 3 + 2 * top.length);
}

export function decodeSample(v: Float64Array): SampleResult {
  const token = v[0]!;
  if (Number.isNaN(v[1])) return { token };
  const top: TokenLogprob[] = [];
  for (let j = 0; j < v[2]!; j++) top.push({ token: v[3 + 2 * j]!, logprob: v[4 + 2 * j]! });
  return { token, logprobs: { token, logprob: v[1]!, top } };
}
