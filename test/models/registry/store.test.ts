import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTesseraError } from "../../../src/errors.js";
import { GgufFile } from "../../../src/models/gguf/reader.js";
import { describeModel } from "../../../src/models/registry/describe.js";
import { writePullManifest } from "../../../src/models/registry/manifest.js";
import { ModelStore } from "../../../src/models/registry/store.js";
import { synthesize } from "../../../src/models/synth/synthesize.js";

let dir = "";
let gguf = "";
let ggufOtherSeed = "";
let mlx = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-registry-"));
  gguf = join(dir, "src", "tiny-q8.gguf");
  ggufOtherSeed = join(dir, "src", "tiny-q8-seed2.gguf");
  mlx = join(dir, "src", "tiny-mlx");
  await mkdir(join(dir, "src"));
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: gguf, seed: 1 });
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: ggufOtherSeed, seed: 2 });
  await synthesize({ arch: "llama", preset: "tiny", format: "mlx", quant: "mlx4", out: mlx, seed: 1 });
});

after(() => rm(dir, { recursive: true, force: true }));

test("describe reads format, architecture, parameters, quantization and context from headers", async () => {
  const g = await describeModel(gguf);
  assert.equal(g.meta.format, "gguf");
  assert.equal(g.meta.architecture, "qwen3");
  assert.equal(g.meta.quantization, "Q8_0");
  assert.equal(g.meta.layers, 2);
  assert.equal(g.meta.contextLength, 4096);
  assert.equal(g.meta.unsupported, undefined);
  // tiny: vocab 4096 × 64 embedding and output, 2 layers (4 heads, 2 KV heads of 16), output norm
  const layer = 64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 64 * 256 + 2 * 64 + 2 * 16; // q, k, v, o, FFN, norms, q/k norms
  assert.equal(g.meta.parameters, 2 * 4096 * 64 + 2 * layer + 64);
  const m = await describeModel(mlx);
  assert.equal(m.meta.format, "mlx");
  assert.equal(m.meta.architecture, "llama");
  assert.equal(m.meta.quantization, "4bit");
  assert.equal(m.meta.layers, 2);
  assert.ok(m.files.some((f) => f.name === "model.safetensors") && m.files.some((f) => f.name === "config.json"));
});

test("the digest covers header and tensor table only: equal for copies and shards, different for other models", async () => {
  const g = await describeModel(gguf);
  assert.notEqual(g.digest, (await describeModel(ggufOtherSeed)).digest, "the seed is in the metadata: other model, other digest");
  const bytes = await readFile(gguf);
  const file = await GgufFile.open(gguf);
  const dataOffset = file.dataOffset;
  await file.close();
  assert.equal(g.digest, createHash("sha256").update(bytes.subarray(0, dataOffset)).digest("hex"));
  // A copy with its weights zeroed (what a shard-only sparse file looks like) keeps the digest.
  const shard = join(dir, "shard.gguf");
  const zeroed = Buffer.from(bytes);
  zeroed.fill(0, dataOffset);
  await writeFile(shard, zeroed);
  assert.equal((await describeModel(shard)).digest, g.digest);
  // One byte of the tensor table changed (a tensor renamed) changes it (negative control).
  const at = bytes.indexOf("blk.1.ffn_up.weight");
  assert.ok(at > 0 && at < dataOffset);
  const renamed = Buffer.from(bytes);
  renamed[at + "blk.1.ffn_".length] = "v".charCodeAt(0);
  const broken = join(dir, "renamed.gguf");
  await writeFile(broken, renamed);
  assert.notEqual((await describeModel(broken)).digest, g.digest);
});

test("a store scans its folders, registers by path, dedupes digests and removes only what it may", async () => {
  const data = join(dir, "data");
  const extra = join(dir, "extra");
  await mkdir(join(data, "models"), { recursive: true });
  await mkdir(extra, { recursive: true });
  await copyFile(gguf, join(data, "models", "tessera-demo.gguf"));
  await copyFile(ggufOtherSeed, join(extra, "other.gguf"));
  await writeFile(join(extra, "notes.txt"), "not a model");
  await writeFile(join(extra, "garbage.gguf"), "GGUF but not really");
  // an unfinished download is not a model yet
  await mkdir(join(data, "models", "pulling"));
  await writePullManifest(join(data, "models", "pulling"), { version: 1, name: "pulling", state: "downloading", model: "x", source: { kind: "url", url: "http://x/y.gguf" }, files: [{ name: "y.gguf", size: 10 }] });
  const store = new ModelStore(data, [extra]);
  const found = await store.scan();
  assert.deepEqual(found.map((m) => [m.id, m.origin]).sort(), [["other", "scanned"], ["tessera-demo", "managed"]]);
  assert.equal(store.problems.length, 1);
  assert.match(store.problems[0]!.path, /garbage\.gguf$/);

  const added = await store.add(mlx, "my-mlx");
  assert.equal(added.id, "my-mlx");
  assert.equal(added.origin, "added");
  // registered in models.json, so a new store (a restarted node) finds it
  const again = new ModelStore(data, [extra]);
  assert.ok((await again.scan()).some((m) => m.id === "my-mlx" && m.path === mlx));
  // the same content under another path is one model
  await copyFile(gguf, join(extra, "demo-copy.gguf"));
  const deduped = await again.scan();
  assert.equal(deduped.filter((m) => m.digest === found.find((x) => x.id === "tessera-demo")!.digest).length, 1);
  // a taken name with another digest is refused
  await assert.rejects(again.add(ggufOtherSeed, "my-mlx"), (e) => isTesseraError(e) && /taken/.test(e.message));
  await assert.rejects(again.add(join(dir, "missing.gguf")), (e) => isTesseraError(e) && /no such file/.test(e.message));
  await assert.rejects(again.add(gguf, "bad name!"), (e) => isTesseraError(e) && /model name/.test(e.message));
  // lookups by digest prefix
  const demo = again.find("tessera-demo")!;
  assert.equal(again.find(demo.digest.slice(0, 10))?.id, "tessera-demo");

  await assert.rejects(again.remove("other"), (e) => isTesseraError(e) && /--models-dir/.test(e.message));
  await again.remove("my-mlx");
  assert.ok(!(await again.scan()).some((m) => m.id === "my-mlx"));
  assert.ok((await describeModel(mlx)).digest, "removing an added model leaves its files");
  await again.remove("tessera-demo");
  await assert.rejects(readFile(join(data, "models", "tessera-demo.gguf")), "a managed model's file is deleted");
});
