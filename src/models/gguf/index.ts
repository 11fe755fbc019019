export { GgufFile, GGUF_MAGIC, DEFAULT_ALIGNMENT, readRawHeader, type GgufTensorInfo, type GgufHeader, type GgufRawHeader, type GgufRawTensorInfo } from "./reader.js";
export { writeGguf, type GgufTensorToWrite, type GgufWriteOptions } from "./writer.js";
export { gv, plainValue, type GgufValue, type GgufArray, type GgufScalar, type GgufScalarType } from "./values.js";
export type { TensorData } from "../source/output-file.js";
