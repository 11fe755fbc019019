import type { TensorType } from "../types.js";

/** safetensors dtype names we read, with their element size and our storage type. */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "U32" | "I8" | "U8";

export const DTYPE_TYPES: Record<SafetensorsDtype, TensorType> = {
  F32: "F32", F16: "F16", BF16: "BF16", U32: "U32", I8: "I8", U8: "U8",
};

/** Element sizes of every dtype the format defines, so offsets can be checked even for types we skip. */
export const DTYPE_SIZES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};

export function isReadableDtype(d: string): d is SafetensorsDtype {
  return Object.hasOwn(DTYPE_TYPES, d);
}
