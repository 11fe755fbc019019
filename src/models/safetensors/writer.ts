import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TesseraError } from "../../errors.js";
import { OutputFile, resolveData, type TensorData } from "../source/output-file.js";
import { DTYPE_SIZES } from "./dtypes.js";

export interface SafetensorsTensorToWrite {
  name: string;
  dtype: string;
  /** Row-major, as stored. */
  shape: number[];
  data: TensorData;
}

function expectedBytes(t: SafetensorsTensorToWrite, path: string): number {
  const size = DTYPE_SIZES[t.dtype];
  if (size === undefined) throw new TesseraError(`tensor '${t.name}': unknown dtype ${t.dtype}`, path);
  return t.shape.reduce((a, b) => a * b, 1) * size;
}

/** One safetensors file (layout in reader.ts); the header is space-padded to a multiple of 8 bytes. */
export async function writeSafetensors(path: string, tensors: SafetensorsTensorToWrite[], metadata?: Record<string, string>): Promise<number> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const n = expectedBytes(t, path);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    sizes.push(n);
    offset += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = await OutputFile.create(path);
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    await out.put(len);
    await out.put(json);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const data = await resolveData(t.data);
      if (data.length !== sizes[i]) {
        throw new TesseraError(`tensor '${t.name}': got ${data.length} bytes of ${t.dtype} for shape [${t.shape.join(", ")}], expected ${sizes[i]}`, path);
      }
      await out.put(data);
    }
    return out.position;
  } finally {
    await out.close();
  }
}

export const INDEX_FILE = "model.safetensors.index.json";

/**
 * Splits tensors, in order, into shards of at most `maxShardBytes` of data each (a bigger tensor gets a
 * shard of its own), named model-0000i-of-0000N.safetensors as Hugging Face does, plus the index file
 * {"metadata": {"total_size": bytes}, "weight_map": {tensor: shard file}}. Returns the shard file names.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: SafetensorsTensorToWrite[],
  opts: { maxShardBytes: number; metadata?: Record<string, string> },
): Promise<string[]> {
  const groups: SafetensorsTensorToWrite[][] = [];
  let current: SafetensorsTensorToWrite[] = [];
  let currentBytes = 0;
  let total = 0;
  for (const t of tensors) {
    const n = expectedBytes(t, dir);
    total += n;
    if (current.length > 0 && currentBytes + n > opts.maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += n;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const pad = (i: number) => String(i).padStart(5, "0");
  const names = groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < groups.length; i++) {
    await writeSafetensors(join(dir, names[i]!), groups[i]!, opts.metadata);
    for (const t of groups[i]!) weightMap[t.name] = names[i]!;
  }
  await writeFile(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n");
  return names;
}
