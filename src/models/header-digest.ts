import { createHash } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { TesseraError } from "../errors.js";
import { GgufFile } from "./gguf/reader.js";
import { RandomAccessFile } from "./source/random-access-file.js";

/**
 * A digest that tells two copies of a model apart without reading its weights: sha256 over the
 * file's header and tensor table, plus its size — for GGUF the bytes before the tensor data (magic,
 * metadata, tensor infos with their types, shapes and offsets); for safetensors every file's JSON
 * header (sorted by name), its size, and config.json. Nodes compare it before loading a shard, so
 * two different files at the same path are caught before they compute garbage together.
 */
export async function modelHeaderDigest(path: string): Promise<string> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new TesseraError("no such file or folder", path);
  }
  const h = createHash("sha256");
  if (st.isDirectory()) {
    const names = (await readdir(path)).sort();
    const ggufs = names.filter((n) => n.endsWith(".gguf"));
    const shards = names.filter((n) => n.endsWith(".safetensors"));
    if (shards.length === 0 && ggufs.length === 1) return modelHeaderDigest(join(path, ggufs[0]!));
    if (shards.length === 0) throw new TesseraError("folder holds no model to digest", path);
    for (const n of shards) await safetensorsHeader(join(path, n), h);
    if (names.includes("config.json")) h.update(await readFile(join(path, "config.json")));
    return h.digest("hex");
  }
  if (basename(path).endsWith(".safetensors")) {
    await safetensorsHeader(path, h);
    const config = join(dirname(path), "config.json");
    h.update(await readFile(config).catch(() => Buffer.alloc(0)));
    return h.digest("hex");
  }
  const gguf = await GgufFile.open(path);
  const size = gguf.fileSize;
  const end = gguf.dataOffset;
  await gguf.close();
  const f = await RandomAccessFile.open(path);
  try {
    h.update(await f.read(0, Math.min(end, f.size), "GGUF header"));
  } finally {
    await f.close();
  }
  h.update(`size:${size}`);
  return h.digest("hex");
}

async function safetensorsHeader(file: string, h: ReturnType<typeof createHash>): Promise<void> {
  const f = await RandomAccessFile.open(file);
  try {
    const n = Number(Buffer.from(await f.read(0, 8, "safetensors header length")).readBigUInt64LE(0));
    h.update(basename(file));
    h.update(await f.read(8, n, "safetensors header"));
    h.update(`size:${f.size}`);
  } finally {
    await f.close();
  }
}
