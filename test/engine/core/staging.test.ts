import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTesseraError } from "../../../src/errors.js";
import { ShardEngine } from "../../../src/engine/session/shard.js";
import { WeightStaging } from "../../../src/engine/onnx/staging.js";
import { WeightFile } from "../../../src/engine/onnx/weight-file.js";
import { shardWeightBytes } from "../../../src/engine/weights/load.js";
import { randomSource, tinyConfig } from "./fixtures.js";

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "tessera-staging-test-"));
}

async function logitsOf(engine: ShardEngine): Promise<Float32Array[]> {
  const out = [engine.run(engine.embed(Int32Array.of(5, 17, 33, 2)), 4)];
  for (const t of [9, 41, 7]) out.push(engine.run(engine.embed(Int32Array.of(t)), 1));
  engine.dispose();
  return out;
}

for (const type of ["Q4_0", "Q8_0", "F16"] as const) {
  test(`${type}: weights staged on disk give the same logits as weights in memory, and the files are gone`, async () => {
    const cfg = tinyConfig("llama", { hiddenSize: 128, intermediateSize: 256, headDim: 32, vocabSize: 200 });
    const src = randomSource(cfg, { linearType: type, seed: 11 });
    const dir = scratch();
    try {
      const inMemory = await ShardEngine.create(src, { threads: 1, contextLength: 16, staging: { mode: "memory" } });
      assert.equal(inMemory.stagedBytes, 0);
      const memory = await logitsOf(inMemory);
      // The session is created from the staged file and the file is deleted before the first run.
      const onDisk = await ShardEngine.create(src, { threads: 1, contextLength: 16, staging: { mode: "disk", dirs: [dir] } });
      // Every stored weight went through the file (converted weights are at least their stored size).
      assert.ok(onDisk.stagedBytes >= shardWeightBytes(src, [0, cfg.numLayers]), `only ${onDisk.stagedBytes} bytes staged`);
      const disk = await logitsOf(onDisk);
      assert.deepEqual(readdirSync(dir), []);
      assert.equal(disk.length, memory.length);
      for (let i = 0; i < disk.length; i++) {
        assert.ok(memory[i].some((x) => x !== 0));
        assert.deepEqual(disk[i], memory[i]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("disk staging really uses its directory: one that cannot be made is a clear error naming it", async () => {
  const src = randomSource(tinyConfig("llama"), { linearType: "Q8_0", seed: 2 });
  const where = "/proc/no-such-place";
  await assert.rejects(
    ShardEngine.create(src, { threads: 1, contextLength: 8, staging: { mode: "disk", dirs: [where] } }),
    (e) => isTesseraError(e) && /cannot create a weight staging directory/.test(e.message) && e.message.includes(where),
  );
});

test("a pipeline shard without the head stages on disk too (hidden states equal)", async () => {
  const cfg = tinyConfig("qwen3", { numLayers: 3 });
  const src = randomSource(cfg, { linearType: "Q8_0", seed: 3 });
  const dir = scratch();
  try {
    const run = async (staging: { mode: "memory" } | { mode: "disk"; dirs: string[] }): Promise<{ out: Float32Array; staged: number }> => {
      const first = await ShardEngine.create(src, { threads: 1, contextLength: 8, layers: [0, 2], staging });
      const out = first.run(first.embed(Int32Array.of(1, 2, 3)), 3).slice();
      first.dispose();
      return { out, staged: first.stagedBytes };
    };
    const disk = await run({ mode: "disk", dirs: [dir] });
    const memory = await run({ mode: "memory" });
    assert.ok(disk.staged >= shardWeightBytes(src, [0, 2]), `only ${disk.staged} bytes staged`);
    assert.equal(memory.staged, 0);
    assert.deepEqual(disk.out, memory.out);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("auto staging keeps small graphs in memory and stages large ones in the first usable dir", () => {
  const dir = scratch();
  try {
    const small = WeightStaging.open(1024 * 1024, { dirs: [dir] });
    assert.equal(small.onDisk, false);
    const large = WeightStaging.open(200 * 1024 * 1024, { dirs: [join(dir, "sub")] });
    assert.equal(large.onDisk, true);
    assert.ok(large.dir!.startsWith(join(dir, "sub")));
    large.discard();
    assert.equal(existsSync(large.dir!), false);
    const none = WeightStaging.open(200 * 1024 * 1024, { dirs: ["/proc/no-such-place"] });
    assert.equal(none.onDisk, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("staging dirs left by processes that are gone are swept; live ones are kept", () => {
  const dir = scratch();
  try {
    // Pid 2^22 + 1 is above Linux's pid_max limit, so no process has it.
    const dead = join(dir, `tessera-stage-${4194305}-abc`);
    const live = join(dir, `tessera-stage-${process.ppid}-abc`);
    mkdirSync(dead);
    mkdirSync(live);
    WeightStaging.open(1, { mode: "disk", dirs: [dir] }).discard();
    assert.equal(existsSync(dead), false);
    assert.equal(existsSync(live), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the weight file puts every blob at an aligned offset, bytes intact", () => {
  const dir = scratch();
  try {
    const f = new WeightFile(join(dir, "w.bin"));
    const a = Uint8Array.from({ length: 100 }, (_, i) => i);
    const b = Uint8Array.from({ length: WeightFile.ALIGN + 3 }, (_, i) => (i * 7) & 255);
    const offsets = [f.append(a), f.append(b), f.append(a)];
    f.close();
    assert.deepEqual(offsets, [0, WeightFile.ALIGN, 3 * WeightFile.ALIGN]);
    const bytes = readFileSync(join(dir, "w.bin"));
    assert.equal(bytes.length, 3 * WeightFile.ALIGN + a.length);
    assert.deepEqual(bytes.subarray(offsets[1], offsets[1] + b.length), Buffer.from(b));
    assert.deepEqual(bytes.subarray(offsets[2]), Buffer.from(a));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a full disk while staging is one clear error naming the file", () => {
  const f = new WeightFile("/dev/full");
  assert.throws(
    () => f.append(new Uint8Array(4096)),
    (e) => isTesseraError(e) && /disk is full/.test(e.message) && e.message.includes("/dev/full"),
  );
  f.close();
});
