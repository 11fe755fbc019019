import { TesseraError } from "../../errors.js";
import { ggmlTypeName, layoutOfGgmlId } from "../quant/types.js";
import { RandomAccessFile } from "../source/random-access-file.js";
import { readStrided, sliceToStrided } from "../source/strided.js";
import type { TensorSlice, TensorType } from "../types.js";
import { HeaderCursor } from "./header-cursor.js";
import {
  MIN_VALUE_BYTES, plainValue, VALUE_TYPES_BY_ID,
  type GgufArray, type GgufScalar, type GgufScalarType, type GgufValue,
} from "./values.js";

/**
 * GGUF file layout (little-endian; versions 2 and 3 are identical here, v1 used 32-bit counts):
 *   u32 magic "GGUF" · u32 version · u64 tensor_count · u64 metadata_kv_count
 *   metadata_kv_count × { string key · u32 value_type · value }        (see values.ts)
 *   tensor_count × { string name · u32 n_dims · u64 dims[n_dims] (innermost first) · u32 ggml_type ·
 *                    u64 offset (relative to the data section, a multiple of the alignment) }
 *   padding to `general.alignment` (default 32) · data section
 */
export const GGUF_MAGIC = 0x46554747;
export const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
/** A key-value pair takes at least key length (8) + value type (4) + a 1-byte value. */
const MIN_KV_BYTES = 13;
/** A tensor info takes at least name length (8) + n_dims (4) + type (4) + offset (8). */
const MIN_TENSOR_INFO_BYTES = 24;
const MAX_ARRAY_DEPTH = 8;

export interface GgufTensorInfo {
  name: string;
  type: TensorType;
  ggmlType: number;
  /** As stored: innermost (contiguous) dimension first. */
  dims: number[];
  /** Row-major, outermost first (dims reversed). */
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export interface GgufHeader {
  version: number;
  /** Metadata with its stored value types. */
  typedMetadata: Map<string, GgufValue>;
  /** The same metadata as plain JS values (see `plainValue`). */
  metadata: Map<string, unknown>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
}

export class GgufFile implements GgufHeader {
  readonly path: string;
  readonly version: number;
  readonly typedMetadata: Map<string, GgufValue>;
  readonly metadata: Map<string, unknown>;
  readonly tensors: GgufTensorInfo[];
  readonly alignment: number;
  readonly dataOffset: number;
  private readonly byName: Map<string, GgufTensorInfo>;

