import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  SafetensorsFile, SafetensorsSet, writeSafetensors, writeShardedSafetensors, quantizeMlx, dequantizeMlx, INDEX_FILE,
  type SafetensorsTensorToWrite,
} from "../../../src/models/safetensors/index.js";
import { quantize, dequantize } from "../../../src/models/quant/index.js";
import { TesseraError } from "../../../src/errors.js";
import type { TensorType } from "../../../src/models/types.js";
import { gaussian, withTempDir } from "./helpers.js";

const DTYPES: TensorType[] = ["F32", "F16", "BF16", "U32", "I8", "U8"];

function sampleTensors(): SafetensorsTensorToWrite[] {
  return DTYPES.map((dtype, i) => {
    const shape = [4, 6 + i];
    const n = shape[0]! * shape[1]!;
    const values = dtype === "U32" || dtype === "U8" ? Float32Array.from({ length: n }, (_, k) => (k * 37) % 251) :
      dtype === "I8" ? Float32Array.from({ length: n }, (_, k) => ((k * 37) % 251) - 125) : gaussian(n, i + 1);
    return { name: `layer.${dtype.toLowerCase()}`, dtype, shape, data: quantize(dtype, values) };
  });
}

test("safetensors single file: write -> read is bit-exact for every dtype, with metadata", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "m.safetensors");
    const tensors = sampleTensors();
    await writeSafetensors(path, tensors, { format: "pt" });
    const raw = await readFile(path);
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0, "header padded to 8 bytes");
    const f = await SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, { format: "pt" });
    for (const t of tensors) {
      const info = f.tensor(t.name)!;
      assert.equal(info.type, t.dtype);
      assert.deepEqual(info.shape, t.shape);
      assert.deepEqual((await f.read(t.name)).data, t.data);
      const cols = t.shape[1]!;
      const part = await f.read(t.name, { rows: [1, 3], cols: [2, cols - 1] });
      const whole = dequantize(info.type!, t.data as Uint8Array, 4 * cols);
      const got = dequantize(info.type!, part.data, 2 * (cols - 3));
      for (let r = 0; r < 2; r++) assert.deepEqual(got.subarray(r * (cols - 3), (r + 1) * (cols - 3)), whole.subarray((r + 1) * cols + 2, (r + 2) * cols - 1));
    }
    await f.close();
  });
});

test("sharded safetensors: index + shards round trip, and a folder without index reads too", async () => {
  await withTempDir(async (dir) => {
    const tensors = sampleTensors();
    const names = await writeShardedSafetensors(dir, tensors, { maxShardBytes: 100 });
    assert.ok(names.length >= 3, `split into ${names.length} shards`);
    assert.equal(names[0], `model-00001-of-${String(names.length).padStart(5, "0")}.safetensors`);
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), "utf8"));
    assert.equal(index.metadata.total_size, tensors.reduce((a, t) => a + (t.data as Uint8Array).length, 0));
    const set = await SafetensorsSet.openFolder(dir);
    assert.equal(set.files.length, names.length);
    for (const t of tensors) assert.deepEqual((await set.read(t.name)).data, t.data);
    await set.close();
    await rm(join(dir, INDEX_FILE));
    const plain = await SafetensorsSet.openFolder(dir);
    assert.equal(plain.tensors.length, tensors.length);
    await plain.close();
  });
});

test("MLX 4- and 8-bit: quantize -> dequantize within half a step, packing as MLX packs", () => {
  const rows = 3;
  const cols = 128;
  const values = gaussian(rows * cols, 9, 0.1);
  for (const bits of [4, 8] as const) {
    for (const scaleType of ["F16", "BF16", "F32"] as const) {
      const q = quantizeMlx(values, rows, cols, bits, 64, scaleType);
      assert.equal(q.weight.length, (rows * cols * bits) / 8);
      const back = dequantizeMlx(q, rows, cols, bits, 64, scaleType);
      const step = (g: number) => {
        const grp = values.subarray(g * 64, g * 64 + 64);
        return (Math.max(...grp) - Math.min(...grp)) / (2 ** bits - 1);
      };
      const rel = scaleType === "BF16" ? 2 ** -8 : scaleType === "F16" ? 2 ** -11 : 2 ** -23;
      for (let i = 0; i < values.length; i++) {
        const g = Math.floor(i / 64);
        const grp = values.subarray(g * 64, g * 64 + 64);
        const bound = step(g) / 2 + (2 ** bits) * step(g) * rel + Math.max(...grp.map(Math.abs)) * rel * 2;
        assert.ok(Math.abs(back[i]! - values[i]!) <= bound, `${bits}-bit ${scaleType} element ${i}`);
      }
    }
  }
  // Packing: 4-bit element i of a word sits at bits 4i..4i+3 of a little-endian uint32.
  const ramp = Float32Array.from({ length: 64 }, (_, i) => i % 16);
  const q4 = quantizeMlx(ramp, 1, 64, 4, 64, "F32");
  assert.equal(new DataView(q4.weight.buffer).getUint32(0, true), 0x76543210);
  assert.deepEqual(dequantizeMlx(q4, 1, 64, 4, 64, "F32"), ramp);
});

