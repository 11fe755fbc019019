import type { ModelConfig } from "../types.js";

/** Canonical GGUF tensor name → Hugging Face (transformers) name, for the architectures we write. */
export function hfName(gguf: string): string {
  const fixed: Record<string, string> = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
  };
  if (fixed[gguf]) return fixed[gguf];
  const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(gguf);
  if (!m) throw new Error(`no Hugging Face name for ${gguf}`);
  const parts: Record<string, string> = {
    attn_norm: "input_layernorm",
    attn_q: "self_attn.q_proj",
    attn_k: "self_attn.k_proj",
    attn_v: "self_attn.v_proj",
    attn_output: "self_attn.o_proj",
    attn_q_norm: "self_attn.q_norm",
    attn_k_norm: "self_attn.k_norm",
    ffn_norm: "post_attention_layernorm",
    ffn_gate: "mlp.gate_proj",
    ffn_up: "mlp.up_proj",
    ffn_down: "mlp.down_proj",
  };
  const part = parts[m[2]!];
  if (!part) throw new Error(`no Hugging Face name for ${gguf}`);
  return `model.layers.${m[1]}.${part}.${m[3]}`;
}

const HF_CLASS = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM" } as const;

/** A config.json as transformers writes it for this architecture. */
export function hfConfigJson(cfg: ModelConfig, dtype: string, ids: { bos?: number; eos?: number }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [HF_CLASS[cfg.architecture]],
    model_type: cfg.architecture,
    hidden_act: "silu",
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_attention_heads: cfg.numHeads,
    num_hidden_layers: cfg.numLayers,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    max_position_embeddings: cfg.contextLength,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: cfg.tiedEmbeddings,
    vocab_size: cfg.vocabSize,
    torch_dtype: dtype,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
  };
  if (cfg.architecture !== "qwen2") json.attention_bias = false;
  if (cfg.architecture !== "llama") {
    json.use_sliding_window = false;
    json.sliding_window = null;
    json.max_window_layers = cfg.numLayers;
  }
  if (ids.bos !== undefined) json.bos_token_id = ids.bos;
  if (ids.eos !== undefined) json.eos_token_id = ids.eos;
  return { ...json, ...extra };
}
