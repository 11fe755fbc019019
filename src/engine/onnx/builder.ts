import onnxPkg from "onnx-proto";
import type { WeightFile } from "./weight-file.js";

/**
 * A small ONNX model writer. Graphs are built node by node; initializers never go into the
 * protobuf (a message is limited to 2 GB): each one is external data, either kept in memory
 * under its own virtual file name and handed to onnxruntime as `externalData` (`blobs`), or, once
 * `stageTo()` names a WeightFile, appended to that file as it is added so the converted bytes can
 * be dropped right away (see staging.ts for why and what it saves).
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

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] } | { graph: GraphBuilder };

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
  private staging: { file: WeightFile; location: string } | undefined;
  private counter = 0;

  /** `parent`: this builds a subgraph (an If branch); its weights and fresh names are the root graph's. */
  constructor(
    readonly graphName: string,
    private readonly parent?: GraphBuilder,
  ) {}

  private get root(): GraphBuilder {
    return this.parent ? this.parent.root : this;
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    if (this.parent) return this.root.fresh(prefix);
    return `${prefix}_${this.counter++}`;
  }

  /**
   * A subgraph for a control-flow node's attribute. It reads the enclosing graphs' values by name;
   * weights it declares are the root graph's initializers (so they are staged and packed like any
   * other), seen from the subgraph through the outer scope.
   */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this);
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
    if (this.parent) return this.root.weight(name, type, dims, data);
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
    let location: string;
    let offset = 0;
    if (this.staging) {
      location = this.staging.location;
      offset = this.staging.file.append(bytes);
    } else {
      location = `w${this.blobs.length}.bin`;
      this.blobs.push({ path: location, data: bytes });
    }
    this.initializers.push({
      name,
      dataType: DATA_TYPE[type],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: externalData(location, offset, bytes.byteLength),
    });
    return name;
  }

  /**
   * From now on initializer bytes go to `file` (named `location` relative to the model file),
   * starting with the ones held in `blobs` so far, which are released.
   */
  stageTo(file: WeightFile, location: string): void {
    const held = new Map(this.blobs.map((b) => [b.path, b.data]));
    for (const init of this.initializers) {
      const data = held.get(init.externalData?.find((e) => e.key === "location")?.value ?? "");
      if (data) init.externalData = externalData(location, file.append(data), data.byteLength);
    }
    this.blobs.length = 0;
    this.staging = { file, location };
  }

  /** A small constant stored inside the protobuf (shapes, axes, indices). */
  constInt64(values: number[], dims: number[] = [values.length]): string {
    if (this.parent) return this.root.constInt64(values, dims);
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

  /** The graph (for a subgraph: its nodes and outputs; the initializers live in the root). */
  graphProto(): onnxPkg.onnx.IGraphProto {
    return { name: this.graphName, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers };
  }

  /** Serializes the model. Initializer bytes stay in `blobs`. */
  toBytes(): Uint8Array {
    if (this.parent) throw new Error("toBytes() on a subgraph");
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "tessera",
      opsetImport: [
        { domain: "", version: 17 },
        { domain: "com.microsoft", version: 1 },
      ],
      graph: this.graphProto(),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function externalData(location: string, offset: number, length: number): onnxPkg.onnx.IStringStringEntryProto[] {
  return [
    { key: "location", value: location },
    { key: "offset", value: String(offset) },
    { key: "length", value: String(length) },
  ];
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
  if ("graph" in v) return { name, type: T.GRAPH, g: v.graph.graphProto() };
  return { name, type: T.FLOATS, floats: v.floats };
}
