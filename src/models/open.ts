import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { TesseraError } from "../errors.js";
import { RandomAccessFile } from "./source/random-access-file.js";
import { GgufSource } from "./source/gguf-source.js";
import { SafetensorsSource } from "./source/safetensors-source.js";
import { SafetensorsSet } from "./safetensors/folder.js";
import type { ModelSource } from "./types.js";

const GGUF_MAGIC = Buffer.from("GGUF");

async function startsWithGgufMagic(path: string): Promise<boolean> {
  const f = await RandomAccessFile.open(path);
  try {
    if (f.size < 4) return false;
    return Buffer.from(await f.read(0, 4, "magic")).equals(GGUF_MAGIC);
  } finally {
    await f.close();
  }
}

/**
 * Opens a model from disk, whatever its format:
 * - a file starting with the GGUF magic;
 * - a folder with config.json and safetensors (sharded with an index, or not); MLX when config.json
 *   has `quantization`;
 * - a single .safetensors file with config.json beside it (or the index file of a sharded folder);
 * - a folder holding exactly one .gguf file.
 */
export async function openModel(path: string): Promise<ModelSource> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new TesseraError("no such file or folder", path);
  }
  if (st.isDirectory()) {
    const entries = await readdir(path);
    if (entries.includes("config.json") && entries.some((e) => e.endsWith(".safetensors") || e.endsWith(".safetensors.index.json"))) {
      return SafetensorsSource.open(path, join(path, "config.json"));
    }
    const ggufs = entries.filter((e) => e.endsWith(".gguf"));
    if (ggufs.length === 1) return GgufSource.open(join(path, ggufs[0]!));
    if (ggufs.length > 1) throw new TesseraError(`folder holds ${ggufs.length} .gguf files (${ggufs.join(", ")}); name one`, path);
    if (entries.some((e) => e.endsWith(".safetensors"))) throw new TesseraError("safetensors folder has no config.json", path);
    throw new TesseraError("folder holds no model (no .gguf file, no config.json with .safetensors)", path);
  }
  if (basename(path).endsWith(".safetensors.index.json")) return openModel(dirname(path));
  if (await startsWithGgufMagic(path)) return GgufSource.open(path);
  if (path.endsWith(".safetensors")) {
    const configPath = join(dirname(path), "config.json");
    const set = await SafetensorsSet.openFiles(path, [path]);
    try {
      await stat(configPath);
    } catch {
      await set.close();
      throw new TesseraError(`a single .safetensors file needs config.json beside it (${basename(configPath)} not found)`, path);
    }
    return SafetensorsSource.open(path, configPath, set);
  }
  if (path.endsWith(".gguf")) return GgufSource.open(path); // wrong magic: the reader says so
  throw new TesseraError("not a model file: neither GGUF (magic) nor .safetensors", path);
}
