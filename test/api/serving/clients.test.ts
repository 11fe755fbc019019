import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import { getJson, removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../../cluster/node-process.js";
import { parsePrometheus } from "../../cluster/prometheus-parser.js";
import type { ChatMessage } from "../../../src/models/types.js";
import { tinyModel, type TinyModel } from "./fixtures.js";

// One node serving a tiny synthetic qwen3 model (real Qwen3 tokenizer and chat template), driven
// through the official npm clients of the three APIs. The model is placed on demand by the first
// request. Expected token counts come from the tokenizer in this process, not from the node.

let model: TinyModel;
let node: NodeProcess;
let openai: OpenAI;
let anthropic: Anthropic;
let ollama: Ollama;
const dirs: string[] = [];
const HI = [{ role: "user" as const, content: "Say hi." }];
// The Anthropic SDK's types no longer list temperature (newer Claude models ignore it); the API takes it.
const GREEDY: object = { temperature: 0 };

before(async () => {
  model = await tinyModel();
  const dataDir = tempDir();
  dirs.push(dataDir);
  node = await startNode(["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--model", model.path, "--ctx", "512", "--threads", "1"], { dataDir });
  openai = new OpenAI({ baseURL: node.url("/v1"), apiKey: "not-needed", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: node.url(""), apiKey: "not-needed", maxRetries: 0 });
  ollama = new Ollama({ host: node.url("") });
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
  await model?.remove();
});

async function metrics() {
  const res = await fetch(node.url("/metrics"));
  return parsePrometheus(await res.text());
}

function sample(m: Awaited<ReturnType<typeof metrics>>, name: string, labels: Record<string, string> = {}): number | undefined {
  return m.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

let greedy = "";

test("the first request places the model on demand; OpenAI chat: text, logprobs, usage equal to the token counts", async () => {
  const listed = await openai.models.list();
  assert.deepEqual(listed.data.map((m) => [m.id, (m as unknown as { state: string }).state]), [[model.id, "unloaded"]]);
  const r = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 2 });
  const c = r.choices[0]!;
  greedy = c.message.content!;
  assert.ok(greedy.length > 0);
  assert.equal(r.model, model.id);
  assert.equal(r.usage!.prompt_tokens, model.promptTokens(HI));
  assert.equal(r.usage!.completion_tokens, c.logprobs!.content!.length);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
  assert.equal(c.logprobs!.content!.map((l) => l.token).join(""), greedy);
  for (const l of c.logprobs!.content!) {
    assert.equal(l.top_logprobs.length, 2);
    assert.equal(l.top_logprobs[0]!.token, l.token, "greedy: the chosen token is the most likely");
    assert.ok(l.logprob <= 0 && l.top_logprobs[1]!.logprob <= l.logprob);
  }
  if (c.finish_reason === "length") assert.equal(r.usage!.completion_tokens, 12);
  assert.equal((await openai.models.retrieve(model.id)).id, model.id);
  assert.equal(((await openai.models.list()).data[0] as unknown as { state: string }).state, "ready");
});

test("OpenAI streaming: the same text, include_usage's final chunk, max_completion_tokens over max_tokens", async () => {
  const stream = await openai.chat.completions.create({
    model: model.id,
    messages: HI,
    temperature: 0,
    max_tokens: 12,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  const last = chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage!.prompt_tokens, model.promptTokens(HI));
  assert.ok(chunks.slice(0, -1).every((ch) => ch.usage === null && ch.choices.length === 1));
  assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
  const text = chunks.map((ch) => ch.choices[0]?.delta.content ?? "").join("");
  assert.equal(text, greedy);
  assert.ok(chunks.at(-2)!.choices[0]!.finish_reason);
  const capped = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 10, max_completion_tokens: 3 });
  assert.equal(capped.usage!.completion_tokens, 3);
  assert.equal(capped.choices[0]!.finish_reason, "length");
  assert.ok(greedy.startsWith(capped.choices[0]!.message.content!));
});

