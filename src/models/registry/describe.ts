import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { TesseraError } from "../../errors.js";
import { configFromGguf, configFromHfConfig } from "../config.js";
import { readRawHeader, type GgufRawHeader } from "../gguf/reader.js";
import { ggmlTypeName, layoutOfGgmlId } from "../quant/types.js";
import { SafetensorsSet } from "../safetensors/folder.js";
import { RandomAccessFile } from "../source/random-access-file.js";
import { mlxQuantParams } from "../source/mlx-params.js";

/**
 * What the registry knows of a model on disk without loading it: read from headers only, so a 40 GB
 * file is described in milliseconds, and for architectures or tensor types the engine cannot run
 * too (they are listed with `unsupported` saying why).
 *
 * The digest identifies a model's content across nodes: sha256 of the GGUF header and tensor table
 * (bytes [0, data offset)), or for a safetensors/MLX folder of config.json and every .safetensors
 * file's name and header. Two copies of a model agree on it, a node holding only a shard of a GGUF
 * (same header, other bytes absent) too. It is an identity, not an integrity check: the weights
 * themselves are verified against the hub's sha256 when they are downloaded.
 */
export type ModelFormat = "gguf" | "safetensors" | "mlx";

export interface ModelMeta {
  format: ModelFormat;
  /** GGUF general.architecture, or config.json model_type. */
  architecture: string;
  parameters: number;
  /** Bytes on disk of the model's files. */
  bytes: number;
  /** GGUF file type (Q4_K_M, Q8_0, F16...), MLX "4bit"/"8bit", or the dominant safetensors dtype. */
  quantization: string;
  contextLength: number | null;
  layers: number | null;
  /** GGUF general.description (the demo model says what it is here). */
  description?: string;
  /** Why the engine cannot run this model, when it cannot. */
  unsupported?: string;
}

export interface DescribedModel {
  /** What openModel takes: the GGUF file, or the folder. */
  path: string;
  /** 64 hex digits (see above). */
  digest: string;
  meta: ModelMeta;
  /** The files the model consists of, relative to `dir`: what a peer or a download transfers. */
  files: { name: string; bytes: number }[];
  /** The folder `files` are relative to. */
  dir: string;
}

/** llama.cpp's general.file_type (enum llama_ftype) → the name its quantize tool uses. */
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
  13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
  21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
  29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
};

const HF_SIDE_FILES = /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|chat_template)\.json$|^(tokenizer\.model|chat_template\.jinja|vocab\.json|merges\.txt)$|\.safetensors(\.index\.json)?$/;

function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function errorText(e: unknown): string {
  const m = (e as Error).message ?? String(e);
  // TesseraErrors carry the path first; the registry shows the path elsewhere.
  return m.replace(/^[^:]*\/[^:]*: /, "");
}

/** Describes a model file or folder (anything openModel opens). */
export async function describeModel(path: string): Promise<DescribedModel> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new TesseraError("no such file or folder", path);
  }
  if (st.isDirectory()) {
    const entries = await readdir(path);
    if (entries.includes("config.json") && entries.some((e) => e.endsWith(".safetensors"))) return describeHfFolder(path, entries);
    const ggufs = entries.filter((e) => e.endsWith(".gguf"));
    if (ggufs.length === 1) return { ...(await describeGguf(join(path, ggufs[0]!))), path };
    if (ggufs.length > 1) throw new TesseraError(`folder holds ${ggufs.length} .gguf files (${ggufs.join(", ")}); name one`, path);
    throw new TesseraError("folder holds no model (no .gguf file, no config.json with .safetensors)", path);
  }
  return describeGguf(path);
}

