import type { RawTensor } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import { q4_0ToNBits, q4_1ToNBits, q4_KToNBits, q5_KToNBits, q6_KToNBits, q8_0ToNBits } from "./ggml.js";
import { toFloat32 } from "./half.js";
import type { LinearWeight, NBitsWeight } from "./linear.js";

/**
 * Stored tensor → engine weight. One path per storage type:
 *
 * | source        | engine form                      | block | zero point        | exact?                      |
 * |---------------|----------------------------------|-------|-------------------|-----------------------------|
 * | GGUF Q4_0     | MatMulNBits 4-bit                | 32    | default 8         | yes (nibble reorder)        |
 * | GGUF Q4_1     | MatMulNBits 4-bit                | 32    | float −m/d        | to float32 rounding of zp   |
 * | GGUF Q8_0     | MatMulNBits 8-bit                | 32    | default 128       | yes (q xor 0x80)            |
 * | GGUF Q4_K     | MatMulNBits 4-bit                | 32    | float dmin·m/(d·sc) | to float32 rounding of zp |
 * | GGUF Q5_K     | MatMulNBits 8-bit (5-bit values) | 32    | 0 + block bias    | yes (bias as extra MatMul)  |
 * | GGUF Q6_K     | MatMulNBits 8-bit (6-bit values) | 16    | uint8 32          | yes                         |
 * | MLX 4-bit     | MatMulNBits 4-bit (same bytes)   | group | float −bias/scale | to float32 rounding of zp   |
 * | MLX 8-bit     | MatMulNBits 8-bit (same bytes)   | group | 0 + block bias    | yes (bias as extra MatMul)  |
 * | F32/F16/BF16  | float32 MatMul                   | –     | –                 | yes (F16/BF16 widen to 2× / 2× bytes) |
 *
 * MatMulNBits runs with accuracy_level 4 (int8 activations, per-block), so the products are
 * rounded differently from ggml's (which quantizes activations to int8 per 32 for Q4_0/Q8_0 too).
 */
export function toLinearWeight(raw: RawTensor): LinearWeight {
  const { info } = raw;
  if (raw.shape.length !== 2) {
    throw new TesseraError(`expected a 2-D tensor, got shape [${raw.shape}]`, info.name);
  }
  const [n, k] = raw.shape;
  switch (info.type) {
    case "F32":
    case "F16":
    case "BF16":
      return { kind: "float", n, k, data: toFloat32(raw.data, info.type) };
    case "Q4_0":
      return q4_0ToNBits(raw.data, n, k);
    case "Q4_1":
      return q4_1ToNBits(raw.data, n, k);
    case "Q8_0":
      return q8_0ToNBits(raw.data, n, k);
    case "Q4_K":
      return q4_KToNBits(raw.data, n, k);
    case "Q5_K":
      return q5_KToNBits(raw.data, n, k);
    case "Q6_K":
      return q6_KToNBits(raw.data, n, k);
    case "MLX4":
    case "MLX8":
      return mlxToNBits(raw, n, k);
    default:
      throw new TesseraError(`tensor type ${info.type} is not supported for a linear weight`, info.name);
  }
}

/** 1-D tensors (norm weights, biases) as float32. */
export function toVector(raw: RawTensor): Float32Array {
  const t = raw.info.type;
  if (t !== "F32" && t !== "F16" && t !== "BF16") {
    throw new TesseraError(`expected a float vector, got ${t}`, raw.info.name);
  }
  return toFloat32(raw.data, t);
}

/**
 * MLX affine: 4-bit values packed 8 per little-endian uint32 (element i at bits 4i..4i+3), which
 * is byte for byte MatMulNBits' 4-bit order; 8-bit values 4 per uint32, element i in byte i.
 * w = scale·q + bias per group → scale·(q − zp) with zp = −bias/scale.
 */
function mlxToNBits(raw: RawTensor, n: number, k: number): NBitsWeight {
  const bits = raw.info.type === "MLX4" ? 4 : 8;
  const group = raw.info.groupSize;
  const name = raw.info.name;
  if (!group || k % group !== 0) throw new TesseraError(`MLX group size ${group} does not divide ${k}`, name);
  if (!raw.scales || !raw.biases || !raw.scaleType) throw new TesseraError("MLX weight without scales/biases", name);
  const groups = n * (k / group);
  const data = raw.data.slice();
  if (data.byteLength !== (n * k * bits) / 8) throw new TesseraError(`MLX data is ${data.byteLength} bytes for [${n}, ${k}]`, name);
  const s = toFloat32(raw.scales, raw.scaleType);
  const bias = toFloat32(raw.biases, raw.scaleType);
  if (s.length !== groups || bias.length !== groups) throw new TesseraError("MLX scales/biases do not match the weight", name);
  if (bits === 8) {
    // onnxruntime's CPU MatMulNBits has no float zero points at 8 bits: keep w = s·q + bias as is.
    return { kind: "nbits", n, k, bits, blockSize: group, data, scales: s.slice(), zeroPoints: new Uint8Array(groups), groupBias: bias.slice() };
  }
  const scales = new Float32Array(groups);
  const zps = new Float32Array(groups);
  const blob = (group * bits) / 8;
  for (let g = 0; g < groups; g++) {
    if (s[g] !== 0) {
      scales[g] = s[g];
      zps[g] = -bias[g] / s[g];
    } else {
      scales[g] = bias[g];
      zps[g] = -1;
      data.fill(0, g * blob, (g + 1) * blob);
    }
  }
  return { kind: "nbits", n, k, bits, blockSize: group, data, scales, zeroPoints: zps };
}
