import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GgufFile, gv, writeGguf, type GgufValue } from "../../../src/models/gguf/index.js";
import { dequantize, quantize } from "../../../src/models/quant/index.js";
import { TesseraError } from "../../../src/errors.js";
import type { TensorType } from "../../../src/models/types.js";
import { gaussian, withTempDir } from "./helpers.js";
import { assertWithinBlocks, boundOf } from "./bounds.js";

const GGUF_TYPES: TensorType[] = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "I8"];

const metadata: [string, GgufValue][] = [
  ["general.architecture", gv.str("llama")],
  ["t.u8", gv.u8(255)],
  ["t.i8", gv.i8(-128)],
  ["t.u16", gv.u16(65535)],
  ["t.i16", gv.i16(-32768)],
  ["t.u32", gv.u32(4294967295)],
  ["t.i32", gv.i32(-2147483648)],
  ["t.f32", gv.f32(1e-5)],
  ["t.f64", gv.f64(Math.PI)],
  ["t.u64", gv.u64(18446744073709551615n)],
  ["t.i64", gv.i64(-9007199254740993n)],
  ["t.u64small", gv.u64(4096n)],
  ["t.bool", gv.bool(true)],
  ["t.string", gv.str("héllo ✓ 世界")],
  ["t.strings", gv.arr("string", ["<unk>", "", "▁the", "🙂"])],
  ["t.f32s", gv.arr("f32", [0, -1.5, 3.25])],
  ["t.i32s", gv.arr("i32", [1, -2, 3])],
  ["t.bools", gv.arr("bool", [true, false])],
  ["t.u64s", gv.arr("u64", [1n, 2n ** 60n])],
  ["t.nested", gv.nested([gv.arr("u8", [1, 2]), gv.arr("string", ["a"]), gv.nested([gv.arr("i16", [-3])])])],
  ["t.empty", gv.arr("u32", [])],
];

function tensorsFor(types: TensorType[]) {
  return types.map((type, i) => {
    const shape = type.endsWith("_K") ? [3, 512] : [5, 64];
    const values = gaussian(shape[0]! * shape[1]!, 10 + i, 0.5);
    return { name: `t.${type}`, type, shape, values, data: quantize(type, values) };
  });
}

test("GGUF v3 write -> read gives back every metadata type and every tensor type bit-exact", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "m.gguf");
    const tensors = tensorsFor(GGUF_TYPES);
    const norm = gaussian(7, 1);
    tensors.push({ name: "norm", type: "F32", shape: [7], values: norm, data: quantize("F32", norm) });
    await writeGguf(path, { metadata, tensors: tensors.map((t, i) => (i % 2 ? { ...t, data: () => t.data } : t)) });
    const g = await GgufFile.open(path);
    try {
      assert.equal(g.version, 3);
      assert.equal(g.alignment, 32);
      assert.equal(g.dataOffset % 32, 0);
      for (const [k, v] of metadata) assert.deepEqual(g.typedMetadata.get(k), k === "t.f32" ? gv.f32(Math.fround(1e-5)) : v, k);
      assert.equal(g.metadata.get("t.u64small"), 4096); // plain form: numbers where exact
      assert.equal(g.metadata.get("t.u64"), 18446744073709551615n);
      assert.deepEqual(g.metadata.get("t.nested"), [[1, 2], ["a"], [[-3]]]);
      assert.equal(g.tensors.length, tensors.length);
      for (const t of tensors) {
        const info = g.tensor(t.name)!;
        assert.equal(info.type, t.type);
        assert.deepEqual(info.shape, t.shape);
        assert.deepEqual(info.dims, [...t.shape].reverse());
        assert.equal(info.offset % 32, 0);
        const r = await g.read(t.name);
        assert.deepEqual(r.data, t.data, t.name);
        // The bytes decode to the values that were written (I8 rounds them to integers).
        const got = dequantize(t.type, r.data, t.shape.reduce((a, b) => a * b));
        if (t.type === "I8") assert.deepEqual(got, t.values.map((v) => Math.max(-128, Math.min(127, Math.round(v))) + 0)); // + 0: no -0
        else assertWithinBlocks(got, t.values, { rowLength: t.shape[t.shape.length - 1]!, ...boundOf(t.type), label: t.name });
      }
    } finally {
      await g.close();
    }
  });
});

