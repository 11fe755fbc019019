import { TesseraError } from "../../errors.js";
import type { Architecture, ModelConfig, RopeScaling } from "../types.js";
import { isRecord, type GgufKeys, type HfKeys } from "./keys.js";
import type { HfLayerNames, LayerLayout, LayerRole, StoredTensor, WeightRef } from "./types.js";

/**
 * The parts most decoder architectures share: the config every decoder has (GGUF and HF), rope
 * scaling, sliding-window layer patterns, and the standard tensor layouts of attention and MLPs.
 * Architecture files compose these and add what is theirs.
 */

export interface Defaults {
  ropeTheta: number;
  rmsNormEps: number;
  contextLength: number;
}

/** The fields every decoder has, from GGUF metadata (llama.cpp's key names). */
export function decoderFromGguf(k: GgufKeys, arch: Architecture, d: Defaults): ModelConfig {
  const hiddenSize = k.need("embedding_length");
  const numHeads = k.need("attention.head_count");
  const kv = k.numberOrArray("attention.head_count_kv");
  if (Array.isArray(kv)) throw k.unsupported("a KV head count per layer (attention.head_count_kv as an array)");
  const numKvHeads = kv ?? numHeads;
  // llama.cpp: head size is key_length when given, else hidden / heads; rope covers rope.dimension_count of it.
  const headDim = k.opt("attention.key_length") ?? hiddenSize / numHeads;
  const valueLength = k.opt("attention.value_length");
  if (valueLength !== undefined && valueLength !== headDim) {
    throw k.unsupported(`a value head size (${valueLength}) other than the key head size (${headDim})`);
  }
  const rot = k.opt("rope.dimension_count");
  if (rot !== undefined && rot !== headDim) throw k.unsupported(`partial rotary embedding (rope over ${rot} of ${headDim} head dims)`);
  if (k.has("attn_logit_softcapping")) throw k.unsupported("attention logit soft-capping");
  const tokens = k.metadata.get("tokenizer.ggml.tokens");
  const tokenCount = Array.isArray(tokens) || ArrayBuffer.isView(tokens) ? (tokens as ArrayLike<unknown>).length : undefined;
  const vocabSize = k.opt("vocab_size") ?? tokenCount;
  if (vocabSize === undefined) throw new TesseraError(`GGUF metadata has neither ${k.key("vocab_size")} nor tokenizer.ggml.tokens`, k.file);
  const ropeScaling = ggufRopeScaling(k);
  const softcap = k.float("final_logit_softcapping");
  return {
    architecture: arch,
    hiddenSize,
    numLayers: k.need("block_count"),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: k.need("feed_forward_length"),
    vocabSize,
    rmsNormEps: k.float("attention.layer_norm_rms_epsilon") ?? d.rmsNormEps,
    ropeTheta: k.float("rope.freq_base") ?? d.ropeTheta,
    ...(ropeScaling ? { ropeScaling } : {}),
    contextLength: k.opt("context_length") ?? d.contextLength,
    // Metadata alone does not say; without the tensor list the model is taken as untied.
    tiedEmbeddings: k.tensorNames ? !k.tensorNames.has("output.weight") : false,
    qkvBias: false,
    qkNorm: false,
    ...(softcap ? { finalLogitSoftcap: softcap } : {}),
  };
}

/**
 * GGUF rope scaling. llama.cpp's default type is linear: a scaling factor without a type scales
 * positions linearly. llama3 scaling usually arrives as a rope_freqs.weight tensor instead (the
 * engine reads it); its `rope.scaling.*` keys are read when present.
 */
function ggufRopeScaling(k: GgufKeys): RopeScaling | undefined {
  const type = k.str("rope.scaling.type");
  if (type === "llama3") {
    return {
      kind: "llama3",
      factor: k.need("rope.scaling.factor"),
      lowFreqFactor: k.float("rope.scaling.low_freq_factor") ?? 1,
      highFreqFactor: k.float("rope.scaling.high_freq_factor") ?? 4,
      originalContextLength: k.need("rope.scaling.original_context_length"),
    };
  }
  if (type !== undefined && type !== "none" && type !== "linear") throw k.unsupported(`rope scaling '${type}'`);
  if (type === "none") return undefined;
  const factor = k.float("rope.scaling.factor") ?? k.float("rope.scale_linear");
  return factor !== undefined && factor !== 0 && factor !== 1 ? { kind: "linear", factor } : undefined;
}

/**
 * GGUF sliding window: `attention.sliding_window` positions (the token itself included) on the layers
 * `attention.sliding_window_pattern` marks: one period p (layer l slides unless l % p == p − 1; 0 = all
 * layers), or one flag per layer. Absent pattern: `defaultPeriod` (0 = every layer).
 */
