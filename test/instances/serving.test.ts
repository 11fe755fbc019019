import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { basename } from "node:path";
import { resolveRequest } from "../../src/inference/request.js";
import { EngineWorker } from "../../src/inference/worker/engine-worker.js";
import { configOf } from "../runner/models.js";
import { removeDir, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { byId, CTX, del, GREEDY, MAX_TOKENS, post, PROMPT, ready, smallModel, startCluster, twoNodeLimit } from "./helpers.js";

// An instance serves the public APIs: two nodes whose memory limits let the small model run only
// across both; node A has the model in its models dir (so it is in the cluster's registry under its
// file name), node B has none. Auto-launch is off, so a request for the model is refused until an
// instance of it runs (the control), and answered by the instance once it does, from either node.

const nodes: NodeProcess[] = [];
const dirs: string[] = [];
let modelDir = "";
let model = "";
let name = "";
let reference = { tokens: [] as number[], text: "" };

before(async () => {
  modelDir = tempDir("tessera-inst-serving-");
  model = await smallModel(modelDir);
  name = basename(model).replace(/\.gguf$/, "");
  const e = await EngineWorker.start(model, { threads: 1, contextLength: CTX });
  try {
    const r = await e.generate(resolveRequest(GREEDY));
    reference = { tokens: r.tokens, text: r.text };
  } finally {
    await e.close();
  }
  const { limit } = await twoNodeLimit(model);
  for (let i = 0; i < 2; i++) dirs.push(tempDir());
  const args = (i: number, first?: NodeProcess) => [
    "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--cluster", "inst-serving", "--measure-every", "600", "--threads", "1",
    "--memory-limit", String(limit), "--name", i === 0 ? "a" : "b", "--no-auto-launch", "--max-queue", "2",
    ...(i === 0 ? ["--models-dir", modelDir] : ["--peers", `127.0.0.1:${first!.peer}`]),
  ];
  nodes.push(...(await startCluster(2, args, dirs)));
});

after(async () => {
  await stopAll();
  for (const d of [...dirs, modelDir]) removeDir(d);
});

function complete(n: NodeProcess, model: string) {
  return post(n.url("/v1/completions"), { model, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, seed: 1 });
}

test("an instance launched by its registry name answers the OpenAI API on both nodes with one process's text", async () => {
  const [a, b] = nodes as [NodeProcess, NodeProcess];
  await waitFor("both nodes with profiles, and node A's model listed on node B", 30000, async () => {
    const v = await b.view();
    const listed = (await (await fetch(b.url("/v1/models"))).json()) as { data: { id: string }[] };
    return Object.values(v.state.nodes).filter((n) => n.profile?.decodeBytesPerSec).length === 2 && listed.data.some((m) => m.id === name);
  });
  // control: without an instance, the model is only a file on node A that this node will not load
  const before = await complete(b, name);
  assert.equal(before.status, 503, JSON.stringify(before.body));
  assert.match(before.body.error.message, /not running/);

  const created = await post(b.url("/instances"), { model: name, ctx: CTX });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const i = await ready(a, created.body.id);
  assert.equal(new Set(i.ranks.map((r) => r.node)).size, 2, "the instance spans both nodes");
  const home = byId(nodes, i.home);
  const away = nodes.find((n) => n !== home)!;

  // Ollama's list of running models: the instance, seen from both nodes
  for (const n of [home, away]) {
    await waitFor(`the instance's model running, seen from node ${n === home ? "home" : "away"}`, 20000, async () => {
      const ps = (await (await fetch(n.url("/api/ps"))).json()) as { models: { name: string }[] };
      return ps.models.some((m) => m.name === `${name}:latest`);
    });
  }
  for (const n of [home, away]) {
    const r = await complete(n, name);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.choices[0].text, reference.text, `answer from node ${n.id === home.id ? "home" : "away"}`);
    assert.equal(r.body.usage.completion_tokens, reference.tokens.length);
  }
  // the answers came from the instance: node A never loaded the file as a model of its own
  assert.doesNotMatch(a.output(), new RegExp(`model ${name}: loading`));

  const streamed = await fetch(away.url("/v1/chat/completions"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: name, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, stream: true }),
  });
  assert.equal(streamed.status, 200);
  const sse = await streamed.text();
  assert.match(sse, /"delta":\{"role":"assistant"/);
  assert.match(sse, /data: \[DONE\]\s*$/);

  assert.equal((await del(a.url(`/instances/${i.id}`))).status, 200);
  let last: unknown;
  await waitFor("the instance's model refused again once it is gone", 20000, async () => {
    const r = await complete(away, name);
    last = r;
    return r.status === 503;
  }).catch((e: Error) => assert.fail(`${e.message}; last answer ${JSON.stringify(last)}`));
});

