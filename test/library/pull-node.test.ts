import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterDownload, ClusterModel } from "../../src/library/cluster-models.js";
import { cliCommand } from "../../src/spawn.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { getJson, removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { HubServer } from "../models/download/hub-server.js";

// A node process pulls from a local hub (HF_ENDPOINT): progress shows in the cluster state, a node
// killed mid-download resumes after its restart from the bytes it had (and says so from the first
// status on), and `tessera pull` drives a node's pull with a progress bar and clear errors.

let dir = "";
let big: Buffer;
let hub: HubServer;
const dirs: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-pullnode-"));
  await synthesize({ arch: "qwen3", preset: "small", format: "gguf", quant: "q8_0", vocab: "spm", out: join(dir, "s.gguf"), seed: 4 });
  big = await readFile(join(dir, "s.gguf"));
  hub = new HubServer([
    { id: "org/small-GGUF", files: [{ name: "small-Q8_0.gguf", data: big, lfs: true }] },
    { id: "org/gated-GGUF", gated: true, files: [{ name: "g-Q8_0.gguf", data: big, lfs: true }] },
  ]);
  await hub.start();
});

after(async () => {
  await stopAll();
  await hub.stop();
  for (const d of dirs) removeDir(d);
  await rm(dir, { recursive: true, force: true });
});

type List = { models: ClusterModel[]; downloads: ClusterDownload[] };
const list = async (n: NodeProcess) => (await getJson(n.url("/models"))) as List;
const COMMON = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--cluster", "pull-test"];

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const { command, args: base } = cliCommand();
  const p = spawn(command, [...base, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.once("exit", (code) => resolve({ code, out, err })));
}

test("a node killed mid-download resumes after restart, showing its real progress from the start", async () => {
  const data = tempDir();
  dirs.push(data);
  const env = { HF_ENDPOINT: hub.endpoint };
  hub.faults.bytesPerSec = 1.5 * 1024 * 1024;
  let a = await startNode([...COMMON, "--name", "a"], { dataDir: data, env });
  const res = await fetch(a.url("/models/pull"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "hf.co/org/small-GGUF:Q8_0" }) });
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  assert.equal(id, "small-Q8_0");
  // progress in the replicated state: bytes, speed, ETA
  const mid = await waitFor("a quarter downloaded", 60000, async () => {
    const d = (await list(a)).downloads.find((x) => x.id === id);
    return d && d.bytesDone > big.length / 4 ? d : undefined;
  });
  assert.equal(mid.bytesTotal, big.length);
  assert.ok(mid.bytesPerSec > 0 && mid.etaSec !== null && mid.etaSec > 0, JSON.stringify(mid));
  assert.equal(mid.from, "hub");
  assert.equal(mid.node, a.id);
  await a.kill();
  const partial = join(data, "models", "small-Q8_0", "small-Q8_0.gguf.partial");
  const had = (await stat(partial)).size;
  assert.ok(had > 0 && had < big.length);
  hub.resetCounts();
  hub.faults.bytesPerSec = 4 * 1024 * 1024;
  a = await startNode([...COMMON, "--name", "a"], { dataDir: data, env });
  // from the first status the restarted node shows, progress is at least what was on disk
  const seen: number[] = [];
  await waitFor("the resumed download to finish", 60000, async () => {
    const l = await list(a);
    const d = l.downloads.find((x) => x.id === id);
    if (d) seen.push(d.bytesDone);
    return l.models.some((m) => m.id === id);
  }, 100);
  hub.faults.bytesPerSec = undefined;
  assert.ok(seen.length > 0 && seen.every((b) => b >= had), `statuses ${seen.slice(0, 5).join(", ")}... vs ${had} on disk`);
  const cdn = hub.served.requests.filter((r) => r.path.startsWith("/cdn/"));
  assert.deepEqual(cdn.map((r) => r.range), [`bytes=${had}-`], "one request, from where the partial ended");
  assert.equal(hub.served.bytes.get("small-Q8_0.gguf"), big.length - had);
  assert.ok((await readFile(join(data, "models", "small-Q8_0", "small-Q8_0.gguf"))).equals(big));
  const m = (await list(a)).models.find((x) => x.id === id)!;
  assert.equal(m.origin?.repo, "org/small-GGUF", "the holding says where it came from");
  assert.ok(m.files[0]!.sha256, "and the file's sha256");

  // tessera pull: a gated repo without HF_TOKEN is a one-line error; the CLI follows a node's pull
  const url = a.url("");
  const gated = await cli(["pull", "hf.co/org/gated-GGUF", "--url", url]);
  assert.equal(gated.code, 1);
  assert.match(gated.err, /^tessera pull: org\/gated-GGUF is gated: accept its terms at .*HF_TOKEN/m);
  const again = await cli(["pull", "hf.co/org/small-GGUF:Q8_0", "--name", "copy", "--url", url]);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /pulled copy/);
  assert.match(again.err, /copy {2}\[#+\] {2}100\.0%/, "a progress line");
  const dl = (await getJson(a.url("/downloads"))) as { id: string; state: string }[];
  assert.ok(dl.some((d) => d.id === "copy" && d.state === "done"));
  const bad = await cli(["pull", "nosuch:model", "--url", url]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /not in the catalog/);
});

test("tessera pull with no node running downloads into the data dir itself; --offline asks nobody", async () => {
  const data = tempDir();
  dirs.push(data);
  hub.resetCounts();
  const env = { HF_ENDPOINT: hub.endpoint };
  const nowhere = "http://127.0.0.1:9";
  const offline = await cli(["pull", "hf.co/org/small-GGUF:Q8_0", "--offline", "--data-dir", data], { ...env, TESSERA_URL: nowhere });
  assert.equal(offline.code, 1);
  assert.match(offline.err, /offline/);
  assert.equal(hub.served.requests.length, 0);
  const r = await cli(["pull", "hf.co/org/small-GGUF:Q8_0", "--data-dir", data], { ...env, TESSERA_URL: nowhere });
  assert.equal(r.code, 0, r.err);
  assert.ok((await readFile(join(data, "models", "small-Q8_0", "small-Q8_0.gguf"))).equals(big));
  const listed = await cli(["models", "--json", "--data-dir", data], { TESSERA_URL: nowhere });
  assert.ok((JSON.parse(listed.out) as { models: { id: string }[] }).models.some((m) => m.id === "small-Q8_0"));
});
