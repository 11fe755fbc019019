import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { modelDigest } from "../../src/models/registry/describe.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { resolveModelSource } from "../../src/instances/model-source.js";
import { spawnRunnerProcess } from "../../src/runner/launcher.js";
import type { FromRunner, RunnerInit } from "../../src/runner/protocol.js";
import { isTesseraError } from "../../src/errors.js";
import { removeDir, tempDir } from "../cluster/node-process.js";

let dir = "";
let a = "";
let b = "";

before(async () => {
  dir = tempDir("tessera-digest-");
  a = join(dir, "a.gguf");
  b = join(dir, "b.gguf");
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: a });
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q4_0", vocab: "spm", out: b });
});

after(() => removeDir(dir));

test("the header digest is the same for a copy and differs for another model", async () => {
  const copy = join(dir, "copy.gguf");
  copyFileSync(a, copy);
  assert.equal(await modelDigest(copy), await modelDigest(a));
  assert.notEqual(await modelDigest(b), await modelDigest(a));
  assert.match(await modelDigest(a), /^[0-9a-f]{64}$/);
});

test("resolveModelSource: path, digest and placement view; a missing model is a clear error", async () => {
  const r = await resolveModelSource(a);
  assert.equal(r.model, a);
  assert.equal(r.source.path, a);
  assert.equal(r.source.digest, await modelDigest(a));
  assert.equal(r.summary.layers, 2);
  await assert.rejects(resolveModelSource(join(dir, "missing.gguf")), (e) => isTesseraError(e) && /no such file or folder/.test((e as Error).message));
});

test("a runner whose model file differs from the placed one refuses to load", async () => {
  const child = spawnRunnerProcess();
  const init: RunnerInit = {
    type: "init",
    instance: "digest-test.1",
    world: 1,
    plan: { stages: [{ layers: [0, 2], tp: 1 }] },
    modelPath: a,
    threads: 1,
    device: "cpu",
    contextLength: 32,
    host: "127.0.0.1",
    stallTimeoutMs: 3000,
    compressActivations: false,
    digest: await modelDigest(b),
  };
  child.send(init);
  const [m] = (await once(child, "message")) as [FromRunner];
  assert.equal(m.type, "failed");
  assert.match((m as { message: string }).message, /differs from the one the instance was placed with \(header digest [0-9a-f]{12}…, expected [0-9a-f]{12}…\): copy the same file to every node/);
  const [code] = (await once(child, "exit")) as [number];
  assert.equal(code, 3);
  // negative control: the right digest gets as far as listening
  const ok = spawnRunnerProcess();
  ok.send({ ...init, digest: await modelDigest(a) });
  const [first] = (await once(ok, "message")) as [FromRunner];
  assert.equal(first.type, "ports");
  ok.kill("SIGKILL");
});
