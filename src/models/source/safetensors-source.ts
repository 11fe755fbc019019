import { readFile } from "node:fs/promises";
import { TesseraError } from "../../errors.js";
import { configFromHfConfig } from "../config.js";
import { SafetensorsSet } from "../safetensors/folder.js";
import type { SafetensorsTensorInfo } from "../safetensors/reader.js";
import type { ModelConfig, ModelSource, RawTensor, TensorInfo, TensorSlice } from "../types.js";
import { checkTensorShapes } from "./check-shapes.js";
import { mlxQuantParams, type MlxParams } from "./mlx-params.js";
import { hfToCanonical, splitSuffix } from "./names.js";

/** How one canonical tensor is stored: a plain tensor, or MLX packed values with scales and biases. */
type Entry =
  | { kind: "plain"; info: TensorInfo; file: string }
  | { kind: "mlx"; info: TensorInfo; file: string; scales: string; biases: string; bits: 4 | 8; scaleType: "F32" | "F16" | "BF16" };

function storedType(t: SafetensorsTensorInfo, path: string) {
  if (!t.type) throw new TesseraError(`tensor '${t.name}' has dtype ${t.dtype}, which is not supported`, path);
  return t.type;
}

/**
 * A Hugging Face safetensors model (one file or a folder, sharded or not) with its config.json, as a
 * ModelSource under canonical names. MLX affine-quantized weights (config.json `quantization`) are one
 * tensor of type MLX4/MLX8 whose reads carry the scales and biases along.
 */
export class SafetensorsSource implements ModelSource {
  readonly ropeInterleaved = false;
  private readonly byName: Map<string, Entry>;

  private constructor(
    readonly path: string,
    readonly format: "safetensors" | "mlx",
    readonly config: ModelConfig,
    private readonly set: SafetensorsSet,
    entries: Entry[],
  ) {
    this.byName = new Map(entries.map((e) => [e.info.name, e]));
  }

  /** `path` is the folder (or the single .safetensors file); `configPath` its config.json. */
  static async open(path: string, configPath: string, set?: SafetensorsSet): Promise<SafetensorsSource> {
    let tensors = set;
    try {
      let json: unknown;
      try {
        json = JSON.parse(await readFile(configPath, "utf8"));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new TesseraError(code === "ENOENT" ? "file not found" : `not valid JSON (${(e as Error).message})`, configPath);
      }
      const config = configFromHfConfig(json, configPath);
      const quant = mlxQuantParams(json, configPath);
      tensors ??= await SafetensorsSet.openFolder(path);
      const entries = buildEntries(tensors, quant, configPath);
      checkTensorShapes(config, entries.map((e) => e.info), configPath, path);
      return new SafetensorsSource(path, quant ? "mlx" : "safetensors", config, tensors, entries);
    } catch (e) {
      await tensors?.close();
      throw e;
    }
  }

  tensors(): TensorInfo[] {
    return [...this.byName.values()].map((e) => e.info);
  }

  info(name: string): TensorInfo | undefined {
    return this.byName.get(name)?.info;
  }

  async read(name: string, slice: TensorSlice = {}): Promise<RawTensor> {
    const e = this.byName.get(name);
    if (!e) throw new TesseraError(`no tensor named '${name}'`, this.path);
    if (e.kind === "plain") {
      const r = await this.set.read(e.file, slice);
      return { info: e.info, shape: r.shape, data: r.data };
    }
    const [rows, cols] = e.info.shape as [number, number];
    const g = e.info.groupSize!;
    const [c0, c1] = slice.cols ?? [0, cols];
    if (c0 % g !== 0 || (c1 % g !== 0 && c1 !== cols)) {
      throw new TesseraError(`column range [${c0}, ${c1}) is not aligned to MLX groups of ${g}`, `${this.path}: tensor ${name}`);
    }
    if (c0 < 0 || c1 > cols || c0 >= c1) throw new TesseraError(`column range [${c0}, ${c1}) is not inside [0, ${cols})`, `${this.path}: tensor ${name}`);
    const perWord = 32 / e.bits;
    const rowRange = slice.rows ?? [0, rows];
    const [w, s, b] = await Promise.all([
      this.set.read(e.file, { rows: rowRange, cols: [c0 / perWord, c1 / perWord] }),
      this.set.read(e.scales, { rows: rowRange, cols: [c0 / g, c1 / g] }),
      this.set.read(e.biases, { rows: rowRange, cols: [c0 / g, c1 / g] }),
    ]);
    return { info: e.info, shape: [rowRange[1] - rowRange[0], c1 - c0], data: w.data, scales: s.data, biases: b.data, scaleType: e.scaleType };
  }