/** A streamed completion: its text and when each piece of it came. */
async function streamText(n: NodeProcess, body: Record<string, unknown>): Promise<{ status: number; text: string; times: number[] }> {
  const res = await fetch(n.url("/v1/completions"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  const out = { status: res.status, text: "", times: [] as number[] };
  if (res.status !== 200) {
    await res.text();
    return out;
  }
  const decoder = new TextDecoder();
  let buf = "";
  for await (const part of res.body!) {
    buf += decoder.decode(part as Uint8Array, { stream: true });
    let at: number;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const data = buf.slice(0, at).split("\n").find((l) => l.startsWith("data: "))?.slice(6);
      buf = buf.slice(at + 2);
      if (!data || data === "[DONE]") continue;
      const piece = JSON.parse(data).choices?.[0]?.text;
      if (piece) {
        out.text += piece;
        out.times.push(performance.now());
      }
    }
  }
  return out;
}

test("a pipeline instance launched with parallel 4 decodes 4 requests together, each with its solo text; placement counts the slots' memory", async () => {
  const [a, b] = nodes as [NodeProcess, NodeProcess];
  // placement sizes every rank's KV for all the slots: the pipeline plan needs 3 more slots' KV of every layer
  const cfg = await configOf(model);
  const slotKv = cfg.numLayers * 2 * cfg.numKvHeads * cfg.headDim * 4 * CTX;
  const pipelineBytes = async (parallel: number) => {
    const r = await fetch(b.url(`/instances/previews?model=${name}&ctx=${CTX}&parallel=${parallel}&strategy=pipeline`));
    const plan = ((await r.json()) as { plans: { strategy: string; memoryBytes: Record<string, number> }[] }).plans.find((p) => p.strategy === "pipeline")!;
    return Object.values(plan.memoryBytes).reduce((x, y) => x + y, 0);
  };
  assert.equal((await pipelineBytes(4)) - (await pipelineBytes(1)), 3 * slotKv);
  // a quarter of the context each: the same KV memory as one slot of it
  const created = await post(b.url("/instances"), { model: name, ctx: CTX / 4, parallel: 4, strategy: "pipeline" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const i = await ready(a, created.body.id);
  assert.equal(i.parallel, 4);
  const home = byId(nodes, i.home);
  const prompts = [PROMPT, [1, 900, 17, 4000, 55], [1, 42, 43], [1, 7, 8, 9, 10, 11, 12, 13, 14, 15]];
  const body = (k: number) => ({ model: name, prompt: prompts[k], max_tokens: 12 + k, temperature: 0 });
  const solo: Awaited<ReturnType<typeof streamText>>[] = [];
  for (let k = 0; k < 4; k++) solo.push(await streamText(home, body(k)));
  assert.ok(solo.every((r) => r.status === 200 && r.times.length > 4));
  const together = await Promise.all(solo.map((_, k) => streamText(home, body(k))));
  together.forEach((t, k) => assert.equal(t.text, solo[k]!.text, `request ${k}`));
  const first = Math.max(...together.map((t) => t.times[0]!));
  const last = Math.min(...together.map((t) => t.times.at(-1)!));
  assert.ok(first < last, "the 4 streams overlap in time");
  // 4 running and 2 waiting (--max-queue 2): the next 2 of 8 are refused
  const statuses = await Promise.all(Array.from({ length: 8 }, (_, k) => post(home.url("/v1/completions"), { ...body(k % 4), max_tokens: 40 }).then((r) => r.status)));
  assert.equal(statuses.filter((s) => s === 429).length, 2, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 200).length, 6);
  assert.equal((await del(a.url(`/instances/${i.id}`))).status, 200);
});