test("a stop sequence ends the text before it, streamed or not", async () => {
  const at = Math.max(1, Math.floor(greedy.length / 2));
  const stop = greedy.slice(at, at + 3);
  const want = greedy.slice(0, greedy.indexOf(stop));
  const r = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 12, stop: [stop] });
  assert.equal(r.choices[0]!.message.content, want);
  assert.equal(r.choices[0]!.finish_reason, "stop");
  const stream = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 12, stop, stream: true });
  let text = "";
  for await (const ch of stream) text += ch.choices[0]?.delta.content ?? "";
  assert.equal(text, want);
  // control: without the stop string the text goes on past it
  assert.notEqual(want, greedy);
});

test("the same seed gives the same text twice; another seed another text", async () => {
  const ask = (seed: number) =>
    openai.chat.completions.create({ model: model.id, messages: HI, temperature: 2, top_p: 1, max_tokens: 16, seed }).then((r) => r.choices[0]!.message.content);
  const [a, b, c] = [await ask(1234), await ask(1234), await ask(99)];
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.notEqual(a, greedy, "hot enough to leave the greedy path");
});

test("n choices through the OpenAI client: choice i is the request with seed + i, streamed or not; usage sums the completions", async () => {
  const body = { model: model.id, messages: HI, temperature: 2, top_p: 1, max_tokens: 16 };
  const alone = [];
  for (const seed of [500, 501, 502]) alone.push(await openai.chat.completions.create({ ...body, seed }));
  const texts = alone.map((r) => r.choices[0]!.message.content);
  assert.ok(new Set(texts).size > 1, "three seeds, more than one text");
  const three = await openai.chat.completions.create({ ...body, seed: 500, n: 3 });
  assert.deepEqual(three.choices.map((c) => [c.index, c.message.content]), texts.map((t, i) => [i, t]));
  assert.equal(three.usage!.completion_tokens, alone.reduce((n, r) => n + r.usage!.completion_tokens, 0));
  assert.equal(three.usage!.prompt_tokens, alone[0]!.usage!.prompt_tokens, "the prompt counted once");
  const stream = await openai.chat.completions.create({ ...body, seed: 500, n: 3, stream: true });
  const streamed = ["", "", ""];
  for await (const chunk of stream) for (const c of chunk.choices) streamed[c.index] += c.delta.content ?? "";
  assert.deepEqual(streamed, texts);
});

test("OpenAI completions and the Responses API (Codex's probe included)", async () => {
  const raw = await openai.completions.create({ model: model.id, prompt: "Once upon a time", max_tokens: 5, temperature: 0, echo: true, logprobs: 1 });
  const choice = raw.choices[0]!;
  assert.ok(choice.text.startsWith("Once upon a time"));
  assert.equal(choice.logprobs!.tokens!.length, raw.usage!.completion_tokens);
  assert.equal(raw.usage!.prompt_tokens, model.tokenizer.encode("Once upon a time", { addSpecial: true }).length);

  const probe = await openai.responses.create({ model: model.id, input: "", max_output_tokens: 1 });
  assert.equal(probe.usage!.output_tokens, 1);
  assert.equal(probe.status, "incomplete");
  const resp = await openai.responses.create({ model: model.id, input: HI[0]!.content, max_output_tokens: 12, temperature: 0 });
  assert.equal(resp.output_text, greedy);
  assert.equal(resp.usage!.input_tokens, model.promptTokens(HI));
  const events = await openai.responses.create({
    model: model.id,
    input: [{ role: "user", content: [{ type: "input_text", text: HI[0]!.content }] }],
    max_output_tokens: 12,
    temperature: 0,
    stream: true,
    tools: [{ type: "web_search" } as never, { type: "function", name: "ls", parameters: {}, strict: false }],
  });
  let deltas = "";
  const types: string[] = [];
  for await (const e of events) {
    types.push(e.type);
    if (e.type === "response.output_text.delta") deltas += e.delta;
  }
  assert.equal(deltas, greedy);
  assert.equal(types[0], "response.created");
  assert.ok(["response.completed", "response.incomplete"].includes(types.at(-1)!));
});