test("GGUF v2 and a custom alignment are written and read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "v2.gguf");
    const tensors = tensorsFor(["Q8_0", "F16"]);
    await writeGguf(path, { metadata: [["a", gv.u32(1)]], tensors, version: 2, alignment: 64 });
    const g = await GgufFile.open(path);
    assert.equal(g.version, 2);
    assert.equal(g.alignment, 64);
    assert.deepEqual(g.typedMetadata.get("general.alignment"), gv.u32(64));
    for (const t of tensors) {
      assert.equal(g.tensor(t.name)!.offset % 64, 0);
      assert.deepEqual((await g.read(t.name)).data, t.data);
    }
    await g.close();
  });
});

test("row and column slices equal the matching part of the whole tensor", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "s.gguf");
    const types: TensorType[] = ["F32", "BF16", "Q4_0", "Q8_0", "Q4_K", "Q6_K"];
    const tensors = types.map((type, i) => {
      const shape = type.endsWith("_K") ? [6, 1024] : [6, 128];
      return { name: type, type, shape, data: quantize(type, gaussian(shape[0]! * shape[1]!, 50 + i)) };
    });
    await writeGguf(path, { metadata: [], tensors });
    const g = await GgufFile.open(path);
    for (const t of tensors) {
      const cols = t.shape[1]!;
      const block = t.type.endsWith("_K") ? 256 : t.type.startsWith("Q") ? 32 : 1;
      const whole = dequantize(t.type, (await g.read(t.name)).data, 6 * cols);
      const [c0, c1] = [cols / 4, cols / 2 + (block === 1 ? 3 : 0)];
      const part = await g.read(t.name, { rows: [1, 4], cols: [c0, c1] });
      assert.deepEqual(part.shape, [3, c1 - c0]);
      const got = dequantize(t.type, part.data, 3 * (c1 - c0));
      for (let r = 0; r < 3; r++) {
        assert.deepEqual(got.subarray(r * (c1 - c0), (r + 1) * (c1 - c0)), whole.subarray((r + 1) * cols + c0, (r + 1) * cols + c1), `${t.type} row ${r}`);
      }
      const rows = await g.read(t.name, { rows: [5, 6] });
      assert.deepEqual(dequantize(t.type, rows.data, cols), whole.subarray(5 * cols));
    }
    await assert.rejects(g.read("Q4_0", { cols: [16, 48] }), /not aligned to Q4_0 blocks of 32/);
    await assert.rejects(g.read("F32", { rows: [4, 9] }), /row range \[4, 9\) is not inside \[0, 6\)/);
    await g.close();
  });
});

/** A valid small file to break in the tests below. */
async function sample(dir: string): Promise<{ path: string; bytes: Buffer }> {
  const path = join(dir, "ok.gguf");
  await writeGguf(path, { metadata: [["general.architecture", gv.str("llama")], ["v", gv.arr("string", ["x", "y"])]], tensors: tensorsFor(["Q8_0"]) });
  return { path, bytes: await readFile(path) };
}