export function ggufSlidingWindow(k: GgufKeys, numLayers: number, defaultPeriod = 0): Pick<ModelConfig, "slidingWindow" | "slidingLayers"> {
  const window = k.opt("attention.sliding_window");
  if (!window) return {};
  const pattern = k.numberOrArray("attention.sliding_window_pattern") ?? defaultPeriod;
  let layers: boolean[];
  if (Array.isArray(pattern)) {
    if (pattern.length !== numLayers) throw k.unsupported(`a sliding_window_pattern of ${pattern.length} flags for ${numLayers} layers`);
    layers = pattern.map((v) => v === true || v === 1);
  } else {
    layers = periodPattern(pattern, numLayers);
  }
  return slidingConfig(window, layers);
}

/** Layer l slides unless l % period == period − 1 (every period-th layer is global); period 0: all slide. */
export function periodPattern(period: number, numLayers: number): boolean[] {
  return Array.from({ length: numLayers }, (_, l) => period === 0 || l % period < period - 1);
}

/** slidingLayers is left out when every layer slides. */
export function slidingConfig(window: number, layers: boolean[]): Pick<ModelConfig, "slidingWindow" | "slidingLayers"> {
  if (!layers.some((s) => s)) return {};
  return { slidingWindow: window, ...(layers.every((s) => s) ? {} : { slidingLayers: layers }) };
}

/** The fields every decoder has, from a Hugging Face config.json. */
export function decoderFromHf(k: HfKeys, arch: Architecture, d: Defaults): ModelConfig {
  const hiddenSize = k.need("hidden_size");
  const numHeads = k.need("num_attention_heads");
  const headDim = k.opt("head_dim") ?? hiddenSize / numHeads;
  // Newer transformers versions move rope settings into `rope_parameters`.
  const ropeParams = isRecord(k.raw("rope_parameters")) ? (k.raw("rope_parameters") as Record<string, unknown>) : undefined;
  const theta = ropeParams?.rope_theta;
  const ropeTheta = k.opt("rope_theta") ?? (typeof theta === "number" ? theta : undefined) ?? d.ropeTheta;
  const scalingJson = isRecord(k.raw("rope_scaling")) ? (k.raw("rope_scaling") as Record<string, unknown>) : ropeParams;
  const ropeScaling = scalingJson ? hfRopeScaling(scalingJson, k) : undefined;
  const partial = k.opt("partial_rotary_factor");
  if (partial !== undefined && partial !== 1) throw k.unsupported(`partial rotary embedding (partial_rotary_factor ${partial})`);
  if (k.opt("attn_logit_softcapping") !== undefined) throw k.unsupported("attention logit soft-capping (attn_logit_softcapping)");
  const softcap = k.opt("final_logit_softcapping");
  return {
    architecture: arch,
    hiddenSize,
    numLayers: k.need("num_hidden_layers"),
    numHeads,
    numKvHeads: k.opt("num_key_value_heads") ?? numHeads,
    headDim,
    intermediateSize: k.need("intermediate_size"),
    vocabSize: k.need("vocab_size"),
    rmsNormEps: k.opt("rms_norm_eps") ?? d.rmsNormEps,
    ropeTheta,
    ...(ropeScaling ? { ropeScaling } : {}),
    contextLength: k.opt("max_position_embeddings") ?? d.contextLength,
    tiedEmbeddings: k.bool("tie_word_embeddings") === true,
    qkvBias: false,
    qkNorm: false,
    ...(softcap ? { finalLogitSoftcap: softcap } : {}),
  };
}

export function hfRopeScaling(s: Record<string, unknown>, k: HfKeys): RopeScaling | undefined {
  const type = s.rope_type ?? s.type;
  if (type === undefined || type === null || type === "default") return undefined;
  const field = (name: string): number => {
    const v = s[name];
    if (typeof v !== "number") throw new TesseraError(`rope_scaling is missing the number '${name}'`, k.file);
    return v;
  };
  if (type === "linear") {
    const factor = field("factor");
    return factor === 1 ? undefined : { kind: "linear", factor };
  }
  if (type !== "llama3") throw k.unsupported(`rope scaling '${String(type)}'`);
  return {
    kind: "llama3",
    factor: field("factor"),
    lowFreqFactor: field("low_freq_factor"),
    highFreqFactor: field("high_freq_factor"),
    originalContextLength: field("original_max_position_embeddings"),
  };
}

// ---- tensor layouts ----------------------------------------------------------------------------

