import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterKey } from "../../src/cluster/handshake.js";
import { ephemeralIdentity } from "../../src/cluster/identity.js";
import type { ClusterModel } from "../../src/library/cluster-models.js";
import { signPeerRequest } from "../../src/library/peer-auth.js";
import { GgufFile } from "../../src/models/gguf/reader.js";
import { openModel } from "../../src/models/open.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import { missingShardBytes } from "../../src/library/shard-ranges.js";
import type { ShardPlan } from "../../src/placement/shard-plan.js";
import { getJson, removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { HubServer } from "../models/download/hub-server.js";
import { CONTEXT, trace, type Trace } from "../runner/models.js";

// Three nodes on 127.0.0.1 with a cluster secret. Node A pulls a model from the local hub; the hub
// is then stopped, and B and C fetch only their shards' byte ranges from A. Runner processes reading
// A's file and B's and C's sparse shard files generate the same tokens as one process on the
// original file: a pipeline of three stages, and a tensor-parallel pair.

const SECRET = "peer-shards-secret";
const COMMON = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--secret", SECRET, "--cluster", "shards", "--measure-every", "600"];
const dirs: string[] = [];
let work = "";
let original = "";
let bytes: Buffer;
let hub: HubServer;
let a: NodeProcess, b: NodeProcess, c: NodeProcess;
let model: ClusterModel;
let reference: Trace;

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

async function post(n: NodeProcess, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(n.url(path), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

const models = async (n: NodeProcess) => ((await getJson(n.url("/models"))) as { models: ClusterModel[] }).models;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "tessera-peers-"));
  original = join(work, "small.gguf");
  await synthesize({ arch: "qwen3", preset: "small", format: "gguf", quant: "q8_0", vocab: "spm", out: original, seed: 11 });
  bytes = await readFile(original);
  hub = new HubServer([{ id: "org/small-GGUF", files: [{ name: "small-Q8_0.gguf", data: bytes, lfs: true }] }]);
  await hub.start();
  const env = { HF_ENDPOINT: hub.endpoint };
  a = await startNode([...COMMON, "--name", "a"], { dataDir: dir(), env });
  [b, c] = await Promise.all(["b", "c"].map((name) => startNode([...COMMON, "--name", name, "--peers", `127.0.0.1:${a.peer}`], { dataDir: dir(), env })));
  await waitFor("three nodes", 30000, async () => Object.keys((await a.view()).state.nodes).length === 3);
  const src = await openModel(original);
  const stepper = await createStepper(src, { threads: 1, contextLength: CONTEXT });
  try {
    reference = await trace((t, all) => Promise.resolve(stepper.forward(t, { allLogits: all })), stepper.vocabSize);
  } finally {
    await stepper.dispose();
    await src.close();
  }
});

after(async () => {
  await stopAll();
  await hub.stop();
  for (const d of dirs) removeDir(d);
  await rm(work, { recursive: true, force: true });
});

test("a node holding the model serves peers first: a pull on C copies A's file, the hub sends none of it", async () => {
  assert.equal((await post(a, "/models/pull", { model: "hf.co/org/small-GGUF:Q8_0" })).status, 202);
  model = await waitFor("A's model in the cluster", 60000, async () => (await models(c)).find((m) => m.id === "small-Q8_0" && m.holders.length === 1));
  assert.equal(hub.served.bytes.get("small-Q8_0.gguf"), bytes.length);
  hub.resetCounts();
  const pulled = await post(c, "/models/pull", { model: "hf.co/org/small-GGUF:Q8_0", name: "c-copy" });
  assert.equal(pulled.status, 202);
  const both = await waitFor("one model held by A and C", 60000, async () => {
    const m = (await models(a)).find((x) => x.digest === model.digest);
    return m && m.holders.length === 2 ? m : undefined;
  });
  assert.deepEqual(both.holders.map((h) => h.name).sort(), ["c-copy", "small-Q8_0"]);
  assert.equal(hub.served.bytes.get("small-Q8_0.gguf") ?? 0, 0, "the file came from A, not the hub");
  assert.ok(hub.served.requests.some((r) => r.path.startsWith("/api/models/")), "the hub was asked for the file list and sha256 only");
  const status = (await getJson(c.url("/downloads/c-copy"))) as { state: string; from: string };
  assert.equal(status.state, "done");
  // C's copy is removed again so that C holds only a shard below
  assert.equal((await fetch(c.url("/models/c-copy"), { method: "DELETE" })).status, 200);
  await waitFor("C's copy gone from the state", 30000, async () => (await models(a)).find((x) => x.digest === model.digest)?.holders.length === 1);
});

test("model bytes are served to cluster members only", async () => {
  const path = `/peer/models/${model.digest}/small-Q8_0.gguf`;
  assert.equal((await fetch(a.url(path), { headers: { range: "bytes=0-3" } })).status, 403, "no signature");
  const stranger = ephemeralIdentity();
  const wrongKey = signPeerRequest(clusterKey("shards", "wrong"), b.id, path);
  assert.equal((await fetch(a.url(path), { headers: { range: "bytes=0-3", ...wrongKey } })).status, 403, "wrong secret");
  const notMember = signPeerRequest(clusterKey("shards", SECRET), stranger.id, path);
  assert.equal((await fetch(a.url(path), { headers: { range: "bytes=0-3", ...notMember } })).status, 403, "not a member");
  const ok = await fetch(a.url(path), { headers: { range: "bytes=0-3", ...signPeerRequest(clusterKey("shards", SECRET), b.id, path) } });
  assert.equal(ok.status, 206);
  assert.equal(Buffer.from(await ok.arrayBuffer()).toString("latin1"), "GGUF");
});

