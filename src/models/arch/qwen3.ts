import { STANDARD_HF_NAMES, baseHfConfig, decoderFromGguf, decoderFromHf, standardLayer, type Defaults } from "./common.js";
import { hfSlidingWindow } from "./hf-window.js";
import { qwenWindowFields } from "./qwen2.js";
import type { ArchDef } from "./types.js";

/** Qwen3 dense: llama with per-head RMSNorm on q and k before rope, rope in halves, explicit head_dim. */
const DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 32768 };

export const qwen3: ArchDef = {
  name: "qwen3",
  gguf: "qwen3",
  hfModelTypes: ["qwen3"],
  hfClasses: ["Qwen3ForCausalLM"],
  ggufRopeInterleaved: false,
  fromGguf: (k) => ({ ...decoderFromGguf(k, "qwen3", DEFAULTS), qkNorm: true }),
  fromHf(k) {
    if (k.bool("attention_bias") === true) throw k.unsupported("q/k/v biases (attention_bias)");
    const c = decoderFromHf(k, "qwen3", DEFAULTS);
    return { ...c, qkNorm: true, ...hfSlidingWindow(k, c.numLayers, "qwen") };
  },
  layer: (c, l) => standardLayer(c, l, { qkNorm: true }),
  hfLayerNames: STANDARD_HF_NAMES,
  ggufExtraMeta: (c) => [
    ["qwen3.attention.key_length", { type: "u32", value: c.headDim }],
    ["qwen3.attention.value_length", { type: "u32", value: c.headDim }],
  ],
  hfConfig: (c) => ({ ...baseHfConfig(c, "qwen3", "Qwen3ForCausalLM"), attention_bias: false, ...qwenWindowFields(c) }),
};
