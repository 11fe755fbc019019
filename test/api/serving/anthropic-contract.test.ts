import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { InferenceError } from "../../../src/inference/errors.js";
import { parseSse, postJson } from "./fixtures.js";
import { ScriptedDirectory, scriptedServer, speak } from "./scripted.js";

// The Anthropic adapter's contract, over raw HTTP.
const dir = new ScriptedDirectory();
let server: Awaited<ReturnType<typeof scriptedServer>>;
before(async () => (server = await scriptedServer(dir)));
after(() => server.close());

const msg = (body: object, path = "/v1/messages", headers: Record<string, string> = {}) =>
  postJson(server.url(path), { model: "claude-opus-4-1", max_tokens: 5, messages: [{ role: "user", content: "hi" }], ...body }, headers);

test("system as a string or blocks, and mid-conversation; sampling fields; unknown fields, betas and ?beta=true", async () => {
  dir.script = speak("ok");
  const r = await msg(
    {
      system: [{ type: "text", text: "You are Claude Code.", cache_control: { type: "ephemeral" } }, { type: "text", text: "Be brief." }],
      messages: [
        { role: "user", content: [{ type: "text", text: "hi" }] },
        { role: "assistant", content: [{ type: "thinking", thinking: "hmm", signature: "s" }, { type: "text", text: "hello" }, { type: "tool_use", id: "t1", name: "Read", input: { path: "a" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "file" }] }] },
        { role: "system", content: "Now in French." },
        { role: "user", content: "again" },
      ],
      temperature: 0.3,
      top_p: 0.8,
      top_k: 5,
      stop_sequences: ["\n\nHuman:"],
      metadata: { user_id: "u" },
      thinking: { type: "enabled", budget_tokens: 1000 },
      tools: [{ name: "Read", input_schema: {} }],
      tool_choice: { type: "auto" },
      some_new_field: true,
    },
    "/v1/messages?beta=true",
    { "anthropic-version": "2023-06-01", "anthropic-beta": "fine-grained-tool-streaming-2025-05-14,made-up-beta" },
  );
  assert.equal(r.status, 200, r.text);
  const req = dir.last();
  assert.equal(req.model, "m");
  assert.deepEqual(
    (req.input as any).messages.map((m: any) => [m.role, m.content]),
    [
      ["system", "You are Claude Code.\nBe brief."],
      ["user", "hi"],
      ["assistant", 'hello\n{"tool_use":"Read","id":"t1","input":{"path":"a"}}'],
      ["user", '{"tool_result":"t1","content":"file"}'],
      ["system", "Now in French."],
      ["user", "again"],
    ],
  );
  assert.deepEqual([req.sampling.temperature, req.sampling.topP, req.sampling.topK, req.maxTokens], [0.3, 0.8, 5, 5]);
  assert.deepEqual(req.stop, ["\n\nHuman:"]);
  const body = r.json();
  assert.equal(body.type, "message");
  assert.deepEqual(body.content, [{ type: "text", text: "ok" }]);
  assert.equal(body.stop_reason, "max_tokens");
  assert.deepEqual(body.usage, { input_tokens: 7, output_tokens: 2, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  assert.match(r.headers.get("request-id")!, /^req_/);
});

test("stop reasons: end_turn for the model's own end, stop_sequence with the string", async () => {
  dir.script = speak("a", { finishReason: "stop", stoppedBy: { token: 2 } });
  assert.deepEqual([(await msg({})).json().stop_reason, (await msg({})).json().stop_sequence], ["end_turn", null]);
  dir.script = speak("a", { finishReason: "stop", stoppedBy: { string: "END" } });
  const r = (await msg({})).json();
  assert.deepEqual([r.stop_reason, r.stop_sequence], ["stop_sequence", "END"]);
});

test("errors in Anthropic's shape: missing max_tokens, images, unknown model, overload", async () => {
  const cases: [object, number, string, RegExp][] = [
    [{ max_tokens: undefined }, 400, "invalid_request_error", /max_tokens/],
    [{ messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "" } }] }] }, 400, "invalid_request_error", /image blocks are not supported/],
    [{ messages: [{ role: "robot", content: "x" }] }, 400, "invalid_request_error", /messages\[0\]\.role/],
    [{ model: "mistral" }, 404, "not_found_error", /mistral/],
  ];
  for (const [body, status, type, message] of cases) {
    const r = await msg(body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.json().type, "error");
    assert.equal(r.json().error.type, type);
    assert.match(r.json().error.message, message);
  }
  dir.script = async () => {
    throw new InferenceError("overloaded", "queue full", { retryAfterS: 1 });
  };
  const busy = await msg({ stream: true });
  assert.equal(busy.status, 429);
  assert.equal(busy.json().error.type, "rate_limit_error");
});

test("the stream's events in order; ping while a model loads; a failure as event: error", async () => {
  dir.script = async (req, opts) => {
    opts.onLoading?.();
    return speak("hi!", { finishReason: "stop", stoppedBy: { token: 1 } })(req, opts);
  };
  const r = await msg({ stream: true });
  const ev = parseSse(r.text);
  assert.deepEqual(ev.map((e) => e.event), [
    "ping", "message_start", "content_block_start", "ping",
    "content_block_delta", "content_block_delta", "content_block_delta",
    "content_block_stop", "message_delta", "message_stop",
  ]);
  for (const e of ev) assert.equal((e.data as { type: string }).type, e.event, "every event's data names its type");
  const start = ev[1]!.data as any;
  assert.equal(start.message.usage.input_tokens, 7);
  assert.deepEqual(start.message.content, []);
  assert.deepEqual(ev.slice(4, 7).map((e) => (e.data as any).delta.text), ["h", "i", "!"]);
  assert.deepEqual((ev[8]!.data as any).delta, { stop_reason: "end_turn", stop_sequence: null });
  assert.equal((ev[8]!.data as any).usage.output_tokens, 3);

  dir.script = async (_r, opts) => {
    opts.onPrompt?.({ promptTokens: 7, cachedTokens: 0 });
    throw new InferenceError("internal", "the engine stopped");
  };
  const failed = parseSse((await msg({ stream: true })).text);
  assert.deepEqual(failed.at(-1), { event: "error", data: { type: "error", error: { type: "api_error", message: "the engine stopped" } } });
});

test("count_tokens counts what the template gets, without max_tokens", async () => {
  const r = await postJson(server.url("/v1/messages/count_tokens"), { model: "claude-sonnet-4-5", system: "abc", messages: [{ role: "user", content: "hello" }] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { input_tokens: 8 });
  const bad = await postJson(server.url("/v1/messages/count_tokens"), { model: "claude-sonnet-4-5" });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().error.type, "invalid_request_error");
});
