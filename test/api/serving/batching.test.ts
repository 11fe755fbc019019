import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createNodeServing, type NodeServing } from "../../../src/api/node-serving.js";
import { startApiServer, type ApiServer } from "../../../src/api/server.js";
import { servingRoutes } from "../../../src/api/serving-routes.js";
import { formatMetrics } from "../../../src/api/metrics.js";
import { parsePrometheus } from "../../cluster/prometheus-parser.js";
import { postJson, tinyModel, type TinyModel } from "./fixtures.js";

// Continuous batching through the HTTP API on one node: concurrent requests decode together in
// the model's engine worker, each giving what it gives alone.

interface Node {
  ns: NodeServing;
  server: ApiServer;
  url: string;
}

let model: TinyModel;
const nodes: Node[] = [];

async function startServing(slots: number, maxQueued: number): Promise<Node> {
  const ns = createNodeServing({ nodeId: `n${slots}`, modelPaths: [model.path], engine: { threads: 1, contextLength: 2048, slots }, maxQueued, version: "test", log: () => undefined });
  const server = await startApiServer({ host: "127.0.0.1", port: 0, routes: servingRoutes(ns.serving) });
  const node = { ns, server, url: `http://127.0.0.1:${server.port}` };
  nodes.push(node);
  await ns.local.load(model.id);
  return node;
}

before(async () => {
  model = await tinyModel("batch-http");
});
after(async () => {
  for (const n of nodes) {
    await n.server.close();
    await n.ns.close();
  }
  await model.remove();
});

interface Streamed {
  status: number;
  text: string;
  finish?: string;
  /** performance.now() of each chunk that carried text. */
  times: number[];
  cached?: number;
  promptTokens?: number;
  start: number;
}

/** A streamed chat completion, read as it arrives; `abortAfter` chunks of text, the client goes away. */
async function stream(url: string, body: Record<string, unknown>, abortAfter?: number): Promise<Streamed> {
  const ac = new AbortController();
  const out: Streamed = { status: 0, text: "", times: [], start: performance.now() };
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal: ac.signal,
  });
  out.status = res.status;
  if (res.status !== 200) {
    await res.text();
    return out;
  }
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const part of res.body!) {
      buf += decoder.decode(part as Uint8Array, { stream: true });
      let at: number;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const data = block.split("\n").find((l) => l.startsWith("data: "))?.slice(6);
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) {
          out.text += choice.delta.content;
          out.times.push(performance.now());
          if (abortAfter !== undefined && out.times.length >= abortAfter) {
            ac.abort();
            return out;
          }
        }
        if (choice?.finish_reason) out.finish = choice.finish_reason;
        if (chunk.usage) {
          out.cached = chunk.usage.prompt_tokens_details?.cached_tokens;
          out.promptTokens = chunk.usage.prompt_tokens;
        }
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  }
  return out;
}

const TOPICS = ["the sea", "a long list of prime numbers and why they matter to anyone who counts", "bread", "the history of clocks, told slowly, with every detail you know about escapements", "cats", "rain on a tin roof", "mountains and the people who climb them in winter", "a"];

function bodies(): Record<string, unknown>[] {
  return TOPICS.map((t, i) => ({
    model: model.id,
    messages: [{ role: "user", content: `Tell me about ${t}.` }],
    max_tokens: 24 + 2 * i,
    ...(i % 3 === 1 ? { temperature: 0.8, top_k: 20, seed: 100 + i } : i % 3 === 2 ? { temperature: 0, repetition_penalty: 1.3 } : { temperature: 0 }),
  }));
}

/** A piece of `text` whose first occurrence is in its last third (so the stream runs a while before it stops). */
function lateStop(text: string): string | undefined {
  for (let len = 3; len <= 10; len++) {
    for (let at = text.length - len; at >= (2 * text.length) / 3; at--) {
      const piece = text.slice(at, at + len);
      if (piece.trim() && text.indexOf(piece) === at) return piece;
    }
  }
  return undefined;
}

/** Every stream's first text came before any stream's last: none waited for another to finish. */
function overlapped(runs: Streamed[]): boolean {
  return Math.max(...runs.map((r) => r.times[0]!)) < Math.min(...runs.map((r) => r.times.at(-1)!));
}

