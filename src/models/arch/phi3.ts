import { LayoutBuilder, baseHfConfig, decoderFromGguf, decoderFromHf, slidingConfig, type Defaults } from "./common.js";
import type { ArchDef } from "./types.js";

/**
 * Phi-3 and Phi-4 (model_type phi3): llama's layer with q/k/v fused into attn_qkv and gate/up fused
 * into one ffn_up of 2·FFN rows (gate first), rope in halves. A sliding window (Phi-3-mini-4k: 2047)
 * applies to every layer as transformers applies it; llama.cpp currently disables it for phi3, so
 * the two differ past the window on such models. Phi-3.5/Phi-4-mini's longrope and partial rotary
 * embedding are refused.
 */
const DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-5, contextLength: 4096 };

export const phi3: ArchDef = {
  name: "phi3",
  gguf: "phi3",
  hfModelTypes: ["phi3"],
  hfClasses: ["Phi3ForCausalLM"],
  ggufRopeInterleaved: false,
  fromGguf(k) {
    if (k.tensorNames?.has("rope_factors_long.weight")) throw k.unsupported("longrope (rope_factors_long)");
    const c = decoderFromGguf(k, "phi3", DEFAULTS);
    const window = k.opt("attention.sliding_window");
    return { ...c, ...(window ? slidingConfig(window, new Array<boolean>(c.numLayers).fill(true)) : {}) };
  },
  fromHf(k) {
    const c = decoderFromHf(k, "phi3", DEFAULTS);
    const window = k.opt("sliding_window");
    return { ...c, ...(window ? slidingConfig(window, new Array<boolean>(c.numLayers).fill(true)) : {}) };
  },
  layer(c, l) {
    const b = new LayoutBuilder(`blk.${l}.`);
    const D = c.headDim;
    const H = c.hiddenSize;
    b.add("attnNorm", "attn_norm", [H]);
    b.fused("attn_qkv", [["q", c.numHeads * D], ["k", c.numKvHeads * D], ["v", c.numKvHeads * D]], H);
    b.add("o", "attn_output", [H, c.numHeads * D]);
    b.add("ffnNorm", "ffn_norm", [H]);
    b.fused("ffn_up", [["gate", c.intermediateSize], ["up", c.intermediateSize]], H);
    b.add("down", "ffn_down", [H, c.intermediateSize]);
    return b.build();
  },
  hfLayerNames: {
    attn_norm: "input_layernorm",
    attn_qkv: "self_attn.qkv_proj",
    attn_output: "self_attn.o_proj",
    ffn_norm: "post_attention_layernorm",
    ffn_up: "mlp.gate_up_proj",
    ffn_down: "mlp.down_proj",
  },
  ggufExtraMeta: (c) => [
    ["phi3.attention.sliding_window", { type: "u32", value: c.slidingWindow ?? 0 }],
    ["phi3.rope.scaling.original_context_length", { type: "u32", value: c.contextLength }],
  ],
  hfConfig: (c) => ({
    ...baseHfConfig(c, "phi3", "Phi3ForCausalLM"),
    sliding_window: c.slidingWindow ?? null,
    original_max_position_embeddings: c.contextLength,
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attention_bias: false,
  }),
};
