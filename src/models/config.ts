import { TesseraError } from "../errors.js";
import type { Architecture, ModelConfig, RopeScaling } from "./types.js";

/**
 * One normalized ModelConfig from either GGUF metadata (llama.cpp key names) or a Hugging Face
 * config.json. Both paths end in `validateConfig`, so a bad file fails the same way whatever its format.
 */

const SUPPORTED: readonly Architecture[] = ["llama", "qwen2", "qwen3"];

/** HF model_type → our architecture. Mistral is a llama with other defaults. */
const HF_MODEL_TYPES: Record<string, Architecture> = { llama: "llama", mistral: "llama", qwen2: "qwen2", qwen3: "qwen3" };
const HF_ARCH_CLASSES: Record<string, Architecture> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
};

/** Per-architecture defaults for fields that files may leave out (values of HF transformers' config classes). */
const DEFAULTS: Record<Architecture, { ropeTheta: number; rmsNormEps: number; contextLength: number }> = {
  llama: { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 2048 },
  qwen2: { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 32768 },
  qwen3: { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 32768 },
};

/** GGUF numbers may arrive as bigint (u64/i64); everything we read fits a double. */
function num(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function arrayLength(v: unknown): number | undefined {
  if (Array.isArray(v)) return v.length;
  if (ArrayBuffer.isView(v) && "length" in v) return (v as unknown as { length: number }).length;
  return undefined;
}

/**
 * From GGUF metadata keys (`general.architecture`, `<arch>.embedding_length`, ...).
 * `tensorNames`, when given, decides tied embeddings (no `output.weight` ⇒ lm_head is token_embd);
 * without it the model is taken as untied, since metadata alone does not say.
 * llama.cpp stores llama3 rope scaling as a `rope_freqs.weight` tensor rather than metadata; the
 * `<arch>.rope.scaling.*` keys are read when present.
 */
export function configFromGguf(metadata: Map<string, unknown>, file: string, tensorNames?: Iterable<string>): ModelConfig {
  const archValue = metadata.get("general.architecture");
  if (typeof archValue !== "string") throw new TesseraError("GGUF metadata has no general.architecture", file);
  if (!(SUPPORTED as readonly string[]).includes(archValue)) {
    throw new TesseraError(`unsupported architecture '${archValue}' (supported: ${SUPPORTED.join(", ")})`, file);
  }
  const arch = archValue as Architecture;
  const key = (k: string) => `${arch}.${k}`;
  const need = (k: string): number => {
    const v = num(metadata.get(key(k)));
    if (v === undefined) throw new TesseraError(`GGUF metadata is missing ${key(k)}`, file);
    return v;
  };
  const opt = (k: string): number | undefined => num(metadata.get(key(k)));

  const hiddenSize = need("embedding_length");
  const numHeads = need("attention.head_count");
  // head_count_kv may be an array (per-layer) in some models; the architectures here use one value.
  const kvRaw = metadata.get(key("attention.head_count_kv"));
  const numKvHeads = kvRaw === undefined ? numHeads : num(kvRaw);
  if (numKvHeads === undefined) throw new TesseraError(`${key("attention.head_count_kv")} must be a number`, file);
  const headDim = opt("attention.key_length") ?? opt("rope.dimension_count") ?? hiddenSize / numHeads;
  const valueLength = opt("attention.value_length");
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new TesseraError(`${key("attention.value_length")} (${valueLength}) differs from key_length (${headDim}); not supported`, file);
  }
  const vocabSize = opt("vocab_size") ?? arrayLength(metadata.get("tokenizer.ggml.tokens"));
  if (vocabSize === undefined) throw new TesseraError(`GGUF metadata has neither ${key("vocab_size")} nor tokenizer.ggml.tokens`, file);

  let ropeScaling: RopeScaling | undefined;
  const scalingType = metadata.get(key("rope.scaling.type"));
  if (scalingType === "llama3") {
    ropeScaling = {
      kind: "llama3",
      factor: need("rope.scaling.factor"),
      lowFreqFactor: opt("rope.scaling.low_freq_factor") ?? 1,
      highFreqFactor: opt("rope.scaling.high_freq_factor") ?? 4,
      originalContextLength: need("rope.scaling.original_context_length"),
    };
  } else if (scalingType !== undefined && scalingType !== "none") {
    throw new TesseraError(`unsupported rope scaling '${String(scalingType)}'`, file);
  }

  let tiedEmbeddings = false;
  if (tensorNames) {
    const names = new Set(tensorNames);
    tiedEmbeddings = !names.has("output.weight");
  }

  return validateConfig(
    {
      architecture: arch,
      hiddenSize,
      numLayers: need("block_count"),
      numHeads,
      numKvHeads,
      headDim,
      intermediateSize: need("feed_forward_length"),
      vocabSize,
      rmsNormEps: fromF32(opt("attention.layer_norm_rms_epsilon")) ?? DEFAULTS[arch].rmsNormEps,
      ropeTheta: fromF32(opt("rope.freq_base")) ?? DEFAULTS[arch].ropeTheta,
      ...(ropeScaling ? { ropeScaling } : {}),
      contextLength: opt("context_length") ?? DEFAULTS[arch].contextLength,
      tiedEmbeddings,
      qkvBias: arch === "qwen2",
      qkNorm: arch === "qwen3",
    },
    file,
  );
}