test("8 concurrent streamed requests on one node each equal their solo run, and stream at the same time", async () => {
  const node = await startServing(8, 4);
  const reqs = bodies();
  const solo: Streamed[] = [];
  for (const b of reqs) solo.push(await stream(node.url, b));
  // stop strings that occur: a piece of two solo answers past their start
  for (const i of [2, 5]) {
    const piece = lateStop(solo[i]!.text);
    assert.ok(piece, `solo ${i} said ${JSON.stringify(solo[i]!.text)}`);
    reqs[i] = { ...reqs[i]!, stop: [piece] };
    solo[i] = await stream(node.url, reqs[i]!);
    assert.equal(solo[i]!.finish, "stop");
  }
  const together = await Promise.all(reqs.map((b) => stream(node.url, b)));
  together.forEach((t, i) => {
    assert.equal(t.status, 200);
    assert.equal(t.text, solo[i]!.text, `request ${i}`);
    assert.equal(t.finish, solo[i]!.finish, `request ${i}`);
  });
  const t0 = Math.min(...together.map((t) => t.start));
  assert.ok(overlapped(together), `the 8 streams overlap in time: ${together.map((t) => `${(t.start - t0).toFixed(0)}/${(t.times[0]! - t0).toFixed(0)}-${(t.times.at(-1)! - t0).toFixed(0)}`)}`);
  const metrics = parsePrometheus(formatMetrics(node.ns.serving.metrics.families(node.ns.router.models())));
  const slots = metrics.get("tessera_model_batch_slots");
  assert.deepEqual(slots?.samples.map((x) => x.value), [8]);
});

test("negative control: on a node that runs one request at a time the same 8 streams do not overlap", async () => {
  const node = await startServing(1, 8);
  const runs = await Promise.all(bodies().map((b) => stream(node.url, b)));
  assert.ok(runs.every((r) => r.status === 200));
  assert.ok(!overlapped(runs));
});

test("one stream cancelled mid-way stops while the others go on to their solo answers", async () => {
  const node = nodes[0]!;
  const reqs = bodies().slice(0, 4).map((b) => ({ ...b, max_tokens: 24 }));
  const solo: Streamed[] = [];
  for (const b of reqs) solo.push(await stream(node.url, b));
  const runs = await Promise.all(reqs.map((b, i) => stream(node.url, b, i === 1 ? 3 : undefined)));
  assert.equal(runs[1]!.times.length, 3);
  for (const i of [0, 2, 3]) {
    assert.equal(runs[i]!.text, solo[i]!.text, `request ${i}`);
    assert.equal(runs[i]!.finish, solo[i]!.finish);
  }
  // the cancelled sequence left the batch: nothing runs once the others are done
  const card = () => node.ns.local.models()[0]!;
  for (let i = 0; i < 100 && card().running > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(card().running, 0);
});

test("past the batch slots and the queue bound a request is answered 429", async () => {
  const node = nodes[0]!; // 8 slots, 4 may wait
  const body = (i: number) => ({ model: model.id, messages: [{ role: "user", content: `Count slowly to ${i}.` }], max_tokens: 80, temperature: 0 });
  const statuses = await Promise.all(Array.from({ length: 14 }, (_, i) => postJson(`${node.url}/v1/chat/completions`, body(i)).then((r) => r.status)));
  assert.equal(statuses.filter((s) => s === 429).length, 2, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 200).length, 12);
});

test("a request sharing a long prefix with a finished one reports cached prompt tokens and a lower time to first token", async () => {
  const node = nodes[0]!;
  const system = `You are a careful assistant. ${"Remember every rule of this long system prompt. ".repeat(80)}`;
  const first = { model: model.id, messages: [{ role: "system", content: system }, { role: "user", content: "Hi." }], max_tokens: 4, temperature: 0 };
  const second = { ...first, messages: [...first.messages, { role: "assistant", content: "Hello." }, { role: "user", content: "Go on." }] };
  const a = await stream(node.url, first);
  const b = await stream(node.url, second);
  assert.ok(a.cached! < 10, `first: ${a.cached} cached`);
  assert.ok(b.cached! > 0.9 * a.promptTokens!, `second: ${b.cached} of ${b.promptTokens} cached`);
  const ttft = (s: Streamed) => s.times[0]! - s.start;
  assert.ok(ttft(b) < ttft(a), `time to first token ${ttft(b).toFixed(1)} ms vs ${ttft(a).toFixed(1)} ms`);
});
