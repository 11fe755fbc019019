import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveRequest, REQUEST_LIMITS } from "../../../src/inference/request.js";
import { DEFAULT_SAMPLING, SAMPLING_PRESETS } from "../../../src/inference/sampling.js";
import { InferenceError, fromWire, toWire } from "../../../src/inference/errors.js";
import { TesseraError } from "../../../src/errors.js";

const chat = { kind: "chat" as const, messages: [{ role: "user" as const, content: "hi" }] };

function rejectsWith(fn: () => unknown, param: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InferenceError, String(e));
    assert.equal(e.kind, "invalid_request");
    assert.equal(e.param, param);
    assert.match(e.message, message);
    return true;
  });
}

test("a request resolves once into a frozen value with defaults, a seed and checked lists", () => {
  const r = resolveRequest({ model: "m", input: chat, temperature: 0.5, stop: ["END"] });
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.sampling) && Object.isFrozen(r.stop) && Object.isFrozen(r.input));
  assert.ok(Object.isFrozen((r.input as typeof chat).messages[0]));
  assert.equal(r.sampling.temperature, 0.5);
  assert.equal(r.sampling.topP, DEFAULT_SAMPLING.topP);
  assert.ok(Number.isInteger(r.sampling.seed) && r.sampling.seed >= 0 && r.sampling.seed < 2 ** 32);
  assert.equal(r.maxTokens, null);
  assert.equal(r.stopTokenIds, null, "null: the model's own end-of-turn tokens");
  assert.equal(r.logprobs, null);
  assert.deepEqual(r.stop, ["END"]);
  assert.throws(() => ((r as { model: string }).model = "other"), TypeError);
  // the caller's arrays are copied, not shared
  const messages = [{ role: "user" as const, content: "a" }];
  const r2 = resolveRequest({ input: { kind: "chat", messages }, seed: 7 });
  messages[0]!.content = "changed";
  assert.equal((r2.input as typeof chat).messages[0]!.content, "a");
  assert.equal(r2.sampling.seed, 7);
  assert.notEqual(r.id, r2.id);
  // a preset supplies the defaults
  const llama = resolveRequest({ input: chat }, { defaults: SAMPLING_PRESETS["llama.cpp"] });
  assert.deepEqual([llama.sampling.temperature, llama.sampling.topK, llama.sampling.topP, llama.sampling.minP], [0.8, 40, 0.95, 0.05]);
});

test("bad fields are refused with the field named", () => {
  rejectsWith(() => resolveRequest({ input: chat, temperature: -1 }), "temperature", /temperature must be a number ≥ 0/);
  rejectsWith(() => resolveRequest({ input: chat, topP: 0 }), "topP", /topP must be in \(0, 1\]/);
  rejectsWith(() => resolveRequest({ input: chat, seed: 2 ** 32 }), "seed", /seed must be an integer/);
  rejectsWith(() => resolveRequest({ input: chat, maxTokens: 0 }), "maxTokens", /max tokens/);
  rejectsWith(() => resolveRequest({ input: chat, maxTokens: 1.5 }), "maxTokens", /max tokens/);
  rejectsWith(() => resolveRequest({ input: chat, stop: [""] }), "stop", /non-empty/);
  rejectsWith(() => resolveRequest({ input: chat, stop: Array.from({ length: REQUEST_LIMITS.stopStrings + 1 }, () => "x") }), "stop", /at most/);
  rejectsWith(() => resolveRequest({ input: chat, logprobs: REQUEST_LIMITS.logprobs + 1 }), "logprobs", /logprobs must be/);
  rejectsWith(() => resolveRequest({ input: { kind: "chat", messages: [{ role: "robot" as "user", content: "x" }] } }), "messages[0]", /role/);
  rejectsWith(() => resolveRequest({ input: { kind: "tokens", tokens: [1, -2] } }), "prompt", /integers/);
  rejectsWith(() => resolveRequest({ input: { kind: "text", text: 5 as unknown as string } }), "prompt", /string/);
  // the same fields in range pass (the checks above fail for the value, not the field)
  const ok = resolveRequest({ input: chat, temperature: 0, topP: 1, seed: 2 ** 32 - 1, maxTokens: 1, stop: ["x"], logprobs: REQUEST_LIMITS.logprobs });
  assert.equal(ok.maxTokens, 1);
});

test("errors travel as one wire format and come back with their kind", () => {
  const e = new InferenceError("overloaded", "queue full", { retryAfterS: 3, param: "model" });
  const back = fromWire(JSON.parse(JSON.stringify(toWire(e))));
  assert.ok(back instanceof InferenceError && back instanceof TesseraError);
  assert.deepEqual([back.kind, back.message, back.retryAfterS, back.param], ["overloaded", "queue full", 3, "model"]);
  const user = fromWire(toWire(new TesseraError("bad file", "/m.gguf")));
  assert.ok(user instanceof InferenceError);
  assert.equal(user.kind, "internal");
  assert.equal(user.message, "/m.gguf: bad file");
  const bug = fromWire(toWire(new RangeError("oops")));
  assert.ok(!(bug instanceof TesseraError), "a programming error stays a plain Error");
  assert.match(bug.stack ?? "", /RangeError: oops/);
  assert.equal(fromWire({ kind: "weird" as "internal", message: "m", user: true }).constructor, InferenceError);
});
