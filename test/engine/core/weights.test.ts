import { test } from "node:test";
import assert from "node:assert/strict";
import type { RawTensor, TensorType } from "../../../src/models/types.js";
import { dequantize, quantize, f32ToF16 } from "../../../src/models/quant/index.js";
import { toLinearWeight } from "../../../src/engine/weights/convert.js";
import { dequantizeAll, type LinearWeight } from "../../../src/engine/weights/linear.js";
import { GraphBuilder } from "../../../src/engine/onnx/builder.js";
import { emitLinear } from "../../../src/engine/graph/blocks.js";
import { SyncSession, ort } from "../../../src/engine/onnx/session.js";
import { rng } from "./fixtures.js";
import { relErr } from "./compare.js";

function raw(type: TensorType, shape: [number, number], data: Uint8Array, extra: Partial<RawTensor> = {}): RawTensor {
  return { info: { name: "w", type, shape, byteLength: data.byteLength }, shape, data, ...extra };
}

function randomValues(n: number, seed: number): Float32Array {
  const r = rng(seed);
  // Mixed magnitudes and an all-positive stretch so affine blocks get non-trivial minimums.
  return Float32Array.from({ length: n }, (_, i) => (i % 512 < 64 ? 0.5 + r.uniform() : r.normal() * (i % 3 ? 0.05 : 1)));
}

const n = 8;
const k = 512;

for (const type of ["Q4_0", "Q8_0", "Q6_K", "F16", "BF16", "F32"] as TensorType[]) {
  test(`${type} → engine weight reproduces ggml's dequantized values exactly`, () => {
    const bytes = quantize(type, randomValues(n * k, 5));
    const w = toLinearWeight(raw(type, [n, k], bytes));
    const got = dequantizeAll(w);
    const want = dequantize(type, bytes, n * k);
    // === treats −0 and 0 as equal (a negative scale times q − zp = 0 gives either).
    const firstDiff = got.findIndex((v, i) => v !== want[i]);
    assert.equal(firstDiff, -1, `element ${firstDiff}: ${got[firstDiff]} vs ${want[firstDiff]}`);
  });
}

// Affine formats become scale·(q − zp) with zp = −min/scale: equal up to float32 rounding.
for (const type of ["Q4_1", "Q4_K", "Q5_K"] as TensorType[]) {
  test(`${type} → MatMulNBits with float zero points matches ggml within float rounding`, () => {
    const bytes = quantize(type, randomValues(n * k, 6));
    const w = toLinearWeight(raw(type, [n, k], bytes));
    assert.equal(w.kind, "nbits");
    assert.ok(relErr(dequantizeAll(w), dequantize(type, bytes, n * k)) < 1e-6);
  });
}

test("Q4_0 conversion reorders nibbles to MatMulNBits order", () => {
  // One block: scale 1, element j has value j − 8 (q = j for j < 16, q = j − 16 for the rest).
  const block = new Uint8Array(18);
  block.set([0x00, 0x3c]); // f16 1.0
  for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4);
  const w = toLinearWeight(raw("Q4_0", [1, 32], block));
  assert.equal(w.kind, "nbits");
  if (w.kind !== "nbits") return;
  // MatMulNBits byte i = element 2i (low) | element 2i+1 (high).
  assert.equal(w.data[0], 0 | (1 << 4));
  // Elements 16 and 17 are the high nibbles of ggml bytes 0 and 1 (15 and 14).
  assert.equal(w.data[8], 15 | (14 << 4));
  assert.equal(w.scales[0], 1);
});

/** Packs MLX affine weights: q in [0, 2^bits), 32/bits values per little-endian uint32. */
function mlxRaw(bits: 4 | 8, group: number, seed: number, zeroGroup: number): { t: RawTensor; expect: Float32Array } {
  const r = rng(seed);
  const q = Uint8Array.from({ length: n * k }, () => Math.floor(r.uniform() * (1 << bits)));
  const groups = (n * k) / group;
  const s = Float32Array.from({ length: groups }, (_, g) => (g === zeroGroup ? 0 : 0.01 + r.uniform() * 0.02));
  const b = Float32Array.from({ length: groups }, () => -0.1 + r.uniform() * 0.05);
  const scales = new Uint8Array(groups * 2);
  const biases = new Uint8Array(groups * 2);
  const expect = new Float32Array(n * k);
  const sF = new Float32Array(groups);
  const bF = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    const sh = f32ToF16(s[g]);
    const bh = f32ToF16(b[g]);
    scales[2 * g] = sh & 255; scales[2 * g + 1] = sh >> 8;
    biases[2 * g] = bh & 255; biases[2 * g + 1] = bh >> 8;
    sF[g] = dequantize("F16", scales.subarray(2 * g, 2 * g + 2), 1)[0];
    bF[g] = dequantize("F16", biases.subarray(2 * g, 2 * g + 2), 1)[0];
  }
  const words = new Uint32Array((n * k * bits) / 32);
  const per = 32 / bits;
  for (let i = 0; i < n * k; i++) {
    words[Math.floor(i / per)] |= q[i] << (bits * (i % per));
    const g = Math.floor(i / group);
    expect[i] = sF[g] * q[i] + bF[g];
  }
  const t = raw(bits === 4 ? "MLX4" : "MLX8", [n, k], new Uint8Array(words.buffer), { scales, biases, scaleType: "F16" });
  t.info.groupSize = group;
  return { t, expect };
}

for (const [bits, group] of [[4, 64], [4, 32], [8, 64]] as const) {
  test(`MLX ${bits}-bit group ${group} → MatMulNBits, incl. a zero-scale group`, () => {
    const { t, expect } = mlxRaw(bits, group, 9, 3);
    const w = toLinearWeight(t);
    assert.ok(relErr(dequantizeAll(w), expect) < 1e-6);
  });
}

/** Runs one linear weight through onnxruntime and returns x·Wᵀ. */
function runLinear(w: LinearWeight, x: Float32Array): Float32Array {
  const g = new GraphBuilder("linear");
  const xin = g.input("x", "float32", [1, 1, w.k]);
  g.node("Identity", [emitLinear(g, xin, w, "w")], ["y"]);
  g.output("y", "float32", [1, 1, w.n]);
  const s = SyncSession.create(g.toBytes(), g.blobs, { threads: 1 });
  try {
    return s.run({ x: new ort.Tensor("float32", x, [1, 1, w.k]) }, { y: null }).y.data as Float32Array;
  } finally {
    s.dispose();
  }
}

function matVec(w: Float32Array, x: Float32Array, rows: number, cols: number): Float32Array {
  return Float32Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    return s;
  });
}

// Every engine weight layout must also be what onnxruntime's kernels read. Int8 activation
// quantization (accuracy_level 4) bounds the error at ~1% of the output scale.
const kernelCases: { name: string; w: () => LinearWeight }[] = [
  ...(["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "BF16"] as TensorType[]).map((type) => ({
    name: type,
    w: () => toLinearWeight(raw(type, [n, k], quantize(type, randomValues(n * k, 12)))),
  })),
  { name: "MLX4 group 64", w: () => toLinearWeight(mlxRaw(4, 64, 13, 1).t) },
  { name: "MLX8 group 32", w: () => toLinearWeight(mlxRaw(8, 32, 14, 2).t) },
];
for (const c of kernelCases) {
  test(`onnxruntime computes ${c.name} weights as their dequantized values`, () => {
    const w = c.w();
    const x = randomValues(k, 15);
    const e = relErr(runLinear(w, x), matVec(dequantizeAll(w), x, n, k));
    assert.ok(e < 0.02, `relative error ${e}`);
  });
}
