import { archOf } from "../arch/registry.js";
import { canonicalToHf } from "../source/names.js";
import type { ModelConfig } from "../types.js";

/** Canonical GGUF tensor name → Hugging Face (transformers) name under the model's architecture; `expert` for one expert of a stacked tensor. */
export function hfName(gguf: string, cfg: ModelConfig, expert?: number): string {
  return canonicalToHf(gguf, archOf(cfg).hfLayerNames, expert);
}

/** A config.json as transformers writes it for this architecture. */
export function hfConfigJson(cfg: ModelConfig, dtype: string, ids: { bos?: number; eos?: number }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const json: Record<string, unknown> = { ...archOf(cfg).hfConfig(cfg), torch_dtype: dtype };
  if (ids.bos !== undefined) json.bos_token_id = ids.bos;
  if (ids.eos !== undefined) json.eos_token_id = ids.eos;
  return { ...json, ...extra };
}