  private constructor(private readonly file: RandomAccessFile, h: GgufHeader) {
    this.path = file.path;
    this.version = h.version;
    this.typedMetadata = h.typedMetadata;
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.alignment = h.alignment;
    this.dataOffset = h.dataOffset;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  get fileSize(): number {
    return this.file.size;
  }

  /** Reads the header (metadata and tensor infos) only; tensor data stays on disk until asked for. */
  static async open(path: string): Promise<GgufFile> {
    const file = await RandomAccessFile.open(path);
    try {
      return new GgufFile(file, await parseHeader(file));
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** The stored bytes of a tensor, or of a row and/or column range of it (columns block-aligned). */
  async read(name: string, slice?: TensorSlice): Promise<{ info: GgufTensorInfo; shape: number[]; data: Uint8Array }> {
    const info = this.byName.get(name);
    if (!info) throw new TesseraError(`no tensor named '${name}'`, this.path);
    const r = sliceToStrided(`${this.path}: tensor ${name}`, info.type, info.shape, slice);
    const data = await readStrided(this.file, info.offset, r, `tensor ${name}`);
    return { info, shape: r.shape, data };
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** A tensor info as stored, before its type is checked: what a listing or a digest needs of files we cannot run. */
export interface GgufRawTensorInfo {
  name: string;
  ggmlType: number;
  /** As stored: innermost dimension first. */
  dims: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

export interface GgufRawHeader {
  version: number;
  typedMetadata: Map<string, GgufValue>;
  metadata: Map<string, unknown>;
  alignment: number;
  /** Absolute offset of the data section: bytes [0, dataOffset) are the header and the tensor table. */
  dataOffset: number;
  tensors: GgufRawTensorInfo[];
}

/** The header, metadata and tensor table, whatever the tensor types (see parseHeader for the checked form). */
export async function readRawHeader(file: RandomAccessFile): Promise<GgufRawHeader> {
  const path = file.path;
  const c = new HeaderCursor(file);
  if (file.size < 4) throw new TesseraError(`file is truncated: ${file.size} bytes is too short for a GGUF header`, path);
  await c.need(4, "magic");
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw new TesseraError(`not a GGUF file (magic ${magic.toString(16).padStart(8, "0")}, expected 46554747 "GGUF")`, path);
  }
  await c.need(4, "version");
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    const hint = version === 1 ? " (GGUF v1 is obsolete)" : version > 0xffff ? " (big-endian files are not supported)" : "";
    throw new TesseraError(`unsupported GGUF version ${version}${hint}; versions 2 and 3 are supported`, path);
  }
  await c.need(16, "header counts");
  const tensorCount = c.count("tensor count");
  const kvCount = c.count("metadata count");
  if (tensorCount * MIN_TENSOR_INFO_BYTES + kvCount * MIN_KV_BYTES > c.remaining) {
    throw new TesseraError(`header claims ${tensorCount} tensors and ${kvCount} metadata entries, which cannot fit in ${file.size} bytes (truncated or corrupt file)`, path);
  }

  const typedMetadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await c.string(`metadata key #${i}`);
    await c.need(4, `type of metadata '${key}'`);
    const typeId = c.u32();
    const type = VALUE_TYPES_BY_ID[typeId];
    if (type === undefined) throw new TesseraError(`metadata '${key}' has unknown value type ${typeId}`, path);
    typedMetadata.set(key, await readValue(c, type, key, path, 0));
  }
  const metadata = new Map<string, unknown>();
  for (const [k, v] of typedMetadata) metadata.set(k, plainValue(v));

  let alignment = DEFAULT_ALIGNMENT;
  const alignValue = typedMetadata.get("general.alignment");
  if (alignValue !== undefined) {
    const a = Number(alignValue.value);
    if (alignValue.type === "array" || !Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
      throw new TesseraError(`general.alignment must be a positive power of two, got ${String(alignValue.value)}`, path);
    }
    alignment = a;
  }

  const raw: { name: string; ggmlType: number; dims: number[]; rel: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string(`tensor name #${i}`);
    await c.need(4, `tensor '${name}' dimension count`);
    const nDims = c.u32();
    if (nDims > MAX_DIMS) throw new TesseraError(`tensor '${name}' has ${nDims} dimensions (at most ${MAX_DIMS})`, path);
    await c.need(8 * nDims + 12, `tensor '${name}' info`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.count(`tensor '${name}' dimension`));
    const ggmlType = c.u32();
    const rel = c.count(`tensor '${name}' offset`);
    raw.push({ name, ggmlType, dims, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = raw.map(({ name, ggmlType, dims, rel }) => ({ name, ggmlType, dims, offset: dataOffset + rel }));
  return { version, typedMetadata, metadata, alignment, dataOffset, tensors };
}

export async function parseHeader(file: RandomAccessFile): Promise<GgufHeader> {
  const path = file.path;
  const { version, typedMetadata, metadata, alignment, dataOffset, tensors: raw } = await readRawHeader(file);
  const tensors: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (const { name, ggmlType, dims, offset } of raw) {
    const rel = offset - dataOffset;
    const where = `tensor '${name}'`;
    if (seen.has(name)) throw new TesseraError(`${where} appears twice`, path);
    seen.add(name);
    const layout = layoutOfGgmlId(ggmlType);
    if (!layout) throw new TesseraError(`${where} has unsupported tensor type ${ggmlTypeName(ggmlType)} (ggml type ${ggmlType})`, path);
    const elements = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements) || elements > file.size * layout.blockSize) {
      throw new TesseraError(`${where} has absurd dimensions [${dims.join(", ")}] for a ${file.size}-byte file`, path);
    }
    if ((dims[0] ?? 1) % layout.blockSize !== 0) {
      throw new TesseraError(`${where} row length ${dims[0]} is not a multiple of the ${layout.type} block size ${layout.blockSize}`, path);
    }
    if (rel % alignment !== 0) throw new TesseraError(`${where} data offset ${rel} is not a multiple of the alignment ${alignment}`, path);
    const byteLength = (elements / layout.blockSize) * layout.bytesPerBlock;
    if (offset + byteLength > file.size) {
      throw new TesseraError(
        `${where} data (bytes ${offset}..${offset + byteLength}) lies past the end of the file (${file.size} bytes); the file is truncated or corrupt`,
        path,
      );
    }
    tensors.push({ name, type: layout.type, ggmlType, dims, shape: [...dims].reverse(), offset, byteLength });
  }
  return { version, typedMetadata, metadata, tensors, alignment, dataOffset };
}

async function readValue(c: HeaderCursor, type: GgufScalarType | "array", key: string, path: string, depth: number): Promise<GgufValue> {
  if (type === "array") return readArray(c, key, path, depth);
  if (type === "string") return { type, value: await c.string(`metadata '${key}' value`) };
  await c.need(MIN_VALUE_BYTES[type], `metadata '${key}' value`);
  return { type, value: readScalar(c, type) } as GgufValue;
}

function readScalar(c: HeaderCursor, type: Exclude<GgufScalarType, "string">): GgufScalar {
  switch (type) {
    case "u8": return c.u8();
    case "i8": return c.i8();
    case "u16": return c.u16();
    case "i16": return c.i16();
    case "u32": return c.u32();
    case "i32": return c.i32();
    case "f32": return c.f32();
    case "f64": return c.f64();
    case "u64": return c.u64();
    case "i64": return c.i64();
    case "bool": return c.u8() !== 0;
  }
}

async function readArray(c: HeaderCursor, key: string, path: string, depth: number): Promise<GgufArray> {
  if (depth >= MAX_ARRAY_DEPTH) throw new TesseraError(`metadata '${key}' nests arrays more than ${MAX_ARRAY_DEPTH} deep`, path);
  await c.need(12, `metadata '${key}' array header`);
  const itemTypeId = c.u32();
  const itemType = VALUE_TYPES_BY_ID[itemTypeId];
  if (itemType === undefined) throw new TesseraError(`metadata '${key}' is an array of unknown value type ${itemTypeId}`, path);
  const n = c.count(`metadata '${key}' array length`);
  if (n * MIN_VALUE_BYTES[itemType] > c.remaining) {
    throw new TesseraError(`metadata '${key}' array length ${n} cannot fit in the ${c.remaining} bytes left in the file`, path);
  }
  if (itemType === "array") {
    const value: GgufArray[] = [];
    for (let i = 0; i < n; i++) value.push(await readArray(c, key, path, depth + 1));
    return { type: "array", itemType, value };
  }
  const value: GgufScalar[] = new Array(n);
  if (itemType === "string") {
    for (let i = 0; i < n; i++) value[i] = c.bufferedString(`metadata '${key}' item ${i}`) ?? (await c.string(`metadata '${key}' item ${i}`));
  } else {
    const size = MIN_VALUE_BYTES[itemType];
    await c.need(n * size, `metadata '${key}' array`);
    for (let i = 0; i < n; i++) value[i] = readScalar(c, itemType);
  }
  return { type: "array", itemType, value };
}
