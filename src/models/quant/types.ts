import type { TensorType } from "../types.js";

/**
 * Storage layout of each tensor type: `blockSize` elements take `bytesPerBlock` bytes.
 * `ggmlId` is the type id GGUF files use (ggml.h `enum ggml_type`); types without one exist only in
 * safetensors. MLX4/MLX8 describe the packed values alone (scales and biases are separate tensors).
 */
export interface TypeLayout {
  type: TensorType;
  ggmlId?: number;
  blockSize: number;
  bytesPerBlock: number;
}

export const QK_K = 256;

export const LAYOUTS: Record<TensorType, TypeLayout> = {
  F32: { type: "F32", ggmlId: 0, blockSize: 1, bytesPerBlock: 4 },
  F16: { type: "F16", ggmlId: 1, blockSize: 1, bytesPerBlock: 2 },
  Q4_0: { type: "Q4_0", ggmlId: 2, blockSize: 32, bytesPerBlock: 18 },
  Q4_1: { type: "Q4_1", ggmlId: 3, blockSize: 32, bytesPerBlock: 20 },
  Q8_0: { type: "Q8_0", ggmlId: 8, blockSize: 32, bytesPerBlock: 34 },
  Q4_K: { type: "Q4_K", ggmlId: 12, blockSize: QK_K, bytesPerBlock: 144 },
  Q5_K: { type: "Q5_K", ggmlId: 13, blockSize: QK_K, bytesPerBlock: 176 },
  Q6_K: { type: "Q6_K", ggmlId: 14, blockSize: QK_K, bytesPerBlock: 210 },
  I8: { type: "I8", ggmlId: 24, blockSize: 1, bytesPerBlock: 1 },
  BF16: { type: "BF16", ggmlId: 30, blockSize: 1, bytesPerBlock: 2 },
  U8: { type: "U8", blockSize: 1, bytesPerBlock: 1 },
  U32: { type: "U32", blockSize: 1, bytesPerBlock: 4 },
  MLX4: { type: "MLX4", blockSize: 8, bytesPerBlock: 4 },
  MLX8: { type: "MLX8", blockSize: 4, bytesPerBlock: 4 },
};

const BY_GGML_ID = new Map<number, TypeLayout>(
  Object.values(LAYOUTS).filter((l) => l.ggmlId !== undefined).map((l) => [l.ggmlId!, l]),
);

/** ggml types we know by name but do not read, for a clearer error than a bare number. */
const GGML_NAMES: Record<number, string> = {
  6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
  18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 25: "I16", 26: "I32",
  27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};

export function layoutOfGgmlId(id: number): TypeLayout | undefined {
  return BY_GGML_ID.get(id);
}

export function ggmlTypeName(id: number): string {
  return BY_GGML_ID.get(id)?.type ?? GGML_NAMES[id] ?? `unknown type ${id}`;
}

/** Bytes taken by `n` elements; undefined when n is not a whole number of blocks. */
export function byteSize(type: TensorType, n: number): number | undefined {
  const l = LAYOUTS[type];
  if (n % l.blockSize !== 0) return undefined;
  return (n / l.blockSize) * l.bytesPerBlock;
}
