import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startApiServer, type ApiServer } from "../../../src/api/server.js";
import { internalRoutes, nodeToken, NODE_TOKEN_HEADER } from "../../../src/api/internal-routes.js";
import { RemoteNode } from "../../../src/api/remote-node.js";
import { RunningRequests } from "../../../src/api/requests.js";
import { InferenceError } from "../../../src/inference/errors.js";
import { resolveRequest } from "../../../src/inference/request.js";
import type { TokenEvent } from "../../../src/inference/result.js";
import { ScriptedDirectory, speak } from "./scripted.js";

// A RemoteNode against another node's internal routes (in this process): the resolved request
// crosses intact, events and errors come back with their kinds, a cancel reaches the far side,
// and the routes refuse callers without the cluster token.

const TOKEN = nodeToken(Buffer.from("k".repeat(32)));
const dir = new ScriptedDirectory();
let server: ApiServer;
let remote: RemoteNode;

before(async () => {
  server = await startApiServer({ host: "127.0.0.1", port: 0, routes: [internalRoutes(dir, new RunningRequests(), () => undefined)], auth: { key: "client-key", nodeToken: TOKEN } });
  remote = new RemoteNode({ id: "far", baseUrl: `http://127.0.0.1:${server.port}`, headers: { [NODE_TOKEN_HEADER]: TOKEN } });
});
after(() => server.close());

const req = (extra: object = {}) => resolveRequest({ model: "m", input: { kind: "chat", messages: [{ role: "user", content: "hi" }] }, seed: 9, stop: ["x"], maxTokens: 3, ...extra });

test("the request crosses intact; prompt, tokens and the result come back; the far side's cards are listed", async () => {
  await remote.refresh();
  assert.deepEqual(remote.models().map((c) => [c.id, c.node]), [["m", "far"], ["org/slashed", "far"]]);
  dir.script = speak("abc");
  const sent = req({ logprobs: 2 });
  const events: TokenEvent[] = [];
  let prompt = 0;
  const r = await remote.generate(sent, { onToken: (e) => events.push(e), onPrompt: (p) => (prompt = p.promptTokens), keepAliveMs: 1000 });
  assert.equal(r.text, "abc");
  assert.equal(events.map((e) => e.text).join(""), "abc");
  assert.equal(prompt, 7);
  assert.deepEqual(dir.last(), sent, "the far side got the same resolved request (id, seed and all)");
  assert.equal(dir.options.at(-1)!.keepAliveMs, 1000);
  assert.equal(await remote.countTokens("m", { kind: "chat", messages: [{ role: "user", content: "four" }] }), 4);
  assert.equal((await remote.load("m")).contextLength, 64);
  assert.equal(await remote.unload("m"), true);
});

test("errors keep their kind across the hop, before and after the stream starts", async () => {
  dir.script = async () => {
    throw new InferenceError("overloaded", "queue full", { retryAfterS: 1 });
  };
  await assert.rejects(remote.generate(req()), (e: unknown) => e instanceof InferenceError && e.kind === "overloaded" && e.retryAfterS === 1);
  dir.script = async (_r, opts) => {
    opts.onPrompt?.({ promptTokens: 1, cachedTokens: 0 });
    opts.onToken?.({ token: 1, text: "a" });
    throw new InferenceError("internal", "engine worker exited");
  };
  const seen: string[] = [];
  await assert.rejects(remote.generate(req(), { onToken: (e) => seen.push(e.text) }), (e: unknown) => e instanceof InferenceError && /engine worker exited/.test(e.message));
  assert.deepEqual(seen, ["a"]);
  const dead = new RemoteNode({ id: "gone", baseUrl: "http://127.0.0.1:9", headers: {} });
  await dead.refresh();
  assert.deepEqual(dead.models(), []);
  await assert.rejects(dead.generate(req()), (e: unknown) => e instanceof InferenceError && e.kind === "unavailable" && /node gone did not answer/.test(e.message));
});

test("aborting the caller cancels the generation on the far side", async () => {
  let farSignal: AbortSignal | undefined;
  dir.script = async (_r, opts) => {
    farSignal = opts.signal;
    opts.onPrompt?.({ promptTokens: 1, cachedTokens: 0 });
    await new Promise((resolve) => opts.signal!.addEventListener("abort", resolve, { once: true }));
    throw new InferenceError("cancelled", "cancelled");
  };
  const ac = new AbortController();
  const p = remote.generate(req(), { signal: ac.signal, onPrompt: () => ac.abort() });
  await assert.rejects(p, (e: unknown) => e instanceof InferenceError && e.kind === "cancelled");
  const deadline = Date.now() + 5000;
  while (!farSignal?.aborted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(farSignal?.aborted, true);
});

test("the internal routes need the cluster token (or the node's key)", async () => {
  const url = `http://127.0.0.1:${server.port}/internal/v1/models`;
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { [NODE_TOKEN_HEADER]: "forged" } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: "Bearer client-key" } })).status, 200);
  const stranger = new RemoteNode({ id: "far", baseUrl: `http://127.0.0.1:${server.port}`, headers: {} });
  await assert.rejects(stranger.generate(req()), (e: unknown) => e instanceof InferenceError && e.kind === "unauthorized");
});
