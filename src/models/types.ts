/**
 * The contracts between src/models and everything that reads models (engine, runner, placement).
 * Readers (GGUF, safetensors, MLX) turn files into a `ModelSource`; the engine only sees this.
 */

/** The architectures src/models/arch knows (one file each; see arch/registry.ts). */
export type Architecture = "llama" | "qwen2" | "qwen3" | "qwen3moe" | "gemma3" | "phi3";

/**
 * Rope scaling the engine implements: llama3-style frequency-dependent scaling (HF
 * `rope_scaling.rope_type = "llama3"`), or linear (positions divided by `factor`).
 */
export type RopeScaling =
  | { kind: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContextLength: number }
  | { kind: "linear"; factor: number };

/** One normalized description of a decoder, whatever file it came from. */
export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  /** Longest context the model was trained for; the engine's KV cache may be smaller. */
  contextLength: number;
  /** lm_head shares token_embd.weight. */
  tiedEmbeddings: boolean;
  /** q/k/v projections carry a bias (qwen2). */
  qkvBias: boolean;
  /** per-head RMSNorm on q and k before rope (qwen3). */
  qkNorm: boolean;
  /**
   * Sliding-window attention: a token sees the last `slidingWindow` positions, itself included, on
   * the layers `slidingLayers` marks (every layer when absent). Undefined: full causal attention.
   */
  slidingWindow?: number;
  slidingLayers?: boolean[];
  /** Rope base of the sliding layers when it differs from ropeTheta (Gemma 3); they take no rope scaling. */
  ropeThetaSliding?: number;
  /** Mixture of experts in place of the dense MLP on every layer. */
  moe?: MoeConfig;
  /** The gated MLP's activation: silu (SwiGLU, the default) or tanh-approximated GELU (GeGLU, Gemma). */
  hiddenAct?: "silu" | "gelu_tanh";
  /** Embedding rows are multiplied by this (Gemma: √hidden). */
  embeddingScale?: number;
  /** Attention score scale; default 1/√headDim. */
  attentionScale?: number;
  /** logits ← cap · tanh(logits / cap). */
  finalLogitSoftcap?: number;
}

/**
 * Mixture of experts: a router [experts, hidden] scores every expert, the `expertsPerToken` best are
 * run and their outputs summed with the softmax of their scores (softmax over all experts, renormalized
 * over the chosen: the same weights as a softmax over the chosen scores).
 */
export interface MoeConfig {
  numExperts: number;
  expertsPerToken: number;
  /** FFN width of one expert. */
  expertFfnSize: number;
}

/**
 * Storage types. GGML block types keep ggml's names; MLX affine-quantized weights are "MLX4"/"MLX8"
 * (packed uint32 values + per-group scales and biases, group size in `TensorInfo.groupSize`).
 */
export type TensorType =
  | "F32" | "F16" | "BF16"
  | "Q8_0" | "Q4_0" | "Q4_1" | "Q4_K" | "Q5_K" | "Q6_K"
  | "U32" | "I8" | "U8"
  | "MLX4" | "MLX8";

/**
 * Canonical tensor names are GGUF's: token_embd.weight, output_norm.weight, output.weight,
 * blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm,
 * ffn_norm, ffn_gate, ffn_up, ffn_down}.weight and blk.N.attn_{q,k,v}.bias; each architecture's
 * file (arch/) lists its own (fused attn_qkv, post norms, ffn_gate_inp and ffn_{gate,up,down}_exps).
 * Shapes are row-major, outermost first: a linear weight is [outFeatures, inFeatures],
 * the embedding is [vocab, hidden], a norm is [n], experts [experts, outFeatures, inFeatures].
 */
export interface TensorInfo {
  name: string;
  type: TensorType;
  shape: number[];
  /** Bytes of the stored data (for MLX: the packed values only). */
  byteLength: number;
  /** Quantization group along the inner dimension (32 for Q4_0/Q8_0, 256 for K-quants, MLX group size). */
  groupSize?: number;
}

/**
 * Which part of a tensor to read: rows = outer dim range, cols = inner dim range, both [start, end).
 * For a 3-D expert tensor [experts, rows, cols], `expert` picks one expert's matrix first; rows and
 * cols then range within it, and the result is 2-D.
 */
export interface TensorSlice {
  rows?: [number, number];
  cols?: [number, number];
  expert?: number;
}

/** Stored bytes of a (slice of a) tensor, exactly as in the file, re-packed only to make the slice contiguous. */
export interface RawTensor {
  info: TensorInfo;
  /** The shape of this slice. */
  shape: number[];
  data: Uint8Array;
  /** MLX affine only: per-group scales and biases, [rows, cols/groupSize], in `scaleType`. */
  scales?: Uint8Array;
  biases?: Uint8Array;
  scaleType?: "F32" | "F16" | "BF16";
}

/** A model on disk, opened lazily: reading a tensor reads only its byte range (or a slice of it). */
export interface ModelSource {
  /** The file or folder it came from. */
  path: string;
  format: "gguf" | "safetensors" | "mlx";
  config: ModelConfig;
  /**
   * True when attn_q/attn_k rows are stored permuted for interleaved (GPT-J style) rope, as
   * llama.cpp's converter does for arch llama. Row permutation is within each head, so head
   * slicing is unaffected; the engine either uses interleaved rope or un-permutes the rows.
   */
  ropeInterleaved: boolean;
  tensors(): TensorInfo[];
  info(name: string): TensorInfo | undefined;
  read(name: string, slice?: TensorSlice): Promise<RawTensor>;
  close(): Promise<void>;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
}

export interface Tokenizer {
  vocabSize: number;
  bosId?: number;
  eosId?: number;
  /** Tokens that end a turn or the text (eos, eot, <|im_end|>, <|eot_id|>, ...). */
  stopIds: number[];
  /** Token ids to text for each id (raw piece, for debugging and logprobs). */
  idToPiece(id: number): string;
  /** addSpecial: prepend bos where the model's tokenizer does so. */
  encode(text: string, opts?: { addSpecial?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  /** Renders the model's chat template (or a sane default) for the messages. */
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  /** The chat template in use (Jinja source), for clients that show it (Ollama's /api/show). */
  readonly chatTemplate?: { readonly source: string };
}
