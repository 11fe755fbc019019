import type { MoeConfig } from "../types.js";
import { STANDARD_HF_NAMES, baseHfConfig, decoderFromGguf, decoderFromHf, standardLayer, type Defaults } from "./common.js";
import { hfSlidingWindow } from "./hf-window.js";
import { qwenWindowFields } from "./qwen2.js";
import type { ArchDef } from "./types.js";

/**
 * Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (q/k norm, rope in halves) and a
 * mixture of experts on every layer: softmax over all experts, top k, renormalized (norm_topk_prob,
 * true in every released model; llama.cpp always renormalizes). No shared expert.
 */
const DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 32768 };

export const qwen3moe: ArchDef = {
  name: "qwen3moe",
  gguf: "qwen3moe",
  hfModelTypes: ["qwen3_moe"],
  hfClasses: ["Qwen3MoeForCausalLM"],
  ggufRopeInterleaved: false,
  fromGguf(k) {
    const c = decoderFromGguf(k, "qwen3moe", DEFAULTS);
    const used = k.need("expert_used_count");
    // llama.cpp: expert width from expert_feed_forward_length, else feed_forward_length / experts used
    const moe: MoeConfig = { numExperts: k.need("expert_count"), expertsPerToken: used, expertFfnSize: k.opt("expert_feed_forward_length") ?? c.intermediateSize / used };
    if (k.opt("expert_shared_count") || k.opt("expert_shared_feed_forward_length")) throw k.unsupported("shared experts");
    return { ...c, qkNorm: true, moe };
  },
  fromHf(k) {
    if (k.bool("attention_bias") === true) throw k.unsupported("q/k/v biases (attention_bias)");
    if (k.bool("norm_topk_prob") === false) throw k.unsupported("unnormalized top-k expert weights (norm_topk_prob = false)");
    const step = k.opt("decoder_sparse_step");
    if (step !== undefined && step !== 1) throw k.unsupported(`experts on every ${step}th layer only (decoder_sparse_step)`);
    const dense = k.raw("mlp_only_layers");
    if (Array.isArray(dense) && dense.length > 0) throw k.unsupported(`dense MLP layers among expert layers (mlp_only_layers ${JSON.stringify(dense)})`);
    if (k.opt("shared_expert_intermediate_size")) throw k.unsupported("shared experts");
    const c = decoderFromHf(k, "qwen3moe", DEFAULTS);
    const moe: MoeConfig = { numExperts: k.need("num_experts"), expertsPerToken: k.need("num_experts_per_tok"), expertFfnSize: k.need("moe_intermediate_size") };
    return { ...c, qkNorm: true, moe, ...hfSlidingWindow(k, c.numLayers, "qwen") };
  },
  layer: (c, l) => standardLayer(c, l, { qkNorm: true }),
  hfLayerNames: {
    ...STANDARD_HF_NAMES,
    ffn_gate_inp: "mlp.gate",
    ffn_gate_exps: { perExpert: "mlp.experts.{e}.gate_proj", stacked: "mlp.switch_mlp.gate_proj" },
    ffn_up_exps: { perExpert: "mlp.experts.{e}.up_proj", stacked: "mlp.switch_mlp.up_proj" },
    ffn_down_exps: { perExpert: "mlp.experts.{e}.down_proj", stacked: "mlp.switch_mlp.down_proj" },
  },
  ggufExtraMeta: (c) => [
    ["qwen3moe.attention.key_length", { type: "u32", value: c.headDim }],
    ["qwen3moe.attention.value_length", { type: "u32", value: c.headDim }],
    ["qwen3moe.expert_count", { type: "u32", value: c.moe!.numExperts }],
    ["qwen3moe.expert_used_count", { type: "u32", value: c.moe!.expertsPerToken }],
    ["qwen3moe.expert_feed_forward_length", { type: "u32", value: c.moe!.expertFfnSize }],
  ],
  hfConfig: (c) => ({
    ...baseHfConfig(c, "qwen3_moe", "Qwen3MoeForCausalLM"),
    attention_bias: false,
    num_experts: c.moe!.numExperts,
    num_experts_per_tok: c.moe!.expertsPerToken,
    moe_intermediate_size: c.moe!.expertFfnSize,
    norm_topk_prob: true,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    router_aux_loss_coef: 0.001,
    output_router_logits: false,
    ...qwenWindowFields(c),
  }),
};
