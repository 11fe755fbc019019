import type { ModelConfig } from "../types.js";
import { periodPattern, slidingConfig } from "./common.js";
import type { HfKeys } from "./keys.js";

/**
 * Sliding-window attention as transformers configures it: `layer_types` ("sliding_attention" /
 * "full_attention" per layer) when given; else `sliding_window` on every layer (Mistral), for the
 * Qwen family only when `use_sliding_window` is true and on layers ≥ `max_window_layers`, and for
 * Gemma on all layers but every `sliding_window_pattern`-th (default 6).
 */
export function hfSlidingWindow(k: HfKeys, numLayers: number, style: "mistral" | "qwen" | "gemma"): Pick<ModelConfig, "slidingWindow" | "slidingLayers"> {
  const window = k.opt("sliding_window");
  const types = k.raw("layer_types");
  if (Array.isArray(types)) {
    if (types.length !== numLayers) throw k.unsupported(`layer_types with ${types.length} entries for ${numLayers} layers`);
    for (const t of types) {
      if (t !== "sliding_attention" && t !== "full_attention") throw k.unsupported(`layer type '${String(t)}'`);
    }
    const sliding = types.map((t) => t === "sliding_attention");
    if (!sliding.some((s) => s)) return {};
    if (!window) throw k.unsupported("sliding_attention layers without a sliding_window size");
    return slidingConfig(window, sliding);
  }
  if (!window) return {};
  if (style === "mistral") return slidingConfig(window, new Array<boolean>(numLayers).fill(true));
  if (style === "gemma") return slidingConfig(window, periodPattern(k.opt("sliding_window_pattern") ?? 6, numLayers));
  if (k.bool("use_sliding_window") !== true) return {};
  const from = k.opt("max_window_layers") ?? numLayers;
  return slidingConfig(window, Array.from({ length: numLayers }, (_, l) => l >= from));
}
