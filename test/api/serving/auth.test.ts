import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import { removeDir, startNode, stopAll, tempDir, type NodeProcess } from "../../cluster/node-process.js";
import { styleOfPath } from "../../../src/api/errors.js";

// A node with an API key (from TESSERA_API_KEY): every route but /healthz and the dashboard's
// assets answers 401 without it, in the shape of the API the route belongs to; the key works in
// all three header styles and through the three official clients.

const KEY = "test-key-7f3a";
let node: NodeProcess;
const dirs: string[] = [];

before(async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  node = await startNode(["--host", "127.0.0.1", "--port", "0", "--no-discovery"], { dataDir, env: { TESSERA_API_KEY: KEY } });
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
});

const ROUTES: [method: string, path: string][] = [
  ["GET", "/cluster"],
  ["GET", "/cluster/nodes"],
  ["GET", "/cluster/links"],
  ["GET", "/cluster/events"],
  ["GET", "/metrics"],
  ["GET", "/v1/models"],
  ["GET", "/v1/models/some-model"],
  ["POST", "/v1/chat/completions"],
  ["POST", "/v1/completions"],
  ["POST", "/v1/responses"],
  ["POST", "/v1/messages"],
  ["POST", "/v1/messages?beta=true"],
  ["POST", "/v1/messages/count_tokens"],
  ["GET", "/"],
  ["HEAD", "/"],
  ["GET", "/api/version"],
  ["GET", "/api/tags"],
  ["GET", "/api/ps"],
  ["POST", "/api/show"],
  ["POST", "/api/chat"],
  ["POST", "/api/generate"],
  ["POST", "/api/pull"],
  ["GET", "/no/such/route"],
];

async function call(method: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(node.url(path), { method, headers: { "content-type": "application/json", ...headers }, body: method === "POST" ? "{}" : undefined });
  return { status: res.status, text: await res.text() };
}

test("without the key every route but /healthz answers 401 in its API's shape; with it, in any header style, none does", async () => {
  for (const [method, path] of ROUTES) {
    const none = await call(method, path);
    assert.equal(none.status, 401, `${method} ${path}`);
    if (method !== "HEAD") {
      const body = JSON.parse(none.text);
      const style = styleOfPath(path);
      if (style === "openai") assert.equal(body.error.code, "invalid_api_key", path);
      else if (style === "anthropic") assert.equal(body.error.type, "authentication_error", path);
      else if (style === "ollama") assert.match(body.error, /API key/, path);
      else assert.equal(body.error.kind, "unauthorized", path);
    }
    assert.equal((await call(method, path, { authorization: "Bearer wrong" })).status, 401, `${method} ${path} wrong key`);
    const styles: Record<string, string>[] = [{ authorization: `Bearer ${KEY}` }, { "x-api-key": KEY }, { Authorization: `bearer  ${KEY} ` }];
    for (const headers of styles) {
      const ok = await call(method, path, headers);
      assert.notEqual(ok.status, 401, `${method} ${path} with ${JSON.stringify(headers)}: ${ok.text}`);
    }
  }
  // public: the health check and the dashboard's assets
  assert.equal((await call("GET", "/healthz")).status, 200);
  assert.notEqual((await call("GET", "/dashboard/assets/app.js")).status, 401);
  assert.notEqual((await call("GET", "/assets/index.css")).status, 401);
});

test("the official clients pass the key their own way; without it they get their auth errors", async () => {
  const ok = await new OpenAI({ baseURL: node.url("/v1"), apiKey: KEY, maxRetries: 0 }).models.list();
  assert.deepEqual(ok.data, []);
  await assert.rejects(new OpenAI({ baseURL: node.url("/v1"), apiKey: "nope", maxRetries: 0 }).models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  const anthropic = new Anthropic({ baseURL: node.url(""), apiKey: KEY, maxRetries: 0 });
  await assert.rejects(anthropic.messages.countTokens({ model: "x", messages: [{ role: "user", content: "hi" }] }), (e: unknown) => e instanceof Anthropic.NotFoundError, "past auth: no such model");
  await assert.rejects(new Anthropic({ baseURL: node.url(""), apiKey: "nope", maxRetries: 0 }).models.list(), (e: unknown) => e instanceof Anthropic.AuthenticationError);
  assert.deepEqual((await new Ollama({ host: node.url(""), headers: { Authorization: `Bearer ${KEY}` } }).list()).models, []);
  await assert.rejects(new Ollama({ host: node.url("") }).list(), (e: unknown) => (e as { status_code?: number }).status_code === 401);
});

test("a browser's GET / gets the dashboard without the key; peer model requests are left to their own signature check", async () => {
  const page = await call("GET", "/", { accept: "text/html,application/xhtml+xml" });
  assert.equal(page.status, 200);
  assert.match(page.text, /<!doctype html>/i);
  assert.equal((await call("GET", "/")).status, 401, "the same path for an Ollama client still needs the key");
  // a forged peer signature gets past the API key to the route's own check, which refuses it
  const forged = await call("GET", "/peer/models/00/file.gguf", { "x-tessera-peer": "0000000000000000.1.00" });
  assert.equal(forged.status, 403, forged.text);
  assert.equal((await call("GET", "/peer/models/00/file.gguf")).status, 401, "without the peer header the key is needed");
});
