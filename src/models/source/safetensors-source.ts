import { readFile } from "node:fs/promises";
import { TesseraError } from "../../errors.js";
import { archOf } from "../arch/registry.js";
import type { ArchDef } from "../arch/types.js";
import { configFromHfConfig } from "../config.js";
import { bf16BytesToF32, f16BytesToF32 } from "../quant/half.js";
import { SafetensorsSet } from "../safetensors/folder.js";
import type { SafetensorsTensorInfo } from "../safetensors/reader.js";
import type { ModelConfig, ModelSource, RawTensor, TensorInfo, TensorSlice, TensorType } from "../types.js";
import { checkTensorShapes } from "./check-shapes.js";
import { mlxQuantParams, type MlxParams } from "./mlx-params.js";
import { hfTensorName, splitSuffix } from "./names.js";

/**
 * How one canonical tensor is stored: a plain tensor, MLX packed values with scales and biases, or
 * (transformers' mixture-of-experts checkpoints) one plain tensor per expert of a stacked canonical one.
 * `normOffset` is added to the values of a norm weight on read (Gemma stores w for a (1 + w) multiplier).
 */
type Entry =
  | { kind: "plain"; info: TensorInfo; file: string; normOffset?: number; storedType?: TensorType }
  | { kind: "mlx"; info: TensorInfo; file: string; scales: string; biases: string; bits: 4 | 8; scaleType: "F32" | "F16" | "BF16" }
  | { kind: "experts"; info: TensorInfo; files: string[] };

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
      const entries = buildEntries(tensors, quant, configPath, archOf(config));
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
      if (e.normOffset) {
        const v = floatValues(r.data, e.storedType).map((x) => x + e.normOffset!);
        return { info: { ...e.info, type: "F32", byteLength: v.byteLength }, shape: r.shape, data: new Uint8Array(v.buffer) };
      }
      return { info: e.info, shape: r.shape, data: r.data };
    }
    if (e.kind === "experts") {
      if (slice.expert === undefined) throw new TesseraError(`${name} is stored one expert per tensor: read it one expert at a time`, this.path);
      const file = e.files[slice.expert];
      if (file === undefined) throw new TesseraError(`expert ${slice.expert} is not inside [0, ${e.files.length})`, `${this.path}: tensor ${name}`);
      const r = await this.set.read(file, { ...(slice.rows ? { rows: slice.rows } : {}), ...(slice.cols ? { cols: slice.cols } : {}) });
      return { info: e.info, shape: r.shape, data: r.data };
    }
    const stacked = e.info.shape.length === 3;
    const [rows, cols] = e.info.shape.slice(-2) as [number, number];
    const g = e.info.groupSize!;
    const [c0, c1] = slice.cols ?? [0, cols];
    if (c0 % g !== 0 || (c1 % g !== 0 && c1 !== cols)) {
      throw new TesseraError(`column range [${c0}, ${c1}) is not aligned to MLX groups of ${g}`, `${this.path}: tensor ${name}`);
    }
    if (c0 < 0 || c1 > cols || c0 >= c1) throw new TesseraError(`column range [${c0}, ${c1}) is not inside [0, ${cols})`, `${this.path}: tensor ${name}`);
    const perWord = 32 / e.bits;
    const rowRange = slice.rows ?? [0, rows];
    if (stacked !== (slice.expert !== undefined)) throw new TesseraError(stacked ? "read a stacked expert tensor one expert at a time" : "an expert slice of a 2-D tensor", `${this.path}: tensor ${name}`);
    const at = stacked ? { expert: slice.expert } : {};
    const [w, s, b] = await Promise.all([
      this.set.read(e.file, { ...at, rows: rowRange, cols: [c0 / perWord, c1 / perWord] }),
      this.set.read(e.scales, { ...at, rows: rowRange, cols: [c0 / g, c1 / g] }),
      this.set.read(e.biases, { ...at, rows: rowRange, cols: [c0 / g, c1 / g] }),
    ]);
    return { info: e.info, shape: [rowRange[1] - rowRange[0], c1 - c0], data: w.data, scales: s.data, biases: b.data, scaleType: e.scaleType };
  }

  async close(): Promise<void> {
    await this.set.close();
  }
}

