import { test } from "node:test";
import assert from "node:assert/strict";
import { tokenizerFromGguf, TokenType, CHATML_TEMPLATE } from "../../../src/models/tokenizer/index.js";
import { preTokenize, preTokenizer } from "../../../src/models/tokenizer/pretokenize.js";
import { spmGgufVocab } from "../../../src/models/synth/vocab.js";
import { TesseraError } from "../../../src/errors.js";
import { TOKENIZER_STRINGS } from "./strings.js";

const vocab = spmGgufVocab(4096);
const spm = tokenizerFromGguf(new Map(vocab.entries), "spm.gguf");
const types = new Map(vocab.entries).get("tokenizer.ggml.token_type") as number[];

test("synthetic SentencePiece vocabulary has llama.cpp's layout", () => {
  const tokens = new Map(vocab.entries).get("tokenizer.ggml.tokens") as string[];
  assert.equal(tokens.length, 4096);
  assert.deepEqual(tokens.slice(0, 3), ["<unk>", "<s>", "</s>"]);
  assert.equal(tokens[3 + 0x0a], "<0x0A>");
  assert.equal(types[3 + 0x0a], TokenType.Byte);
  assert.equal(new Set(tokens).size, tokens.length);
  assert.ok(tokens.includes("\u2581the"));
});

test("spm tokenizer round-trips every test string and falls back to bytes", () => {
  for (const s of TOKENIZER_STRINGS) assert.equal(spm.decode(spm.encode(s)), s, JSON.stringify(s));
  const cjk = spm.encode("你好");
  assert.ok(cjk.some((id) => types[id] === TokenType.Byte), "CJK needs byte fallback in a 4096-piece vocabulary");
});

test("spm adds the space prefix and bos as llama.cpp does", () => {
  const ids = spm.encode("Hello world", { addSpecial: true });
  assert.equal(ids[0], 1);
  assert.ok(spm.idToPiece(ids[1]!).startsWith("\u2581"));
  assert.equal(spm.decode(ids, { skipSpecial: true }), "Hello world");
  // Text after a control token gets the prefix again; text after plain text does not.
  const after = spm.encode("</s>x");
  assert.equal(after[0], 2);
  assert.equal(spm.idToPiece(after[1]!), "\u2581x");
});

test("spm merges pick the highest-scoring pair first", () => {
  // "▁the" exists with a better score than any split of it, so it comes out whole.
  const ids = spm.encode("the");
  assert.equal(ids.length, 1);
  assert.equal(spm.idToPiece(ids[0]!), "\u2581the");
});

test("a GGUF vocabulary without a chat template gets ChatML", () => {
  assert.equal(spm.applyChatTemplate([{ role: "user", content: "hi" }]), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  assert.ok(CHATML_TEMPLATE.includes("im_start"));
});

test("pre-tokenizers split as llama.cpp's regexes do", () => {
  assert.deepEqual(preTokenize(preTokenizer("qwen2"), "Hello  world 123!!\n\n"), ["Hello", " ", " world", " ", "1", "2", "3", "!!\n\n"]);
  assert.deepEqual(preTokenize(preTokenizer("llama-bpe"), "x 12345"), ["x", " ", "123", "45"]);
  assert.deepEqual(preTokenize(preTokenizer("gpt2"), "it's 42"), ["it", "'s", " 42"]);
  assert.deepEqual(preTokenize(preTokenizer(undefined), "a+b=1234"), ["a", "+", "b", "=", "123", "4"]);
});

test("unsupported tokenizer kinds are clear errors", () => {
  assert.throws(() => tokenizerFromGguf(new Map<string, unknown>([["tokenizer.ggml.model", "bert"]]), "m.gguf"), (e: unknown) => e instanceof TesseraError && /m\.gguf: unsupported tokenizer\.ggml\.model 'bert'/.test(e.message));
  assert.throws(() => preTokenizer("klingon", "m.gguf"), /unsupported pre-tokenizer 'klingon'/);
  assert.throws(() => tokenizerFromGguf(new Map<string, unknown>([["tokenizer.ggml.model", "gpt2"]]), "m.gguf"), /no tokenizer\.ggml\.tokens/);
});
