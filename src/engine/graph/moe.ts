import type { ModelConfig } from "../../models/types.js";
import type { GraphBuilder } from "../onnx/builder.js";
import { dequantizeAll, type LinearWeight, type NBitsWeight } from "../weights/linear.js";
import type { MoeWeights } from "../weights/load.js";
import { emitLinear } from "./blocks.js";

/**
 * Mixture of experts as one onnxruntime kernel per layer: com.microsoft QMoE (4/8-bit experts) or MoE
 * (float32 experts). Measured on onnxruntime-node 1.30 CPU against a plain JS reference (exact to
 * float rounding): given router logits, the kernel takes the softmax over all experts, keeps the top
 * k, renormalizes them (normalize_routing_weights = 1) and sums the chosen experts' SwiGLU outputs.
 * Only the chosen experts are computed. Its CPU kernel wants gate and up interleaved row by row
 * (swiglu_fusion = 1, gate first) and no separate fc3.
 *
 * Layouts (E experts, F expert width or this rank's slice of it, H hidden):
 *   fc1  [E, 2F, H·bits/8] uint8 — rows gate₀, up₀, gate₁, up₁, …; one row = MatMulNBits' row bytes
 *        (4-bit: element 2i in the low nibble of byte i); scales [E, 2F, H/block] float
 *   fc2  [E, H, F·bits/8] uint8, scales [E, H, F/block]
 *   zero point implicit: 8 (4-bit), 128 (8-bit) — GGUF Q4_0 / Q8_0 after their exact conversion.
 * Float experts (F32/F16/BF16 files) go to MoE with fc1 [E, 2F, H] and fc2 [E, H, F] float32.
 * Experts in any other storage (K-quants, Q4_1, MLX affine: their zero points are not integers)
 * are requantized to 8-bit blocks of 32 — the one lossy step in the engine's weight path, within
 * 1/254 of each block's largest magnitude.
 */
export function emitMoe(g: GraphBuilder, cfg: ModelConfig, l: number, w: MoeWeights, xn: string): string {
  const p = `blk.${l}.`;
  const H = cfg.hiddenSize;
  const router = emitLinear(g, xn, w.router, p + "ffn_gate_inp");
  const rows = g.op("Reshape", [xn, g.constInt64([-1, H])]);
  const logits = g.op("Reshape", [router, g.constInt64([-1, w.router.n])]);
  const attrs = { k: cfg.moe!.expertsPerToken, activation_type: "swiglu", swiglu_fusion: 1, normalize_routing_weights: 1 };
  const stacked = stackExperts(w);
  let y: string;
  if (stacked.kind === "float") {
    const fc1 = g.weight(p + "moe.fc1", "float32", [stacked.E, 2 * stacked.F, H], stacked.fc1);
    const fc2 = g.weight(p + "moe.fc2", "float32", [stacked.E, H, stacked.F], stacked.fc2);
    y = g.op("MoE", [rows, logits, fc1, "", fc2], attrs, "com.microsoft");
  } else {
    const { E, F, bits, block } = stacked;
    const fc1 = g.weight(p + "moe.fc1", "uint8", [E, 2 * F, (H * bits) / 8], stacked.fc1);
    const s1 = g.weight(p + "moe.fc1.scales", "float32", [E, 2 * F, H / block], stacked.fc1Scales);
    const fc2 = g.weight(p + "moe.fc2", "uint8", [E, H, (F * bits) / 8], stacked.fc2);
    const s2 = g.weight(p + "moe.fc2.scales", "float32", [E, H, F / block], stacked.fc2Scales);
    y = g.op("QMoE", [rows, logits, fc1, s1, "", fc2, s2], { ...attrs, expert_weight_bits: bits, block_size: block }, "com.microsoft");
  }
  return g.op("Reshape", [y, g.constInt64([1, -1, H])]);
}

export type StackedExperts =
  | { kind: "float"; E: number; F: number; fc1: Float32Array; fc2: Float32Array }
  | { kind: "nbits"; E: number; F: number; bits: 4 | 8; block: number; fc1: Uint8Array; fc1Scales: Float32Array; fc2: Uint8Array; fc2Scales: Float32Array };

