import { TesseraError } from "../../errors.js";
import { END_OF_TURN_TEXTS, VocabTokenizer, type SpecialIds } from "./base.js";
import { BpeMerger } from "./bpe.js";
import { byteLevelBytes, byteLevelEncode } from "./byte-level.js";
import { ChatTemplate } from "./chat.js";
import { preTokenize, preTokenizer, type PreTokenizer } from "./pretokenize.js";
import type { SpecialToken } from "./special.js";
import { spmTokenize, type SpmVocab } from "./spm.js";

/**
 * Tokenizers for vocabularies embedded in GGUF metadata (`tokenizer.ggml.*`), behaving as llama.cpp:
 *   model "gpt2"  → byte-level BPE: tokens, merges ("a b" strings), pre-tokenizer by `tokenizer.ggml.pre`
 *   model "llama" → SentencePiece-style: tokens, scores, byte tokens <0xNN>, "▁" for spaces
 * Token types (tokenizer.ggml.token_type) are llama.cpp's: 1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte.
 */
export const TokenType = { Normal: 1, Unknown: 2, Control: 3, UserDefined: 4, Unused: 5, Byte: 6 } as const;

function toArray(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<unknown>);
  return undefined;
}

function numberOf(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

interface GgufVocab {
  tokens: string[];
  types: number[];
  scores?: number[];
  merges?: string[];
  ids: SpecialIds;
  chatTemplate: ChatTemplate;
  specials: SpecialToken[];
}

function readVocab(meta: Map<string, unknown>, file: string): GgufVocab {
  const tokensRaw = toArray(meta.get("tokenizer.ggml.tokens"));
  if (!tokensRaw || tokensRaw.length === 0) throw new TesseraError("GGUF metadata has no tokenizer.ggml.tokens", file);
  const tokens = tokensRaw.map((t, i) => {
    if (typeof t !== "string") throw new TesseraError(`tokenizer.ggml.tokens[${i}] is not a string`, file);
    return t;
  });
  const n = tokens.length;
  const typesRaw = toArray(meta.get("tokenizer.ggml.token_type"));
  if (typesRaw && typesRaw.length !== n) throw new TesseraError(`tokenizer.ggml.token_type has ${typesRaw.length} entries for ${n} tokens`, file);
  const types = typesRaw ? typesRaw.map((t) => numberOf(t) ?? TokenType.Normal) : new Array<number>(n).fill(TokenType.Normal);
  const scoresRaw = toArray(meta.get("tokenizer.ggml.scores"));
  if (scoresRaw && scoresRaw.length !== n) throw new TesseraError(`tokenizer.ggml.scores has ${scoresRaw.length} entries for ${n} tokens`, file);
  const scores = scoresRaw?.map((s) => numberOf(s) ?? 0);
  const merges = toArray(meta.get("tokenizer.ggml.merges"))?.map((m) => String(m));

  const id = (key: string): number | undefined => {
    const v = numberOf(meta.get(`tokenizer.ggml.${key}`));
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || v < 0 || v >= n) throw new TesseraError(`tokenizer.ggml.${key} = ${v} is outside the vocabulary (${n} tokens)`, file);
    return v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = meta.get(`tokenizer.ggml.${key}`);
    return typeof v === "boolean" ? v : fallback;
  };
  const model = meta.get("tokenizer.ggml.model");
  const bosId = id("bos_token_id");
  const eosId = id("eos_token_id");
  const stop = [eosId, id("eot_token_id"), id("eom_token_id")].filter((x): x is number => x !== undefined);
  const specials: SpecialToken[] = [];
  tokens.forEach((text, i) => {
    const t = types[i];
    if (t === TokenType.Control || t === TokenType.Unknown) specials.push({ id: i, text, control: true });
    else if (t === TokenType.UserDefined) specials.push({ id: i, text, control: false });
    if (t === TokenType.Control && END_OF_TURN_TEXTS.has(text)) stop.push(i);
  });
  const text = (tid: number | undefined) => (tid === undefined ? undefined : tokens[tid]);
  const template = meta.get("tokenizer.chat_template");
  return {
    tokens,
    types,
    scores,
    merges,
    specials,
    ids: { bosId, eosId, stopIds: stop, addBos: flag("add_bos_token", model === "llama"), addEos: flag("add_eos_token", false) },
    chatTemplate: new ChatTemplate(typeof template === "string" ? template : undefined, {
      bosToken: text(bosId),
      eosToken: text(eosId),
      origin: `${file} (tokenizer.chat_template)`,
    }),
  };
}

export function tokenizerFromGguf(meta: Map<string, unknown>, file: string): VocabTokenizer {
  const model = meta.get("tokenizer.ggml.model");
  if (model === "gpt2") return new GgufBpeTokenizer(meta, file);
  if (model === "llama") return new GgufSpmTokenizer(meta, file);
  throw new TesseraError(`unsupported tokenizer.ggml.model '${String(model)}' (supported: gpt2, llama)`, file);
}

/** Byte-level BPE with merges, as llama.cpp's "gpt2" vocabulary type. */
export class GgufBpeTokenizer extends VocabTokenizer {
  readonly kind = "gguf-bpe";
  private readonly tokens: string[];
  private readonly types: number[];
  private readonly byText = new Map<string, number>();
  private readonly merger: BpeMerger;
  readonly pre: PreTokenizer;