test("Anthropic messages: text, usage, stop reasons, streaming, count_tokens, a mid-conversation system message", async () => {
  const r = await anthropic.messages.create({ model: model.id, max_tokens: 12, ...GREEDY, messages: HI });
  assert.equal((r.content[0] as { text: string }).text, greedy, "the same prompt and sampling give the same text in every API");
  assert.equal(r.usage.input_tokens, model.promptTokens(HI));
  assert.ok(["max_tokens", "end_turn"].includes(r.stop_reason!));
  const stop = greedy.slice(2, 5);
  const stopped = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 12, ...GREEDY, messages: HI, stop_sequences: [stop] });
  assert.equal(stopped.stop_reason, "stop_sequence");
  assert.equal(stopped.stop_sequence, stop);
  assert.equal((stopped.content[0] as { text: string }).text, greedy.slice(0, greedy.indexOf(stop)));

  const stream = anthropic.messages.stream({ model: model.id, max_tokens: 12, ...GREEDY, system: [{ type: "text", text: "Be brief." }], messages: HI });
  const kinds: string[] = [];
  stream.on("streamEvent", (e) => kinds.push(e.type));
  const final = await stream.finalMessage();
  const withSystem: ChatMessage[] = [{ role: "system", content: "Be brief." }, ...HI];
  assert.equal(final.usage.input_tokens, model.promptTokens(withSystem));
  assert.equal(final.usage.output_tokens, (await anthropic.messages.create({ model: model.id, max_tokens: 12, ...GREEDY, system: "Be brief.", messages: HI })).usage.output_tokens);
  assert.deepEqual([kinds[0], kinds[1], kinds.at(-3), kinds.at(-2), kinds.at(-1)], ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
  assert.ok(kinds.includes("content_block_delta"));

  const count = await anthropic.messages.countTokens({ model: model.id, system: "Be brief.", messages: HI });
  assert.equal(count.input_tokens, model.promptTokens(withSystem));

  const mid = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "hello" },
    { role: "system", content: "From now on, answer in French." },
    { role: "user", content: "again" },
  ];
  const m = await anthropic.messages.create({ model: model.id, max_tokens: 3, messages: mid as Anthropic.MessageParam[] });
  assert.equal(m.usage.input_tokens, model.promptTokens(mid as ChatMessage[]));
});

test("Ollama: tags, chat and generate streamed and not, show, ps, load and unload replies", async () => {
  const tags = await ollama.list();
  assert.deepEqual(tags.models.map((m) => m.name), [`${model.id}:latest`]);
  const chat = await ollama.chat({ model: model.id, messages: HI, stream: false, options: { temperature: 0, num_predict: 12 } });
  assert.equal(chat.message.content, greedy);
  assert.equal(chat.prompt_eval_count, model.promptTokens(HI));
  assert.ok(chat.done && chat.eval_count > 0);
  let streamed = "";
  let last;
  for await (const part of await ollama.chat({ model: `${model.id}:latest`, messages: HI, stream: true, options: { temperature: 0, num_predict: 12 } })) {
    streamed += part.message.content;
    last = part;
  }
  assert.equal(streamed, greedy);
  assert.equal(last!.done, true);
  assert.ok(["stop", "length"].includes(last!.done_reason));
  let generated = "";
  for await (const part of await ollama.generate({ model: model.id, prompt: HI[0]!.content, stream: true, options: { temperature: 0, num_predict: 12 } })) generated += part.response;
  assert.equal(generated, greedy, "generate applies the chat template like chat");

  const show = await ollama.show({ model: model.id });
  const info = show.model_info as unknown as Record<string, unknown>;
  assert.equal(info["qwen3.context_length"], 512);
  assert.equal(info["general.architecture"], "qwen3");
  assert.match(show.template, /im_start/);
  assert.deepEqual(show.capabilities, ["completion"]);
  assert.equal(show.details.family, "qwen3");

  const unloaded = await ollama.generate({ model: model.id, prompt: "", keep_alive: 0 });
  assert.equal(unloaded.done_reason, "unload");
  assert.deepEqual((await ollama.ps()).models, []);
  const loaded = await ollama.chat({ model: model.id, messages: [], keep_alive: "10m" });
  assert.equal(loaded.done_reason, "load");
  const ps = await ollama.ps();
  assert.deepEqual(ps.models.map((m) => m.name), [`${model.id}:latest`]);
  const expires = new Date(ps.models[0]!.expires_at).getTime() - Date.now();
  assert.ok(expires > 9 * 60_000 && expires <= 10 * 60_000, `expires in ${expires} ms`);
  const forever = await ollama.generate({ model: model.id, prompt: "", keep_alive: -1 });
  assert.equal(forever.done_reason, "load");
});

