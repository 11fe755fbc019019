import type { ModelConfig } from "../types.js";
import { STANDARD_HF_NAMES, baseHfConfig, decoderFromGguf, decoderFromHf, standardLayer, type Defaults } from "./common.js";
import { hfSlidingWindow } from "./hf-window.js";
import type { ArchDef } from "./types.js";

/** Qwen2 / Qwen2.5: llama with q/k/v biases, rope in halves (no row permutation in GGUF). */
const DEFAULTS: Defaults = { ropeTheta: 10000, rmsNormEps: 1e-6, contextLength: 32768 };

/** Qwen's config.json sliding-window fields, off (synthetic writer). */
export function qwenWindowFields(c: ModelConfig): Record<string, unknown> {
  const from = c.slidingLayers ? c.slidingLayers.indexOf(true) : 0;
  return { use_sliding_window: c.slidingWindow !== undefined, sliding_window: c.slidingWindow ?? null, max_window_layers: c.slidingWindow ? from : c.numLayers };
}

export const qwen2: ArchDef = {
  name: "qwen2",
  gguf: "qwen2",
  hfModelTypes: ["qwen2"],
  hfClasses: ["Qwen2ForCausalLM"],
  ggufRopeInterleaved: false,
  fromGguf: (k) => ({ ...decoderFromGguf(k, "qwen2", DEFAULTS), qkvBias: true }),
  fromHf(k) {
    const c = decoderFromHf(k, "qwen2", DEFAULTS);
    return { ...c, qkvBias: true, ...hfSlidingWindow(k, c.numLayers, "qwen") };
  },
  layer: (c, l) => standardLayer(c, l, { bias: true }),
  hfLayerNames: STANDARD_HF_NAMES,
  hfConfig: (c) => ({ ...baseHfConfig(c, "qwen2", "Qwen2ForCausalLM"), ...qwenWindowFields(c) }),
};
