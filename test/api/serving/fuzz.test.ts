import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { Prng } from "../../../src/engine/sampling/index.js";
import { removeDir, startNode, stopAll, tempDir, type NodeProcess } from "../../cluster/node-process.js";
import { styleOfPath } from "../../../src/api/errors.js";
import { tinyModel, type TinyModel } from "./fixtures.js";

// At least 200 malformed or hostile bodies to every endpoint of a running node: wrong types, huge
// numbers, deep nesting, invalid UTF-8, truncated JSON, 10 MB bodies. Every answer must be a 4xx
// with a JSON error in the shape of the endpoint's API; afterwards the node is up and serves.

let model: TinyModel;
let node: NodeProcess;
const dirs: string[] = [];

before(async () => {
  model = await tinyModel("fuzz-model");
  const dataDir = tempDir();
  dirs.push(dataDir);
  node = await startNode(["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--model", model.path, "--ctx", "256", "--threads", "1"], { dataDir });
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
  await model?.remove();
});

/** POSTs raw bytes; reads the answer even when the server answers before the body is sent (413). */
function send(path: string, body: Buffer, contentType = "application/json"): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: node.http, path, method: "POST", headers: { "content-type": contentType, "content-length": body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("aborted", () => reject(new Error(`${path}: the answer was cut off`)));
      res.on("error", reject);
    });
    req.on("error", (e) => ((e as NodeJS.ErrnoException).code === "EPIPE" || (e as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(e)));
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${path}: no answer within 60 s`));
    }, 60_000);
    req.on("close", () => clearTimeout(timer));
    req.end(body);
  });
}

const M = "fuzz-model";
const USER = [{ role: "user", content: "hi" }];
const deep = (n: number) => JSON.parse("[".repeat(n) + "]".repeat(n)) as unknown;

/** Per endpoint: a valid body, and for each field values that make it invalid. */
const ENDPOINTS: { path: string; base: Record<string, unknown>; bad: Record<string, unknown[]> }[] = [
  {
    path: "/v1/chat/completions",
    base: { model: M, messages: USER, max_tokens: 1 },
    bad: {
      model: [5, [], {}, true, "", "no-such-model", "x".repeat(10_000)],
      messages: ["hi", 5, {}, [], [5], [{ role: "user", content: 5 }], [{ role: 5, content: "x" }], [{ role: "user", content: [{ type: "image_url", image_url: {} }] }], [{ role: "user", content: [{ type: "text" }] }], [{ role: "user", content: [5] }], [deep(1000)], deep(1000)],
      max_tokens: [0, -1, 1.5, "1", 1e308, 2 ** 53 + 1, true, -1e308],
      max_completion_tokens: [0, "2", 1e20],
      temperature: [-1, 3, "hot", 1e308, []],
      top_p: [2, -0.1, "x"],
      n: [0, 17, 1e9, "1", 1.5],
      seed: [1.5, "s", 1e300],
      stop: [5, [5], {}, [""], Array.from({ length: 100 }, () => "s"), ["x".repeat(5000)]],
      logprobs: ["yes", 1],
      presence_penalty: [3, -3, "x"],
      frequency_penalty: [1e9],
      stream: ["yes", 1, {}],
      response_format: [{ type: "json_object" }, "x", { type: "xml" }],
    },
  },
  {
    path: "/v1/completions",
    base: { model: M, prompt: "hi", max_tokens: 1 },
    bad: {
      model: [5, null, "nope"],
      prompt: [5, {}, ["a", "b"], [1.5], [-1], [[1], [2]], deep(1000), [true]],
      max_tokens: [0, -5, "3", 1e300],
      echo: ["yes"],
      suffix: ["tail", 5],
      best_of: [3],
      logprobs: [6, -1, "2"],
      temperature: [9],
    },
  },
  {
    path: "/v1/responses",
    base: { model: M, input: "hi", max_output_tokens: 1 },
    bad: {
      model: [{}, 1, "nope"],
      input: [5, {}, true, [5], [{ type: "message", role: "robot", content: "x" }], [{ role: "user", content: 7 }], [{ role: "user", content: [{ type: "input_image" }] }]],
      max_output_tokens: [0, -1, "1", 1e300],
      previous_response_id: ["resp_123"],
      instructions: [5, []],
      text: ["x", { format: { type: "json_schema" } }],
      temperature: [-2],
    },
  },
  {
    path: "/v1/messages",
    base: { model: M, max_tokens: 1, messages: USER },
    bad: {
      model: [1, [], "nope"],
      max_tokens: [null, 0, -1, "1", 1e300, 0.5],
      messages: [[], "hi", [{ role: "robot", content: "x" }], [{ role: "user", content: 5 }], [{ role: "user", content: [{ type: "image", source: {} }] }], [{ role: "user", content: [{ type: "mystery" }] }], [deep(1000)]],
      system: [5, [{ type: "text" }], [7]],
      temperature: [2, -1, "x"],
      top_k: [-1, 1.5],
      stop_sequences: [5, [1], [""]],
      stream: [1],
    },
  },
  {
    path: "/v1/messages/count_tokens",
    base: { model: M, messages: USER },
    bad: { model: [null, 5, "nope"], messages: [null, [], "x", [{ role: "user", content: {} }]], system: [{}] },
  },
  {
    path: "/api/chat",
    base: { model: M, messages: USER, stream: false, options: { num_predict: 1 } },
    bad: {
      model: [null, 5, "nope"],
      messages: ["x", 5, {}, [5], [{ role: "robot", content: "x" }], [{ role: "user", content: 5 }], [{ role: "user", content: "x", images: ["aGk="] }], [deep(1000)]],
      options: ["x", 5, [], { temperature: "hot" }, { num_predict: 1.5 }, { num_predict: -3 }, { top_k: -1 }, { seed: "s" }, { stop: 5 }, { top_p: 2 }],
      keep_alive: ["soon", {}, [], "5 minutes", "1e400"],
      format: ["json", { type: "object" }],
      stream: ["no"],
    },
  },
  {
    path: "/api/generate",
    base: { model: M, prompt: "hi", stream: false, options: { num_predict: 1 } },
    bad: {
      model: [null, 7, "nope"],
      prompt: [5, {}, []],
      options: [{ temperature: [] }, { repeat_penalty: 0 }, { num_predict: 1e300 }],
      images: [["aGk="], "x"],
      suffix: ["end"],
      template: ["{{ .Prompt }}"],
      system: [5],
      keep_alive: ["1 hour", true],
      raw: ["yes"],
    },
  },
  { path: "/api/show", base: { model: M }, bad: { model: [null, 5, [], "nope"], name: [5] } },
  { path: "/api/pull", base: { model: M }, bad: { model: [null, 5, "nope"], stream: ["x"] } },
];

/** Bodies that are wrong whatever the endpoint: not JSON, not UTF-8, not an object, too big. */
function rawBodies(base: Record<string, unknown>, rng: Prng): Buffer[] {
  const text = JSON.stringify(base);
  const out: Buffer[] = [];
  // truncated JSON at many cut points
  for (let cut = 0; cut < text.length; cut += Math.max(1, Math.floor(text.length / 100))) out.push(Buffer.from(text.slice(0, cut)));
  // invalid UTF-8 inside string values and between tokens
  const badBytes = [[0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]];
  for (const bytes of badBytes) {
    for (let k = 0; k < 6; k++) {
      const quotes = [...text.matchAll(/"/g)].map((m) => m.index!);
      const at = quotes[Math.floor(rng.next() * quotes.length)]! + 1;
      out.push(Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(bytes), Buffer.from(text.slice(at))]));
    }
  }
  // JSON that is not an object, or not JSON
  for (const t of ["", "null", "[]", "42", '"text"', "true", "{", "}", "{'model': 1}", '{"model":NaN}', '{"a":1,}', text + "garbage", "[".repeat(200_000) + "]".repeat(200_000), '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000), '{"__proto__":{"admin":true}}', "\u0000", "nul\u0000l"]) {
    out.push(Buffer.from(t));
  }
  for (let k = 0; k < 60; k++) out.push(randomGarbage(rng));
  // 10 MB bodies: one valid JSON with a huge string, one garbage
  out.push(Buffer.from(JSON.stringify({ ...base, padding: "x".repeat(10 * 1024 * 1024) })));
  out.push(Buffer.alloc(10 * 1024 * 1024, 0x7b));
  return out;
}

/** Random bytes that start with a brace, so most of them get as far as the JSON parser. */
function randomGarbage(rng: Prng): Buffer {
  const bytes = Array.from({ length: 1 + Math.floor(rng.next() * 300) }, () => Math.floor(rng.next() * 256));
  bytes[0] = 0x7b;
  return Buffer.from(bytes);
}

function fieldBodies(e: (typeof ENDPOINTS)[number]): Buffer[] {
  const out: Buffer[] = [];
  for (const [field, values] of Object.entries(e.bad)) {
    for (const v of values) {
      const body = { ...e.base, [field]: v };
      out.push(Buffer.from(JSON.stringify(body)));
      // streamed, the bad request must still be refused before the stream starts
      if (field !== "stream") out.push(Buffer.from(JSON.stringify({ ...body, stream: true })));
    }
  }
  return out;
}

function checkShape(path: string, status: number, text: string, sent: Buffer): void {
  const where = `${path} ${JSON.stringify(sent.subarray(0, 160).toString("latin1"))} → ${status} ${text.slice(0, 200)}`;
  assert.ok(status >= 400 && status < 500, where);
  const body = JSON.parse(text) as Record<string, any>;
  switch (styleOfPath(path)) {
    case "openai":
      assert.equal(typeof body.error?.message, "string", where);
      assert.equal(typeof body.error?.type, "string", where);
      break;
    case "anthropic":
      assert.equal(body.type, "error", where);
      assert.equal(typeof body.error?.type, "string", where);
      assert.equal(typeof body.error?.message, "string", where);
      break;
    case "ollama":
      assert.deepEqual(Object.keys(body), ["error"], where);
      assert.equal(typeof body.error, "string", where);
      break;
    default:
      assert.fail(`unexpected API for ${path}`);
  }
}

test("hostile bodies get a 4xx in each API's error shape, and the node keeps serving", async () => {
  const rng = new Prng(2024);
  let total = 0;
  for (const e of ENDPOINTS) {
    const bodies = [...rawBodies(e.base, rng), ...fieldBodies(e)];
    // endpoints with few fields get more random garbage
    while (bodies.length < 220) bodies.push(randomGarbage(rng));
    assert.ok(bodies.length >= 200, `${e.path}: only ${bodies.length} bodies`);
    for (const [i, body] of bodies.entries()) {
      const r = await send(e.path, body, i % 3 === 0 ? "application/x-www-form-urlencoded" : "application/json");
      checkShape(e.path, r.status, r.text, body);
      total++;
    }
    // control: the valid base body is accepted by the same endpoint
    const ok = await send(e.path, Buffer.from(JSON.stringify(e.base)));
    assert.equal(ok.status, 200, `${e.path}: ${ok.text.slice(0, 300)}`);
  }
  assert.ok(total >= 200 * ENDPOINTS.length);
  // query-string and path garbage on the GET endpoints
  for (const path of ["/v1/models/%E0%A4%A", "/v1/models/%ff", "/api/tags?x=%%%", "/v1/models?limit=-1"]) {
    const res = await fetch(`http://127.0.0.1:${node.http}${path}`);
    assert.ok(res.status < 500, `${path} → ${res.status}`);
  }
  assert.equal(node.proc.exitCode, null, "the node is still running");
  const health = await fetch(node.url("/healthz"));
  assert.equal(health.status, 200);
  const chat = await send("/v1/chat/completions", Buffer.from(JSON.stringify({ model: M, messages: USER, max_tokens: 3, temperature: 0 })));
  assert.equal(chat.status, 200);
  assert.equal(JSON.parse(chat.text).usage.completion_tokens, 3);
});
