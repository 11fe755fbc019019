import type { ModelConfig } from "../../models/types.js";
import { GraphBuilder } from "../onnx/builder.js";
import type { LayerWeights } from "../weights/load.js";
import type { LinearWeight } from "../weights/linear.js";
import { declareAttentionInputs, emitAttention, type AttentionInputs, type AttentionOptions, type AttentionShape } from "./attention.js";
import { emitGatedMlp, emitLinear, rmsNorm, skipRmsNorm } from "./blocks.js";
import { emitMoe } from "./moe.js";

/**
 * Decoder graphs. One graph runs a pipeline shard: layers [a, b) of the model, taking hidden states
 * (the embedding lookup happens in JS, see weights/linear.ts embedTokens) and returning either hidden
 * states or, on the last stage, logits. Tensor-parallel ranks use two graphs per layer: attention
 * partial (A) and MLP partial (B); the caller all-reduces and adds the residual.
 *
 * Graph interface (shard graph):
 *   in  hidden_in     float32 [B, S, hidden]   B sequences of S new tokens each (B = 1 but for batched decode)
 *   in  positions, past_bias, causal_bias, past_key_L, past_value_L   see attention.ts
 *   in  logits_index  int64   [n]    (last stage) positions in [0, S) whose logits are returned
 *   out new_key_L / new_value_L      the new tokens' keys and values, for the caller's cache
 *   out logits [B, n, vocab] (last stage) or hidden_out [B, S, hidden]
 * q|k|v and gate|up become one matmul each when stored alike (fewer kernel calls per token);
 * onnxruntime fuses x·sigmoid(x) into one kernel itself. MatMulNBits is ~95% of decode time.
 */
/** The layer's dense gated MLP. */
function emitDenseMlp(g: GraphBuilder, cfg: ModelConfig, l: number, w: LayerWeights, xn: string): string {
  return emitGatedMlp(g, xn, { gate: w.gate!, up: w.up!, down: w.down! }, cfg.hiddenAct, `blk.${l}.ffn`);
}

/** The layer's MLP (dense or mixture of experts) on normed input `xn`: a partial under tensor parallelism. */
function emitMlp(g: GraphBuilder, cfg: ModelConfig, l: number, w: LayerWeights, xn: string): string {
  return w.moe ? emitMoe(g, cfg, l, w.moe, xn) : emitDenseMlp(g, cfg, l, w, xn);
}

/**
 * Final norm and lm_head on the positions named by logits_index (and Gemma 2-style soft-capping):
 *   in logits_index int64 [N] · out logits float32 [1, N, rows of lmHead]
 */
export function emitHead(g: GraphBuilder, cfg: ModelConfig, stream: string, norm: Float32Array, lmHead: LinearWeight): void {
  const idx = g.input("logits_index", "int64", ["N"]);
  const sel = g.op("Gather", [stream, idx], { axis: 1 });
  const xn = rmsNorm(g, sel, norm, cfg.rmsNormEps, "output_norm");
  let logits = emitLinear(g, xn, lmHead, "output");
  const cap = cfg.finalLogitSoftcap;
  if (cap) {
    const c = (v: number) => g.weight(g.fresh("softcap"), "float32", [1], Float32Array.of(v));
    logits = g.op("Mul", [g.op("Tanh", [g.op("Mul", [logits, c(1 / cap)])]), c(cap)]);
  }
  g.node("Identity", [logits], ["logits"]);
  g.output("logits", "float32", ["B", "N", lmHead.n]);
}

/**
 * Builds a pipeline shard graph layer by layer, so each layer's source tensors can be released
 * as soon as it is added.
 */
export class ShardGraphBuilder {
  readonly g: GraphBuilder;
  private readonly io: AttentionInputs;
  private resid: string;
  private pending: string | undefined;

  constructor(private readonly cfg: ModelConfig, private readonly opts: AttentionOptions) {
    this.g = new GraphBuilder("tessera_shard");
    this.resid = this.g.input("hidden_in", "float32", ["B", "S", cfg.hiddenSize]);
    this.io = declareAttentionInputs(this.g, cfg, opts);
  }

