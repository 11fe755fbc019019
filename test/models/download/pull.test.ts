import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile, mkdir, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTesseraError } from "../../../src/errors.js";
import { HubClient } from "../../../src/models/download/hub.js";
import { planPull, runPull } from "../../../src/models/download/pull.js";
import type { ProgressSnapshot } from "../../../src/models/download/progress.js";
import { readPullManifest, writePullManifest } from "../../../src/models/registry/manifest.js";
import { ModelStore } from "../../../src/models/registry/store.js";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { HubServer, sha256 } from "./hub-server.js";

// Pulls against a local hub (hub-server.ts) that counts the bytes it serves and misbehaves on request.

let dir = "";
let gguf: Uint8Array;
let q4: Uint8Array;
let mlxFiles: { name: string; data: Uint8Array }[];
let hub: HubServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-pull-"));
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: join(dir, "m-Q8_0.gguf"), seed: 3 });
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q4_0", vocab: "spm", out: join(dir, "m-Q4_0.gguf"), seed: 3 });
  await synthesize({ arch: "llama", preset: "tiny", format: "mlx", quant: "mlx4", out: join(dir, "mlx"), seed: 3 });
  gguf = await readFile(join(dir, "m-Q8_0.gguf"));
  q4 = await readFile(join(dir, "m-Q4_0.gguf"));
  mlxFiles = await Promise.all((await readdir(join(dir, "mlx"))).map(async (name) => ({ name, data: await readFile(join(dir, "mlx", name)) })));
  hub = new HubServer([
    { id: "org/tiny-GGUF", files: [{ name: "README.md", data: Buffer.from("# tiny\n") }, { name: "tiny-Q8_0.gguf", data: gguf, lfs: true }, { name: "tiny-Q4_0.gguf", data: q4, lfs: true }] },
    { id: "org/tiny-mlx", files: mlxFiles.map((f) => ({ ...f, lfs: f.name.endsWith(".safetensors") })) },
    { id: "org/gated-GGUF", gated: true, files: [{ name: "g-Q4_0.gguf", data: q4, lfs: true }] },
  ]);
  await hub.start();
});

after(async () => {
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  hub.resetCounts();
  hub.faults.cutAfter = undefined;
  hub.faults.corruptOnce = undefined;
  hub.faults.ignoreRange = false;
});

let n = 0;
function modelsDir(): string {
  return join(dir, `models-${++n}`);
}
const client = (o: { token?: string; offline?: boolean } = {}) => new HubClient({ endpoint: hub.endpoint, token: o.token, offline: o.offline ?? false });
const fast = { retries: 0, backoffMs: 10 };

test("a GGUF by hf.co/ORG/REPO:TAG: redirect followed, sha256 checked, every byte served once, the token kept from the CDN", async () => {
  const models = modelsDir();
  const h = client({ token: "some-token" });
  const plan = await planPull("hf.co/org/tiny-GGUF:Q8_0", models, h);
  assert.equal(plan.name, "tiny-Q8_0");
  assert.deepEqual(plan.files, [{ name: "tiny-Q8_0.gguf", size: gguf.length, sha256: sha256(gguf) }]);
  const seen: ProgressSnapshot[] = [];
  const m = await runPull(plan, h, { ...fast, onProgress: (p) => seen.push(p) });
  assert.equal(m.state, "complete");
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
  assert.equal(hub.served.bytes.get("tiny-Q8_0.gguf"), gguf.length);
  assert.equal(hub.served.bytes.get("tiny-Q4_0.gguf"), undefined, "the other quantization is not fetched");
  const cdn = hub.served.requests.filter((r) => r.path.startsWith("/cdn/"));
  const resolve = hub.served.requests.filter((r) => r.path.includes("/resolve/"));
  assert.equal(cdn.length, 1);
  assert.ok(resolve.every((r) => r.auth), "the hub gets the token");
  assert.ok(cdn.every((r) => !r.auth), "the CDN does not");
  assert.equal(seen.at(-1)!.bytesDone, gguf.length);
  // the registry lists it under the pull's name, with the manifest's digest
  const store = new ModelStore(join(models, ".."), []);
  Object.assign(store, { managedDir: models });
  const listed = (await store.scan()).find((x) => x.id === "tiny-Q8_0");
  assert.equal(listed?.digest, m.digest);
  // pulling again finds it complete and transfers nothing
  hub.resetCounts();
  await runPull(await planPull("hf.co/org/tiny-GGUF:Q8_0", models, h), h, fast);
  assert.equal(hub.totalServed(), 0);
});

test("an interrupted download resumes from its partial file and reports the bytes it already had", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("org/tiny-GGUF:Q8_0", models, h);
  const cut = Math.floor(gguf.length * 0.6);
  hub.faults.cutAfter = new Map([["tiny-Q8_0.gguf", cut]]);
  await assert.rejects(runPull(plan, h, fast), /transfer ended|every source/);
  assert.equal((await readPullManifest(plan.dir))?.state, "stopped");
  // the client keeps what it received before the cut (a little less than was sent: a reset socket drops its last buffer)
  const have = (await stat(join(plan.dir, "tiny-Q8_0.gguf.partial"))).size;
  assert.ok(have > 0 && have <= cut, `partial ${have} of ${cut}`);
  hub.resetCounts();
  // the "restart": a new run over the same folder
  const seen: ProgressSnapshot[] = [];
  await runPull(await planPull("org/tiny-GGUF:Q8_0", models, h), h, { ...fast, onProgress: (p) => seen.push(p) });
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
  assert.equal(hub.served.bytes.get("tiny-Q8_0.gguf"), gguf.length - have, "only the rest is fetched");
  const ranged = hub.served.requests.filter((r) => r.path.startsWith("/cdn/"));
  assert.deepEqual(ranged.map((r) => r.range), [`bytes=${have}-`]);
  assert.ok(seen.length > 0 && seen.every((p) => p.bytesDone >= have), "progress starts at the partial's size, not 0");
});

