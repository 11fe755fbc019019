import { test } from "node:test";
import assert from "node:assert/strict";
import { Generator } from "../../../src/inference/generator.js";
import type { TokenEvent } from "../../../src/inference/result.js";
import { Prng } from "../../../src/engine/sampling/index.js";
import { InferenceError } from "../../../src/inference/errors.js";
import { asRequest, qwenTokenizer, scriptStepper, ScriptedStepper } from "./helpers.js";

const tk = await qwenTokenizer();
const PROMPT = tk.encode("<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n");

test("greedy decoding follows the model and stops at max tokens", async () => {
  const script = tk.encode("Hello world, this is a test.");
  const stepper = scriptStepper(script, PROMPT.length);
  const events: TokenEvent[] = [];
  const r = await new Generator(stepper, tk).generate(asRequest({ promptTokens: PROMPT, temperature: 0, maxTokens: 4 }), { onToken: (e) => events.push(e) });
  assert.deepEqual(r.tokens, script.slice(0, 4));
  assert.equal(r.finishReason, "length");
  assert.equal(r.text, tk.decode(script.slice(0, 4)));
  assert.equal(events.map((e) => e.text).join(""), r.text);
  assert.deepEqual(events.filter((e) => e.token !== undefined).map((e) => e.token), r.tokens);
  assert.equal(r.timings.promptTokens, PROMPT.length);
  assert.equal(r.timings.generatedTokens, 4);
  assert.ok(r.timings.prefillTps > 0 && r.timings.decodeTps > 0);
  // prompt in one forward, then one forward per token except the last sampled one
  assert.deepEqual(stepper.calls, [PROMPT.length, 1, 1, 1]);
});

test("a stop token ends generation and is not part of the output", async () => {
  const script = [...tk.encode("Done."), tk.stopIds[0]!, ...tk.encode("never")];
  const r = await new Generator(scriptStepper(script, PROMPT.length), tk).generate(asRequest({
    promptTokens: PROMPT,
    temperature: 0,
    stopTokenIds: tk.stopIds,
    maxTokens: 20,
  }));
  assert.equal(r.finishReason, "stop");
  assert.deepEqual(r.stoppedBy, { token: tk.stopIds[0] });
  assert.equal(r.text, "Done.");
  assert.deepEqual(r.tokens, tk.encode("Done."));
});

test("a stop string spanning tokens is never streamed, not even in part", async () => {
  const script = tk.encode("Hello world, STOP here and more");
  const events: TokenEvent[] = [];
  const r = await new Generator(scriptStepper(script, PROMPT.length), tk).generate(
    asRequest({ promptTokens: PROMPT, temperature: 0, stop: ["d, ST"], maxTokens: 50 }),
    { onToken: (e) => events.push(e) },
  );
  assert.equal(r.finishReason, "stop");
  assert.deepEqual(r.stoppedBy, { string: "d, ST" });
  assert.equal(r.text, "Hello worl");
  assert.equal(events.map((e) => e.text).join(""), "Hello worl");
  assert.deepEqual(r.tokens, script.slice(0, 4)); // the token that completed the stop string was generated
});

test("held-back text that turns out not to be a stop string is released at the end", async () => {
  const script = tk.encode("one two thr");
  const events: TokenEvent[] = [];
  const r = await new Generator(scriptStepper(script, PROMPT.length), tk).generate(
    asRequest({ promptTokens: PROMPT, temperature: 0, stop: ["three"], maxTokens: script.length }),
    { onToken: (e) => events.push(e) },
  );
  assert.equal(r.finishReason, "length");
  assert.equal(r.text, "one two thr");
  const last = events.at(-1)!;
  assert.equal(last.token, undefined);
  assert.equal(last.text, "thr");
});

test("streamed text never holds half a character, even when tokens split one", async () => {
  const text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦜🪿";
  const script = tk.encode(text);
  const pieces: string[] = [];
  const r = await new Generator(scriptStepper(script, PROMPT.length), tk).generate(
    asRequest({ promptTokens: PROMPT, temperature: 0, maxTokens: script.length }),
    { onToken: (e) => pieces.push(e.text) },
  );
  assert.equal(r.text, text);
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
});

test("prefill runs in chunks of the configured size", async () => {
  const prompt = Array.from({ length: 1000 }, (_, i) => 100 + (i % 50));
  const stepper = scriptStepper([7], prompt.length);
  await new Generator(stepper, tk, { prefillChunk: 256 }).generate(asRequest({ promptTokens: prompt, temperature: 0, maxTokens: 3 }));
  assert.deepEqual(stepper.calls, [256, 256, 256, 232, 1, 1]);
});

