import { STANDARD_HF_NAMES } from "../arch/common.js";
import type { HfLayerNames } from "../arch/types.js";

/**
 * Hugging Face tensor names ↔ the canonical (GGUF) names of types.ts. Global tensors:
 *   model.embed_tokens → token_embd · model.norm → output_norm · lm_head → output
 * and per layer `model.layers.N.<module>` → `blk.N.<part>` by the architecture's table
 * (arch/<name>.ts `hfLayerNames`), e.g. for llama:
 *   self_attn.{q,k,v,o}_proj → attn_{q,k,v,output} · input_layernorm → attn_norm
 *   post_attention_layernorm → ffn_norm · mlp.{gate,up,down}_proj → ffn_{gate,up,down}
 * Experts: a per-expert module (`block_sparse_moe.experts.E.w1`) names expert E of a stacked
 * canonical tensor (`ffn_gate_exps`); MLX's stacked module (`switch_mlp.gate_proj`) names all of it.
 * The suffix (.weight, .bias, and MLX's .scales/.biases) is kept.
 */
const GLOBAL: Record<string, string> = {
  "model.embed_tokens": "token_embd",
  "model.norm": "output_norm",
  lm_head: "output",
};

const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)$/;

/** Splits "a.b.weight" into module "a.b" and suffix "weight". */
export function splitSuffix(name: string): [string, string] {
  const i = name.lastIndexOf(".");
  return i < 0 ? [name, ""] : [name.slice(0, i), name.slice(i + 1)];
}

export interface HfMapped {
  canonical: string;
  /** Set when the HF tensor is one expert of a stacked canonical tensor. */
  expert?: number;
}

interface Matcher {
  part: string;
  exact?: string;
  expert?: RegExp;
}

const matchers = new WeakMap<HfLayerNames, Matcher[]>();

function matchersOf(names: HfLayerNames): Matcher[] {
  let m = matchers.get(names);
  if (!m) {
    m = [];
    for (const [part, v] of Object.entries(names)) {
      if (typeof v === "string") m.push({ part, exact: v });
      else {
        const escaped = v.perExpert.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace("\\{e\\}", "{e}");
        m.push({ part, expert: new RegExp(`^${escaped.replace("{e}", "(\\d+)")}$`) });
        if (v.stacked) m.push({ part, exact: v.stacked });
      }
    }
    matchers.set(names, m);
  }
  return m;
}

/**
 * Multimodal checkpoints keep the language model under a prefix (transformers before 4.52:
 * `language_model.model.…`, after: `model.language_model.…`); the text tensors map as usual.
 */
function textModelName(name: string): string {
  if (name.startsWith("language_model.")) return name.slice("language_model.".length);
  if (name.startsWith("model.language_model.")) return "model." + name.slice("model.language_model.".length);
  return name;
}

/** The canonical name (and expert) of an HF tensor, or undefined when it is not one we map. */
export function hfTensorName(name: string, names: HfLayerNames = STANDARD_HF_NAMES): HfMapped | undefined {
  const [module, suffix] = splitSuffix(textModelName(name));
  const g = GLOBAL[module];
  if (g) return { canonical: `${g}.${suffix}` };
  const m = LAYER_NAME.exec(module);
  if (!m) return undefined;
  for (const x of matchersOf(names)) {
    if (x.exact === m[2]) return { canonical: `blk.${m[1]}.${x.part}.${suffix}` };
    const e = x.expert?.exec(m[2]!);
    if (e) return { canonical: `blk.${m[1]}.${x.part}.${suffix}`, expert: Number(e[1]) };
  }
  return undefined;
}

/** The canonical name of a (non-expert) HF tensor, or undefined. */
export function hfToCanonical(name: string, names: HfLayerNames = STANDARD_HF_NAMES): string | undefined {
  const r = hfTensorName(name, names);
  return r && r.expert === undefined ? r.canonical : undefined;
}

/**
 * The HF name of a canonical tensor (synthetic writer); for expert tensors, expert `expert`'s
 * per-expert name, or the stacked (MLX) name when `expert` is undefined.
 */
export function canonicalToHf(canonical: string, names: HfLayerNames = STANDARD_HF_NAMES, expert?: number): string {
  const [module, suffix] = splitSuffix(canonical);
  for (const [hf, c] of Object.entries(GLOBAL)) if (c === module) return `${hf}.${suffix}`;
  const m = /^blk\.(\d+)\.(\w+)$/.exec(module);
  const v = m ? names[m[2]!] : undefined;
  if (!m || v === undefined) throw new Error(`no Hugging Face name for ${canonical}`);
  let hf: string;
  if (typeof v === "string") hf = v;
  else if (expert !== undefined) hf = v.perExpert.replace("{e}", String(expert));
  else if (v.stacked) hf = v.stacked;
  else throw new Error(`${canonical} has no stacked Hugging Face name`);
  return `model.layers.${m[1]}.${hf}.${suffix}`;
}
