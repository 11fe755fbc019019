import type { ResolvedSamplingParams } from "../engine/sampling/params.js";
import { InferenceError } from "./errors.js";

/** Sampling parameters of a request; what is left out comes from a preset (see engine/sampling/params.ts for the order they apply in). */
export type SamplingParams = Partial<ResolvedSamplingParams>;

export type SamplingDefaults = Omit<ResolvedSamplingParams, "seed">;

/**
 * The one set of defaults for every API: what OpenAI and Anthropic document for a field left out
 * (temperature 1, no top-k / top-p / min-p, no penalties).
 */
export const DEFAULT_SAMPLING: SamplingDefaults = Object.freeze({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
});

/** Named presets for the CLI: `llama.cpp` is llama-cli's defaults, so both tools answer alike out of the box. */
export const SAMPLING_PRESETS: Readonly<Record<string, SamplingDefaults>> = Object.freeze({
  default: DEFAULT_SAMPLING,
  "llama.cpp": Object.freeze({ ...DEFAULT_SAMPLING, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 }),
});

export function samplingPreset(name: string): SamplingDefaults {
  const p = Object.hasOwn(SAMPLING_PRESETS, name) ? SAMPLING_PRESETS[name] : undefined;
  if (!p) throw new InferenceError("invalid_request", `unknown sampling preset '${name}' (choose ${Object.keys(SAMPLING_PRESETS).join(", ")})`);
  return p;
}

function check(ok: boolean, param: keyof ResolvedSamplingParams, what: string, value: unknown): void {
  if (!ok) throw new InferenceError("invalid_request", `${what}, got ${String(value)}`, { param });
}

/** Fills defaults and rejects values outside their ranges with one clear InferenceError naming the field. */
export function resolveSamplingParams(p: SamplingParams = {}, seed: number, defaults: SamplingDefaults = DEFAULT_SAMPLING): ResolvedSamplingParams {
  const r: ResolvedSamplingParams = { ...defaults, seed, ...stripUndefined(p) };
  check(Number.isFinite(r.temperature) && r.temperature >= 0, "temperature", "temperature must be a number ≥ 0", r.temperature);
  check(Number.isInteger(r.topK) && r.topK >= 0, "topK", "topK must be an integer ≥ 0", r.topK);
  check(Number.isFinite(r.topP) && r.topP > 0 && r.topP <= 1, "topP", "topP must be in (0, 1]", r.topP);
  check(Number.isFinite(r.minP) && r.minP >= 0 && r.minP <= 1, "minP", "minP must be in [0, 1]", r.minP);
  check(Number.isFinite(r.repetitionPenalty) && r.repetitionPenalty > 0, "repetitionPenalty", "repetitionPenalty must be > 0", r.repetitionPenalty);
  check(Number.isFinite(r.presencePenalty), "presencePenalty", "presencePenalty must be a number", r.presencePenalty);
  check(Number.isFinite(r.frequencyPenalty), "frequencyPenalty", "frequencyPenalty must be a number", r.frequencyPenalty);
  check(Number.isInteger(r.penaltyLastN) && r.penaltyLastN >= -1, "penaltyLastN", "penaltyLastN must be an integer ≥ -1", r.penaltyLastN);
  check(Number.isInteger(r.seed) && r.seed >= 0 && r.seed <= 0xffffffff, "seed", "seed must be an integer in [0, 2^32)", r.seed);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