test("a follow-up request reuses the cached prefix and gives the same tokens as a fresh run", async () => {
  const script = tk.encode("alpha beta gamma delta epsilon zeta");
  const stepper = new ScriptedStepper(151_669, 4096, (h) => script[h.length % script.length]!);
  const gen = new Generator(stepper, tk);
  const first = await gen.generate(asRequest({ promptTokens: PROMPT, temperature: 0, maxTokens: 5 }));
  const follow = [...PROMPT, ...first.tokens, ...tk.encode(" more")];
  const before = stepper.calls.length;
  const second = await gen.generate(asRequest({ promptTokens: follow, temperature: 0, maxTokens: 5 }));
  assert.equal(second.timings.cachedTokens, PROMPT.length + first.tokens.length - 1);
  assert.equal(stepper.calls[before], follow.length - second.timings.cachedTokens);
  const fresh = await new Generator(new ScriptedStepper(151_669, 4096, (h) => script[h.length % script.length]!), tk).generate(asRequest({
    promptTokens: follow,
    temperature: 0,
    maxTokens: 5,
  }));
  assert.deepEqual(second.tokens, fresh.tokens);
  assert.deepEqual(stepper.history, [...follow, ...second.tokens.slice(0, -1)]);
  // A different prompt truncates back to the common prefix.
  const other = [...PROMPT.slice(0, 3), 42, 43];
  const third = await gen.generate(asRequest({ promptTokens: other, temperature: 0, maxTokens: 1 }));
  assert.equal(third.timings.cachedTokens, 3);
  assert.deepEqual(stepper.history, other);
});

test("cancellation stops between steps with finish reason cancelled", async () => {
  const stepper = scriptStepper(tk.encode("a b c d e f g h i j k"), PROMPT.length);
  const ac = new AbortController();
  let n = 0;
  const r = await new Generator(stepper, tk).generate(
    asRequest({ promptTokens: PROMPT, temperature: 0, maxTokens: 100 }),
    { signal: ac.signal, onToken: (e) => e.token !== undefined && ++n === 3 && ac.abort() },
  );
  assert.equal(r.finishReason, "cancelled");
  assert.equal(r.tokens.length, 3);
  assert.equal(stepper.calls.length, 3); // prefill + 2 decode forwards; none after the abort
  const pre = new AbortController();
  pre.abort();
  const none = await new Generator(scriptStepper([1], 2), tk).generate(asRequest({ promptTokens: [1, 2], maxTokens: 5 }), { signal: pre.signal });
  assert.equal(none.finishReason, "cancelled");
  assert.deepEqual(none.tokens, []);
});

test("a prompt that fills the context fails before any step; max tokens stop at the context's end", async () => {
  const stepper = scriptStepper([1], 10, 1000, 64);
  const gen = new Generator(stepper, tk);
  const prompt = Array.from({ length: 10 }, (_, i) => i);
  await assert.rejects(gen.generate(asRequest({ promptTokens: Array.from({ length: 64 }, () => 1) })), (e: unknown) => {
    assert.ok(e instanceof InferenceError);
    assert.equal(e.kind, "context_overflow");
    assert.match(e.message, /the prompt has 64 tokens, the context holds 64/);
    return true;
  });
  await assert.rejects(gen.generate(asRequest({ promptTokens: [5000] })), (e: unknown) => e instanceof InferenceError && e.kind === "invalid_request" && /not in the vocabulary/.test(e.message));
  assert.deepEqual(stepper.calls, []);
  // More max tokens than the context has room for: generation runs until the context is full.
  const capped = await gen.generate(asRequest({ promptTokens: prompt, maxTokens: 60, temperature: 0 }));
  assert.equal(capped.tokens.length, 54);
  assert.equal(capped.finishReason, "length");
  const r = await gen.generate(asRequest({ promptTokens: prompt, temperature: 0 }));
  assert.equal(r.tokens.length, 54); // the default fills the context
  assert.equal(r.finishReason, "length");
  const short = await gen.generate(asRequest({ promptTokens: prompt, temperature: 0, maxTokens: 5 }));
  assert.equal(short.tokens.length, 5);
});

test("same seed, same tokens through the whole loop; logprobs per token", async () => {
  const noisy = () =>
    new ScriptedStepper(5000, 512, () => 0, {
      noise: (h, out) => {
        const rng = new Prng(h.length * 7919 + h[h.length - 1]!);
        for (let i = 0; i < out.length; i++) out[i] = rng.next() * 3;
      },
    });
  const req = { promptTokens: [1, 2, 3], maxTokens: 30, temperature: 0.8, topP: 0.9, seed: 77, logprobs: 3 };
  const a = await new Generator(noisy()).generate(asRequest(req));
  const b = await new Generator(noisy()).generate(asRequest(req));
  const c = await new Generator(noisy()).generate(asRequest({ ...req, seed: 78 }));
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
  assert.equal(a.seed, 77);
  assert.equal(a.logprobs!.length, 30);
  assert.ok(a.logprobs!.every((l, i) => l.token === a.tokens[i] && l.top.length === 3 && l.logprob <= 0));
  assert.equal(a.text, ""); // no tokenizer: tokens only
});