async function expectError(p: Promise<unknown>, subject: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TesseraError, `expected a TesseraError, got ${String(e)}`);
    assert.ok(e.message.includes(subject), `message names ${subject}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test("bad safetensors input gives one clear error naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ok.safetensors");
    await writeSafetensors(path, sampleTensors());
    const bytes = await readFile(path);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
    const withHeader = async (name: string, h: unknown) => {
      const json = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      await writeFile(join(dir, name), Buffer.concat([len, json, bytes.subarray(8 + headerLen)]));
      return join(dir, name);
    };
    const p1 = join(dir, "short.safetensors");
    await writeFile(p1, bytes.subarray(0, 5));
    await expectError(SafetensorsFile.open(p1), p1, /too short/);
    const p2 = join(dir, "hugelen.safetensors");
    const b2 = Buffer.from(bytes);
    b2.writeBigUInt64LE(1n << 60n, 0);
    await writeFile(p2, b2);
    await expectError(SafetensorsFile.open(p2), p2, /header length \d+ runs past the end/);
    const p3 = await withHeader("json.safetensors", "x");
    await writeFile(p3, Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{x}")]));
    await expectError(SafetensorsFile.open(p3), p3, /not valid JSON/);
    const cut = join(dir, "cut.safetensors");
    await writeFile(cut, bytes);
    await truncate(cut, bytes.length - 3);
    await expectError(SafetensorsFile.open(cut), cut, /past the end of the file .* truncated/);
    const p4 = await withHeader("dtype.safetensors", { ...header, "layer.f32": { ...header["layer.f32"], dtype: "Q9" } });
    await expectError(SafetensorsFile.open(p4), p4, /unknown dtype Q9/);
    const p5 = await withHeader("span.safetensors", { ...header, "layer.f32": { ...header["layer.f32"], shape: [4, 1000] } });
    await expectError(SafetensorsFile.open(p5), p5, /needs 16000 bytes but data_offsets span 96/);
    const p6 = await withHeader("i64.safetensors", { ...header, "layer.f32": { ...header["layer.f32"], dtype: "I32" } });
    const f6 = await SafetensorsFile.open(p6);
    await expectError(f6.read("layer.f32"), p6, /dtype I32, which is not supported/);
    await f6.close();
  });
});

test("sharded folders: a missing shard and an index naming a missing file are clear errors", async () => {
  await withTempDir(async (dir) => {
    const names = await writeShardedSafetensors(dir, sampleTensors(), { maxShardBytes: 100 });
    await rm(join(dir, names[1]!));
    await expectError(SafetensorsSet.openFolder(dir), INDEX_FILE, new RegExp(`index names shard file ${names[1]}, which is missing`));
    await rm(join(dir, INDEX_FILE));
    await expectError(SafetensorsSet.openFolder(dir), dir, new RegExp(`shard model-00002-of-0000\\d.safetensors is missing`));
  });
  await withTempDir(async (dir) => {
    const names = await writeShardedSafetensors(dir, sampleTensors(), { maxShardBytes: 100 });
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), "utf8"));
    index.weight_map["layer.f32"] = names[2];
    await writeFile(join(dir, INDEX_FILE), JSON.stringify(index));
    await expectError(SafetensorsSet.openFolder(dir), INDEX_FILE, /puts tensor 'layer.f32' in .*, but that file does not contain it/);
  });
});
