/**
 * GGUF metadata values, typed so that a writer can reproduce exactly what llama.cpp expects
 * (a u32 is not an i32 is not an f32 to it).
 *
 * Value type ids as stored in the file (u32):
 *   0 u8 · 1 i8 · 2 u16 · 3 i16 · 4 u32 · 5 i32 · 6 f32 · 7 bool (1 byte) · 8 string (u64 length + UTF-8)
 *   9 array (u32 item type, u64 count, items) · 10 u64 · 11 i64 · 12 f64
 */
export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigType = "u64" | "i64";
export type GgufScalarType = GgufNumberType | GgufBigType | "bool" | "string";
export type GgufScalar = number | bigint | boolean | string;

export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigType; value: bigint | number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | GgufArray;

export type GgufArray =
  | { type: "array"; itemType: GgufScalarType; value: GgufScalar[] }
  | { type: "array"; itemType: "array"; value: GgufArray[] };

export const VALUE_TYPE_IDS: Record<GgufScalarType | "array", number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};

export const VALUE_TYPES_BY_ID: (GgufScalarType | "array")[] = [
  "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
];

/** Bytes a value of this type takes at least (strings: their length field). */
export const MIN_VALUE_BYTES: Record<GgufScalarType | "array", number> = {
  u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, string: 8, array: 12, u64: 8, i64: 8, f64: 8,
};

/** Short constructors for metadata values: `gv.u32(32)`, `gv.arr("string", tokens)`. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  u64: (value: bigint | number): GgufValue => ({ type: "u64", value }),
  i64: (value: bigint | number): GgufValue => ({ type: "i64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  arr: (itemType: GgufScalarType, value: GgufScalar[]): GgufArray => ({ type: "array", itemType, value }),
  nested: (value: GgufArray[]): GgufArray => ({ type: "array", itemType: "array", value }),
};

/**
 * The plain JS form of a value (what `GgufFile.metadata` holds): numbers, booleans, strings, arrays;
 * u64/i64 become numbers when they fit exactly, bigints otherwise.
 */
export function plainValue(v: GgufValue): unknown {
  if (v.type === "array") {
    if (v.itemType === "array") return (v.value as GgufArray[]).map(plainValue);
    if (v.itemType === "u64" || v.itemType === "i64") return (v.value as (bigint | number)[]).map(plainBig);
    return v.value;
  }
  if (v.type === "u64" || v.type === "i64") return plainBig(v.value);
  return v.value;
}

function plainBig(x: GgufScalar): number | bigint {
  if (typeof x !== "bigint") return x as number;
  const n = Number(x);
  return Number.isSafeInteger(n) ? n : x;
}
