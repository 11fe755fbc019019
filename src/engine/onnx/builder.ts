import onnxPkg from "onnx-proto";

/**
 * A small ONNX model writer. Graphs are built node by node; initializers never go into the
 * protobuf (a message is limited to 2 GB): each one is recorded as external data under its own
 * virtual file name and handed to onnxruntime in memory (`externalData`), so the weight bytes are
 * not serialized.
 *
 * Memory, measured (ORT 1.30 CPU, synthetic 1b llama Q4_0, 621 MB of GGUF tensors → 649 MB of
 * converted blobs, 1 thread, MALLOC_MMAP_THRESHOLD_=4194304):
 * - onnxruntime never reads the blobs after session creation: overwriting every blob afterwards
 *   leaves the logits bit-identical (test/engine/core/weight-lifetime.test.ts), so JS drops them
 *   once the session exists (only the embedding table stays, 41 MB).
 * - MatMulNBits pre-packs its weights (data + float scale + block sum per 32) to ≈1.43× the
 *   converted size: steady RSS 1.21 GB, 934 MB with `session.disable_prepacking` = "1" — which
 *   makes decode ≈450× slower (0.05 tok/s vs 22.6; non-int8 fallback) and is not an option.
 * - Peak RSS 1.77 GB: JS blobs and packed weights coexist while the native create call runs.
 *   enableCpuMemArena false and `session.use_device_allocator_for_initializers` changed neither
 *   peak nor steady RSS beyond noise (±20 MB) nor decode speed.
 * - Writing the blobs to files and creating the session from a model path (JS blobs freed first)
 *   cut peak to 1.15 GB and steady to 1.04 GB with identical logits, but decode ran 2× slower
 *   (12 vs 23 tok/s, paired runs): not adopted; see bench/results/engine-memory-2026-11-26.json.
 * - glibc keeps the freed blobs in its heap unless the process starts with
 *   MALLOC_MMAP_THRESHOLD_=4194304 (1.6 GB steady without); 131072 gives 1.09 GB but makes decode
 *   2.7× slower.
 */
const { onnx } = onnxPkg;

export type ElemType = "float32" | "float16" | "int32" | "int64" | "uint8";

const DATA_TYPE: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  uint8: onnx.TensorProto.DataType.UINT8,
};

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/** Dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

/** An initializer's bytes, to be passed as `externalData` ({ path, data }). */
export interface ExternalBlob {
  path: string;
  data: Uint8Array;
}

export class GraphBuilder {
  private readonly nodes: onnxPkg.onnx.INodeProto[] = [];
  private readonly inputs: onnxPkg.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxPkg.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxPkg.onnx.ITensorProto[] = [];
  readonly blobs: ExternalBlob[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly graphName: string) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A weight kept outside the protobuf. `data` is the raw little-endian bytes of the tensor. */
  weight(name: string, type: ElemType, dims: number[], data: Uint8Array | Float32Array | Int32Array): string {
    if (this.names.has(name)) throw new Error(`duplicate initializer ${name}`);
    this.names.add(name);
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const expected = dims.reduce((a, b) => a * b, 1) * bytesPer(type);
    if (bytes.byteLength !== expected) {
      throw new Error(`initializer ${name}: ${bytes.byteLength} bytes for dims [${dims}] of ${type}`);
    }
    // ORT rejects zero-length external data; tiny tensors are cheap inline.
    if (bytes.byteLength < 64) {
      this.initializers.push({ name, dataType: DATA_TYPE[type], dims, rawData: bytes });
      return name;
    }
    const path = `w${this.blobs.length}.bin`;
    this.blobs.push({ path, data: bytes });
    this.initializers.push({
      name,
      dataType: DATA_TYPE[type],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: path },
        { key: "offset", value: "0" },
        { key: "length", value: String(bytes.byteLength) },
      ],
    });
    return name;
  }

  /** A small constant stored inside the protobuf (shapes, axes, indices). */
  constInt64(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh("const");
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dataType: DATA_TYPE.int64, dims, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** Adds a node; returns its output names. Empty strings in `outputs` mark unused optional outputs. */
  node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, domain = ""): string[] {
    this.nodes.push({
      opType,
      domain,
      input: inputs,
      output: outputs,
      name: this.fresh(opType),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Single-output node with a generated output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ""): string {
    const out = this.fresh(opType);
    this.node(opType, inputs, [out], attrs, domain);
    return out;
  }

  /** Serializes the model. Initializer bytes stay in `blobs`. */
  toBytes(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "tessera",
      opsetImport: [
        { domain: "", version: 17 },
        { domain: "com.microsoft", version: 1 },
      ],
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function bytesPer(type: ElemType): number {
  return type === "float32" || type === "int32" ? 4 : type === "int64" ? 8 : type === "float16" ? 2 : 1;
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxPkg.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnxPkg.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === "number") return { name, type: T.INT, i: v };
  if (typeof v === "string") return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ("float" in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
