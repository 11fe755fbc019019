import type { ModelConfig } from "../../models/types.js";
import type { GraphBuilder } from "../onnx/builder.js";
import type { LayerWeights } from "../weights/load.js";
import { concatRows } from "../weights/linear.js";
import { addBias, emitLinear, headNorm } from "./blocks.js";
import { attentionScale, hasSlidingRope, isSlidingLayer } from "../../models/arch/features.js";
import { ropeTables } from "./rope.js";

/**
 * Causal self-attention with grouped KV heads over a KV cache the graph only reads.
 *
 * Why not onnxruntime's GroupQueryAttention: it updates the cache in place only when the cache is
 * also a graph output, and onnxruntime-node 1.30 copies every fetched output into a fresh JS
 * buffer after each run. That copy cost ~0.5 ms per layer per token at 320 cached positions
 * (1b model: ~8 ms of a 40 ms token) and grows with the context; these plain ops cost ~0.16 ms
 * and give the same output within 1e-7. The new tokens' keys and values are small outputs the
 * caller writes into its cache (session/kv-cache.ts).
 *
 * B sequences go through at once (continuous batching: B > 1 for decode steps, session/batch-engine.ts);
 * the matmuls see all B·S rows, attention stays per sequence: each row of past_bias masks its own
 * sequence's cached length in the shared window W. One sequence is B = 1.
 * Inputs shared by every layer of a graph:
 *   positions    int64   [B, S]     absolute position of each new token (rope)
 *   past_bias    float32 [B, W]     0 for the sequence's cached positions < its length, −∞ for stale ones
 *   causal_bias  float32 [S, S]     0 where new token j ≤ new token i, −∞ above the diagonal
 * and, for models with sliding-window layers (their masks depend on the query too):
 *   swa_past_bias    float32 [B, S, W]  0 where cached position j is < length and within the window of new token i
 *   swa_causal_bias  float32 [S, S]     causal_bias, and −∞ where new token j is out of token i's window
 * Per layer L:
 *   past_key_L / past_value_L  float32 [B, kvHeads, W, headDim]   the cache window, read only
 *   new_key_L / new_value_L    float32 [B, kvHeads, S, headDim]   outputs: rotated keys, values
 *
 * With g = heads / kvHeads, query head h reads KV head ⌊h / g⌋; the queries of one KV head are
 * stacked as g·S rows so each product below is one batched matmul per KV head:
 *   scores = [q·pastKᵀ + past_bias | q·newKᵀ + causal_bias] · scale → softmax over both parts
 *   out    = p_past · pastV + p_new · newV
 */
export interface AttentionShape {
  heads: number;
  kvHeads: number;
}

export interface AttentionOptions {
  /** Rope table length: the most positions a sequence can reach. */
  maxSeq: number;
  /** q/k rows are laid out for interleaved (GPT-J style) rope pairs. */
  ropeInterleaved: boolean;
  /** GGUF rope_freqs.weight (per-frequency divisors), when the model has one. */
  ropeFreqFactors?: Float32Array;
}

/** The graph inputs every attention layer of one graph shares. */
export interface AttentionInputs {
  positions: string;
  pastBias: string;
  causalBias: string;
  cos: string;
  sin: string;
  /** Sliding-window masks and rope tables (when the model has them; else the full ones). */
  swaPastBias?: string;
  swaCausalBias?: string;
  swaCos: string;
  swaSin: string;
  /** S as a 1-D int64 tensor (for reshapes that need it explicitly). */
  seqLen: string;
}

export function declareAttentionInputs(g: GraphBuilder, cfg: ModelConfig, opts: AttentionOptions): AttentionInputs {
  const { cos, sin } = ropeTables(cfg, opts.maxSeq, opts.ropeFreqFactors);
  const positions = g.input("positions", "int64", ["B", "S"]);
  const dims = [opts.maxSeq, cfg.headDim / 2];
  const io: AttentionInputs = {
    positions,
    // [B, W] → [B, 1, 1, W]: broadcasts over heads and query rows.
    pastBias: g.op("Unsqueeze", [g.input("past_bias", "float32", ["B", "kv_seq"]), g.constInt64([1, 2])]),
    causalBias: g.input("causal_bias", "float32", ["S", "S"]),
    cos: g.weight("rope.cos", "float32", dims, cos),
    sin: g.weight("rope.sin", "float32", dims, sin),
    swaCos: "",
    swaSin: "",
    seqLen: g.op("Shape", [positions], { start: 1 }),
  };
  io.swaCos = io.cos;
  io.swaSin = io.sin;
  if (cfg.slidingWindow !== undefined) {
    // [B, S, W] → [B, 1, 1, S, W]: broadcasts over KV heads and query groups.
    io.swaPastBias = g.op("Unsqueeze", [g.input("swa_past_bias", "float32", ["B", "S", "kv_seq"]), g.constInt64([1, 2])]);
    io.swaCausalBias = g.input("swa_causal_bias", "float32", ["S", "S"]);
  }
  if (hasSlidingRope(cfg)) {
    const t = ropeTables({ headDim: cfg.headDim, ropeTheta: cfg.ropeThetaSliding! }, opts.maxSeq);
    io.swaCos = g.weight("rope_swa.cos", "float32", dims, t.cos);
    io.swaSin = g.weight("rope_swa.sin", "float32", dims, t.sin);
  }
  return io;
}

