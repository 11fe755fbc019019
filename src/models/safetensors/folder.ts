import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { TesseraError } from "../../errors.js";
import type { TensorSlice } from "../types.js";
import { SafetensorsFile, type SafetensorsTensorInfo } from "./reader.js";
import { INDEX_FILE } from "./writer.js";

const SHARD_NAME = /-(\d+)-of-(\d+)\.safetensors$/;

/**
 * The tensors of one or more safetensors files seen as one set: a sharded folder with
 * model.safetensors.index.json ({"weight_map": {tensor: file}}), a folder of .safetensors files, or
 * a single file.
 */
export class SafetensorsSet {
  private readonly byName = new Map<string, { file: SafetensorsFile; info: SafetensorsTensorInfo }>();

  private constructor(
    readonly path: string,
    readonly files: SafetensorsFile[],
  ) {
    for (const file of files) {
      for (const info of file.tensors) {
        if (this.byName.has(info.name)) {
          throw new TesseraError(`tensor '${info.name}' is in both ${this.byName.get(info.name)!.info.file} and ${info.file}`, path);
        }
        this.byName.set(info.name, { file, info });
      }
    }
  }

  static async openFiles(path: string, paths: string[]): Promise<SafetensorsSet> {
    const files: SafetensorsFile[] = [];
    try {
      for (const p of paths) files.push(await SafetensorsFile.open(p));
      return new SafetensorsSet(path, files);
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
  }

  /** A folder: through its index when there is one, else every .safetensors file in it. */
  static async openFolder(dir: string): Promise<SafetensorsSet> {
    const entries = await readdir(dir);
    if (entries.includes(INDEX_FILE)) return openIndexed(dir);
    const shards = entries.filter((e) => e.endsWith(".safetensors")).sort();
    if (shards.length === 0) throw new TesseraError("no .safetensors files in this folder", dir);
    checkShardSeries(dir, shards);
    return SafetensorsSet.openFiles(dir, shards.map((s) => join(dir, s)));
  }

  get tensors(): SafetensorsTensorInfo[] {
    return [...this.byName.values()].map((e) => e.info);
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.byName.get(name)?.info;
  }

  async read(name: string, slice?: TensorSlice): Promise<{ info: SafetensorsTensorInfo; shape: number[]; data: Uint8Array }> {
    const e = this.byName.get(name);
    if (!e) throw new TesseraError(`no tensor named '${name}'`, this.path);
    return e.file.read(name, slice);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

/** Without an index, shards named *-0000i-of-0000N must all be there. */
function checkShardSeries(dir: string, shards: string[]): void {
  const series = new Map<string, { total: number; seen: Set<number> }>();
  for (const s of shards) {
    const m = SHARD_NAME.exec(s);
    if (!m) continue;
    const prefix = s.slice(0, m.index);
    const entry = series.get(prefix) ?? { total: Number(m[2]), seen: new Set<number>() };
    entry.seen.add(Number(m[1]));
    series.set(prefix, entry);
  }
  for (const [prefix, { total, seen }] of series) {
    for (let i = 1; i <= total; i++) {
      if (!seen.has(i)) {
        const pad = (k: number) => String(k).padStart(5, "0");
        throw new TesseraError(`shard ${prefix}-${pad(i)}-of-${pad(total)}.safetensors is missing (${seen.size} of ${total} present)`, dir);
      }
    }
  }
}

async function openIndexed(dir: string): Promise<SafetensorsSet> {
  const indexPath = join(dir, INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw new TesseraError(`not valid JSON (${(e as Error).message})`, indexPath);
  }
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null) throw new TesseraError("has no weight_map object", indexPath);
  const map = weightMap as Record<string, unknown>;
  const shardNames = [...new Set(Object.values(map))];
  for (const s of shardNames) {
    if (typeof s !== "string" || s !== basename(s)) throw new TesseraError(`weight_map names '${String(s)}', which is not a file name in this folder`, indexPath);
  }
  const present = new Set(await readdir(dir));
  const missing = (shardNames as string[]).filter((s) => !present.has(s));
  if (missing.length > 0) {
    throw new TesseraError(`index names shard file${missing.length > 1 ? "s" : ""} ${missing.join(", ")}, which ${missing.length > 1 ? "are" : "is"} missing from the folder`, indexPath);
  }
  const set = await SafetensorsSet.openFiles(dir, (shardNames as string[]).map((s) => join(dir, s)));
  for (const [tensor, shard] of Object.entries(map)) {
    const info = set.tensor(tensor);
    if (!info || basename(info.file) !== shard) {
      await set.close();
      throw new TesseraError(`index puts tensor '${tensor}' in ${String(shard)}, but that file does not contain it`, indexPath);
    }
  }
  return set;
}
