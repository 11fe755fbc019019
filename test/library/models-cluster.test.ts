import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ClusterModel } from "../../src/library/cluster-models.js";
import { DEMO_FILE } from "../../src/library/demo.js";
import { GgufFile } from "../../src/models/gguf/reader.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { getJson, removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";

// Two node processes on 127.0.0.1, each with a fresh data dir: each writes the demo model on its
// first start, and since the demo is deterministic both copies have one digest, so the cluster
// lists one model held by both. Then models added and removed through the HTTP API.

const COMMON = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--cluster", "models-test"];
const dirs: string[] = [];
function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
});

type List = { models: ClusterModel[] };
const models = async (n: NodeProcess) => ((await getJson(n.url("/models"))) as List).models;

async function post(n: NodeProcess, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(n.url(path), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

test("a fresh node lists tessera-demo; two nodes with the same demo list one model held by both", async () => {
  const a = await startNode([...COMMON, "--name", "a"], { dataDir: dir(), demo: true });
  // no timing bound: "a few seconds" on a quiet machine, longer on a loaded CI box
  const demo = await waitFor("tessera-demo in GET /models", 120000, async () => (await models(a)).find((m) => m.id === "tessera-demo"), 250);
  assert.match(demo.description!, /random weights/i);
  assert.equal(demo.architecture, "qwen3");
  assert.equal(demo.format, "gguf");
  assert.equal(demo.unsupported, undefined, "the engine can run it");
  assert.deepEqual(demo.holders.map((h) => h.node), [a.id]);
  // its digest is the sha256 of the file's header and tensor table, computed here from the file
  const path = join(a.dataDir, "models", DEMO_FILE);
  const g = await GgufFile.open(path);
  const expect = createHash("sha256").update((await readFile(path)).subarray(0, g.dataOffset)).digest("hex");
  await g.close();
  assert.equal(demo.digest, expect);

  const b = await startNode([...COMMON, "--name", "b", "--peers", `127.0.0.1:${a.peer}`], { dataDir: dir(), demo: true });
  const both = await waitFor("the demo held by both nodes", 120000, async () => {
    const list = await models(b);
    const d = list.find((m) => m.id === "tessera-demo");
    return d && d.holders.length === 2 ? list : undefined;
  }, 250);
  assert.equal(both.filter((m) => m.digest === demo.digest).length, 1, "one entry for one digest");
  assert.deepEqual(both.find((m) => m.id === "tessera-demo")!.holders.map((h) => h.nodeName).sort(), ["a", "b"]);
  assert.equal(await readFile(join(b.dataDir, "models", DEMO_FILE)).then((x) => x.length), (await readFile(path)).length);
  assert.deepEqual(await models(a), both, "every node lists the same");

  // Another model under the same name is another model (other digest): both listed, ids kept apart.
  const other = join(dir(), "other.gguf");
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q4_0", vocab: "spm", out: other, seed: 5 });
  const added = await post(b, "/models", { path: other, name: "tessera-demo" });
  assert.equal(added.status, 409, "b already calls its demo copy tessera-demo");
  const ok = await post(b, "/models", { path: other, name: "other" });
  assert.equal(ok.status, 201);
  assert.equal(ok.json.meta.quantization, "Q4_0");
  const three = await waitFor("the added model on node a", 30000, async () => {
    const list = await models(a);
    return list.some((m) => m.id === "other") ? list : undefined;
  });
  assert.deepEqual(three.find((m) => m.id === "other")!.holders.map((h) => h.nodeName), ["b"]);
  assert.equal((await post(b, "/models", { path: join(dir(), "missing.gguf") })).status, 404);
  assert.equal((await post(b, "/models", { nope: 1 })).status, 400);

  // DELETE on a node that does not hold it says where it is; on the holder it goes.
  const wrong = await fetch(a.url("/models/other"), { method: "DELETE" });
  assert.equal(wrong.status, 404);
  assert.match(((await wrong.json()) as { error: string }).error, /held by b/);
  const del = await fetch(b.url("/models/tessera-demo"), { method: "DELETE" });
  assert.equal(del.status, 200);
  await waitFor("the demo held by a alone", 30000, async () => {
    const d = (await models(a)).find((m) => m.id === "tessera-demo");
    return d && d.holders.length === 1 && d.holders[0]!.node === a.id;
  });
  await assert.rejects(readFile(join(b.dataDir, "models", DEMO_FILE)), "its file is gone");

  // --no-demo (the helper's default): a node that writes nothing holds nothing
  const c = await startNode([...COMMON, "--name", "c", "--peers", `127.0.0.1:${a.peer}`], { dataDir: dir() });
  await waitFor("c in the cluster", 30000, async () => Object.keys((await a.view()).state.nodes).length === 3);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok((await models(c)).every((m) => m.holders.every((h) => h.node !== c.id)));
});
