import { TesseraError } from "../../errors.js";
import { RandomAccessFile } from "../source/random-access-file.js";
import { readStrided, sliceToStrided } from "../source/strided.js";
import type { TensorSlice, TensorType } from "../types.js";
import { DTYPE_SIZES, DTYPE_TYPES, isReadableDtype } from "./dtypes.js";

/**
 * safetensors layout: u64 little-endian header length N · N bytes of JSON (often space-padded to a
 * multiple of 8) · data. The JSON maps each tensor name to { dtype, shape (row-major), data_offsets:
 * [begin, end) relative to the start of the data }, plus an optional "__metadata__" of string pairs.
 */
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsTensorInfo {
  name: string;
  /** The dtype as written in the file. */
  dtype: string;
  /** Our storage type; undefined for dtypes we do not read (their tensors fail only when read). */
  type: TensorType | undefined;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
  file: string;
}

export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsTensorInfo>;

  private constructor(
    private readonly file: RandomAccessFile,
    readonly tensors: SafetensorsTensorInfo[],
    readonly metadata: Record<string, string>,
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get path(): string {
    return this.file.path;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const file = await RandomAccessFile.open(path);
    try {
      const { tensors, metadata } = await parseHeader(file);
      return new SafetensorsFile(file, tensors, metadata);
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** Stored bytes of a tensor or a row/column range of it (see strided.ts). */
  async read(name: string, slice?: TensorSlice): Promise<{ info: SafetensorsTensorInfo; shape: number[]; data: Uint8Array }> {
    const info = this.byName.get(name);
    if (!info) throw new TesseraError(`no tensor named '${name}'`, this.path);
    if (!info.type) throw new TesseraError(`tensor '${name}' has dtype ${info.dtype}, which is not supported (supported: ${Object.keys(DTYPE_TYPES).join(", ")})`, this.path);
    const r = sliceToStrided(`${this.path}: tensor ${name}`, info.type, info.shape, slice);
    const data = await readStrided(this.file, info.offset, r, `tensor ${name}`);
    return { info, shape: r.shape, data };
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

async function parseHeader(file: RandomAccessFile): Promise<{ tensors: SafetensorsTensorInfo[]; metadata: Record<string, string> }> {
  const path = file.path;
  if (file.size < 8) throw new TesseraError(`file is truncated: ${file.size} bytes is too short for a safetensors header`, path);
  const lenBytes = await file.read(0, 8, "header length");
  const len = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (len > BigInt(file.size - 8)) {
    throw new TesseraError(`header length ${len} runs past the end of the file (${file.size} bytes); truncated or not a safetensors file`, path);
  }
  if (len > BigInt(MAX_HEADER)) throw new TesseraError(`header length ${len} is larger than the 100 MB limit`, path);
  const n = Number(len);
  const text = new TextDecoder().decode(await file.read(8, n, "header"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TesseraError(`header is not valid JSON (${(e as Error).message}); not a safetensors file?`, path);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new TesseraError("header is not a JSON object", path);
  const dataStart = 8 + n;
  const dataLength = file.size - dataStart;
  const tensors: SafetensorsTensorInfo[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null || typeof e.dtype !== "string" || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
      throw new TesseraError(`${where} needs dtype, shape and data_offsets`, path);
    }
    const size = DTYPE_SIZES[e.dtype];
    if (size === undefined) throw new TesseraError(`${where} has unknown dtype ${e.dtype}`, path);
    const shape = e.shape as unknown[];
    if (!shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) throw new TesseraError(`${where} has a bad shape ${JSON.stringify(shape)}`, path);
    const [begin, end] = e.data_offsets as unknown[];
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || (begin as number) < 0 || (end as number) < (begin as number)) {
      throw new TesseraError(`${where} has bad data_offsets ${JSON.stringify(e.data_offsets)}`, path);
    }
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const byteLength = (end as number) - (begin as number);
    if (elements * size !== byteLength) {
      throw new TesseraError(`${where}: shape [${shape.join(", ")}] of ${e.dtype} needs ${elements * size} bytes but data_offsets span ${byteLength}`, path);
    }
    if ((end as number) > dataLength) {
      throw new TesseraError(`${where} data (up to byte ${dataStart + (end as number)}) lies past the end of the file (${file.size} bytes); the file is truncated`, path);
    }
    tensors.push({
      name,
      dtype: e.dtype,
      type: isReadableDtype(e.dtype) ? DTYPE_TYPES[e.dtype] : undefined,
      shape: shape as number[],
      offset: dataStart + (begin as number),
      byteLength,
      file: path,
    });
  }
  return { tensors, metadata };
}
