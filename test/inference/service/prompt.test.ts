import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatTemplate } from "../../../src/models/tokenizer/chat.js";
import { foldSystemMessages, promptTokens, renderChat } from "../../../src/inference/prompt.js";
import { InferenceError } from "../../../src/inference/errors.js";
import type { ChatMessage } from "../../../src/models/types.js";
import { qwenTokenizer } from "../generate/helpers.js";

// A template in the style of Gemma's and Mistral's: it raises on a system message that is not first.
const STRICT = new ChatTemplate(
  "{% for m in messages %}{% if m.role == 'system' and not loop.first %}{{ raise_exception('System role must come first') }}{% endif %}" +
    "[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}",
);
const strict = { applyChatTemplate: (m: ChatMessage[]) => STRICT.render(m, { addGenerationPrompt: true }) };

const midSystem: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "hi" },
  { role: "assistant", content: "hello" },
  { role: "system", content: "Now answer in French." },
  { role: "user", content: "again" },
];

test("a system message mid-conversation: kept where the template allows it, folded where it refuses", async () => {
  const tk = await qwenTokenizer();
  // Qwen3's template renders a later system message in place
  const qwen = renderChat(tk, midSystem);
  assert.match(qwen, /<\|im_start\|>assistant\nhello<\|im_end\|>\n<\|im_start\|>system\nNow answer in French\.<\|im_end\|>/);
  // the strict template refuses it as is (control) ...
  assert.throws(() => strict.applyChatTemplate(midSystem), /System role must come first/);
  // ... and gets every system message folded into the first
  assert.equal(renderChat(strict, midSystem), "[system] Be brief.\n\nNow answer in French.\n[user] hi\n[assistant] hello\n[user] again\n[assistant] ");
  assert.equal(foldSystemMessages(midSystem.slice(0, 3)), undefined, "nothing to fold");
  // a template error that folding cannot fix is the client's: invalid_request
  const broken = { applyChatTemplate: () => STRICT.render([{ role: "system", content: "a" }, { role: "system", content: "b" }]) };
  assert.throws(() => renderChat(broken, midSystem), (e: unknown) => e instanceof InferenceError && e.kind === "invalid_request" && e.param === "messages");
});

test("inputs become prompt tokens: chat through the template, text with bos rules, tokens as they are", async () => {
  const tk = await qwenTokenizer();
  const msgs: ChatMessage[] = [{ role: "user", content: "hi" }];
  assert.deepEqual(promptTokens({ kind: "chat", messages: msgs }, tk), tk.encode(tk.applyChatTemplate(msgs)));
  assert.deepEqual(promptTokens({ kind: "text", text: "Hello" }, tk), tk.encode("Hello", { addSpecial: true }));
  assert.deepEqual(promptTokens({ kind: "tokens", tokens: [5, 6] }, undefined), [5, 6]);
  assert.throws(() => promptTokens({ kind: "text", text: "x" }, undefined), /no tokenizer/);
});
