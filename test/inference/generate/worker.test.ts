import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { EngineWorker } from "../../../src/inference/worker/engine-worker.js";
import type { TokenEvent } from "../../../src/inference/result.js";
import { TesseraError } from "../../../src/errors.js";
import { InferenceError } from "../../../src/inference/errors.js";
import { asRequest, qwenTokenizer } from "./helpers.js";

const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
const backend = { kind: "module", url: new URL(`./fake-backend${EXT}`, import.meta.url).href } as const;
const tk = await qwenTokenizer();

let engine: EngineWorker;
before(async () => {
  // 2 ms of blocking per forward, so a cancel has steps to land between.
  engine = await EngineWorker.start("script:2:Hello there, general Kenobi", { backend, contextLength: 256 });
});
after(() => engine.close());

test("the worker streams tokens and text and returns the result", async () => {
  assert.equal(engine.info.vocabSize, tk.vocabSize);
  assert.equal(engine.info.contextLength, 256);
  assert.deepEqual(engine.info.stopIds, tk.stopIds);
  const prompt = await engine.encode(await engine.applyChatTemplate([{ role: "user", content: "hi" }]));
  assert.deepEqual(prompt, tk.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
  const events: TokenEvent[] = [];
  const r = await engine.generate(asRequest({ promptTokens: prompt, temperature: 0, maxTokens: 6 }), { onToken: (e) => events.push(e) });
  assert.equal(r.text, "Hello there, general Kenobi");
  assert.equal(r.finishReason, "length");
  assert.equal(events.map((e) => e.text).join(""), r.text);
  assert.equal(await engine.decode(r.tokens), r.text);
  // the worker counts what the chat template makes of messages
  assert.equal(await engine.countTokens({ kind: "chat", messages: [{ role: "user", content: "hi" }] }), prompt.length);
  assert.equal(await engine.countTokens({ kind: "text", text: "Hello there" }), tk.encode("Hello there", { addSpecial: true }).length);
});

test("errors from the worker arrive as TesseraError / InferenceError with their kind", async () => {
  await assert.rejects(EngineWorker.start("fail:no such model", { backend }), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.message, "fake-model: no such model");
    return true;
  });
  await assert.rejects(engine.generate(asRequest({ promptTokens: Array.from({ length: 300 }, () => 1), maxTokens: 3 })), (e: unknown) => {
    assert.ok(e instanceof InferenceError);
    assert.equal(e.kind, "context_overflow");
    assert.match(e.message, /the context holds 256/);
    return true;
  });
  await assert.rejects(engine.countTokens({ kind: "tokens", tokens: [] }).then(() => engine.generate(asRequest({ promptTokens: [] }))), (e: unknown) => {
    assert.ok(e instanceof InferenceError);
    assert.equal(e.kind, "invalid_request");
    assert.equal(e.param, "prompt");
    return true;
  });
  // still usable afterwards
  const r = await engine.generate(asRequest({ promptTokens: [1, 2, 3], maxTokens: 2, temperature: 0 }));
  assert.equal(r.tokens.length, 2);
});

test("an AbortSignal cancels a running generation in the worker", async () => {
  const ac = new AbortController();
  let n = 0;
  const r = await engine.generate(
    asRequest({ promptTokens: [10, 11], maxTokens: 200, temperature: 0 }),
    { signal: ac.signal, onToken: (e) => e.token !== undefined && ++n === 4 && ac.abort() },
  );
  assert.equal(r.finishReason, "cancelled");
  assert.ok(r.tokens.length >= 4 && r.tokens.length < 200, `${r.tokens.length} tokens`);
  // the worker is usable right after
  const after = await engine.generate(asRequest({ promptTokens: [10, 11], maxTokens: 3, temperature: 0 }));
  assert.equal(after.tokens.length, 3);
});

test("queued requests run one at a time, in the order they arrived", async () => {
  // Every token is logged with its request's label as it streams: serial, ordered runs log each
  // request's tokens as one block, the blocks in arrival order.
  const log: string[] = [];
  const request = (label: string, maxTokens: number) =>
    engine.generate(asRequest({ promptTokens: [10, 11], maxTokens, temperature: 0 }), { onToken: (e) => e.token !== undefined && log.push(label) });
  const [a, b, c, d] = await Promise.all([request("a", 6), request("b", 3), request("c", 4), request("d", 2)]);
  assert.equal(log.join(""), "aaaaaabbbccccdd");
  // the same prompt, greedy: each answer is the start of the longest
  for (const r of [b, c, d]) assert.deepEqual(r!.tokens, a!.tokens.slice(0, r!.tokens.length));
});

test("a closed engine rejects new work", async () => {
  const e = await EngineWorker.start("ids:0:5", { backend });
  await e.close();
  await assert.rejects(e.generate(asRequest({ promptTokens: [1], maxTokens: 1 })), /engine closed/);
});

test("a throwing onToken callback fails its own request only", async () => {
  await assert.rejects(
    engine.generate(asRequest({ promptTokens: [10, 11], maxTokens: 50, temperature: 0 }), {
      onToken: () => {
        throw new Error("client went away");
      },
    }),
    /client went away/,
  );
  const r = await engine.generate(asRequest({ promptTokens: [10, 11], maxTokens: 2, temperature: 0 }));
  assert.equal(r.tokens.length, 2);
});
