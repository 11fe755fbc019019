import { TesseraError } from "../../errors.js";
import { byteSize, LAYOUTS } from "../quant/types.js";
import { OutputFile, resolveData, type TensorData } from "../source/output-file.js";
import type { TensorType } from "../types.js";
import { ByteWriter } from "./byte-writer.js";
import { DEFAULT_ALIGNMENT, GGUF_MAGIC } from "./reader.js";
import { VALUE_TYPE_IDS, type GgufArray, type GgufScalar, type GgufScalarType, type GgufValue } from "./values.js";

export interface GgufTensorToWrite {
  name: string;
  type: TensorType;
  /** Row-major, outermost first (written reversed, as GGUF wants). */
  shape: number[];
  data: TensorData;
}

export interface GgufWriteOptions {
  metadata: Iterable<[string, GgufValue]>;
  tensors: GgufTensorToWrite[];
  /** Written as general.alignment (u32) when not 32 and not already in the metadata. */
  alignment?: number;
  version?: 2 | 3;
}

const utf8 = new TextEncoder();

function writeString(w: ByteWriter, s: string): void {
  const b = utf8.encode(s);
  w.u64(b.length);
  w.bytes(b);
}

function writeScalar(w: ByteWriter, type: GgufScalarType, v: GgufScalar, key: string): void {
  const bad = () => new TesseraError(`metadata '${key}': ${String(v)} is not a valid ${type}`);
  switch (type) {
    case "string":
      if (typeof v !== "string") throw bad();
      return writeString(w, v);
    case "bool":
      if (typeof v !== "boolean") throw bad();
      return w.u8(v ? 1 : 0);
    case "u64":
    case "i64":
      if (typeof v !== "bigint" && !Number.isSafeInteger(v)) throw bad();
      return type === "u64" ? w.u64(v as bigint | number) : w.i64(v as bigint | number);
    default: {
      if (typeof v !== "number") throw bad();
      const ranges: Record<string, [number, number]> = {
        u8: [0, 255], i8: [-128, 127], u16: [0, 65535], i16: [-32768, 32767], u32: [0, 2 ** 32 - 1], i32: [-(2 ** 31), 2 ** 31 - 1],
      };
      const r = ranges[type];
      if (r && (!Number.isInteger(v) || v < r[0] || v > r[1])) throw bad();
      w[type as "u8"](v);
    }
  }
}

function writeArray(w: ByteWriter, a: GgufArray, key: string): void {
  w.u32(VALUE_TYPE_IDS[a.itemType]);
  w.u64(a.value.length);
  if (a.itemType === "array") for (const inner of a.value as GgufArray[]) writeArray(w, inner, key);
  else for (const v of a.value as GgufScalar[]) writeScalar(w, a.itemType, v, key);
}

function writeValue(w: ByteWriter, key: string, v: GgufValue): void {
  w.u32(VALUE_TYPE_IDS[v.type]);
  if (v.type === "array") writeArray(w, v, key);
  else writeScalar(w, v.type, v.value, key);
}

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/**
 * Writes a GGUF file: header in one piece, then each tensor's data at its aligned offset, asking for the
 * data of one tensor at a time. Layout as described in reader.ts.
 */
export async function writeGguf(path: string, opts: GgufWriteOptions): Promise<void> {
  const metadata = new Map(opts.metadata);
  let alignment = opts.alignment ?? DEFAULT_ALIGNMENT;
  const given = metadata.get("general.alignment");
  if (given !== undefined) alignment = Number(given.value);
  else if (alignment !== DEFAULT_ALIGNMENT) metadata.set("general.alignment", { type: "u32", value: alignment });
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new TesseraError(`alignment must be a power of two, got ${alignment}`, path);
  }

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(opts.version ?? 3);
  w.u64(opts.tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    writeString(w, key);
    writeValue(w, key, value);
  }
  const sizes: number[] = [];
  let rel = 0;
  for (const t of opts.tensors) {
    const layout = LAYOUTS[t.type];
    if (layout.ggmlId === undefined) throw new TesseraError(`tensor '${t.name}': type ${t.type} cannot be stored in GGUF`, path);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const size = byteSize(t.type, n);
    if (size === undefined || (t.shape.at(-1) ?? 1) % layout.blockSize !== 0) {
      throw new TesseraError(`tensor '${t.name}': row length ${t.shape.at(-1)} is not a multiple of the ${t.type} block size ${layout.blockSize}`, path);
    }
    writeString(w, t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]!);
    w.u32(layout.ggmlId);
    w.u64(rel);
    sizes.push(size);
    rel = padTo(rel + size, alignment);
  }
  w.zeros(padTo(w.length, alignment) - w.length);

  const out = await OutputFile.create(path);
  try {
    await out.put(w.result());
    const zeros = new Uint8Array(alignment);
    for (let i = 0; i < opts.tensors.length; i++) {
      const t = opts.tensors[i]!;
      const data = await resolveData(t.data);
      if (data.length !== sizes[i]) {
        throw new TesseraError(`tensor '${t.name}': got ${data.length} bytes of ${t.type} data for shape [${t.shape.join(", ")}], expected ${sizes[i]}`, path);
      }
      await out.put(data);
      const pad = padTo(data.length, alignment) - data.length;
      if (pad > 0) await out.put(zeros.subarray(0, pad));
    }
  } finally {
    await out.close();
  }
}
