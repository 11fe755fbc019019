import { TesseraError } from "../../errors.js";

/**
 * Pre-tokenizers for byte-level BPE, named as GGUF's `tokenizer.ggml.pre` names them. Each is a list
 * of regexes applied in turn: every regex splits each piece from the step before into its matches
 * and the unmatched text between them (kept as pieces of their own), as llama.cpp does.
 *
 * `\s` is spelled out as Unicode White_Space (what llama.cpp and the Rust regex crate use); JavaScript's
 * `\s` would add U+FEFF and miss U+0085.
 */
const WS = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

function llama3Style(numbers: string): string {
  return (
    `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${numbers}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
    `|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`
  );
}

const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])`;

export interface PreTokenizer {
  name: string;
  regexes: RegExp[];
  /** llama-bpe: a word that is itself a token is emitted whole, without running merges. */
  ignoreMerges: boolean;
}

const PATTERNS: Record<string, { regexes: string[]; ignoreMerges: boolean }> = {
  qwen2: { regexes: [llama3Style("\\p{N}")], ignoreMerges: false },
  llama3: { regexes: [llama3Style("\\p{N}{1,3}")], ignoreMerges: true },
  gpt2: { regexes: [GPT2], ignoreMerges: false },
  default: { regexes: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"], ignoreMerges: false },
};

const ALIASES: Record<string, string> = {
  "llama-bpe": "llama3",
  "llama-v3": "llama3",
  "deepseek-r1-qwen": "qwen2",
};

export function preTokenizerNames(): string[] {
  return [...Object.keys(PATTERNS), ...Object.keys(ALIASES)];
}

/** `name` undefined or empty means llama.cpp's "default". */
export function preTokenizer(name: string | undefined, file = "tokenizer"): PreTokenizer {
  const key = !name ? "default" : (ALIASES[name] ?? name);
  const p = PATTERNS[key];
  if (!p) throw new TesseraError(`unsupported pre-tokenizer '${name}' (supported: ${preTokenizerNames().join(", ")})`, file);
  return { name: key, regexes: p.regexes.map((r) => new RegExp(r, "gu")), ignoreMerges: p.ignoreMerges };
}

export function preTokenize(pre: PreTokenizer, text: string): string[] {
  let pieces = [text];
  for (const re of pre.regexes) {
    const next: string[] = [];
    for (const piece of pieces) splitKeepingGaps(re, piece, next);
    pieces = next;
  }
  return pieces;
}

function splitKeepingGaps(re: RegExp, text: string, out: string[]): void {
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
}
