import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { TesseraError } from "../../errors.js";
import { GgufFile } from "../gguf/reader.js";
import type { ModelSource, Tokenizer } from "../types.js";
import { tokenizerFromGguf } from "./gguf.js";
import { HfTokenizer } from "./hf.js";

export { ChatTemplate, CHATML_TEMPLATE } from "./chat.js";
export { HfTokenizer } from "./hf.js";
export { GgufBpeTokenizer, GgufSpmTokenizer, tokenizerFromGguf, TokenType } from "./gguf.js";
export type { EncodeOptions } from "./base.js";

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    if (required) throw new TesseraError("file not found", path);
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TesseraError(`not valid JSON: ${(e as Error).message}`, path);
  }
}

/** A Hugging Face folder: tokenizer.json plus the optional configs that name special tokens. */
export async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  return new HfTokenizer({
    tokenizer: await readJson(join(dir, "tokenizer.json"), true),
    tokenizerConfig: await readJson(join(dir, "tokenizer_config.json"), false),
    generationConfig: await readJson(join(dir, "generation_config.json"), false),
    modelConfig: await readJson(join(dir, "config.json"), false),
    origin: dir,
  });
}

function ggufMetadataOf(source: ModelSource): Map<string, unknown> | undefined {
  const gguf = (source as { gguf?: { metadata?: unknown } }).gguf;
  return gguf?.metadata instanceof Map ? (gguf.metadata as Map<string, unknown>) : undefined;
}

/**
 * The tokenizer of a model: the vocabulary embedded in a GGUF file, or tokenizer.json in a Hugging Face
 * folder (next to the .safetensors file when given a file).
 */
export async function loadTokenizer(source: ModelSource | string): Promise<Tokenizer> {
  if (typeof source !== "string") {
    if (source.format === "gguf") {
      const meta = ggufMetadataOf(source);
      if (meta) return tokenizerFromGguf(meta, source.path);
      return loadTokenizer(source.path);
    }
    const s = await stat(source.path);
    return loadHfTokenizer(s.isDirectory() ? source.path : dirname(source.path));
  }
  let s;
  try {
    s = await stat(source);
  } catch {
    throw new TesseraError("no such file or folder", source);
  }
  if (s.isDirectory()) return loadHfTokenizer(source);
  if (source.endsWith(".json")) return loadHfTokenizer(dirname(source));
  const gguf = await GgufFile.open(source);
  try {
    return tokenizerFromGguf(gguf.metadata, source);
  } finally {
    await gguf.close();
  }
}
