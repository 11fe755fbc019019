import { archOf } from "../arch/registry.js";
import { configFromGguf } from "../config.js";
import { GgufFile, type GgufTensorInfo } from "../gguf/reader.js";
import { LAYOUTS } from "../quant/types.js";
import type { ModelConfig, ModelSource, RawTensor, TensorInfo, TensorSlice } from "../types.js";
import { checkTensorShapes } from "./check-shapes.js";

function toInfo(t: GgufTensorInfo): TensorInfo {
  const block = LAYOUTS[t.type].blockSize;
  return { name: t.name, type: t.type, shape: t.shape, byteLength: t.byteLength, ...(block > 1 ? { groupSize: block } : {}) };
}

/** A GGUF file as a ModelSource. Tensor names in GGUF files are already canonical. */
export class GgufSource implements ModelSource {
  readonly format = "gguf" as const;
  readonly ropeInterleaved: boolean;
  private readonly infos: TensorInfo[];
  private readonly byName: Map<string, TensorInfo>;

  private constructor(
    readonly gguf: GgufFile,
    readonly config: ModelConfig,
  ) {
    this.infos = gguf.tensors.map(toInfo);
    this.byName = new Map(this.infos.map((t) => [t.name, t]));
    this.ropeInterleaved = archOf(config).ggufRopeInterleaved;
  }

  get path(): string {
    return this.gguf.path;
  }

  static async open(path: string): Promise<GgufSource> {
    const gguf = await GgufFile.open(path);
    try {
      const config = configFromGguf(gguf.metadata, path, gguf.tensors.map((t) => t.name));
      const source = new GgufSource(gguf, config);
      checkTensorShapes(config, source.infos, "its metadata", path);
      return source;
    } catch (e) {
      await gguf.close();
      throw e;
    }
  }

  tensors(): TensorInfo[] {
    return this.infos;
  }

  info(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  async read(name: string, slice?: TensorSlice): Promise<RawTensor> {
    const r = await this.gguf.read(name, slice);
    return { info: this.byName.get(name)!, shape: r.shape, data: r.data };
  }

  async close(): Promise<void> {
    await this.gguf.close();
  }
}
