export { SafetensorsFile, type SafetensorsTensorInfo } from "./reader.js";
export { SafetensorsSet } from "./folder.js";
export { writeSafetensors, writeShardedSafetensors, INDEX_FILE, type SafetensorsTensorToWrite } from "./writer.js";
export { quantizeMlx, dequantizeMlx, type MlxBits, type MlxQuantized, type ScaleType } from "./mlx.js";
export { DTYPE_TYPES, type SafetensorsDtype } from "./dtypes.js";