  constructor(meta: Map<string, unknown>, file: string) {
    const v = readVocab(meta, file);
    super(v.tokens.length, v.specials, v.ids, v.chatTemplate);
    this.tokens = v.tokens;
    this.types = v.types;
    v.tokens.forEach((t, i) => {
      if (!this.byText.has(t)) this.byText.set(t, i);
    });
    if (!v.merges) throw new TesseraError("GGUF gpt2 tokenizer has no tokenizer.ggml.merges", file);
    this.merger = new BpeMerger(
      v.merges.map((m, i): [string, string] => {
        const sp = m.indexOf(" ", 1);
        if (sp < 0) throw new TesseraError(`tokenizer.ggml.merges[${i}] '${m}' is not two pieces`, file);
        return [m.slice(0, sp), m.slice(sp + 1)];
      }),
    );
    const pre = meta.get("tokenizer.ggml.pre");
    this.pre = preTokenizer(typeof pre === "string" ? pre : undefined, file);
  }

  idToPiece(id: number): string {
    return this.tokens[id] ?? "";
  }

  protected encodeText(text: string, _afterSpecial: boolean, out: number[]): void {
    for (const word of preTokenize(this.pre, text)) {
      const encoded = byteLevelEncode(word);
      const whole = this.pre.ignoreMerges ? this.byText.get(encoded) : undefined;
      if (whole !== undefined) {
        out.push(whole);
        continue;
      }
      for (const part of this.merger.merge(encoded)) {
        const tid = this.byText.get(part);
        if (tid !== undefined) out.push(tid);
        else for (const ch of part) out.push(this.byText.get(ch) ?? 0);
      }
    }
  }

  protected tokenBytes(id: number, out: number[], skipSpecial: boolean): void {
    const t = this.tokens[id];
    if (t === undefined) return;
    const type = this.types[id];
    if (type === TokenType.Control || type === TokenType.Unknown || type === TokenType.Unused) {
      if (!skipSpecial && type !== TokenType.Unused) for (const b of new TextEncoder().encode(t)) out.push(b);
      return;
    }
    if (type === TokenType.UserDefined) {
      for (const b of new TextEncoder().encode(t)) out.push(b);
      return;
    }
    byteLevelBytes(t, out);
  }
}

const SPACE_MARK = "\u2581";

/** SentencePiece-style vocabulary with scores and byte fallback, as llama.cpp's "llama" type. */
export class GgufSpmTokenizer extends VocabTokenizer implements SpmVocab {
  readonly kind = "gguf-spm";
  private readonly tokens: string[];
  private readonly types: number[];
  private readonly scores: number[];
  private readonly byText = new Map<string, number>();
  private readonly bytes = new Array<number>(256);
  private readonly addSpacePrefix: boolean;

  constructor(meta: Map<string, unknown>, file: string) {
    const v = readVocab(meta, file);
    super(v.tokens.length, v.specials, v.ids, v.chatTemplate);
    this.tokens = v.tokens;
    this.types = v.types;
    if (!v.scores) throw new TesseraError("GGUF llama tokenizer has no tokenizer.ggml.scores", file);
    this.scores = v.scores;
    v.tokens.forEach((t, i) => {
      if (!this.byText.has(t)) this.byText.set(t, i);
    });
    for (let b = 0; b < 256; b++) {
      const tid = this.byText.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
      if (tid === undefined) throw new TesseraError(`GGUF llama tokenizer lacks the byte token <0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, file);
      this.bytes[b] = tid;
    }
    const asp = meta.get("tokenizer.ggml.add_space_prefix");
    this.addSpacePrefix = typeof asp === "boolean" ? asp : true;
  }

  lookup(text: string): number | undefined {
    return this.byText.get(text);
  }

  score(id: number): number {
    return this.scores[id] ?? 0;
  }

  byteToken(byte: number): number {
    return this.bytes[byte]!;
  }

  idToPiece(id: number): string {
    return this.tokens[id] ?? "";
  }

  protected override stripLeadingSpace(): boolean {
    return this.addSpacePrefix;
  }

  protected encodeText(text: string, afterSpecial: boolean, out: number[]): void {
    const prefixed = this.addSpacePrefix && afterSpecial ? " " + text : text;
    spmTokenize(prefixed.replaceAll(" ", SPACE_MARK), this, out);
  }

  protected tokenBytes(id: number, out: number[], skipSpecial: boolean): void {
    const t = this.tokens[id];
    if (t === undefined) return;
    const type = this.types[id];
    if (type === TokenType.Byte) {
      out.push(parseInt(t.slice(3, 5), 16));
      return;
    }
    if (type === TokenType.Control || type === TokenType.Unknown || type === TokenType.Unused) {
      if (!skipSpecial && type !== TokenType.Unused) for (const b of new TextEncoder().encode(t)) out.push(b);
      return;
    }
    const text = type === TokenType.UserDefined ? t : t.replaceAll(SPACE_MARK, " ");
    for (const b of new TextEncoder().encode(text)) out.push(b);
  }
}