/** GGUF stores these as f32: 1e-6 arrives as 9.99999997e-7. Seven significant digits give back the written value. */
function fromF32(v: number | undefined): number | undefined {
  return v === undefined ? undefined : Number(v.toPrecision(7));
}

function withRopeScaling(s: RopeScaling | undefined): { ropeScaling?: RopeScaling } {
  return s ? { ropeScaling: s } : {};
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** From a Hugging Face config.json (already parsed). */
export function configFromHfConfig(json: unknown, file: string): ModelConfig {
  if (!isRecord(json)) throw new TesseraError("config.json is not a JSON object", file);
  const modelType = typeof json.model_type === "string" ? json.model_type : undefined;
  const classes = Array.isArray(json.architectures) ? json.architectures.filter((c): c is string => typeof c === "string") : [];
  let arch: Architecture | undefined = modelType ? HF_MODEL_TYPES[modelType] : undefined;
  if (!arch && modelType === undefined) arch = classes.map((c) => HF_ARCH_CLASSES[c]).find((a) => a !== undefined);
  if (!arch) {
    const named = modelType ?? (classes.join(", ") || "none given");
    throw new TesseraError(`unsupported architecture '${named}' (supported: llama, mistral, qwen2, qwen3)`, file);
  }

  const need = (k: string): number => {
    const v = json[k];
    if (typeof v !== "number") throw new TesseraError(`config.json is missing the number '${k}'`, file);
    return v;
  };
  const opt = (k: string): number | undefined => {
    const v = json[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") throw new TesseraError(`config.json field '${k}' must be a number`, file);
    return v;
  };

  if (arch === "llama" && json.attention_bias === true) {
    throw new TesseraError("llama with attention_bias = true is not supported", file);
  }

  const hiddenSize = need("hidden_size");
  const numHeads = need("num_attention_heads");
  // Newer transformers versions move rope settings into `rope_parameters`.
  const ropeParams = isRecord(json.rope_parameters) ? json.rope_parameters : undefined;
  const ropeTheta = opt("rope_theta") ?? num(ropeParams?.rope_theta) ?? DEFAULTS[arch].ropeTheta;
  const scalingJson = isRecord(json.rope_scaling) ? json.rope_scaling : ropeParams;

  return validateConfig(
    {
      architecture: arch,
      hiddenSize,
      numLayers: need("num_hidden_layers"),
      numHeads,
      numKvHeads: opt("num_key_value_heads") ?? numHeads,
      headDim: opt("head_dim") ?? hiddenSize / numHeads,
      intermediateSize: need("intermediate_size"),
      vocabSize: need("vocab_size"),
      rmsNormEps: opt("rms_norm_eps") ?? DEFAULTS[arch].rmsNormEps,
      ropeTheta,
      ...withRopeScaling(scalingJson ? hfRopeScaling(scalingJson, file) : undefined),
      contextLength: opt("max_position_embeddings") ?? DEFAULTS[arch].contextLength,
      tiedEmbeddings: json.tie_word_embeddings === true,
      qkvBias: arch === "qwen2",
      qkNorm: arch === "qwen3",
    },
    file,
  );
}

function hfRopeScaling(s: Record<string, unknown>, file: string): RopeScaling | undefined {
  const type = s.rope_type ?? s.type;
  if (type === undefined || type === null || type === "default") return undefined;
  if (type !== "llama3") throw new TesseraError(`unsupported rope scaling '${String(type)}'`, file);
  const field = (k: string): number => {
    const v = s[k];
    if (typeof v !== "number") throw new TesseraError(`rope_scaling is missing the number '${k}'`, file);
    return v;
  };
  return {
    kind: "llama3",
    factor: field("factor"),
    lowFreqFactor: field("low_freq_factor"),
    highFreqFactor: field("high_freq_factor"),
    originalContextLength: field("original_max_position_embeddings"),
  };
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
  return c;
}