  async close(): Promise<void> {
    await this.set.close();
  }
}

function buildEntries(set: SafetensorsSet, quant: MlxParams | undefined, configPath: string): Entry[] {
  const all = set.tensors;
  const names = new Set(all.map((t) => t.name));
  const entries: Entry[] = [];
  for (const t of all) {
    const [module, suffix] = splitSuffix(t.name);
    if (suffix === "scales" || suffix === "biases") {
      if (names.has(`${module}.weight`)) continue; // folded into the weight's entry
    }
    const canonical = hfToCanonical(t.name) ?? t.name;
    const scalesName = `${module}.scales`;
    if (suffix === "weight" && names.has(scalesName)) {
      entries.push(mlxEntry(set, t, canonical, module, quant, configPath));
      continue;
    }
    if (!t.type) {
      if (canonical === t.name) continue; // a tensor we neither map nor read (e.g. an I64 buffer)
      storedType(t, t.file);
    }
    entries.push({
      kind: "plain",
      file: t.name,
      info: { name: canonical, type: storedType(t, t.file), shape: t.shape, byteLength: t.byteLength },
    });
  }
  return entries;
}

function mlxEntry(set: SafetensorsSet, t: SafetensorsTensorInfo, canonical: string, module: string, quant: MlxParams | undefined, configPath: string): Entry {
  const scales = set.tensor(`${module}.scales`)!;
  const biases = set.tensor(`${module}.biases`);
  const where = `tensor '${t.name}'`;
  if (!biases) throw new TesseraError(`${where} has scales but no ${module}.biases`, t.file);
  const params = quant?.forModule(module);
  if (!params) throw new TesseraError(`${where} is quantized (it has scales) but ${configPath} has no quantization for it`, t.file);
  const { bits, groupSize } = params;
  if (t.dtype !== "U32" || t.shape.length !== 2) throw new TesseraError(`${where}: MLX packed weights must be 2-D U32, got ${t.dtype} [${t.shape.join(", ")}]`, t.file);
  const [rows, packed] = t.shape as [number, number];
  const cols = (packed * 32) / bits;
  const scaleType = scales.dtype;
  if (scaleType !== "F16" && scaleType !== "BF16" && scaleType !== "F32") throw new TesseraError(`${module}.scales has dtype ${scaleType}; expected F16, BF16 or F32`, t.file);
  const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  if (!sameShape(scales.shape, [rows, cols / groupSize]) || !sameShape(biases.shape, scales.shape) || biases.dtype !== scaleType) {
    throw new TesseraError(
      `${configPath} says ${bits}-bit, group ${groupSize}, which disagrees with ${where} [${rows}, ${packed}] (→ ${cols} columns) and its scales [${scales.shape.join(", ")}] / biases [${biases.shape.join(", ")}] ${biases.dtype}`,
      t.file,
    );
  }
  return {
    kind: "mlx",
    file: t.name,
    scales: scales.name,
    biases: biases.name,
    bits,
    scaleType,
    info: { name: canonical, type: bits === 4 ? "MLX4" : "MLX8", shape: [rows, cols], byteLength: t.byteLength, groupSize },
  };
}
