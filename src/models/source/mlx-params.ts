import { TesseraError } from "../../errors.js";

/**
 * MLX quantization settings from config.json: `quantization` (or `quantization_config`) =
 * { group_size, bits, ...per-module overrides }, where an override key is a module path such as
 * "model.layers.0.mlp.gate_proj" mapping to { group_size, bits } or to false (left unquantized).
 */
export interface MlxParams {
  bits: 4 | 8;
  groupSize: number;
  forModule(module: string): { bits: 4 | 8; groupSize: number } | undefined;
}

function parseOne(v: unknown, where: string, file: string): { bits: 4 | 8; groupSize: number } {
  const o = v as { bits?: unknown; group_size?: unknown };
  if (o.bits !== 4 && o.bits !== 8) throw new TesseraError(`${where}.bits must be 4 or 8, got ${JSON.stringify(o.bits)}`, file);
  if (typeof o.group_size !== "number" || !Number.isInteger(o.group_size) || o.group_size <= 0 || o.group_size % 8 !== 0) {
    throw new TesseraError(`${where}.group_size must be a positive multiple of 8, got ${JSON.stringify(o.group_size)}`, file);
  }
  return { bits: o.bits, groupSize: o.group_size };
}

export function mlxQuantParams(json: unknown, file: string): MlxParams | undefined {
  const root = json as Record<string, unknown>;
  let q = root.quantization;
  const hfq = root.quantization_config as { quant_method?: unknown } | undefined;
  if ((q === undefined || q === null) && typeof hfq === "object" && hfq !== null) {
    // Other tools (GPTQ, AWQ, bitsandbytes...) use quantization_config too, with a quant_method.
    if (hfq.quant_method !== undefined) throw new TesseraError(`quantization method '${String(hfq.quant_method)}' is not supported (MLX affine 4/8-bit is)`, file);
    q = hfq;
  }
  if (q === undefined || q === null) return undefined;
  if (typeof q !== "object") throw new TesseraError("quantization must be an object", file);
  const mode = (q as { mode?: unknown }).mode;
  if (mode !== undefined && mode !== "affine") throw new TesseraError(`MLX quantization mode '${String(mode)}' is not supported (affine is)`, file);
  const base = parseOne(q, "quantization", file);
  const overrides = q as Record<string, unknown>;
  return {
    ...base,
    forModule(module: string) {
      const o = overrides[module];
      if (o === false) return undefined;
      if (typeof o === "object" && o !== null) return parseOne(o, `quantization["${module}"]`, file);
      return base;
    },
  };
}
