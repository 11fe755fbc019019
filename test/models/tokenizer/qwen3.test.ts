import { test } from "node:test";
import assert from "node:assert/strict";
import { loadHfTokenizer, tokenizerFromGguf, HfTokenizer } from "../../../src/models/tokenizer/index.js";
import { qwen3GgufVocab, qwen3TokenizerFiles } from "../../../src/models/synth/vocab.js";
import { TOKENIZER_STRINGS } from "./strings.js";

const files = qwen3TokenizerFiles();
const hf = new HfTokenizer({
  tokenizer: JSON.parse(files.tokenizerJson),
  tokenizerConfig: JSON.parse(files.tokenizerConfigJson),
  origin: files.dir,
});
const gguf = tokenizerFromGguf(new Map(qwen3GgufVocab().entries), "qwen3.gguf");

test("Qwen3 tokenizer.json round-trips every test string exactly", () => {
  assert.ok(TOKENIZER_STRINGS.length >= 30);
  for (const s of TOKENIZER_STRINGS) {
    const ids = hf.encode(s);
    assert.ok(ids.length > 0, JSON.stringify(s));
    assert.equal(hf.decode(ids), s);
  }
});

test("Qwen3 special tokens: no bos, <|im_end|> ends a turn, added tokens are whole tokens", () => {
  assert.equal(hf.vocabSize, 151669);
  assert.equal(hf.bosId, undefined);
  assert.equal(hf.idToPiece(hf.eosId!), "<|im_end|>");
  assert.ok(hf.stopIds.includes(hf.eosId!));
  assert.ok(hf.stopIds.map((id) => hf.idToPiece(id)).includes("<|endoftext|>"));
  const ids = hf.encode("<|im_start|>user\nhi<think></think><|im_end|>");
  assert.deepEqual(ids.map((i) => hf.idToPiece(i)).filter((p) => p.startsWith("<")), ["<|im_start|>", "<think>", "</think>", "<|im_end|>"]);
  assert.equal(hf.decode(ids, { skipSpecial: true }), "user\nhi<think></think>");
});

test("Qwen3 chat template renders system/user/assistant turns as Qwen3 does", () => {
  const text = hf.applyChatTemplate(
    [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi!" },
      { role: "assistant", content: "Hello." },
    ],
    { addGenerationPrompt: false },
  );
  assert.equal(
    text,
    "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n" +
      "<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>\n",
  );
  const next = hf.applyChatTemplate([
    { role: "user", content: "Hi!" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Again?" },
  ]);
  assert.equal(
    next,
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nAgain?<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("the GGUF (gpt2/qwen2) form of the Qwen3 vocabulary encodes exactly like tokenizer.json", () => {
  for (const s of TOKENIZER_STRINGS) assert.deepEqual(gguf.encode(s), hf.encode(s), JSON.stringify(s));
  for (const s of TOKENIZER_STRINGS) assert.equal(gguf.decode(gguf.encode(s)), s);
  assert.equal(gguf.eosId, hf.eosId);
  assert.equal(gguf.applyChatTemplate([{ role: "user", content: "x" }]), hf.applyChatTemplate([{ role: "user", content: "x" }]));
});

test("GGUF tokenizer parses control tokens only when asked; user-defined tokens always", () => {
  const text = "<|im_start|>a<think>b";
  const parsed = gguf.encode(text);
  assert.equal(parsed[0], 151644);
  assert.ok(parsed.includes(151667));
  const plain = gguf.encode(text, { parseSpecial: false });
  assert.ok(!plain.includes(151644));
  assert.ok(plain.includes(151667));
  assert.equal(gguf.decode(plain), text);
});

test("loadHfTokenizer reads a folder and names a missing tokenizer.json", async () => {
  const t = await loadHfTokenizer(files.dir);
  assert.deepEqual(t.encode("Hello world!"), hf.encode("Hello world!"));
  await assert.rejects(loadHfTokenizer("/nonexistent-folder-for-test"), /tokenizer\.json: file not found/);
});
