import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import { removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../../cluster/node-process.js";
import { parsePrometheus } from "../../cluster/prometheus-parser.js";
import { tinyModel, type TinyModel } from "./fixtures.js";

// Two nodes on 127.0.0.1 in one secret cluster, each serving a different model (the same tiny
// weights under two names) and each with its own API key: any node accepts a request for any
// model and forwards it to the node that has it (which places it on demand); tokens stream back
// over that connection. The nodes reach each other's model routes with the token they derive from
// the cluster secret, not with the client's key.

const SECRET = "serving-cluster-secret";
const KEY_A = "key-of-node-a";
const KEY_B = "key-of-node-b";
let model: TinyModel;
let a: NodeProcess;
let b: NodeProcess;
const dirs: string[] = [];
const HI = [{ role: "user" as const, content: "Say hi." }];
const GREEDY: object = { temperature: 0 };

before(async () => {
  model = await tinyModel("alpha");
  const beta = join(model.dir, "beta.gguf");
  copyFileSync(model.path, beta);
  const [da, db] = [tempDir(), tempDir()];
  dirs.push(da, db);
  const common = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--secret", SECRET, "--cluster", `s${process.pid}`, "--ctx", "512", "--threads", "1", "--measure-every", "600"];
  a = await startNode([...common, "--model", model.path, "--api-key", KEY_A], { dataDir: da });
  b = await startNode([...common, "--model", beta, "--api-key", KEY_B, "--peers", `127.0.0.1:${a.peer}`], { dataDir: db });
  await waitFor("each node to list both models", 30000, async () => {
    const lists = await Promise.all([listed(a, KEY_A), listed(b, KEY_B)]);
    return lists.every((l) => l.join() === "alpha,beta");
  });
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
  await model?.remove();
});

async function listed(n: NodeProcess, key: string): Promise<string[]> {
  const res = await fetch(n.url("/v1/models"), { headers: { authorization: `Bearer ${key}` } });
  return ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
}

async function metric(n: NodeProcess, key: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const res = await fetch(n.url("/metrics"), { headers: { authorization: `Bearer ${key}` } });
  return parsePrometheus(await res.text())
    .get(name)
    ?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function state(n: NodeProcess, key: string, id: string): Promise<{ node: string; state: string }> {
  const res = await fetch(n.url("/v1/models"), { headers: { authorization: `Bearer ${key}` } });
  return ((await res.json()) as { data: { id: string; node: string; state: string }[] }).data.find((m) => m.id === id)!;
}

test("a request sent to the node without the model is forwarded to the one with it, which places it on demand", async () => {
  assert.deepEqual(await state(a, KEY_A, "beta"), { ...(await state(a, KEY_A, "beta")), node: b.id, state: "unloaded" });
  const viaA = new OpenAI({ baseURL: a.url("/v1"), apiKey: KEY_A, maxRetries: 0 });
  const r = await viaA.chat.completions.create({ model: "beta", messages: HI, temperature: 0, max_tokens: 8, logprobs: true });
  assert.equal(r.usage!.prompt_tokens, model.promptTokens(HI));
  assert.equal(r.usage!.completion_tokens, r.choices[0]!.logprobs!.content!.length);
  assert.equal((await state(b, KEY_B, "beta")).state, "ready", "placed on node B");
  assert.equal((await state(a, KEY_A, "alpha")).state, "unloaded", "nothing was loaded on node A");
  assert.equal(await metric(b, KEY_B, "tessera_generated_tokens_total", { model: "beta" }), r.usage!.completion_tokens, "node B generated the tokens");
  // the same request on node B itself gives the same text
  const direct = await new OpenAI({ baseURL: b.url("/v1"), apiKey: KEY_B, maxRetries: 0 }).chat.completions.create({ model: "beta", messages: HI, temperature: 0, max_tokens: 8 });
  assert.equal(direct.choices[0]!.message.content, r.choices[0]!.message.content);
});

test("streams, token counts and loads go through the forwarding node in all three APIs", async () => {
  const anthropic = new Anthropic({ baseURL: a.url(""), apiKey: KEY_A, maxRetries: 0 });
  const stream = anthropic.messages.stream({ model: "beta", max_tokens: 8, ...GREEDY, messages: HI });
  const final = await stream.finalMessage();
  assert.equal(final.usage.input_tokens, model.promptTokens(HI));
  assert.equal((await anthropic.messages.countTokens({ model: "beta", messages: HI })).input_tokens, model.promptTokens(HI));
  const ollama = new Ollama({ host: a.url(""), headers: { Authorization: `Bearer ${KEY_A}` } });
  let text = "";
  for await (const part of await ollama.chat({ model: "beta", messages: HI, stream: true, options: { temperature: 0, num_predict: 8 } })) text += part.message.content;
  assert.equal(text, (final.content[0] as { text: string }).text);
  assert.equal((await ollama.generate({ model: "beta", prompt: "", keep_alive: 0 })).done_reason, "unload");
  assert.equal((await state(b, KEY_B, "beta")).state, "unloaded", "unloaded on node B");
  assert.equal((await ollama.generate({ model: "beta", prompt: "" })).done_reason, "load");
  assert.equal((await state(b, KEY_B, "beta")).state, "ready");
});

test("a forwarded stream that the client aborts stops on the model's node and frees its slot", async () => {
  const viaA = new OpenAI({ baseURL: a.url("/v1"), apiKey: KEY_A, maxRetries: 0 });
  const before = (await metric(b, KEY_B, "tessera_generated_tokens_total", { model: "beta" })) ?? 0;
  const ac = new AbortController();
  const stream = await viaA.chat.completions.create({ model: "beta", messages: HI, temperature: 0, max_tokens: 480, stream: true }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  assert.equal(await metric(b, KEY_B, "tessera_model_requests_running", { model: "beta" }), 1, "running on node B");
  ac.abort();
  await it.next().catch(() => undefined);
  await waitFor("node B's slot to be free", 20000, async () => (await metric(b, KEY_B, "tessera_model_requests_running", { model: "beta" })) === 0);
  const generated = (await waitFor("node B to count the cancelled generation", 20000, async () => {
    const now = (await metric(b, KEY_B, "tessera_generated_tokens_total", { model: "beta" })) ?? 0;
    return now > before ? now : undefined;
  })) - before;
  assert.ok(generated < 480, `node B went on for ${generated} tokens`);
});

test("nodes reach each other's model routes with the cluster token, not with a client's key", async () => {
  const internal = (key: string) => fetch(b.url("/internal/v1/models"), { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
  assert.equal(await internal(KEY_A), 401, "node A's client key does not open node B");
  assert.equal(await internal(KEY_B), 200);
  const wrongToken = await fetch(b.url("/internal/v1/models"), { headers: { "x-tessera-node": "forged" } });
  assert.equal(wrongToken.status, 401);
});
