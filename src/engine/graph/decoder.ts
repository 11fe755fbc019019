import type { ModelConfig } from "../../models/types.js";
import { GraphBuilder } from "../onnx/builder.js";
import type { LayerWeights } from "../weights/load.js";
import { concatRows, nBlocks, type LinearWeight } from "../weights/linear.js";
import { ropeTables } from "./rope.js";

/**
 * Decoder graphs. One graph runs a pipeline shard: layers [a, b) of the model, taking hidden states
 * (the embedding lookup happens in JS, see session/embedding.ts) and returning either hidden
 * states or, on the last stage, logits. Tensor-parallel ranks use two graphs per layer: attention
 * partial (A) and MLP partial (B); the caller all-reduces and adds the residual.
 *
 * Graph interface (shard graph):
 *   in  hidden_in     float32 [1, S, hidden]
 *   in  seqlens_k     int32   [1]    tokens cached after this step − 1
 *   in  total_seq_len int32   []     tokens cached after this step
 *   in  logits_index  int64   [n]    (last stage) positions in [0, S) whose logits are returned
 *   in  past_key_L / past_value_L  float32 [1, kvHeads, maxSeq, headDim]  per layer L
 *   out present_key_L / present_value_L   the same buffers (GroupQueryAttention shares them; the
 *       caller passes the same tensor as input and pre-allocated output, so KV is updated in place)
 *   out logits [1, n, vocab] (last stage) or hidden_out [1, S, hidden]
 * q|k|v and gate|up become one matmul each when stored alike (fewer kernel calls per token);
 * onnxruntime fuses x·sigmoid(x) into one kernel itself. MatMulNBits is ~95% of decode time.
 */
export interface GraphOptions {
  /** KV cache capacity in tokens; also the rope table length. */
  maxSeq: number;
  /** q/k rows are laid out for interleaved (GPT-J style) rope pairs. */
  ropeInterleaved: boolean;
  /** GGUF rope_freqs.weight (per-frequency divisors), when the model has one. */
  ropeFreqFactors?: Float32Array;
}

export interface AttentionShape {
  heads: number;
  kvHeads: number;
}

/** Emits x·Wᵀ for a linear weight: MatMulNBits for quantized weights, MatMul for float ones. */
export function emitLinear(g: GraphBuilder, x: string, w: LinearWeight, name: string): string {
  if (w.kind === "float") {
    // Gemm with transB reads the [n, k] rows as stored (no transposed copy); it wants 2-D input.
    const x2 = g.op("Reshape", [x, g.constInt64([-1, w.k])]);
    const y2 = g.op("Gemm", [x2, g.weight(name, "float32", [w.n, w.k], w.data)], { transB: 1 });
    return g.op("Reshape", [y2, g.constInt64([1, -1, w.n])]);
  }
  const nb = nBlocks(w);
  const blob = (w.blockSize * w.bits) / 8;
  const inputs = [
    x,
    g.weight(name + ".q", "uint8", [w.n, nb, blob], w.data),
    g.weight(name + ".scales", "float32", [w.n * nb], w.scales),
  ];
  if (w.zeroPoints instanceof Float32Array) inputs.push(g.weight(name + ".zp", "float32", [w.n * nb], w.zeroPoints));
  else if (w.zeroPoints) {
    if (w.bits !== 8) throw new Error(`${name}: packed uint8 zero points are only written for 8-bit weights`);
    inputs.push(g.weight(name + ".zp", "uint8", [w.n * nb], w.zeroPoints));
  }
  // accuracy_level 4: int8 activations. The default (float) path is 2.5× (4-bit) to 100× (8-bit) slower.
  const y = g.op("MatMulNBits", inputs, { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize, accuracy_level: 4 }, "com.microsoft");
  if (!w.groupBias) return y;
  // Σ_b groupBias[r, b] · Σ_{j in block b} x_j: per-block sums of x times the bias matrix.
  const sums = g.op("ReduceSum", [g.op("Reshape", [x, g.constInt64([0, 0, nb, w.blockSize])]), g.constInt64([-1])], { keepdims: 0 });
  const biasT = new Float32Array(nb * w.n);
  for (let r = 0; r < w.n; r++) for (let b = 0; b < nb; b++) biasT[b * w.n + r] = w.groupBias[r * nb + b];
  return g.op("Add", [y, g.op("MatMul", [sums, g.weight(name + ".bias", "float32", [nb, w.n], biasT)])]);
}

function rmsNorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, name: string): string {
  const w = g.weight(name, "float32", [weight.length], weight);
  return g.op("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
}

/** RMSNorm of `x + skip`; returns [normed, x + skip]. */
function skipRmsNorm(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, name: string): [string, string] {
  const w = g.weight(name, "float32", [weight.length], weight);
  const out = g.fresh("skipnorm");
  const sum = g.fresh("resid");
  g.node("SkipSimplifiedLayerNormalization", [x, skip, w], [out, "", "", sum], { epsilon: { float: eps } }, "com.microsoft");
  return [out, sum];
}

/** Per-head RMSNorm (qwen3 q_norm / k_norm): [1, S, h·d] → [1, S, h, d] → norm → back. */
function headNorm(g: GraphBuilder, x: string, weight: Float32Array, headDim: number, eps: number, name: string): string {
  const split = g.op("Reshape", [x, g.constInt64([0, 0, -1, headDim])]);
  const n = rmsNorm(g, split, weight, eps, name);
  return g.op("Reshape", [n, g.constInt64([0, 0, -1])]);
}

function addBias(g: GraphBuilder, x: string, bias: Float32Array | undefined, name: string): string {
  return bias ? g.op("Add", [x, g.weight(name, "float32", [bias.length], bias)]) : x;
}

/** Shared inputs of every graph that runs attention. */
interface AttentionInputs {
  seqlensK: string;
  totalSeqLen: string;
  cos: string;
  sin: string;
}

function declareAttentionInputs(g: GraphBuilder, cfg: ModelConfig, opts: GraphOptions): AttentionInputs {
  const { cos, sin } = ropeTables(cfg, opts.maxSeq, opts.ropeFreqFactors);
  return {
    seqlensK: g.input("seqlens_k", "int32", [1]),
    totalSeqLen: g.input("total_seq_len", "int32", []),
    cos: g.weight("rope.cos", "float32", [opts.maxSeq, cfg.headDim / 2], cos),
    sin: g.weight("rope.sin", "float32", [opts.maxSeq, cfg.headDim / 2], sin),
  };
}

/** Attention of layer `l` on normed input `xn` for `shape` heads; returns the o_proj output (a partial under TP). */
function emitAttention(
  g: GraphBuilder, cfg: ModelConfig, opts: GraphOptions, io: AttentionInputs,
  l: number, w: LayerWeights, xn: string, shape: AttentionShape,
): string {
  const p = `blk.${l}.`;
  const D = cfg.headDim;
  const qkv = concatRows([w.q, w.k, w.v]);
  let q: string;
  let k = "";
  let v = "";
  if (qkv) {
    // One matmul for q|k|v; GroupQueryAttention takes the packed result as its query input.
    const bias = w.qBias && w.kBias && w.vBias ? Float32Array.from([...w.qBias, ...w.kBias, ...w.vBias]) : undefined;
    q = addBias(g, emitLinear(g, xn, qkv, p + "attn_qkv"), bias, p + "attn_qkv.bias");
    if (w.qNorm || w.kNorm) {
      const sizes = g.constInt64([shape.heads * D, shape.kvHeads * D, shape.kvHeads * D]);
      [q, k, v] = g.node("Split", [q, sizes], [g.fresh("q"), g.fresh("k"), g.fresh("v")], { axis: -1 });
    }
  } else {
    q = addBias(g, emitLinear(g, xn, w.q, p + "attn_q"), w.qBias, p + "attn_q.bias");
    k = addBias(g, emitLinear(g, xn, w.k, p + "attn_k"), w.kBias, p + "attn_k.bias");
    v = addBias(g, emitLinear(g, xn, w.v, p + "attn_v"), w.vBias, p + "attn_v.bias");
  }
  if (w.qNorm) q = headNorm(g, q, w.qNorm, D, cfg.rmsNormEps, p + "attn_q_norm");
  if (w.kNorm) k = headNorm(g, k, w.kNorm, D, cfg.rmsNormEps, p + "attn_k_norm");
  // The KV length is symbolic: the caller binds a window of its cache (session/kv-cache.ts).
  const kvDims = [1, shape.kvHeads, "kv_seq", cfg.headDim];
  const pastK = g.input(`past_key_${l}`, "float32", kvDims);
  const pastV = g.input(`past_value_${l}`, "float32", kvDims);
  const attn = g.fresh("attn");
  g.node(
    "GroupQueryAttention",
    [q, k, v, pastK, pastV, io.seqlensK, io.totalSeqLen, io.cos, io.sin],
    [attn, `present_key_${l}`, `present_value_${l}`],
    {
      num_heads: shape.heads,
      kv_num_heads: shape.kvHeads,
      do_rotary: 1,
      rotary_interleaved: opts.ropeInterleaved ? 1 : 0,
      scale: { float: 1 / Math.sqrt(cfg.headDim) },
    },
    "com.microsoft",
  );
  g.output(`present_key_${l}`, "float32", kvDims);
  g.output(`present_value_${l}`, "float32", kvDims);
  return emitLinear(g, attn, w.o, p + "attn_output");
}

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

  constructor(private readonly cfg: ModelConfig, private readonly opts: GraphOptions) {
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
export function buildTpAttentionGraph(cfg: ModelConfig, opts: GraphOptions, l: number, w: LayerWeights, shape: AttentionShape): GraphBuilder {
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
