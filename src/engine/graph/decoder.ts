import type { ModelConfig } from "../../models/types.js";
import { GraphBuilder } from "../onnx/builder.js";
import type { LayerWeights } from "../weights/load.js";
import { concatRows, type LinearWeight } from "../weights/linear.js";
import { declareAttentionInputs, emitAttention, type AttentionInputs, type AttentionOptions, type AttentionShape } from "./attention.js";
import { emitLinear, rmsNorm, skipRmsNorm } from "./blocks.js";

/**
 * Decoder graphs. One graph runs a pipeline shard: layers [a, b) of the model, taking hidden states
 * (the embedding lookup happens in JS, see weights/linear.ts embedTokens) and returning either hidden
 * states or, on the last stage, logits. Tensor-parallel ranks use two graphs per layer: attention
 * partial (A) and MLP partial (B); the caller all-reduces and adds the residual.
 *
 * Graph interface (shard graph):
 *   in  hidden_in     float32 [1, S, hidden]
 *   in  positions, past_bias, causal_bias, past_key_L, past_value_L   see attention.ts
 *   in  logits_index  int64   [n]    (last stage) positions in [0, S) whose logits are returned
 *   out new_key_L / new_value_L      the new tokens' keys and values, for the caller's cache
 *   out logits [1, n, vocab] (last stage) or hidden_out [1, S, hidden]
 * q|k|v and gate|up become one matmul each when stored alike (fewer kernel calls per token);
 * onnxruntime fuses x·sigmoid(x) into one kernel itself. MatMulNBits is ~95% of decode time.
 */
/** SwiGLU MLP: down(silu(gate·x) ⊙ up·x). */
function emitMlp(g: GraphBuilder, l: number, w: LayerWeights, xn: string): string {
  const p = `blk.${l}.`;
  const gateUp = concatRows([w.gate, w.up]);
  let gate: string;
  let up: string;
  if (gateUp) {
    const both = emitLinear(g, xn, gateUp, p + "ffn_gate_up");
    [gate, up] = g.node("Split", [both, g.constInt64([w.gate.n, w.up.n])], [g.fresh("gate"), g.fresh("up")], { axis: -1 });
  } else {
    gate = emitLinear(g, xn, w.gate, p + "ffn_gate");
    up = emitLinear(g, xn, w.up, p + "ffn_up");
  }
  const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
  return emitLinear(g, act, w.down, p + "ffn_down");
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
    this.resid = this.g.input("hidden_in", "float32", [1, "S", cfg.hiddenSize]);
    this.io = declareAttentionInputs(this.g, cfg, opts);
  }

  /** Normalizes the residual stream, first folding in the pending sub-block output. */
  private norm(weight: Float32Array, name: string): string {
    if (this.pending === undefined) return rmsNorm(this.g, this.resid, weight, this.cfg.rmsNormEps, name);
    const [out, sum] = skipRmsNorm(this.g, this.pending, this.resid, weight, this.cfg.rmsNormEps, name);
    this.resid = sum;
    return out;
  }

  addLayer(l: number, w: LayerWeights): void {
    const shape = { heads: this.cfg.numHeads, kvHeads: this.cfg.numKvHeads };
    const xn = this.norm(w.attnNorm, `blk.${l}.attn_norm`);
    this.pending = emitAttention(this.g, this.cfg, this.opts, this.io, l, w, xn, shape);
    const xn2 = this.norm(w.ffnNorm, `blk.${l}.ffn_norm`);
    this.pending = emitMlp(this.g, l, w, xn2);
  }

  private stream(): string {
    return this.pending === undefined ? this.resid : this.g.op("Add", [this.pending, this.resid]);
  }

  /** Middle stage: hidden states out. */
  finishHidden(): GraphBuilder {
    this.g.node("Identity", [this.stream()], ["hidden_out"]);
    this.g.output("hidden_out", "float32", [1, "S", this.cfg.hiddenSize]);
    return this.g;
  }

  /** Last stage: final norm and lm_head on the positions named by logits_index. */
  finishLogits(norm: Float32Array, lmHead: LinearWeight): GraphBuilder {
    const idx = this.g.input("logits_index", "int64", ["N"]);
    const sel = this.g.op("Gather", [this.stream(), idx], { axis: 1 });
    const xn = rmsNorm(this.g, sel, norm, this.cfg.rmsNormEps, "output_norm");
    this.g.node("Identity", [emitLinear(this.g, xn, lmHead, "output")], ["logits"]);
    this.g.output("logits", "float32", [1, "N", lmHead.n]);
    return this.g;
  }
}

/**
 * Tensor-parallel graph A for layer `l`: hidden_in (the full residual stream) → attn_norm →
 * attention over this rank's heads → o_proj columns → `partial` [1, S, hidden].
 */
export function buildTpAttentionGraph(cfg: ModelConfig, opts: AttentionOptions, l: number, w: LayerWeights, shape: AttentionShape): GraphBuilder {
  const g = new GraphBuilder(`tessera_tp_attn_${l}`);
  const x = g.input("hidden_in", "float32", [1, "S", cfg.hiddenSize]);
  const io = declareAttentionInputs(g, cfg, opts);
  const xn = rmsNorm(g, x, w.attnNorm, cfg.rmsNormEps, `blk.${l}.attn_norm`);
  g.node("Identity", [emitAttention(g, cfg, opts, io, l, w, xn, shape)], ["partial"]);
  g.output("partial", "float32", [1, "S", cfg.hiddenSize]);
  return g;
}

/** Tensor-parallel graph B for layer `l`: hidden_in → ffn_norm → this rank's MLP slice → `partial`. */
export function buildTpMlpGraph(cfg: ModelConfig, l: number, w: LayerWeights): GraphBuilder {
  const g = new GraphBuilder(`tessera_tp_mlp_${l}`);
  const x = g.input("hidden_in", "float32", [1, "S", cfg.hiddenSize]);
  const xn = rmsNorm(g, x, w.ffnNorm, cfg.rmsNormEps, `blk.${l}.ffn_norm`);
  g.node("Identity", [emitMlp(g, l, w, xn)], ["partial"]);
  g.output("partial", "float32", [1, "S", cfg.hiddenSize]);
  return g;
}