async function run(plan: ShardPlan, pathFor: (world: number) => string): Promise<Trace> {
  const driver = await ShardedDriver.start({ plan, modelPath: original, contextLength: CONTEXT, modelPathFor: (p) => pathFor(p.world) });
  try {
    return await trace((t, all) => driver.forward(t, { allLogits: all }), driver.vocabSize);
  } finally {
    await driver.close();
  }
}

test("with the hub stopped, B and C fetch their tensor-parallel shards from A: same tokens as one process", async () => {
  await hub.stop();
  const [rb, rc] = await Promise.all([
    post(b, "/models/shard", { model: "small-Q8_0", layers: [0, 4], tp: { rank: 0, size: 2 } }),
    post(c, "/models/shard", { model: model.digest.slice(0, 12), layers: [0, 4], tp: { rank: 1, size: 2 } }),
  ]);
  assert.equal(rb.status, 200, JSON.stringify(rb.json));
  assert.equal(rc.status, 200, JSON.stringify(rc.json));
  for (const r of [rb, rc]) {
    assert.equal(r.json.whole, false);
    assert.ok(r.json.fetchedBytes < bytes.length * 0.8, `fetched ${r.json.fetchedBytes} of ${bytes.length}`);
  }
  const got = await run({ stages: [{ layers: [0, 4], tp: 2 }] }, (w) => (w === 1 ? rb.json.path : rc.json.path));
  assert.deepEqual(got.tokens, reference.tokens);
  assert.ok(new Set(reference.tokens).size > 3);
  // Each shard holds its own rank's bytes and not the other's: runners given each other's files
  // refuse to start (the missing bytes would read as zeros) and say so.
  const rank = (r: number) => ({ layers: [0, 4] as [number, number], tp: { rank: r, size: 2 } });
  assert.equal(await missingShardBytes(rb.json.path, rank(0)), 0);
  assert.equal(await missingShardBytes(rc.json.path, rank(1)), 0);
  assert.ok((await missingShardBytes(rb.json.path, rank(1))) > 0);
  assert.equal(await missingShardBytes(original, rank(1)), 0, "a whole file misses nothing");
  await assert.rejects(run({ stages: [{ layers: [0, 4], tp: 2 }] }, (w) => (w === 1 ? rc.json.path : rb.json.path)), /holds only part of the model, without .* of what .*reads/);
});

test("with the hub stopped, B and C fetch their pipeline stages' ranges from A: same tokens as one process", async () => {
  const g = await GgufFile.open(original);
  const stageBytes = (re: RegExp) => g.tensors.filter((t) => re.test(t.name)).reduce((s, t) => s + t.byteLength, 0);
  const needB = stageBytes(/^blk\.2\./);
  const needC = stageBytes(/^blk\.3\.|^output/);
  await g.close();
  const [rb, rc] = await Promise.all([post(b, "/models/shard", { model: "small-Q8_0", layers: [2, 3] }), post(c, "/models/shard", { model: "small-Q8_0", layers: [3, 4] })]);
  assert.equal(rb.status, 200, JSON.stringify(rb.json));
  assert.equal(rc.status, 200, JSON.stringify(rc.json));
  // B and C already hold their tensor-parallel slices: only what is missing is fetched now
  assert.ok(rb.json.fetchedBytes <= needB, `B fetched ${rb.json.fetchedBytes}, stage needs ${needB}`);
  assert.ok(rc.json.fetchedBytes <= needC, `C fetched ${rc.json.fetchedBytes}, stage needs ${needC}`);
  const aPath = (await getJson(a.url("/models/small-Q8_0")) as { local: { path: string } }).local.path;
  const got = await run({ stages: [{ layers: [0, 2], tp: 1 }, { layers: [2, 3], tp: 1 }, { layers: [3, 4], tp: 1 }] }, (w) => [aPath, rb.json.path, rc.json.path][w - 1]!);
  assert.deepEqual(got.tokens, reference.tokens);
  // the cluster lists B and C as holding shards of the one model
  const m = await waitFor("shard holders", 30000, async () => {
    const x = (await models(a)).find((y) => y.digest === model.digest);
    return x && x.holders.length === 3 ? x : undefined;
  });
  assert.deepEqual(m.holders.map((h) => [h.nodeName, h.complete]).sort(), [["a", true], ["b", false], ["c", false]]);
  // a shard is not a source for other peers, and a node holding nothing says so
  assert.equal((await post(b, "/models/shard", { model: "nothing-here", layers: [0, 1] })).status, 404);
});

test("with the hub stopped, a pull by the model's cluster name copies it whole from A, replacing B's shard", async () => {
  const r = await post(b, "/models/pull", { model: "small-Q8_0" });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  const m = await waitFor("B holding the whole model", 60000, async () => {
    const x = (await models(a)).find((y) => y.digest === model.digest);
    return x?.holders.find((h) => h.node === b.id)?.complete ? x : undefined;
  });
  assert.ok(m.holders.find((h) => h.node === b.id)!.complete);
  const local = (await getJson(b.url("/models/small-Q8_0"))) as { local: { path: string; complete: boolean } };
  assert.ok((await readFile(join(local.local.path, "small-Q8_0.gguf"))).equals(bytes), "B's file is now byte for byte A's");
  const status = (await getJson(b.url("/downloads/small-Q8_0"))) as { state: string };
  assert.equal(status.state, "done");
});
