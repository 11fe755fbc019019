import { TesseraError } from "../../errors.js";
import type { ModelConfig, MoeConfig } from "../types.js";
import { STANDARD_HF_NAMES, baseHfConfig, decoderFromGguf, decoderFromHf, ggufSlidingWindow, standardLayer, type Defaults } from "./common.js";
import { hfSlidingWindow } from "./hf-window.js";
import type { GgufKeys, HfKeys } from "./keys.js";
import type { ArchDef } from "./types.js";

/**
 * Llama 2/3, Mistral (sliding window on every layer) and Mixtral (mixture of experts): GGUF arch
 * "llama" for all three, as llama.cpp's converter writes them, with q/k rows permuted for its
 * interleaved rope. llama.cpp itself ignores a sliding window on this architecture (its converter
 * writes none for Mistral); a file that carries `llama.attention.sliding_window` gets it here.
 * Mixtral's experts use the model's feed_forward_length; routing: softmax over the top 2 of 8.
 */
const DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 2048 };

function ggufMoe(k: GgufKeys, ffn: number): MoeConfig | undefined {
  const experts = k.opt("expert_count");
  if (!experts) return undefined;
  return { numExperts: experts, expertsPerToken: k.need("expert_used_count"), expertFfnSize: k.opt("expert_feed_forward_length") ?? ffn };
}

function hfMoe(k: HfKeys, ffn: number): MoeConfig | undefined {
  const experts = k.opt("num_local_experts");
  if (!experts) return undefined;
  return { numExperts: experts, expertsPerToken: k.need("num_experts_per_tok"), expertFfnSize: ffn };
}

export const llama: ArchDef = {
  name: "llama",
  gguf: "llama",
  hfModelTypes: ["llama", "mistral", "mixtral"],
  hfClasses: ["LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"],
  ggufRopeInterleaved: true,
  fromGguf(k) {
    const c = decoderFromGguf(k, "llama", DEFAULTS);
    const moe = ggufMoe(k, c.intermediateSize);
    return { ...c, ...ggufSlidingWindow(k, c.numLayers), ...(moe ? { moe } : {}) };
  },
  fromHf(k) {
    if (k.bool("attention_bias") === true) throw new TesseraError("llama with attention_bias = true is not supported", k.file);
    if (k.bool("mlp_bias") === true) throw k.unsupported("MLP biases (mlp_bias)");
    const c = decoderFromHf(k, "llama", DEFAULTS);
    const moe = hfMoe(k, c.intermediateSize);
    return { ...c, ...hfSlidingWindow(k, c.numLayers, "mistral"), ...(moe ? { moe } : {}) };
  },
  layer: (c, l) => standardLayer(c, l),
  hfLayerNames: {
    ...STANDARD_HF_NAMES,
    ffn_gate_inp: "block_sparse_moe.gate",
    ffn_gate_exps: { perExpert: "block_sparse_moe.experts.{e}.w1", stacked: "block_sparse_moe.switch_mlp.gate_proj" },
    ffn_up_exps: { perExpert: "block_sparse_moe.experts.{e}.w3", stacked: "block_sparse_moe.switch_mlp.up_proj" },
    ffn_down_exps: { perExpert: "block_sparse_moe.experts.{e}.w2", stacked: "block_sparse_moe.switch_mlp.down_proj" },
  },
  ggufExtraMeta(c: ModelConfig) {
    const out: ReturnType<NonNullable<ArchDef["ggufExtraMeta"]>> = [];
    if (c.slidingWindow) {
      if (c.slidingLayers) throw new Error("llama GGUF: sliding window on some layers only has no metadata key");
      out.push(["llama.attention.sliding_window", { type: "u32", value: c.slidingWindow }]);
    }
    if (c.moe) {
      if (c.moe.expertFfnSize !== c.intermediateSize) throw new Error("llama GGUF: experts use feed_forward_length");
      out.push(["llama.expert_count", { type: "u32", value: c.moe.numExperts }]);
      out.push(["llama.expert_used_count", { type: "u32", value: c.moe.expertsPerToken }]);
    }
    return out;
  },
  hfConfig(c) {
    if (c.moe) {
      return {
        ...baseHfConfig(c, "mixtral", "MixtralForCausalLM"),
        num_local_experts: c.moe.numExperts,
        num_experts_per_tok: c.moe.expertsPerToken,
        router_aux_loss_coef: 0.02,
        output_router_logits: false,
        sliding_window: c.slidingWindow ?? null,
      };
    }
    if (c.slidingWindow) return { ...baseHfConfig(c, "mistral", "MistralForCausalLM"), sliding_window: c.slidingWindow };
    return { ...baseHfConfig(c, "llama", "LlamaForCausalLM"), attention_bias: false, mlp_bias: false };
  },
};
