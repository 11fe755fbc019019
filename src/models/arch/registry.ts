import { TesseraError } from "../../errors.js";
import type { Architecture, ModelConfig } from "../types.js";
import { gemma3 } from "./gemma3.js";
import { llama } from "./llama.js";
import { phi3 } from "./phi3.js";
import { qwen2 } from "./qwen2.js";
import { qwen3 } from "./qwen3.js";
import { qwen3moe } from "./qwen3moe.js";
import type { ArchDef } from "./types.js";

/** Every architecture Tessera runs: one file each. Adding one is a line here. */
export const ARCHS: readonly ArchDef[] = [llama, qwen2, qwen3, qwen3moe, gemma3, phi3];

const byName = new Map<string, ArchDef>(ARCHS.map((a) => [a.name, a]));

export function archDef(name: Architecture): ArchDef {
  const a = byName.get(name);
  if (!a) throw new Error(`no architecture file for '${name}'`);
  return a;
}

export function archOf(cfg: ModelConfig): ArchDef {
  return archDef(cfg.architecture);
}

/** GGUF `general.architecture` names we read. */
export function ggufArchNames(): string[] {
  return ARCHS.map((a) => a.gguf);
}

export function archByGguf(name: string, file: string): ArchDef {
  const a = ARCHS.find((x) => x.gguf === name);
  if (!a) throw new TesseraError(`unsupported architecture '${name}' (supported: ${ggufArchNames().join(", ")})`, file);
  return a;
}

/** config.json model_type (preferred) or, without one, the first known `architectures` class. */
export function archByHf(modelType: string | undefined, classes: string[], file: string): ArchDef {
  let a = modelType !== undefined ? ARCHS.find((x) => x.hfModelTypes.includes(modelType)) : undefined;
  if (!a && modelType === undefined) a = ARCHS.find((x) => classes.some((c) => x.hfClasses.includes(c)));
  if (!a) {
    const named = modelType ?? (classes.join(", ") || "none given");
    const known = ARCHS.flatMap((x) => x.hfModelTypes);
    throw new TesseraError(`unsupported architecture '${named}' (supported: ${known.join(", ")})`, file);
  }
  return a;
}