/** QMoE takes these as they are: implicit zero point, one block size for both matrices. */
function native(ws: LinearWeight[]): ws is NBitsWeight[] {
  const first = ws[0]!;
  if (first.kind !== "nbits") return false;
  return ws.every((w) => w.kind === "nbits" && w.bits === first.bits && w.blockSize === first.blockSize && !w.zeroPoints && !w.groupBias && w.k % w.blockSize === 0);
}

const REQUANT_BLOCK = 32;

/** The experts in one of the kernels' layouts (see emitMoe). */
export function stackExperts(w: MoeWeights): StackedExperts {
  const E = w.experts.length;
  const all = w.experts.flatMap((e) => [e.gate, e.up, e.down]);
  const F = w.experts[0]!.gate.n;
  const H = w.experts[0]!.gate.k;
  if (all.every((x) => x.kind === "float")) {
    const fc1 = new Float32Array(E * 2 * F * H);
    const fc2 = new Float32Array(E * H * F);
    w.experts.forEach((e, i) => {
      interleaveRows((e.gate as { data: Float32Array }).data, (e.up as { data: Float32Array }).data, F, H, fc1, i * 2 * F * H);
      fc2.set((e.down as { data: Float32Array }).data, i * H * F);
    });
    return { kind: "float", E, F, fc1, fc2 };
  }
  const q = native(all) ? (all as NBitsWeight[]) : all.map((x) => requantize8(x));
  const bits = q[0]!.bits;
  const block = q[0]!.blockSize;
  const rowBytes = (k: number) => (k * bits) / 8;
  const fc1 = new Uint8Array(E * 2 * F * rowBytes(H));
  const fc1Scales = new Float32Array(E * 2 * F * (H / block));
  const fc2 = new Uint8Array(E * H * rowBytes(F));
  const fc2Scales = new Float32Array(E * H * (F / block));
  for (let e = 0; e < E; e++) {
    const [gate, up, down] = [q[3 * e]!, q[3 * e + 1]!, q[3 * e + 2]!];
    interleaveRows(gate.data, up.data, F, rowBytes(H), fc1, e * 2 * F * rowBytes(H));
    interleaveRows(gate.scales, up.scales, F, H / block, fc1Scales, e * 2 * F * (H / block));
    fc2.set(down.data, e * H * rowBytes(F));
    fc2Scales.set(down.scales, e * H * (F / block));
  }
  return { kind: "nbits", E, F, bits, block, fc1, fc1Scales, fc2, fc2Scales };
}

/** Rows a₀, b₀, a₁, b₁, … of two [n, width] matrices into `out` at `at`. */
function interleaveRows<T extends Uint8Array | Float32Array>(a: T, b: T, n: number, width: number, out: T, at: number): void {
  for (let r = 0; r < n; r++) {
    out.set(a.subarray(r * width, (r + 1) * width) as never, at + 2 * r * width);
    out.set(b.subarray(r * width, (r + 1) * width) as never, at + (2 * r + 1) * width);
  }
}

/** Any weight as symmetric 8-bit blocks of 32 (zero point 128), scale = largest magnitude / 127. */
export function requantize8(w: LinearWeight): NBitsWeight {
  if (w.k % REQUANT_BLOCK !== 0) throw new Error(`expert width ${w.k} is not a multiple of ${REQUANT_BLOCK}`);
  const values = dequantizeAll(w);
  const nb = w.k / REQUANT_BLOCK;
  const data = new Uint8Array(w.n * w.k);
  const scales = new Float32Array(w.n * nb);
  for (let b = 0; b < w.n * nb; b++) {
    const o = b * REQUANT_BLOCK;
    let m = 0;
    for (let j = 0; j < REQUANT_BLOCK; j++) m = Math.max(m, Math.abs(values[o + j]!));
    const s = m / 127;
    scales[b] = s;
    for (let j = 0; j < REQUANT_BLOCK; j++) data[o + j] = (s === 0 ? 0 : Math.round(values[o + j]! / s)) + 128;
  }
  return { kind: "nbits", n: w.n, k: w.k, bits: 8, blockSize: REQUANT_BLOCK, data, scales };
}
