import { TesseraError } from "../../errors.js";

/**
 * Typed access to the two places a model's settings come from, with the error messages every
 * architecture shares: GGUF metadata (`<arch>.<key>`, llama.cpp's names) and a Hugging Face
 * config.json. `unsupported` names a feature the engine does not implement.
 */

/** GGUF numbers may arrive as bigint (u64/i64); everything we read fits a double. */
function num(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

/** GGUF stores these as f32: 1e-6 arrives as 9.99999997e-7. Seven significant digits give back the written value. */
function fromF32(v: number | undefined): number | undefined {
  return v === undefined ? undefined : Number(v.toPrecision(7));
}

export class GgufKeys {
  constructor(
    readonly metadata: Map<string, unknown>,
    /** general.architecture: the prefix of the per-architecture keys. */
    readonly arch: string,
    readonly file: string,
    /** Tensor names, when known (tied embeddings are decided by output.weight being absent). */
    readonly tensorNames?: ReadonlySet<string>,
  ) {}

  key(k: string): string {
    return `${this.arch}.${k}`;
  }

  raw(k: string): unknown {
    return this.metadata.get(this.key(k));
  }

  has(k: string): boolean {
    return this.metadata.has(this.key(k));
  }

  need(k: string): number {
    const v = num(this.raw(k));
    if (v === undefined) throw new TesseraError(`GGUF metadata is missing ${this.key(k)}`, this.file);
    return v;
  }

  opt(k: string): number | undefined {
    return num(this.raw(k));
  }

  /** A float key (stored as f32), rounded back to the value that was written. */
  float(k: string): number | undefined {
    return fromF32(this.opt(k));
  }

  str(k: string): string | undefined {
    const v = this.raw(k);
    return typeof v === "string" ? v : undefined;
  }

  /** A value that may be one number or a per-layer array (llama.cpp's get_key_or_arr). */
  numberOrArray(k: string): number | unknown[] | undefined {
    const v = this.raw(k);
    if (v === undefined) return undefined;
    if (Array.isArray(v)) return v;
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
    const n = num(v);
    if (n === undefined) throw new TesseraError(`${this.key(k)} must be a number or an array`, this.file);
    return n;
  }

  unsupported(feature: string): TesseraError {
    return new TesseraError(`${this.arch}: ${feature} is not supported`, this.file);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class HfKeys {
  constructor(
    readonly json: Record<string, unknown>,
    /** model_type (or the class name when model_type is absent). */
    readonly modelType: string,
    readonly file: string,
  ) {}

  raw(k: string): unknown {
    return this.json[k];
  }

  need(k: string): number {
    const v = this.json[k];
    if (typeof v !== "number") throw new TesseraError(`config.json is missing the number '${k}'`, this.file);
    return v;
  }

  opt(k: string): number | undefined {
    const v = this.json[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") throw new TesseraError(`config.json field '${k}' must be a number`, this.file);
    return v;
  }

  bool(k: string): boolean | undefined {
    const v = this.json[k];
    return typeof v === "boolean" ? v : undefined;
  }

  /** The same config read from a nested object (Gemma 3's text_config). */
  nested(k: string): HfKeys | undefined {
    const v = this.json[k];
    return isRecord(v) ? new HfKeys(v, this.modelType, this.file) : undefined;
  }

  unsupported(feature: string): TesseraError {
    return new TesseraError(`${this.modelType}: ${feature} is not supported`, this.file);
  }
}