async function expectError(path: string, re: RegExp): Promise<void> {
  await assert.rejects(GgufFile.open(path), (e: unknown) => {
    assert.ok(e instanceof TesseraError, `expected a TesseraError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test("bad GGUF input gives one clear error naming the file", async () => {
  await withTempDir(async (dir) => {
    const { bytes } = await sample(dir);
    const at = (name: string, b: Uint8Array) => writeFile(join(dir, name), b).then(() => join(dir, name));
    const u32At = (o: number, v: number) => { const c = Buffer.from(bytes); c.writeUInt32LE(v, o); return c; };
    const u64At = (o: number, v: bigint) => { const c = Buffer.from(bytes); c.writeBigUInt64LE(v, o); return c; };

    await expectError(await at("magic.gguf", u32At(0, 0x12345678)), /not a GGUF file/);
    await expectError(await at("v1.gguf", u32At(4, 1)), /unsupported GGUF version 1/);
    await expectError(await at("v9.gguf", u32At(4, 9)), /unsupported GGUF version 9/);
    await expectError(await at("short.gguf", bytes.subarray(0, 3)), /too short/);
    await expectError(await at("hdr.gguf", bytes.subarray(0, 40)), /truncated/);
    await expectError(await at("hdr2.gguf", bytes.subarray(0, 90)), /file is truncated: .* needs \d+ bytes/);
    await expectError(await at("tensors.gguf", u64At(8, 1n << 40n)), /cannot fit/);
    await expectError(await at("kvs.gguf", u64At(16, 123456789n)), /cannot fit/);
    // First key's length field sits right after the header.
    await expectError(await at("keylen.gguf", u64At(24, 1n << 50n)), /runs past the end of the file/);
    // The array length of "v": find it after its key and item type.
    const vKey = bytes.indexOf(Buffer.from("v\x09\x00\x00\x00", "latin1"));
    await expectError(await at("arrlen.gguf", u64At(vKey + 9, 1n << 45n)), /array length .* cannot fit/);
    await expectError(await at("vtype.gguf", u32At(vKey + 1, 77)), /unknown value type 77/);
    const tName = bytes.indexOf(Buffer.from("t.Q8_0"));
    await expectError(await at("ttype.gguf", u32At(tName + 6 + 4 + 16, 99)), /unsupported tensor type unknown type 99/);
    await expectError(await at("q50.gguf", u32At(tName + 6 + 4 + 16, 6)), /unsupported tensor type Q5_0/);
    await expectError(await at("ndims.gguf", u32At(tName + 6, 9)), /9 dimensions/);
    await expectError(await at("dims.gguf", u64At(tName + 6 + 4 + 8, 1n << 52n)), /absurd dimensions/);
    await expectError(await at("offset.gguf", u64At(tName + 6 + 4 + 16 + 4, 1n << 20n)), /past the end of the file/);
    const cut = join(dir, "cut.gguf");
    await writeFile(cut, bytes);
    await truncate(cut, bytes.length - 50);
    await expectError(cut, /lies past the end of the file .* truncated/);
    await assert.rejects(GgufFile.open(join(dir, "nope.gguf")), /nope.gguf: file not found/);
  });
});

test("writer refuses data of the wrong size and rows that are not whole blocks", async () => {
  await withTempDir(async (dir) => {
    const p = join(dir, "w.gguf");
    await assert.rejects(writeGguf(p, { metadata: [], tensors: [{ name: "x", type: "Q8_0", shape: [2, 32], data: new Uint8Array(10) }] }), /expected 68/);
    await assert.rejects(writeGguf(p, { metadata: [], tensors: [{ name: "x", type: "Q4_0", shape: [2, 48], data: new Uint8Array(10) }] }), /not a multiple of the Q4_0 block size/);
    await assert.rejects(writeGguf(p, { metadata: [["k", gv.u8(300)]], tensors: [] }), /300 is not a valid u8/);
  });
});

test("metadata larger than the reader's 1 MiB chunks (strings across chunk edges) reads back exactly", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "vocab.gguf");
    const tokens = Array.from({ length: 40000 }, (_, i) => `piece ${i} ` + "xé✓".repeat(i % 13));
    const scores = tokens.map((_, i) => -i / 7);
    await writeGguf(path, { metadata: [["tokenizer.ggml.tokens", gv.arr("string", tokens)], ["tokenizer.ggml.scores", gv.arr("f32", scores)]], tensors: tensorsFor(["F16"]) });
    const g = await GgufFile.open(path);
    assert.deepEqual(g.metadata.get("tokenizer.ggml.tokens"), tokens);
    assert.deepEqual(g.metadata.get("tokenizer.ggml.scores"), scores.map(Math.fround));
    assert.ok(g.dataOffset > 1 << 20);
    await g.close();
  });
});