/** Attention of layer `l` on normed input `xn` for `shape` heads; returns the o_proj output (a partial under TP). */
export function emitAttention(
  g: GraphBuilder, cfg: ModelConfig, opts: AttentionOptions, io: AttentionInputs,
  l: number, w: LayerWeights, xn: string, shape: AttentionShape,
): string {
  const p = `blk.${l}.`;
  const D = cfg.headDim;
  const { heads, kvHeads } = shape;
  const group = heads / kvHeads;
  let q: string;
  let k: string;
  let v: string;
  const qkv = concatRows([w.q, w.k, w.v]);
  if (qkv) {
    const bias = w.qBias && w.kBias && w.vBias ? Float32Array.from([...w.qBias, ...w.kBias, ...w.vBias]) : undefined;
    const both = addBias(g, emitLinear(g, xn, qkv, p + "attn_qkv"), bias, p + "attn_qkv.bias");
    const sizes = g.constInt64([heads * D, kvHeads * D, kvHeads * D]);
    [q, k, v] = g.node("Split", [both, sizes], [g.fresh("q"), g.fresh("k"), g.fresh("v")], { axis: -1 });
  } else {
    q = addBias(g, emitLinear(g, xn, w.q, p + "attn_q"), w.qBias, p + "attn_q.bias");
    k = addBias(g, emitLinear(g, xn, w.k, p + "attn_k"), w.kBias, p + "attn_k.bias");
    v = addBias(g, emitLinear(g, xn, w.v, p + "attn_v"), w.vBias, p + "attn_v.bias");
  }
  if (w.qNorm) q = headNorm(g, q, w.qNorm, D, cfg.rmsNormEps, p + "attn_q_norm");
  if (w.kNorm) k = headNorm(g, k, w.kNorm, D, cfg.rmsNormEps, p + "attn_k_norm");
  const interleaved = opts.ropeInterleaved ? 1 : 0;
  const sliding = isSlidingLayer(cfg, l);
  const [cos, sin] = sliding ? [io.swaCos, io.swaSin] : [io.cos, io.sin];
  const rope = (x: string, n: number) => g.op("RotaryEmbedding", [x, io.positions, cos, sin], { num_heads: n, interleaved }, "com.microsoft");

  // [B, S, n·D] → [B, n, S, D] (a 0 in a Reshape shape keeps that input dimension: B)
  const toHeads = (x: string, n: number, out: string) =>
    g.node("Transpose", [g.op("Reshape", [x, g.constInt64([0, -1, n, D])])], [out], { perm: [0, 2, 1, 3] })[0]!;
  const newK = toHeads(rope(k, kvHeads), kvHeads, `new_key_${l}`);
  const newV = toHeads(v, kvHeads, `new_value_${l}`);
  const kvDims = ["B", kvHeads, "S", D];
  g.output(newK, "float32", kvDims);
  g.output(newV, "float32", kvDims);
  const pastDims = ["B", kvHeads, "kv_seq", D];
  const pastK = g.input(`past_key_${l}`, "float32", pastDims);
  const pastV = g.input(`past_value_${l}`, "float32", pastDims);

  // Queries [B, S, heads·D] → [B, kvHeads, group·S, D] (rows: group-major, then position).
  const q5 = g.op("Reshape", [rope(q, heads), g.constInt64([0, -1, kvHeads, group, D])]);
  const qg = g.op("Reshape", [g.op("Transpose", [q5], { perm: [0, 2, 3, 1, 4] }), g.constInt64([0, kvHeads, -1, D])]);
  const scale = { float: attentionScale(cfg) };
  const sPast0 = g.op("FusedMatMul", [qg, pastK], { transB: 1, alpha: scale }, "com.microsoft");
  const sNew0 = g.op("FusedMatMul", [qg, newK], { transB: 1, alpha: scale }, "com.microsoft");
  // Biases per (new position, key position): view the rows as [group, S] to add them.
  const perPosition = (scores: string, bias: string): string => {
    const cols = g.op("Shape", [scores], { start: -1 });
    const byPos = g.op("Concat", [g.constInt64([0, kvHeads, group, -1]), cols], { axis: 0 });
    const byRow = g.op("Concat", [g.constInt64([0, kvHeads, -1]), cols], { axis: 0 });
    return g.op("Reshape", [g.op("Add", [g.op("Reshape", [scores, byPos]), bias]), byRow]);
  };
  if (sliding && !(io.swaPastBias && io.swaCausalBias)) throw new Error(`layer ${l} slides but the graph has no sliding-window masks`);
  const sPast = sliding ? perPosition(sPast0, io.swaPastBias!) : g.op("Add", [sPast0, io.pastBias]);
  const sNew = perPosition(sNew0, sliding ? io.swaCausalBias! : io.causalBias);
  const probs = g.op("Softmax", [g.op("Concat", [sPast, sNew], { axis: -1 })], { axis: -1 });
  const parts = g.op("Concat", [g.op("Shape", [sPast], { start: -1 }), io.seqLen], { axis: 0 });
  const [pPast, pNew] = g.node("Split", [probs, parts], [g.fresh("p_past"), g.fresh("p_new")], { axis: -1 });
  const o = g.op("Add", [g.op("MatMul", [pPast, pastV]), g.op("MatMul", [pNew, newV])]);
  // [B, kvHeads, group·S, D] → [B, S, heads·D]
  const o5 = g.op("Reshape", [o, g.constInt64([0, kvHeads, group, -1, D])]);
  const attn = g.op("Reshape", [g.op("Transpose", [o5], { perm: [0, 3, 1, 2, 4] }), g.constInt64([0, -1, heads * D])]);
  return emitLinear(g, attn, w.o, p + "attn_output");
}
