import { test } from "node:test";
import assert from "node:assert/strict";
import { StreamDetokenizer } from "../../../src/inference/detokenizer.js";
import { StopMatcher } from "../../../src/inference/stop.js";
import { qwenTokenizer } from "./helpers.js";
import { tokenizerFromGguf } from "../../../src/models/tokenizer/gguf.js";
import { spmGgufVocab } from "../../../src/models/synth/vocab.js";

const tk = await qwenTokenizer();

const SPLIT_TEXT = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦜🪿 and 日本語 done";

test("the detokenizer never emits half a UTF-8 character (real Qwen3 tokenizer)", () => {
  const ids = tk.encode(SPLIT_TEXT);
  // The test only means something if some tokens are partial characters on their own.
  assert.ok(ids.filter((id) => tk.decode([id]).includes("\uFFFD")).length >= 5);
  const d = new StreamDetokenizer(tk);
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  for (const p of pieces) assert.ok(!p.includes("\uFFFD"), `piece ${JSON.stringify(p)} holds half a character`);
  assert.ok(pieces.filter((p) => p === "").length >= 5, "split characters must be held back");
  assert.equal(pieces.join(""), SPLIT_TEXT);
});

test("the detokenizer keeps spaces right after a prompt context and skips special tokens", () => {
  const prompt = tk.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  const answer = tk.encode(" Hello world, how are you?");
  const d = new StreamDetokenizer(tk, prompt);
  const text = answer.map((id) => d.push(id)).join("") + d.flush();
  assert.equal(text, " Hello world, how are you?");
  const withEnd = new StreamDetokenizer(tk, prompt);
  assert.equal([...answer, tk.stopIds[0]!].map((id) => withEnd.push(id)).join("") + withEnd.flush(), " Hello world, how are you?");
});

test("a trailing incomplete character comes out on flush as U+FFFD", () => {
  const ids = tk.encode("a🦜");
  const d = new StreamDetokenizer(tk);
  let text = "";
  for (const id of ids.slice(0, -1)) text += d.push(id);
  assert.equal(text, "a");
  assert.ok(d.flush().endsWith("\uFFFD"));
});

test("stop matcher holds back a possible stop string and releases it when it is not one", () => {
  const m = new StopMatcher(["loop", "END"]);
  assert.deepEqual(m.push("Hel"), { text: "He" }); // "l" may start "loop"
  assert.deepEqual(m.push("lo"), { text: "l" }); // "lo" still may
  assert.deepEqual(m.push(" E"), { text: "lo " }); // "E" may start "END"
  assert.deepEqual(m.push("ND rest"), { text: "", stop: "END" });
});

test("stop matcher finds a stop string spread over many pieces and picks the earliest", () => {
  const m = new StopMatcher(["abc", "bcd"]);
  const out = ["x", "a", "b", "c", "d"].map((p) => m.push(p));
  assert.deepEqual(out.slice(0, 4).map((o) => o.text), ["x", "", "", ""]);
  assert.equal(out[3]!.stop, "abc");
  assert.equal(new StopMatcher([]).push("anything").text, "anything");
  const tail = new StopMatcher(["</s>"]);
  assert.equal(tail.push("ok </").text, "ok ");
  assert.equal(tail.flush(), "</");
});

test("SentencePiece vocabulary: spaces from ▁ and byte-fallback characters stream right", () => {
  const spm = tokenizerFromGguf(new Map(spmGgufVocab(4096).entries), "spm-test");
  const text = "Hello world, 日本語 and 🦜 too";
  const ids = spm.encode(text);
  assert.ok(ids.filter((id) => /^<0x[0-9A-F]{2}>$/.test(spm.idToPiece(id))).length >= 6, "expected byte-fallback tokens");
  const d = new StreamDetokenizer(spm);
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
  assert.equal(pieces.join(""), spm.decode(ids, { skipSpecial: true }));
  assert.equal(pieces.join(""), text);
  // after a prompt, the first generated word keeps its leading space
  const prompt = spm.encode("Say:");
  const after = new StreamDetokenizer(spm, prompt);
  const word = spm.encode(" hello").filter((id) => id !== spm.bosId);
  assert.equal(word.map((id) => after.push(id)).join("") + after.flush(), spm.decode([...prompt, ...word]).slice(spm.decode(prompt).length));
});