test("an aborted stream stops its generation and frees its slot (metrics show it)", async () => {
  const before = sample(await metrics(), "tessera_generated_tokens_total", { model: model.id }) ?? 0;
  const stream = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 480, stream: true });
  let n = 0;
  for await (const ch of stream) {
    if (ch.choices[0]?.delta.content && ++n === 3) break;
  }
  // breaking out of the loop aborts the HTTP request (the next test shows the request running before that)
  const m = await waitFor("the slot to be free", 20000, async () => {
    const s = await metrics();
    return sample(s, "tessera_model_requests_running", { model: model.id }) === 0 && (sample(s, "tessera_generated_tokens_total", { model: model.id }) ?? 0) > before ? s : undefined;
  });
  const generated = sample(m, "tessera_generated_tokens_total", { model: model.id })! - before;
  assert.ok(generated < 480, `the cancelled generation went on for ${generated} tokens`);
  const r = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 2 });
  assert.equal(r.usage!.completion_tokens, 2);
});

test("while a stream runs its request counts as running; errors reach the clients as their error types", async () => {
  const ac = new AbortController();
  const stream = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 480, stream: true }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  assert.equal(sample(await metrics(), "tessera_model_requests_running", { model: model.id }), 1);
  ac.abort();
  await it.next().catch(() => undefined);
  await waitFor("the slot to be free", 20000, async () => sample(await metrics(), "tessera_model_requests_running", { model: model.id }) === 0);

  await assert.rejects(openai.chat.completions.create({ model: "no-such-model", messages: HI }), (e: unknown) => e instanceof OpenAI.NotFoundError && /no-such-model/.test(e.message));
  await assert.rejects(openai.chat.completions.create({ model: model.id, messages: HI, n: 17 }), (e: unknown) => e instanceof OpenAI.BadRequestError && (e.error as { param?: string }).param === "n");
  await assert.rejects(anthropic.messages.create({ model: "nope", max_tokens: 1, messages: HI }), (e: unknown) => e instanceof Anthropic.NotFoundError);
  await assert.rejects(ollama.chat({ model: "nope", messages: HI }), (e: unknown) => (e as { status_code?: number }).status_code === 404);
  const health = (await getJson(node.url("/healthz"))) as { ok: boolean };
  assert.equal(health.ok, true);
});

test("a running request can be cancelled by its id (the API object id works too)", async () => {
  const stream = await openai.chat.completions.create({ model: model.id, messages: HI, temperature: 0, max_tokens: 480, stream: true });
  const it = stream[Symbol.asyncIterator]();
  const first = (await it.next()).value!;
  const running = (await getJson(node.url("/requests"))) as { id: string; model: string }[];
  assert.equal(running.length, 1);
  assert.equal(running[0]!.model, model.id);
  assert.equal(first.id.slice("chatcmpl-".length), running[0]!.id.replace(/-/g, "").slice(0, 24));
  const del = await fetch(node.url(`/requests/${first.id}`), { method: "DELETE" });
  assert.equal(del.status, 200);
  let tokens = 0;
  let finish: string | null | undefined;
  for (let r = await it.next(); !r.done; r = await it.next()) {
    if (r.value.choices[0]?.delta.content) tokens++;
    finish = r.value.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(tokens < 400, `${tokens} tokens after the cancel`);
  assert.equal(finish, "stop");
  assert.deepEqual(await getJson(node.url("/requests")), []);
  assert.equal(sample(await metrics(), "tessera_model_requests_running", { model: model.id }), 0);
  const gone = await fetch(node.url(`/requests/${first.id}`), { method: "DELETE" });
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { error: { kind: string } }).error.kind, "not_found");
});
