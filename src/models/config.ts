import { TesseraError } from "../errors.js";
import { GgufKeys, HfKeys, isRecord } from "./arch/keys.js";
import { archByGguf, archByHf } from "./arch/registry.js";
import type { ModelConfig } from "./types.js";

/**
 * One normalized ModelConfig from either GGUF metadata (llama.cpp key names) or a Hugging Face
 * config.json. The architecture's file (arch/) reads the fields; both paths end in
 * `validateConfig`, so a bad file fails the same way whatever its format.
 */

/**
 * From GGUF metadata keys (`general.architecture`, `<arch>.embedding_length`, ...).
 * `tensorNames`, when given, decides tied embeddings (no `output.weight` ⇒ lm_head is token_embd);
 * without it the model is taken as untied, since metadata alone does not say.
 */
export function configFromGguf(metadata: Map<string, unknown>, file: string, tensorNames?: Iterable<string>): ModelConfig {
  const archValue = metadata.get("general.architecture");
  if (typeof archValue !== "string") throw new TesseraError("GGUF metadata has no general.architecture", file);
  const arch = archByGguf(archValue, file);
  const names = tensorNames ? new Set(tensorNames) : undefined;
  return validateConfig(arch.fromGguf(new GgufKeys(metadata, archValue, file, names)), file);
}

/** From a Hugging Face config.json (already parsed). */
export function configFromHfConfig(json: unknown, file: string): ModelConfig {
  if (!isRecord(json)) throw new TesseraError("config.json is not a JSON object", file);
  const modelType = typeof json.model_type === "string" ? json.model_type : undefined;
  const classes = Array.isArray(json.architectures) ? json.architectures.filter((c): c is string => typeof c === "string") : [];
  const arch = archByHf(modelType, classes, file);
  return validateConfig(arch.fromHf(new HfKeys(json, modelType ?? classes[0] ?? arch.name, file)), file);
}

const MAX_DIM = 1 << 20;

/** Rejects configs no real model has: non-integers, zero or absurd sizes, heads that do not divide. */
export function validateConfig(c: ModelConfig, file: string): ModelConfig {
  const ints: (keyof ModelConfig)[] = ["hiddenSize", "numLayers", "numHeads", "numKvHeads", "headDim", "intermediateSize", "vocabSize", "contextLength"];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new TesseraError(`${k} must be a positive integer, got ${v}`, file);
    if (k !== "contextLength" && k !== "vocabSize" && v > MAX_DIM) throw new TesseraError(`${k} = ${v} is absurdly large`, file);
  }
  if (c.vocabSize > 1 << 24) throw new TesseraError(`vocabSize = ${c.vocabSize} is absurdly large`, file);
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new TesseraError(`numHeads (${c.numHeads}) is not a multiple of numKvHeads (${c.numKvHeads})`, file);
  }
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) throw new TesseraError(`rmsNormEps must be in (0, 1), got ${c.rmsNormEps}`, file);
  if (!(c.ropeTheta > 0)) throw new TesseraError(`ropeTheta must be positive, got ${c.ropeTheta}`, file);
  if (c.slidingWindow !== undefined && !(Number.isInteger(c.slidingWindow) && c.slidingWindow >= 1)) {
    throw new TesseraError(`sliding window must be a positive integer, got ${c.slidingWindow}`, file);
  }
  if (c.slidingLayers && c.slidingLayers.length !== c.numLayers) {
    throw new TesseraError(`sliding-window pattern has ${c.slidingLayers.length} layers, the model ${c.numLayers}`, file);
  }
  const m = c.moe;
  if (m) {
    for (const k of ["numExperts", "expertsPerToken", "expertFfnSize"] as const) {
      if (!Number.isInteger(m[k]) || m[k] < 1 || m[k] > MAX_DIM) throw new TesseraError(`${k} must be a positive integer, got ${m[k]}`, file);
    }
    if (m.expertsPerToken > m.numExperts) throw new TesseraError(`${m.expertsPerToken} experts per token of only ${m.numExperts}`, file);
  }
  return c;
}
