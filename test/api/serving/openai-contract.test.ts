import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { InferenceError } from "../../../src/inference/errors.js";
import { getText, parseSse, postJson } from "./fixtures.js";
import { ScriptedDirectory, result, scriptedServer, speak } from "./scripted.js";

// The OpenAI adapter's contract, over raw HTTP, for what the official client does not show.
const dir = new ScriptedDirectory();
let server: Awaited<ReturnType<typeof scriptedServer>>;
before(async () => (server = await scriptedServer(dir)));
after(() => server.close());

const CHAT = "/v1/chat/completions";
const hi = [{ role: "user", content: "hi" }];
const chat = (body: object) => postJson(server.url(CHAT), { model: "m", messages: hi, ...body });

test("fields map into the canonical request: max_completion_tokens wins, stop lists, 64-bit seeds, logprobs, extensions", async () => {
  dir.script = speak("ok");
  assert.equal((await chat({ max_tokens: 9, max_completion_tokens: 4, stop: "END", seed: 2 ** 40 + 5, temperature: 0.5, top_p: 0.9, logprobs: true, top_logprobs: 3, top_k: 7, min_p: 0.1, repetition_penalty: 1.1, user: "x", foo: { bar: [1] } })).status, 200);
  const r = dir.last();
  assert.equal(r.maxTokens, 4);
  assert.deepEqual(r.stop, ["END"]);
  assert.equal(r.sampling.seed, 5, "seeds are folded into 32 bits");
  assert.deepEqual([r.sampling.temperature, r.sampling.topP, r.sampling.topK, r.sampling.minP, r.sampling.repetitionPenalty], [0.5, 0.9, 7, 0.1, 1.1]);
  assert.equal(r.logprobs, 3);
  await chat({ max_tokens: 6, stop: ["a", "b"] });
  assert.equal(dir.last().maxTokens, 6);
  assert.deepEqual(dir.last().stop, ["a", "b"]);
  assert.equal(dir.last().logprobs, null);
  // roles and content parts
  await postJson(server.url(CHAT), {
    model: "gpt-4o",
    messages: [
      { role: "developer", content: "rules" },
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      { role: "assistant", content: null, tool_calls: [{ id: "1", type: "function", function: { name: "ls", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "1", content: "files" },
    ],
  });
  const input = dir.last().input as { kind: "chat"; messages: { role: string; content: string }[] };
  assert.equal(dir.last().model, "m", "vendor names go to the default model");
  assert.deepEqual(input.messages, [
    { role: "system", content: "rules" },
    { role: "user", content: "a\nb" },
    { role: "assistant", content: '{"name":"ls","arguments":"{}"}' },
    { role: "tool", content: "files" },
  ]);
});

test("bad requests: 400 in OpenAI's shape naming the field; 404 for an unknown model", async () => {
  const cases: [object, string | null][] = [
    [{ n: 0 }, "n"],
    [{ n: 17 }, "n"],
    [{ n: 1.5 }, "n"],
    [{ temperature: 3 }, "temperature"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ response_format: { type: "json_schema", json_schema: {} } }, "response_format"],
    [{ messages: [] }, "messages"],
    [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }, "messages[0].content[0]"],
    [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
    [{ top_logprobs: 21, logprobs: true }, "top_logprobs"],
    [{ stop: [1] }, "stop"],
  ];
  for (const [body, param] of cases) {
    const r = await chat(body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const e = r.json().error;
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.param, param, JSON.stringify(body));
    assert.equal(typeof e.message, "string");
  }
  const nf = await chat({ model: "llama-9000" });
  assert.equal(nf.status, 404);
  assert.equal(nf.json().error.code, "model_not_found");
  assert.match(nf.json().error.message, /models here: m, org\/slashed/);
});

test("queue full → 429, not running → 503 with Retry-After, prompt too long → 400 context_length_exceeded", async () => {
  const cases: [InferenceError, number, string][] = [
    [new InferenceError("overloaded", "queue full", { retryAfterS: 1 }), 429, "rate_limit_exceeded"],
    [new InferenceError("unavailable", "not running", { retryAfterS: 5 }), 503, "model_not_available"],
    [new InferenceError("context_overflow", "too long"), 400, "context_length_exceeded"],
  ];
  for (const [err, status, code] of cases) {
    dir.script = async () => {
      throw err;
    };
    for (const stream of [false, true]) {
      const r = await chat({ stream });
      assert.equal(r.status, status);
      assert.equal(r.json().error.code, code);
      assert.equal(r.headers.get("retry-after"), err.retryAfterS === undefined ? null : String(err.retryAfterS));
    }
  }
});

test("a stream: role chunk, content, finish, include_usage chunk, [DONE]; a mid-stream failure as data: {error}", async () => {
  dir.script = speak("abc");
  const ok = await chat({ stream: true, stream_options: { include_usage: true } });
  assert.match(ok.headers.get("content-type")!, /^text\/event-stream/);
  const events = parseSse(ok.text).map((e) => e.data as any);
  assert.deepEqual(events.map((e) => (e === "[DONE]" ? e : (e.choices[0]?.delta.content ?? e.choices[0]?.finish_reason ?? "usage"))), ["", "a", "b", "c", "length", "usage", "[DONE]"]);
  assert.deepEqual(events[5].usage, { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10, prompt_tokens_details: { cached_tokens: 0 } });
  assert.ok(events.slice(0, 5).every((e) => e.usage === null));
  const plain = parseSse((await chat({ stream: true })).text).map((e) => e.data as any);
  assert.ok(plain.slice(0, -1).every((e) => !("usage" in e)), "no usage key without include_usage");

  dir.script = async (_r, opts) => {
    opts.onPrompt?.({ promptTokens: 7, cachedTokens: 0 });
    opts.onToken?.({ token: 1, text: "par" });
    throw new InferenceError("internal", "engine worker exited (code 1)");
  };
  const failed = await chat({ stream: true });
  assert.equal(failed.status, 200);
  const ev = parseSse(failed.text).map((e) => e.data as any);
  assert.equal(ev[1].choices[0].delta.content, "par");
  assert.deepEqual(ev.at(-1), { error: { message: "engine worker exited (code 1)", type: "server_error", param: null, code: null } });
  assert.ok(!ev.includes("[DONE]"));
});

test("n choices: one sequence each, seeded seed + i, every chunk naming its choice; usage counts the prompt once", async () => {
  // each choice speaks its own seed, so where a text went shows which request it came from
  dir.script = (req, opts) => speak(`s${req.sampling.seed}`)(req, opts);
  const whole = await chat({ n: 3, seed: 40 });
  assert.equal(whole.status, 200);
  const reqs = dir.requests.slice(-3);
  assert.deepEqual(reqs.map((r) => r.sampling.seed), [40, 41, 42]);
  assert.deepEqual(whole.json().choices.map((c: any) => [c.index, c.message.content, c.finish_reason]), [[0, "s40", "length"], [1, "s41", "length"], [2, "s42", "length"]]);
  assert.deepEqual(whole.json().usage, { prompt_tokens: 7, completion_tokens: 9, total_tokens: 16, prompt_tokens_details: { cached_tokens: 0 } });
  const streamed = parseSse((await chat({ n: 2, seed: 7, stream: true, stream_options: { include_usage: true } })).text).map((e) => e.data as any);
  const texts = ["", ""];
  const finished = [0, 0];
  for (const e of streamed.slice(0, -2)) {
    assert.equal(e.choices.length, 1);
    const c = e.choices[0];
    texts[c.index] += c.delta.content ?? "";
    if (c.finish_reason) finished[c.index]++;
  }
  assert.deepEqual(texts, ["s7", "s8"]);
  assert.deepEqual(finished, [1, 1], "one finish chunk per choice");
  assert.equal(streamed.filter((e) => e !== "[DONE]" && e.choices[0]?.delta?.role === "assistant").length, 2, "a role chunk per choice");
  assert.equal(streamed.at(-2).usage.completion_tokens, 4);
  assert.equal(streamed.at(-1), "[DONE]");
  // legacy completions too, echo on every choice
  const legacy = await postJson(server.url("/v1/completions"), { model: "m", prompt: "ab", echo: true, n: 2, seed: 3 });
  assert.deepEqual(legacy.json().choices.map((c: any) => [c.index, c.text]), [[0, "abs3"], [1, "abs4"]]);
  assert.equal((await postJson(server.url("/v1/completions"), { model: "m", prompt: "ab", best_of: 2 })).json().error.param, "best_of");
  // one choice failing fails the request, and its siblings are cancelled
  let cancelled = 0;
  dir.script = async (req, opts) => {
    if (req.sampling.seed === 101) throw new InferenceError("internal", "engine worker exited (code 1)");
    await new Promise<void>((resolve) => opts.signal?.addEventListener("abort", () => resolve()));
    cancelled++;
    return result("", { finishReason: "cancelled" });
  };
  const failed = await chat({ n: 3, seed: 100 });
  assert.equal(failed.status, 500);
  for (let i = 0; i < 50 && cancelled < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(cancelled, 2);
});

test("while a model loads, the stream starts with keep-alive comments", async () => {
  dir.script = async (req, opts) => {
    opts.onLoading?.();
    await new Promise((r) => setTimeout(r, 30));
    return speak("x")(req, opts);
  };
  const r = await chat({ stream: true });
  const ev = parseSse(r.text);
  assert.equal(ev[0]!.comment, "loading model");
  assert.equal((ev[2]!.data as any).choices[0].delta.content, "x");
});

test("completions: text and token prompts, echo; refused prompt shapes", async () => {
  dir.script = speak("xy");
  const r = await postJson(server.url("/v1/completions"), { model: "m", prompt: "ab", echo: true, max_tokens: 3 });
  assert.equal(r.json().choices[0].text, "abxy");
  assert.deepEqual(dir.last().input, { kind: "text", text: "ab" });
  assert.equal(dir.last().maxTokens, 3);
  await postJson(server.url("/v1/completions"), { model: "m", prompt: [[1, 2, 3]] });
  assert.deepEqual(dir.last().input, { kind: "tokens", tokens: [1, 2, 3] });
  assert.equal(dir.last().maxTokens, 16, "OpenAI's default for completions");
  for (const [body, param] of [[{ prompt: ["a", "b"] }, "prompt"], [{ prompt: 5 }, "prompt"], [{ prompt: "a", suffix: "z" }, "suffix"], [{ prompt: "a", best_of: 2 }, "best_of"], [{ prompt: [1], echo: true }, "echo"]] as const) {
    const bad = await postJson(server.url("/v1/completions"), { model: "m", ...body });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().error.param, param);
  }
  const s = parseSse((await postJson(server.url("/v1/completions"), { model: "m", prompt: "ab", echo: true, stream: true })).text).map((e) => e.data as any);
  assert.deepEqual(s.slice(0, -2).map((e) => e.choices[0].text), ["ab", "x", "y"]);
});

test("responses: previous_response_id refused, unknown tools skipped, items mapped, the probe answered", async () => {
  dir.script = speak("ok");
  const prev = await postJson(server.url("/v1/responses"), { model: "m", input: "hi", previous_response_id: "resp_1" });
  assert.equal(prev.status, 400);
  assert.equal(prev.json().error.param, "previous_response_id");
  const r = await postJson(server.url("/v1/responses"), {
    model: "m",
    instructions: "be terse",
    input: [
      { type: "message", role: "user", content: [{ type: "input_text", text: "list" }] },
      { type: "reasoning", summary: [] },
      { type: "function_call", name: "ls", arguments: "{}", call_id: "c1" },
      { type: "function_call_output", call_id: "c1", output: "a.txt" },
      { type: "some_future_item", data: 1 },
    ],
    tools: [{ type: "local_shell" }, { type: "function", name: "ls", parameters: {} }, { type: "web_search_preview" }, { type: "custom", name: "apply_patch" }],
    reasoning: { effort: "high" },
    store: false,
    include: ["reasoning.encrypted_content"],
    max_output_tokens: 2,
  });
  assert.equal(r.status, 200);
  const body = r.json();
  assert.deepEqual(body.tools.map((t: { type: string }) => t.type), ["function"]);
  assert.equal(body.output_text, "ok");
  assert.equal(body.status, "incomplete");
  assert.deepEqual(body.incomplete_details, { reason: "max_output_tokens" });
  assert.deepEqual((dir.last().input as any).messages.map((m: any) => m.role), ["system", "user", "assistant", "tool"]);
  const probe = await postJson(server.url("/v1/responses"), { model: "m", input: [], max_output_tokens: 1 });
  assert.equal(probe.status, 200);
  assert.deepEqual((dir.last().input as any).messages, [{ role: "user", content: "" }]);
  const s = parseSse((await postJson(server.url("/v1/responses"), { model: "m", input: "hi", stream: true })).text);
  assert.deepEqual(s.map((e) => e.event), [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    "response.output_text.delta", "response.output_text.delta",
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete",
  ]);
  assert.deepEqual(s.map((e) => (e.data as any).sequence_number), s.map((_, i) => i));
});

test("models: the list carries data and models; ids with slashes; unknown ids are 404", async () => {
  const list = (await getText(server.url("/v1/models"))).json();
  assert.deepEqual(list.data.map((m: { id: string }) => m.id), ["m", "org/slashed"]);
  assert.deepEqual(list.models, list.data);
  assert.equal(list.data[0].context_length, 64);
  assert.equal((await getText(server.url("/v1/models/org/slashed"))).json().id, "org/slashed");
  const nf = await getText(server.url("/v1/models/nope"));
  assert.equal(nf.status, 404);
  assert.equal(nf.json().error.code, "model_not_found");
  const route = await getText(server.url("/v1/nothing"));
  assert.equal(route.status, 404);
  assert.equal(route.json().error.type, "invalid_request_error");
});
