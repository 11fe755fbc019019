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
