import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { InferenceError } from "../../../src/inference/errors.js";
import { parseKeepAlive } from "../../../src/api/http/duration.js";
import { getText, postJson } from "./fixtures.js";
import { ScriptedDirectory, scriptedServer, speak } from "./scripted.js";

// The Ollama adapter's contract, over raw HTTP.
const dir = new ScriptedDirectory();
let server: Awaited<ReturnType<typeof scriptedServer>>;
before(async () => (server = await scriptedServer(dir)));
after(() => server.close());

const lines = (text: string) => text.trim().split("\n").map((l) => JSON.parse(l));

test("HEAD and GET /, version, tags, ps", async () => {
  const head = await getText(server.url("/"), {}, "HEAD");
  assert.equal(head.status, 200);
  assert.equal((await getText(server.url("/"))).text, "Ollama is running");
  assert.match((await getText(server.url("/api/version"))).json().version, /^\d+\.\d+\.\d+$/);
  const tags = (await getText(server.url("/api/tags"))).json();
  assert.deepEqual(tags.models.map((m: any) => m.name), ["m:latest", "org/slashed:latest"]);
  assert.equal(tags.models[0].size, 4096);
  assert.equal(tags.models[0].details.family, "qwen3");
  assert.equal(tags.models[0].details.parameter_size, "1.2M");
  assert.match(tags.models[0].digest, /^[0-9a-f]{64}$/);
  const ps = (await getText(server.url("/api/ps"))).json();
  assert.deepEqual(ps.models.map((m: any) => [m.name, m.context_length]), [["m:latest", 64]]);
});

test("show takes model or name and answers model_info with <arch>.context_length, capabilities, template", async () => {
  for (const key of ["model", "name"]) {
    const r = await postJson(server.url("/api/show"), { [key]: "m:latest" });
    assert.equal(r.status, 200);
    const b = r.json();
    assert.equal(b.model_info["qwen3.context_length"], 64);
    assert.equal(b.model_info["general.architecture"], "qwen3");
    assert.deepEqual(b.capabilities, ["completion"]);
    assert.equal(b.template, "{{ messages }}");
  }
  const nf = await postJson(server.url("/api/show"), { model: "llama3" });
  assert.equal(nf.status, 404);
  assert.match(nf.json().error, /llama3/);
  assert.deepEqual(Object.keys(nf.json()), ["error"]);
});

test("load and unload replies; keep_alive as seconds or a duration reaches the model", async () => {
  const load = await postJson(server.url("/api/generate"), { model: "m", keep_alive: "1h30m" });
  assert.deepEqual([load.json().done_reason, load.json().done, load.json().response], ["load", true, ""]);
  assert.equal(dir.loads.at(-1)!.opts.keepAliveMs, 90 * 60_000);
  const unload = await postJson(server.url("/api/chat"), { model: "m", messages: [], keep_alive: 0 });
  assert.deepEqual([unload.json().done_reason, unload.json().message.content], ["unload", ""]);
  assert.deepEqual(dir.unloads, ["m"]);
  await postJson(server.url("/api/chat"), { model: "m", messages: [{ role: "user", content: "x" }], keep_alive: 30, stream: false });
  assert.equal(dir.options.at(-1)!.keepAliveMs, 30_000);
  assert.equal((await postJson(server.url("/api/chat"), { model: "m", keep_alive: "soon" })).status, 400);
  assert.deepEqual(["5m", "300ms", "-1", -5, "0", 2.5, "1h", "-1m", 1e300, "10000h"].map(parseKeepAlive), [300_000, 300, -1, -1, 0, 2500, 3_600_000, -1, -1, -1]);
  assert.deepEqual(["", "5 minutes", "m5", null, Infinity].map(parseKeepAlive), [undefined, undefined, undefined, undefined, undefined]);
});