  /** Normalizes the residual stream, first folding in the pending sub-block output. */
  private norm(weight: Float32Array, name: string): string {
    if (this.pending === undefined) return rmsNorm(this.g, this.resid, weight, this.cfg.rmsNormEps, name);
    const [out, sum] = skipRmsNorm(this.g, this.pending, this.resid, weight, this.cfg.rmsNormEps, name);
    this.resid = sum;
    return out;
  }

  /**
   * x += post(attention(norm(x))); x += post(mlp(norm(x))), where post is Gemma's output norm when
   * the layer has one and nothing otherwise.
   */
  addLayer(l: number, w: LayerWeights): void {
    const shape = { heads: this.cfg.numHeads, kvHeads: this.cfg.numKvHeads };
    const eps = this.cfg.rmsNormEps;
    const post = (x: string, weight: Float32Array | undefined, name: string) => (weight ? rmsNorm(this.g, x, weight, eps, name) : x);
    const xn = this.norm(w.attnNorm, `blk.${l}.attn_norm`);
    this.pending = post(emitAttention(this.g, this.cfg, this.opts, this.io, l, w, xn, shape), w.attnPostNorm, `blk.${l}.post_attention_norm`);
    const xn2 = this.norm(w.ffnNorm, `blk.${l}.ffn_norm`);
    this.pending = post(emitMlp(this.g, this.cfg, l, w, xn2), w.ffnPostNorm, `blk.${l}.post_ffw_norm`);
  }

  private stream(): string {
    return this.pending === undefined ? this.resid : this.g.op("Add", [this.pending, this.resid]);
  }

  /** Middle stage: hidden states out. */
  finishHidden(): GraphBuilder {
    this.g.node("Identity", [this.stream()], ["hidden_out"]);
    this.g.output("hidden_out", "float32", ["B", "S", this.cfg.hiddenSize]);
    return this.g;
  }

  /** Last stage: final norm and lm_head on the positions named by logits_index. */
  finishLogits(norm: Float32Array, lmHead: LinearWeight): GraphBuilder {
    emitHead(this.g, this.cfg, this.stream(), norm, lmHead);
    return this.g;
  }
}

/**
 * Tensor-parallel graph A for layer `l`: hidden_in (the full residual stream) → attn_norm →
 * attention over this rank's heads → o_proj columns → `partial` [1, S, hidden] (before any post norm).
 */
export function buildTpAttentionGraph(cfg: ModelConfig, opts: AttentionOptions, l: number, w: LayerWeights, shape: AttentionShape): GraphBuilder {
  const g = new GraphBuilder(`tessera_tp_attn_${l}`);
  const x = g.input("hidden_in", "float32", ["B", "S", cfg.hiddenSize]);
  const io = declareAttentionInputs(g, cfg, opts);
  const xn = rmsNorm(g, x, w.attnNorm, cfg.rmsNormEps, `blk.${l}.attn_norm`);
  g.node("Identity", [emitAttention(g, cfg, opts, io, l, w, xn, shape)], ["partial"]);
  g.output("partial", "float32", ["B", "S", cfg.hiddenSize]);
  return g;
}

/**
 * Tensor-parallel graph B for layer `l`: hidden_in → ffn_norm → this rank's MLP slice (or its slice of
 * every expert) → `partial`. Post norms (Gemma) act on the all-reduced sum: the caller applies them.
 */
export function buildTpMlpGraph(cfg: ModelConfig, l: number, w: LayerWeights): GraphBuilder {
  const g = new GraphBuilder(`tessera_tp_mlp_${l}`);
  const x = g.input("hidden_in", "float32", ["B", "S", cfg.hiddenSize]);
  const xn = rmsNorm(g, x, w.ffnNorm, cfg.rmsNormEps, `blk.${l}.ffn_norm`);
  g.node("Identity", [emitMlp(g, cfg, l, w, xn)], ["partial"]);
  g.output("partial", "float32", ["B", "S", cfg.hiddenSize]);
  return g;
}