function buildEntries(set: SafetensorsSet, quant: MlxParams | undefined, configPath: string, arch: ArchDef): Entry[] {
  const all = set.tensors;
  const names = new Set(all.map((t) => t.name));
  const entries: Entry[] = [];
  const experts = new Map<string, SafetensorsTensorInfo[]>();
  for (const t of all) {
    const [module, suffix] = splitSuffix(t.name);
    if (suffix === "scales" || suffix === "biases") {
      if (names.has(`${module}.weight`)) continue; // folded into the weight's entry
    }
    const mapped = hfTensorName(t.name, arch.hfLayerNames);
    const canonical = mapped?.canonical ?? t.name;
    if (mapped?.expert !== undefined) {
      const list = experts.get(canonical) ?? [];
      list[mapped.expert] = t;
      experts.set(canonical, list);
      continue;
    }
    const scalesName = `${module}.scales`;
    if (suffix === "weight" && names.has(scalesName)) {
      entries.push(mlxEntry(set, t, canonical, module, quant, configPath));
      continue;
    }
    if (!t.type) {
      if (canonical === t.name) continue; // a tensor we neither map nor read (e.g. an I64 buffer)
      storedType(t, t.file);
    }
    const type = storedType(t, t.file);
    const normOffset = arch.hfNormOffset && /_norm\.weight$/.test(canonical) ? arch.hfNormOffset : undefined;
    entries.push({
      kind: "plain",
      file: t.name,
      info: normOffset ? { name: canonical, type: "F32", shape: t.shape, byteLength: (t.byteLength / (type === "F32" ? 4 : 2)) * 4 } : { name: canonical, type, shape: t.shape, byteLength: t.byteLength },
      ...(normOffset ? { normOffset, storedType: type } : {}),
    });
  }
  for (const [canonical, list] of experts) entries.push(expertsEntry(canonical, list));
  return entries;
}

function floatValues(bytes: Uint8Array, type: TensorType | undefined): Float32Array {
  if (type === "F16") return f16BytesToF32(bytes);
  if (type === "BF16") return bf16BytesToF32(bytes);
  if (type === "F32") return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  throw new TesseraError(`a norm weight stored as ${type} (expected F32, F16 or BF16)`);
}

/** Per-expert tensors (same type and shape, experts 0..E−1 all present) as one stacked [E, rows, cols] tensor. */
function expertsEntry(canonical: string, list: SafetensorsTensorInfo[]): Entry {
  const first = list[0];
  for (let e = 0; e < list.length; e++) {
    const t = list[e];
    if (!t || !first) throw new TesseraError(`expert ${e} of ${canonical} is missing`, first?.file ?? canonical);
    const type = storedType(t, t.file);
    if (type !== first.type || t.shape.length !== 2 || t.shape.some((d, i) => d !== first.shape[i])) {
      throw new TesseraError(`expert ${e} of ${canonical} (${t.name}: ${t.dtype} [${t.shape.join(", ")}]) differs from expert 0 (${first.dtype} [${first.shape.join(", ")}])`, t.file);
    }
  }
  return {
    kind: "experts",
    files: list.map((t) => t.name),
    info: { name: canonical, type: storedType(first!, first!.file), shape: [list.length, ...first!.shape], byteLength: list.reduce((a, t) => a + t.byteLength, 0) },
  };
}

function mlxEntry(set: SafetensorsSet, t: SafetensorsTensorInfo, canonical: string, module: string, quant: MlxParams | undefined, configPath: string): Entry {
  const scales = set.tensor(`${module}.scales`)!;
  const biases = set.tensor(`${module}.biases`);
  const where = `tensor '${t.name}'`;
  if (!biases) throw new TesseraError(`${where} has scales but no ${module}.biases`, t.file);
  const params = quant?.forModule(module);
  if (!params) throw new TesseraError(`${where} is quantized (it has scales) but ${configPath} has no quantization for it`, t.file);
  const { bits, groupSize } = params;
  // 2-D [rows, packed], or 3-D [experts, rows, packed] for stacked experts (MLX switch_mlp)
  if (t.dtype !== "U32" || (t.shape.length !== 2 && t.shape.length !== 3)) throw new TesseraError(`${where}: MLX packed weights must be 2-D (or 3-D for experts) U32, got ${t.dtype} [${t.shape.join(", ")}]`, t.file);
  const outer = t.shape.slice(0, -1);
  const packed = t.shape.at(-1)!;
  const cols = (packed * 32) / bits;
  const scaleType = scales.dtype;
  if (scaleType !== "F16" && scaleType !== "BF16" && scaleType !== "F32") throw new TesseraError(`${module}.scales has dtype ${scaleType}; expected F16, BF16 or F32`, t.file);
  const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  if (!sameShape(scales.shape, [...outer, cols / groupSize]) || !sameShape(biases.shape, scales.shape) || biases.dtype !== scaleType) {
    throw new TesseraError(
      `${configPath} says ${bits}-bit, group ${groupSize}, which disagrees with ${where} [${t.shape.join(", ")}] (→ ${cols} columns) and its scales [${scales.shape.join(", ")}] / biases [${biases.shape.join(", ")}] ${biases.dtype}`,
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
    info: { name: canonical, type: bits === 4 ? "MLX4" : "MLX8", shape: [...outer, cols], byteLength: t.byteLength, groupSize },
  };
}
