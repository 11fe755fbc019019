/**
 * Hugging Face tensor names → the canonical (GGUF) names of types.ts:
 *   model.embed_tokens                      → token_embd
 *   model.norm                              → output_norm
 *   lm_head                                 → output
 *   model.layers.N.self_attn.{q,k,v,o}_proj → blk.N.attn_{q,k,v,output}
 *   model.layers.N.self_attn.{q,k}_norm     → blk.N.attn_{q,k}_norm
 *   model.layers.N.input_layernorm          → blk.N.attn_norm
 *   model.layers.N.post_attention_layernorm → blk.N.ffn_norm
 *   model.layers.N.mlp.{gate,up,down}_proj  → blk.N.ffn_{gate,up,down}
 * The suffix (.weight, .bias, and MLX's .scales/.biases) is kept.
 */
const GLOBAL: Record<string, string> = {
  "model.embed_tokens": "token_embd",
  "model.norm": "output_norm",
  lm_head: "output",
};

const LAYER: Record<string, string> = {
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "self_attn.q_norm": "attn_q_norm",
  "self_attn.k_norm": "attn_k_norm",
  input_layernorm: "attn_norm",
  post_attention_layernorm: "ffn_norm",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
};

const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)$/;

/** Splits "a.b.weight" into module "a.b" and suffix "weight". */
export function splitSuffix(name: string): [string, string] {
  const i = name.lastIndexOf(".");
  return i < 0 ? [name, ""] : [name.slice(0, i), name.slice(i + 1)];
}

/** The canonical name of an HF tensor, or undefined when it is not one we map. */
export function hfToCanonical(name: string): string | undefined {
  const [module, suffix] = splitSuffix(name);
  const g = GLOBAL[module];
  if (g) return `${g}.${suffix}`;
  const m = LAYER_NAME.exec(module);
  if (!m) return undefined;
  const part = LAYER[m[2]!];
  return part ? `blk.${m[1]}.${part}.${suffix}` : undefined;
}