test("a corrupted byte is caught by the sha256 and the file fetched again", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("org/tiny-GGUF:Q8_0", models, h);
  hub.faults.corruptOnce = new Map([["tiny-Q8_0.gguf", 12345]]);
  const notes: string[] = [];
  await runPull(plan, h, { ...fast, onNote: (m) => notes.push(m) });
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
  assert.equal(hub.served.bytes.get("tiny-Q8_0.gguf"), 2 * gguf.length);
  assert.ok(notes.some((x) => /sha256 mismatch/.test(x)), notes.join("\n"));
});

test("a partial that already holds the whole file: the 416 for a range past the end completes it", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("org/tiny-GGUF:Q8_0", models, h);
  await mkdir(plan.dir, { recursive: true });
  await writeFile(join(plan.dir, "tiny-Q8_0.gguf.partial"), gguf);
  await writePullManifest(plan.dir, { version: 1, name: plan.name, state: "downloading", model: plan.model, source: plan.source, files: plan.files });
  // whatever asks the server from byte `size` gets 416: check the server does so (negative control)
  const direct = await fetch(`http://127.0.0.1:${hub.cdnPort}/cdn/${sha256(gguf)}?name=tiny-Q8_0.gguf`, { headers: { range: `bytes=${gguf.length}-` } });
  assert.equal(direct.status, 416);
  const m = await runPull(plan, h, fast);
  assert.equal(m.state, "complete");
  assert.equal(hub.served.bytes.get("tiny-Q8_0.gguf") ?? 0, 0);
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
});

test("a server that ignores Range restarts the file from byte 0 and still ends verified", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("org/tiny-GGUF:Q8_0", models, h);
  await mkdir(plan.dir, { recursive: true });
  await writeFile(join(plan.dir, "tiny-Q8_0.gguf.partial"), gguf.subarray(0, 1000));
  hub.faults.ignoreRange = true;
  await runPull(plan, h, fast);
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
});

test("a gated repo without a token fails with a clear error; with one it downloads", async () => {
  const models = modelsDir();
  await assert.rejects(planPull("hf.co/org/gated-GGUF", models, client()), (e) => isTesseraError(e) && /gated.*HF_TOKEN/.test(e.message));
  // the resolve endpoint itself refuses too (in case model info let it through)
  const plan = { name: "g", model: "x", dir: join(models, "g"), source: { kind: "hf" as const, endpoint: hub.endpoint, repo: "org/gated-GGUF", revision: "main" }, files: [{ name: "g-Q4_0.gguf", size: q4.length, sha256: sha256(q4) }] };
  await assert.rejects(runPull(plan, client(), fast), (e) => isTesseraError(e) && /gated/.test(e.message));
  const withToken = client({ token: hub.token });
  const m = await runPull(await planPull("hf.co/org/gated-GGUF", models, withToken), withToken, fast);
  assert.equal(m.state, "complete");
  await assert.rejects(planPull("hf.co/org/missing", models, client()), (e) => isTesseraError(e) && /not found/.test(e.message));
});

test("an MLX folder: its files in parallel, small files checked by their git blob id", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("hf.co/org/tiny-mlx", models, h);
  assert.equal(plan.name, "tiny-mlx");
  assert.deepEqual(plan.files.map((f) => f.name).sort(), mlxFiles.map((f) => f.name).sort());
  assert.ok(plan.files.find((f) => f.name === "config.json")!.gitSha1);
  hub.faults.corruptOnce = new Map([["config.json", 3]]);
  const m = await runPull(plan, h, fast);
  assert.equal(m.state, "complete");
  for (const f of mlxFiles) assert.ok((await readFile(join(plan.dir, f.name))).equals(f.data), f.name);
  assert.equal(hub.served.bytes.get("config.json"), 2 * mlxFiles.find((f) => f.name === "config.json")!.data.length, "the corrupt config.json was fetched again");
});

test("offline: no request is made", async () => {
  await assert.rejects(planPull("hf.co/org/tiny-GGUF", modelsDir(), client({ offline: true })), (e) => isTesseraError(e) && /offline/.test(e.message));
  assert.equal(hub.served.requests.length, 0);
});

test("cancel: an aborted pull stops at once and keeps its partial file for a later resume", async () => {
  const models = modelsDir();
  const h = client();
  const plan = await planPull("org/tiny-GGUF:Q8_0", models, h);
  hub.faults.bytesPerSec = 2 * 1024 * 1024;
  const ac = new AbortController();
  const running = runPull(plan, h, { ...fast, signal: ac.signal });
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  await assert.rejects(running, (e) => (e as Error).name === "AbortedError");
  hub.faults.bytesPerSec = undefined;
  const partial = (await stat(join(plan.dir, "tiny-Q8_0.gguf.partial"))).size;
  assert.ok(partial > 0 && partial < gguf.length, `partial ${partial}`);
  assert.equal((await readPullManifest(plan.dir))?.state, "stopped");
  await runPull(plan, h, fast);
  assert.ok((await readFile(join(plan.dir, "tiny-Q8_0.gguf"))).equals(gguf));
});
