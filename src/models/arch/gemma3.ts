import type { GgufValue } from "../gguf/values.js";
import type { ModelConfig } from "../types.js";
import { LayoutBuilder, STANDARD_HF_NAMES, addAttention, baseHfConfig, decoderFromGguf, decoderFromHf, ggufSlidingWindow, hfRopeScaling, periodPattern, type Defaults } from "./common.js";
import { hfSlidingWindow } from "./hf-window.js";
import { HfKeys, isRecord } from "./keys.js";
import type { ArchDef } from "./types.js";

/**
 * Gemma 3: every norm is (1 + w) (GGUF stores 1 + w, HF/MLX store w: hfNormOffset), embeddings scaled
 * by √hidden, q/k norm, GeGLU (tanh GELU), norms on the attention and MLP outputs before the residual
 * add, and interleaved attention: five sliding-window layers (rope base 10 000, no scaling) per global
 * one (rope base 1e6, linear scaling on the larger models). Attention scale query_pre_attn_scalar^−½;
 * llama.cpp derives it from the head size, or hidden / heads for the 27B (62 layers), which is what
 * the 27B's query_pre_attn_scalar says too.
 */
const GGUF_DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 131072 };
const HF_DEFAULTS: Defaults = { ropeTheta: 1e6, rmsNormEps: 1e-6, contextLength: 131072 };
/** transformers' Gemma3TextConfig defaults: multimodal checkpoints' text_config leaves these out. */
const TEXT_CONFIG_DEFAULTS: Record<string, unknown> = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131072, rms_norm_eps: 1e-6, rope_theta: 1e6,
  rope_local_base_freq: 10000, sliding_window: 4096, query_pre_attn_scalar: 256, tie_word_embeddings: true,
  hidden_activation: "gelu_pytorch_tanh",
};

function gemmaCommon(c: ModelConfig): ModelConfig {
  return { ...c, qkNorm: true, hiddenAct: "gelu_tanh", embeddingScale: Math.sqrt(c.hiddenSize) };
}

function textConfig(k: HfKeys): HfKeys {
  const text = k.modelType === "gemma3" ? k.nested("text_config") : k;
  if (!text) throw k.unsupported("a gemma3 config.json without text_config");
  const json: Record<string, unknown> = { ...TEXT_CONFIG_DEFAULTS };
  for (const [key, v] of Object.entries(text.json)) if (v !== null || !(key in TEXT_CONFIG_DEFAULTS)) json[key] = v;
  return new HfKeys(json, k.modelType, k.file);
}

export const gemma3: ArchDef = {
  name: "gemma3",
  gguf: "gemma3",
  hfModelTypes: ["gemma3_text", "gemma3"],
  hfClasses: ["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"],
  ggufRopeInterleaved: false,
  hfNormOffset: 1,
  fromGguf(k) {
    const c = decoderFromGguf(k, "gemma3", GGUF_DEFAULTS);
    const window = ggufSlidingWindow(k, c.numLayers, 6);
    const scaleDim = c.numLayers === 62 ? c.hiddenSize / c.numHeads : c.headDim;
    return {
      ...gemmaCommon(c),
      ...window,
      ...(window.slidingWindow ? { ropeThetaSliding: k.float("rope.freq_base_swa") ?? 10000 } : {}),
      attentionScale: 1 / Math.sqrt(scaleDim),
    };
  },
  fromHf(k0) {
    const k = textConfig(k0);
    const act = k.raw("hidden_activation") ?? k.raw("hidden_act");
    if (act !== "gelu_pytorch_tanh") throw k.unsupported(`activation '${String(act)}'`);
    // Newer transformers: rope_parameters per layer type.
    const rp = isRecord(k.raw("rope_parameters")) ? (k.raw("rope_parameters") as Record<string, unknown>) : undefined;
    const full = rp && isRecord(rp.full_attention) ? rp.full_attention : undefined;
    const local = rp && isRecord(rp.sliding_attention) ? rp.sliding_attention : undefined;
    const c = decoderFromHf(full ? new HfKeys({ ...k.json, rope_parameters: full }, k.modelType, k.file) : k, "gemma3", HF_DEFAULTS);
    if (full) {
      const scaling = hfRopeScaling(full, k);
      delete c.ropeScaling;
      if (scaling) c.ropeScaling = scaling;
    }
    const window = hfSlidingWindow(k, c.numLayers, "gemma");
    const localTheta = typeof local?.rope_theta === "number" ? local.rope_theta : (k.opt("rope_local_base_freq") ?? 10000);
    return {
      ...gemmaCommon(c),
      ...window,
      ...(window.slidingWindow ? { ropeThetaSliding: localTheta } : {}),
      attentionScale: 1 / Math.sqrt(k.need("query_pre_attn_scalar")),
    };
  },
  layer(c, l) {
    const b = new LayoutBuilder(`blk.${l}.`);
    addAttention(b, c, { qkNorm: true });
    b.add("attnPostNorm", "post_attention_norm", [c.hiddenSize]);
    const F = c.intermediateSize;
    b.add("ffnNorm", "ffn_norm", [c.hiddenSize]);
    b.add("gate", "ffn_gate", [F, c.hiddenSize]).add("up", "ffn_up", [F, c.hiddenSize]).add("down", "ffn_down", [c.hiddenSize, F]);
    b.add("ffnPostNorm", "post_ffw_norm", [c.hiddenSize]);
    return b.build();
  },
  hfLayerNames: {
    ...STANDARD_HF_NAMES,
    post_attention_norm: "post_attention_layernorm",
    ffn_norm: "pre_feedforward_layernorm",
    post_ffw_norm: "post_feedforward_layernorm",
  },
  ggufExtraMeta(c) {
    const out: [string, GgufValue][] = [
      ["gemma3.attention.key_length", { type: "u32", value: c.headDim }],
      ["gemma3.attention.value_length", { type: "u32", value: c.headDim }],
    ];
    if (c.slidingWindow) {
      const layers = c.slidingLayers ?? new Array<boolean>(c.numLayers).fill(true);
      out.push(["gemma3.attention.sliding_window", { type: "u32", value: c.slidingWindow }]);
      const period = [0, ...Array.from({ length: c.numLayers }, (_, i) => i + 1)].find((p) => periodPattern(p, c.numLayers).every((s, i) => s === layers[i]));
      out.push(["gemma3.attention.sliding_window_pattern", period !== undefined ? { type: "u32", value: period } : { type: "array", itemType: "bool", value: layers }]);
      out.push(["gemma3.rope.freq_base_swa", { type: "f32", value: c.ropeThetaSliding ?? c.ropeTheta }]);
    }
    return out;
  },
  hfConfig(c) {
    const layers = c.slidingLayers ?? new Array<boolean>(c.numLayers).fill(c.slidingWindow !== undefined);
    return {
      ...baseHfConfig(c, "gemma3_text", "Gemma3ForCausalLM"),
      hidden_activation: "gelu_pytorch_tanh",
      query_pre_attn_scalar: Math.round(1 / (c.attentionScale ?? 1 / Math.sqrt(c.headDim)) ** 2),
      sliding_window: c.slidingWindow ?? null,
      layer_types: layers.map((s) => (s ? "sliding_attention" : "full_attention")),
      rope_local_base_freq: c.ropeThetaSliding ?? c.ropeTheta,
      final_logit_softcapping: c.finalLogitSoftcap ?? null,
      attn_logit_softcapping: null,
      attention_bias: false,
    };
  },
};
