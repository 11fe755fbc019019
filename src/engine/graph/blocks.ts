import { GraphBuilder } from "../onnx/builder.js";
import type { ModelConfig } from "../../models/types.js";
import { concatRows, nBlocks, type LinearWeight } from "../weights/linear.js";

/** Graph building blocks shared by the decoder, attention and head graphs. */

/** Emits x·Wᵀ for a linear weight: MatMulNBits for quantized weights, MatMul for float ones. */
export function emitLinear(g: GraphBuilder, x: string, w: LinearWeight, name: string): string {
  if (w.kind === "float") {
    // Gemm with transB reads the [n, k] rows as stored (no transposed copy); it wants 2-D input.
    const x2 = g.op("Reshape", [x, g.constInt64([-1, w.k])]);
    const y2 = g.op("Gemm", [x2, g.weight(name, "float32", [w.n, w.k], w.data)], { transB: 1 });
    // back to x's leading dimensions ([B, S]) with n columns
    return g.op("Reshape", [y2, g.op("Concat", [g.op("Shape", [x], { end: -1 }), g.constInt64([w.n])], { axis: 0 })]);
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

export function rmsNorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, name: string): string {
  const w = g.weight(name, "float32", [weight.length], weight);
  return g.op("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
}

/** RMSNorm of `x + skip`; returns [normed, x + skip]. */
export function skipRmsNorm(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, name: string): [string, string] {
  const w = g.weight(name, "float32", [weight.length], weight);
  const out = g.fresh("skipnorm");
  const sum = g.fresh("resid");
  g.node("SkipSimplifiedLayerNormalization", [x, skip, w], [out, "", "", sum], { epsilon: { float: eps } }, "com.microsoft");
  return [out, sum];
}

/** Per-head RMSNorm (qwen3 q_norm / k_norm): [1, S, h·d] → [1, S, h, d] → norm → back. */
export function headNorm(g: GraphBuilder, x: string, weight: Float32Array, headDim: number, eps: number, name: string): string {
  const split = g.op("Reshape", [x, g.constInt64([0, 0, -1, headDim])]);
  const n = rmsNorm(g, split, weight, eps, name);
  return g.op("Reshape", [n, g.constInt64([0, 0, -1])]);
}

export function addBias(g: GraphBuilder, x: string, bias: Float32Array | undefined, name: string): string {
  return bias ? g.op("Add", [x, g.weight(name, "float32", [bias.length], bias)]) : x;
}

/**
 * The gated MLP down(act(gate·x) ⊙ up·x), act = silu (SwiGLU) or tanh-approximated GELU (GeGLU).
 * gate|up become one matmul when stored alike (fewer kernel calls); onnxruntime fuses x·sigmoid(x).
 * `name` prefixes the weights (`<name>_gate_up`, `<name>_down`).
 */
export function emitGatedMlp(
  g: GraphBuilder, x: string, w: { gate: LinearWeight; up: LinearWeight; down: LinearWeight }, act: ModelConfig["hiddenAct"], name: string,
): string {
  const gateUp = concatRows([w.gate, w.up]);
  let gate: string;
  let up: string;
  if (gateUp) {
    const both = emitLinear(g, x, gateUp, name + "_gate_up");
    [gate, up] = g.node("Split", [both, g.constInt64([w.gate.n, w.up.n])], [g.fresh("gate"), g.fresh("up")], { axis: -1 });
  } else {
    gate = emitLinear(g, x, w.gate, name + "_gate");
    up = emitLinear(g, x, w.up, name + "_up");
  }
  const a = act === "gelu_tanh" ? g.op("FastGelu", [gate], {}, "com.microsoft") : g.op("Mul", [gate, g.op("Sigmoid", [gate])]);
  return emitLinear(g, g.op("Mul", [a, up]), w.down, name + "_down");
}