test("chat and generate stream NDJSON by default: pieces, then done with done_reason and counts", async () => {
  dir.script = speak("yo", { finishReason: "stop", stoppedBy: { token: 3 } });
  const r = await postJson(server.url("/api/chat"), { model: "m", messages: [{ role: "system", content: "s" }, { role: "user", content: "u" }], options: { temperature: 0.2, top_k: 3, num_predict: 9, stop: ["x"], seed: 4, repeat_penalty: 1.2, repeat_last_n: 32, num_ctx: 8192 } });
  assert.equal(r.headers.get("content-type"), "application/x-ndjson");
  const ls = lines(r.text);
  assert.deepEqual(ls.map((l) => [l.message.content, l.done]), [["y", false], ["o", false], ["", true]]);
  assert.deepEqual([ls[2].done_reason, ls[2].prompt_eval_count, ls[2].eval_count], ["stop", 7, 2]);
  const req = dir.last();
  assert.deepEqual([req.sampling.temperature, req.sampling.topK, req.maxTokens, req.sampling.seed, req.sampling.repetitionPenalty, req.sampling.penaltyLastN], [0.2, 3, 9, 4, 1.2, 32]);
  assert.deepEqual(req.stop, ["x"]);
  const g = await postJson(server.url("/api/generate"), { model: "m", prompt: "p", system: "s", stream: false, options: { num_predict: -1 } });
  assert.deepEqual([g.json().response, g.json().done], ["yo", true]);
  assert.deepEqual((dir.last().input as any).messages, [{ role: "system", content: "s" }, { role: "user", content: "p" }]);
  assert.equal(dir.last().maxTokens, null);
  await postJson(server.url("/api/generate"), { model: "m", prompt: "raw text", raw: true, stream: false });
  assert.deepEqual(dir.last().input, { kind: "text", text: "raw text" });
});

test("while loading, empty pieces keep the stream alive; a failure mid-stream is an {error} line", async () => {
  dir.script = async (req, opts) => {
    opts.onLoading?.();
    return speak("a")(req, opts);
  };
  const ls = lines((await postJson(server.url("/api/generate"), { model: "m", prompt: "p" })).text);
  assert.deepEqual(ls.map((l) => [l.response, l.done]), [["", false], ["a", false], ["", true]]);
  dir.script = async (_r, opts) => {
    opts.onPrompt?.({ promptTokens: 1, cachedTokens: 0 });
    opts.onToken?.({ token: 1, text: "a" });
    throw new InferenceError("internal", "engine worker exited");
  };
  const failed = lines((await postJson(server.url("/api/generate"), { model: "m", prompt: "p" })).text);
  assert.deepEqual(failed.at(-1), { error: "engine worker exited" });
});

test("errors are {error: message} with the right status; format, images and templates refused", async () => {
  const cases: [string, object, number][] = [
    ["/api/chat", { model: "m", messages: [{ role: "user", content: "x" }], format: "json" }, 400],
    ["/api/chat", { model: "m", messages: [{ role: "user", content: "x", images: ["aGk="] }] }, 400],
    ["/api/generate", { model: "m", prompt: "x", template: "{{ .Prompt }}" }, 400],
    ["/api/generate", { model: "m", prompt: "x", options: { temperature: "hot" } }, 400],
    ["/api/generate", { prompt: "x" }, 400],
    ["/api/chat", { model: "nope", messages: [] }, 404],
    ["/api/pull", { model: "llama3.2" }, 404],
  ];
  for (const [path, body, status] of cases) {
    const r = await postJson(server.url(path), body);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body)}`);
    assert.deepEqual(Object.keys(r.json()), ["error"]);
  }
  dir.script = async () => {
    throw new InferenceError("unavailable", "not running", { retryAfterS: 5 });
  };
  const r = await postJson(server.url("/api/chat"), { model: "m", messages: [{ role: "user", content: "x" }] });
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "5");
  const pull = await postJson(server.url("/api/pull"), { name: "m" });
  assert.deepEqual(lines(pull.text).at(-1), { status: "success" });
  assert.equal((await getText(server.url("/api/nothing"))).json().error.length > 0, true);
});
