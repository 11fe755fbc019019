import { TesseraError } from "../../errors.js";
import type { TensorType } from "../types.js";
import { bf16BytesToF32, f16BytesToF32, f32BytesToF32, f32ToBf16Bytes, f32ToF16Bytes, f32ToF32Bytes } from "./half.js";
import { dequantizeQ4_K, dequantizeQ5_K, quantizeQ4_K, quantizeQ5_K } from "./k-affine.js";
import { dequantizeQ4_0, quantizeQ4_0 } from "./q4_0.js";
import { dequantizeQ4_1, quantizeQ4_1 } from "./q4_1.js";
import { dequantizeQ6_K, quantizeQ6_K } from "./q6_k.js";
import { dequantizeQ8_0, quantizeQ8_0 } from "./q8_0.js";
import { byteSize, LAYOUTS } from "./types.js";

export { LAYOUTS, QK_K, byteSize, ggmlTypeName, layoutOfGgmlId, type TypeLayout } from "./types.js";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";

/** The element types `dequantize`/`quantize` handle (MLX affine needs scales: see safetensors/mlx.ts). */
export type DenseOrBlockType = Exclude<TensorType, "MLX4" | "MLX8">;

function checkSize(type: TensorType, bytes: number, n: number): void {
  const need = byteSize(type, n);
  if (need === undefined) throw new TesseraError(`${n} elements are not a whole number of ${type} blocks (${LAYOUTS[type].blockSize})`);
  if (bytes < need) throw new TesseraError(`${type} data for ${n} elements needs ${need} bytes, got ${bytes}`);
}

/** Stored bytes of `n` elements → float32, exactly as ggml's reference dequantizers compute them. */
export function dequantize(type: TensorType, bytes: Uint8Array, n: number): Float32Array {
  checkSize(type, bytes.length, n);
  switch (type) {
    case "F32": return f32BytesToF32(bytes, n);
    case "F16": return f16BytesToF32(bytes, n);
    case "BF16": return bf16BytesToF32(bytes, n);
    case "Q4_0": return dequantizeQ4_0(bytes, n);
    case "Q4_1": return dequantizeQ4_1(bytes, n);
    case "Q8_0": return dequantizeQ8_0(bytes, n);
    case "Q4_K": return dequantizeQ4_K(bytes, n);
    case "Q5_K": return dequantizeQ5_K(bytes, n);
    case "Q6_K": return dequantizeQ6_K(bytes, n);
    case "I8": return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n));
    case "U8": return Float32Array.from(bytes.subarray(0, n));
    case "U32": {
      const out = new Float32Array(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, n * 4);
      for (let i = 0; i < n; i++) out[i] = dv.getUint32(4 * i, true);
      return out;
    }
    case "MLX4":
    case "MLX8":
      throw new Error(`${type} needs scales and biases: use dequantizeMlx`);
  }
}

/** float32 values → stored bytes. Integer types round to nearest and clamp to their range. */
export function quantize(type: TensorType, input: ArrayLike<number>): Uint8Array {
  // One array type keeps the block loops monomorphic (several times faster than ArrayLike access).
  const values = input instanceof Float32Array ? input : Float32Array.from(input);
  const n = values.length;
  if (byteSize(type, n) === undefined) {
    throw new TesseraError(`${n} values are not a whole number of ${type} blocks (${LAYOUTS[type].blockSize})`);
  }
  switch (type) {
    case "F32": return f32ToF32Bytes(values);
    case "F16": return f32ToF16Bytes(values);
    case "BF16": return f32ToBf16Bytes(values);
    case "Q4_0": return quantizeQ4_0(values);
    case "Q4_1": return quantizeQ4_1(values);
    case "Q8_0": return quantizeQ8_0(values);
    case "Q4_K": return quantizeQ4_K(values);
    case "Q5_K": return quantizeQ5_K(values);
    case "Q6_K": return quantizeQ6_K(values);
    case "I8": {
      const out = new Int8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.max(-128, Math.min(127, Math.round(values[i]!)));
      return new Uint8Array(out.buffer);
    }
    case "U8": {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.max(0, Math.min(255, Math.round(values[i]!)));
      return out;
    }
    case "U32": {
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.max(0, Math.min(0xffffffff, Math.round(values[i]!)));
      return new Uint8Array(out.buffer);
    }
    case "MLX4":
    case "MLX8":
      throw new Error(`${type} needs a group size: use quantizeMlx`);
  }
}
