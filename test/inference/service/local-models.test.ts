import { after, test } from "node:test";
import assert from "node:assert/strict";
import { LocalModels, modelSpecFromPath } from "../../../src/inference/local-models.js";
import { InferenceError } from "../../../src/inference/errors.js";
import { resolveRequest } from "../../../src/inference/request.js";
import { qwenTokenizer } from "../generate/helpers.js";

// LocalModels over real engine workers running the scripted test backend ("script:<busyMs>:<text>"
// replays <text> after any prompt, burning busyMs of CPU per step like a synchronous ORT run).
const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
const backend = { kind: "module", url: new URL(`../generate/fake-backend${EXT}`, import.meta.url).href } as const;
const tk = await qwenTokenizer();

const models = new LocalModels(
  [
    { id: "hello", path: "script:0:Hello there, general Kenobi" },
    { id: "slow", path: "script:20:one two three four five six seven eight nine ten" },
    { id: "broken", path: "fail:cannot read weights" },
  ],
  { node: "n1", engine: { backend, contextLength: 256 }, maxQueued: 1 },
);
after(() => models.close());

const kindOf = (e: unknown) => (e instanceof InferenceError ? e.kind : String(e));
const chat = (model: string, extra: object = {}) =>
  resolveRequest({ model, input: { kind: "chat", messages: [{ role: "user", content: "hi" }] }, temperature: 0, ...extra });

test("--model PATH names the model after its file", () => {
  assert.deepEqual(modelSpecFromPath("/models/Qwen3-0.6B-Q4_0.gguf"), { id: "Qwen3-0.6B-Q4_0", path: "/models/Qwen3-0.6B-Q4_0.gguf" });
  assert.deepEqual(modelSpecFromPath("models/llama-mlx/"), { id: "llama-mlx", path: "models/llama-mlx/" });
  assert.throws(() => new LocalModels([{ id: "a", path: "x" }, { id: "a", path: "y" }], { node: "n" }), /two models are named 'a'/);
});

test("a model is placed on demand by its first request, then served without loading", async () => {
  assert.equal(models.models().find((c) => c.id === "hello")!.state, "unloaded");
  let loading = 0;
  const r = await models.generate(chat("hello", { maxTokens: 3 }), { onLoading: () => loading++ });
  assert.equal(loading, 1);
  assert.equal(r.text, "Hello there,");
  const card = models.models().find((c) => c.id === "hello")!;
  assert.equal(card.state, "ready");
  assert.equal(card.info!.contextLength, 256);
  assert.equal(card.info!.vocabSize, tk.vocabSize);
  assert.match(card.info!.chatTemplate ?? "", /im_start/);
  assert.ok(card.loadedAt! <= Date.now());
  await models.generate(chat("hello", { maxTokens: 1 }), { onLoading: () => loading++ });
  assert.equal(loading, 1, "a loaded model is not loaded again");
  const prompt = tk.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(await models.countTokens("hello", { kind: "chat", messages: [{ role: "user", content: "hi" }] }), prompt.length);
});

test("unknown models and failed loads give their kinds; a failed load is tried again", async () => {
  await assert.rejects(models.generate(chat("nope")), (e: unknown) => kindOf(e) === "not_found" && (e as InferenceError).param === "model");
  await assert.rejects(models.generate(chat("broken")), (e: unknown) => kindOf(e) === "unavailable" && /failed to load: fake-model: cannot read weights/.test((e as Error).message));
  const card = models.models().find((c) => c.id === "broken")!;
  assert.equal(card.state, "failed");
  assert.match(card.error!, /cannot read weights/);
  // the next request tries again (and fails again, the same way)
  await assert.rejects(models.load("broken"), (e: unknown) => kindOf(e) === "unavailable");
});

test("the queue is bounded (overloaded), and an aborted request frees its slot within a step", async () => {
  await models.load("slow");
  const ac = new AbortController();
  let tokens = 0;
  const running = models.generate(chat("slow", { maxTokens: 200 }), { signal: ac.signal, onToken: (e) => e.token !== undefined && tokens++ });
  const queued = models.generate(chat("slow", { maxTokens: 2 }));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    (({ running, queued }) => ({ running, queued }))(models.models().find((c) => c.id === "slow")!),
    { running: 1, queued: 1 },
  );
  await assert.rejects(models.generate(chat("slow", { maxTokens: 2 })), (e: unknown) => kindOf(e) === "overloaded");
  while (tokens < 3) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  const r = await running;
  assert.equal(r.finishReason, "cancelled");
  assert.ok(r.tokens.length < 200);
  assert.equal((await queued).tokens.length, 2, "the waiting request ran once the slot was free");
  const card = models.models().find((c) => c.id === "slow")!;
  assert.deepEqual([card.running, card.queued], [0, 0]);
});

test("keep-alive 0 unloads when idle; an idle timer unloads later; a negative one keeps it", async () => {
  await models.generate(chat("hello", { maxTokens: 1 }), { keepAliveMs: 0 });
  await waitState("hello", "unloaded");
  await models.generate(chat("hello", { maxTokens: 1 }), { keepAliveMs: 150 });
  const card = models.models().find((c) => c.id === "hello")!;
  assert.equal(card.state, "ready");
  assert.ok(card.expiresAt! > Date.now() - 10);
  await waitState("hello", "unloaded");
  await models.load("hello", { keepAliveMs: -1 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(models.models().find((c) => c.id === "hello")!.state, "ready");
  assert.equal(models.models().find((c) => c.id === "hello")!.expiresAt, undefined);
  assert.equal(await models.unload("hello"), true);
  assert.equal(await models.unload("hello"), false);
});

async function waitState(id: string, state: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (models.models().find((c) => c.id === id)!.state !== state) {
    if (Date.now() > deadline) throw new Error(`${id} never became ${state}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("library models join and leave with the library's scans; --model keeps its name; a loaded one stays until unloaded", async () => {
  const lib = new LocalModels([{ id: "hello", path: "script:0:from the flag" }], { node: "n2", engine: { backend, contextLength: 256 } });
  try {
    const ids = () => lib.models().map((c) => c.id).sort();
    lib.setLibrary([
      { id: "hello", path: "script:0:from the library" },
      { id: "demo", path: "script:0:demo answer" },
    ]);
    assert.deepEqual(ids(), ["demo", "hello"]);
    // the flag's model keeps the name it shares with a library model
    assert.equal((await lib.generate(chat("hello", { maxTokens: 2 }))).text, "from the");
    assert.equal((await lib.generate(chat("demo", { maxTokens: 2 }))).text, "demo answer");
    lib.setLibrary([{ id: "other", path: "script:0:x" }]);
    // demo is loaded: it stays until unloaded; then the next scan drops it
    assert.deepEqual(ids(), ["demo", "hello", "other"]);
    assert.equal(await lib.unload("demo"), true);
    lib.setLibrary([{ id: "other", path: "script:0:x" }]);
    assert.deepEqual(ids(), ["hello", "other"]);
    await assert.rejects(lib.generate(chat("demo")), (e) => kindOf(e) === "not_found");
    // control: a flag model is never dropped by a scan
    lib.setLibrary([]);
    assert.deepEqual(ids(), ["hello"]);
  } finally {
    await lib.close();
  }
});