function whole(name: string, shape: number[]): WeightRef {
  return { tensor: name, rowOffset: 0, rows: shape.length === 3 ? shape[1]! : shape[0]! };
}

/** Builds a layer layout: tensors in order, each weight stored alone unless given as part of a fused tensor. */
export class LayoutBuilder {
  readonly tensors: StoredTensor[] = [];
  readonly weights: Partial<Record<LayerRole, WeightRef>> = {};
  constructor(readonly prefix: string) {}

  /** One tensor holding one weight. */
  add(role: LayerRole, part: string, shape: number[], suffix = "weight"): this {
    const name = `${this.prefix}${part}.${suffix}`;
    this.tensors.push({ name, shape });
    this.weights[role] = whole(name, shape);
    return this;
  }

  /** One tensor holding several weights stacked by rows, in order ([rows, cols] each). */
  fused(part: string, parts: [LayerRole, number][], cols: number): this {
    const name = `${this.prefix}${part}.weight`;
    let at = 0;
    for (const [role, rows] of parts) {
      this.weights[role] = { tensor: name, rowOffset: at, rows };
      at += rows;
    }
    this.tensors.push({ name, shape: [at, cols] });
    return this;
  }

  build(): LayerLayout {
    return { tensors: this.tensors, weights: this.weights };
  }
}

/** q/k/v/o projections (separate tensors), optional q/k/v biases and per-head q/k norms. */
export function addAttention(b: LayoutBuilder, c: ModelConfig, opts: { bias?: boolean; qkNorm?: boolean } = {}): void {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  b.add("attnNorm", "attn_norm", [c.hiddenSize]);
  b.add("q", "attn_q", [q, c.hiddenSize]).add("k", "attn_k", [kv, c.hiddenSize]).add("v", "attn_v", [kv, c.hiddenSize]);
  b.add("o", "attn_output", [c.hiddenSize, q]);
  if (opts.qkNorm) b.add("qNorm", "attn_q_norm", [c.headDim]).add("kNorm", "attn_k_norm", [c.headDim]);
  if (opts.bias) b.add("qBias", "attn_q", [q], "bias").add("kBias", "attn_k", [kv], "bias").add("vBias", "attn_v", [kv], "bias");
}

/** ffn_norm and the gated MLP: gate/up [F, hidden], down [hidden, F]. */
export function addMlp(b: LayoutBuilder, c: ModelConfig): void {
  const F = c.intermediateSize;
  b.add("ffnNorm", "ffn_norm", [c.hiddenSize]);
  b.add("gate", "ffn_gate", [F, c.hiddenSize]).add("up", "ffn_up", [F, c.hiddenSize]).add("down", "ffn_down", [c.hiddenSize, F]);
}

/** ffn_norm, the router [experts, hidden] and stacked experts: gate/up [E, F, hidden], down [E, hidden, F]. */
export function addMoe(b: LayoutBuilder, c: ModelConfig): void {
  const m = c.moe!;
  const H = c.hiddenSize;
  const F = m.expertFfnSize;
  const E = m.numExperts;
  b.add("ffnNorm", "ffn_norm", [H]);
  b.add("router", "ffn_gate_inp", [E, H]);
  b.add("gateExps", "ffn_gate_exps", [E, F, H]).add("upExps", "ffn_up_exps", [E, F, H]).add("downExps", "ffn_down_exps", [E, H, F]);
}

/** The layout of a llama-style layer: attention, then a dense or mixture-of-experts MLP. */
export function standardLayer(c: ModelConfig, l: number, attn: { bias?: boolean; qkNorm?: boolean } = {}): LayerLayout {
  const b = new LayoutBuilder(`blk.${l}.`);
  addAttention(b, c, attn);
  if (c.moe) addMoe(b, c);
  else addMlp(b, c);
  return b.build();
}

/** transformers' names inside `model.layers.N.` for llama-style layers. */
export const STANDARD_HF_NAMES: HfLayerNames = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  attn_q_norm: "self_attn.q_norm",
  attn_k_norm: "self_attn.k_norm",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};

/** config.json fields every decoder has, as transformers writes them (synthetic writer). */
export function baseHfConfig(c: ModelConfig, modelType: string, cls: string): Record<string, unknown> {
  return {
    architectures: [cls],
    model_type: modelType,
    hidden_act: c.hiddenAct === "gelu_tanh" ? "gelu_pytorch_tanh" : "silu",
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_attention_heads: c.numHeads,
    num_hidden_layers: c.numLayers,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.contextLength,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling?.kind === "linear" ? { rope_type: "linear", factor: c.ropeScaling.factor } : null,
    tie_word_embeddings: c.tiedEmbeddings,
    vocab_size: c.vocabSize,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
  };
}