export async function describeGguf(path: string): Promise<DescribedModel> {
  const file = await RandomAccessFile.open(path);
  let h: GgufRawHeader;
  let digest: string;
  try {
    h = await readRawHeader(file);
    digest = createHash("sha256").update(await file.read(0, h.dataOffset, "header")).digest("hex");
  } finally {
    await file.close();
  }
  const m = h.metadata;
  const arch = typeof m.get("general.architecture") === "string" ? (m.get("general.architecture") as string) : "unknown";
  let parameters = 0;
  const byType = new Map<string, number>();
  for (const t of h.tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    parameters += n;
    if (t.dims.length >= 2) byType.set(ggmlTypeName(t.ggmlType), (byType.get(ggmlTypeName(t.ggmlType)) ?? 0) + n);
  }
  const fileType = num(m.get("general.file_type"));
  const quantization = (fileType !== undefined ? FILE_TYPES[fileType] : undefined) ?? dominant(byType) ?? "unknown";
  let unsupported: string | undefined;
  const unreadable = h.tensors.find((t) => !layoutOfGgmlId(t.ggmlType));
  if (unreadable) unsupported = `tensor type ${ggmlTypeName(unreadable.ggmlType)} is not supported`;
  else {
    try {
      configFromGguf(m, path, h.tensors.map((t) => t.name));
    } catch (e) {
      unsupported = errorText(e);
    }
  }
  const description = m.get("general.description");
  const meta: ModelMeta = {
    format: "gguf",
    architecture: arch,
    parameters,
    bytes: file.size,
    quantization,
    contextLength: num(m.get(`${arch}.context_length`)) ?? null,
    layers: num(m.get(`${arch}.block_count`)) ?? null,
    ...(typeof description === "string" ? { description } : {}),
    ...(unsupported ? { unsupported } : {}),
  };
  const dir = join(path, "..");
  return { path, digest, meta, files: [{ name: basename(path), bytes: file.size }], dir };
}

async function describeHfFolder(dir: string, entries: string[]): Promise<DescribedModel> {
  const configPath = join(dir, "config.json");
  const configText = await readFile(configPath, "utf8");
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(configText) as Record<string, unknown>;
  } catch (e) {
    throw new TesseraError(`not valid JSON (${(e as Error).message})`, configPath);
  }
  const text = (typeof json.text_config === "object" && json.text_config !== null ? json.text_config : json) as Record<string, unknown>;
  let quant: ReturnType<typeof mlxQuantParams>;
  let unsupported: string | undefined;
  try {
    quant = mlxQuantParams(json, configPath);
  } catch (e) {
    unsupported = errorText(e);
  }
  const set = await SafetensorsSet.openFolder(dir);
  const hash = createHash("sha256").update("config.json\0").update(configText);
  let parameters = 0;
  const byDtype = new Map<string, number>();
  try {
    for (const f of set.files.map((f) => f.path).sort()) {
      const raf = await RandomAccessFile.open(f);
      try {
        const len = Number(new DataView((await raf.read(0, 8, "header length")).buffer).getBigUint64(0, true));
        hash.update(`\0${basename(f)}\0`).update(await raf.read(0, 8 + len, "header"));
      } finally {
        await raf.close();
      }
    }
    const quantized = new Set(set.tensors.filter((t) => t.name.endsWith(".scales")).map((t) => t.name.slice(0, -".scales".length)));
    for (const t of set.tensors) {
      const base = t.name.replace(/\.(weight|scales|biases)$/, "");
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (quantized.has(base)) {
        if (!t.name.endsWith(".weight")) continue;
        const bits = quant?.forModule(base)?.bits ?? quant?.bits ?? 4;
        parameters += (n * 32) / bits;
      } else {
        parameters += n;
      }
      byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + t.byteLength);
    }
  } finally {
    await set.close();
  }
  if (!unsupported) {
    try {
      configFromHfConfig(json, configPath);
    } catch (e) {
      unsupported = errorText(e);
    }
  }
  const files: { name: string; bytes: number }[] = [];
  for (const e of entries.sort()) {
    if (!HF_SIDE_FILES.test(e)) continue;
    const s = await stat(join(dir, e));
    if (s.isFile()) files.push({ name: e, bytes: s.size });
  }
  const arch = typeof json.model_type === "string" ? json.model_type : Array.isArray(json.architectures) ? String(json.architectures[0]) : "unknown";
  const groupSuffix = quant && quant.groupSize !== 64 ? `-g${quant.groupSize}` : "";
  const meta: ModelMeta = {
    format: quant ? "mlx" : "safetensors",
    architecture: arch,
    parameters,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    quantization: quant ? `${quant.bits}bit${groupSuffix}` : (dominant(byDtype) ?? "unknown"),
    contextLength: num(text.max_position_embeddings) ?? null,
    layers: num(text.num_hidden_layers) ?? null,
    ...(unsupported ? { unsupported } : {}),
  };
  return { path: dir, digest: hash.digest("hex"), meta, files, dir };
}

function dominant(counts: Map<string, number>): string | undefined {
  let best: string | undefined;
  let most = -1;
  for (const [k, n] of counts) if (n > most) [best, most] = [k, n];
  return best;
}

/** A model's digest (see the top of this file): what a runner checks before it loads its shard. */
export async function modelDigest(path: string): Promise<string> {
  return (await describeModel(path)).digest;
}
