import onnxPkg from "onnx-proto";

const { onnx } = onnxPkg;

/** A one-node ONNX graph c[M,N] = a[M,K] · b[K,N] (float32, both operands are inputs, so the model is ~100 bytes). */
export function matmulModel(m: number, k: number, n: number): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const value = (name: string, dims: number[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: onnx.TypeProto.create({
        tensorType: onnx.TypeProto.Tensor.create({
          elemType: FLOAT,
          shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })) }),
        }),
      }),
    });
  const graph = onnx.GraphProto.create({
    name: "tessera-matmul-probe",
    node: [onnx.NodeProto.create({ opType: "MatMul", input: ["a", "b"], output: ["c"] })],
    input: [value("a", [m, k]), value("b", [k, n])],
    output: [value("c", [m, n])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [onnx.OperatorSetIdProto.create({ domain: "", version: 17 })], graph });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The decode probe's graph: x[1, K] through `count` com.microsoft.MatMulNBits GEMVs (4-bit, block
 * 32, accuracy level 4, as the engine runs Q4_0 weights), alternating K→N and N→K so each feeds the
 * next. The weights are initializers of random bytes (uint8 [rows, K/32, 16] and float32 scales),
 * `count` × K × N × 0.625 bytes in all: sized well past the CPU caches, so a run streams them from
 * memory as a decode step does.
 */
export function gemvChainModel(k: number, n: number, count: number, random: (bytes: number) => Uint8Array): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const UINT8 = onnx.TensorProto.DataType.UINT8;
  const value = (name: string, dims: number[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: onnx.TypeProto.create({
        tensorType: onnx.TypeProto.Tensor.create({
          elemType: FLOAT,
          shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })) }),
        }),
      }),
    });
  const int = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
  const nodes = [];
  const inits = [];
  let input = "x";
  for (let i = 0; i < count; i++) {
    const [kin, nout] = i % 2 === 0 ? [k, n] : [n, k];
    const blocks = kin / 32;
    inits.push(onnx.TensorProto.create({ name: `w${i}`, dataType: UINT8, dims: [nout, blocks, 16], rawData: random(nout * blocks * 16) }));
    const scales = new Float32Array(nout * blocks).fill(0.01);
    inits.push(onnx.TensorProto.create({ name: `s${i}`, dataType: FLOAT, dims: [nout * blocks], rawData: new Uint8Array(scales.buffer) }));
    const out = i === count - 1 ? "y" : `h${i}`;
    nodes.push(
      onnx.NodeProto.create({
        opType: "MatMulNBits",
        domain: "com.microsoft",
        input: [input, `w${i}`, `s${i}`],
        output: [out],
        attribute: [int("K", kin), int("N", nout), int("bits", 4), int("block_size", 32), int("accuracy_level", 4)],
      }),
    );
    input = out;
  }
  const graph = onnx.GraphProto.create({
    name: "tessera-decode-probe",
    node: nodes,
    initializer: inits,
    input: [value("x", [1, k])],
    output: [value("y", [1, count % 2 === 0 ? k : n])],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: "", version: 17 }), onnx.OperatorSetIdProto.create({ domain: "com.microsoft", version: 1 })],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}
