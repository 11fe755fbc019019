import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tpSplit } from "../../../src/placement/split.js";
import { GgufFile } from "../../../src/models/gguf/reader.js";
import { mergeRanges, rangeBytes, shardByteRanges, subtractRanges, tpTensorSlice, type TensorTable } from "../../../src/models/download/ranges.js";
import { downloadRanges } from "../../../src/models/download/transfer.js";
import { openModel } from "../../../src/models/open.js";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { HubServer } from "./hub-server.js";

let dir = "";
let path = "";
let bytes: Buffer;
let file: GgufFile;
let table: TensorTable;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-ranges-"));
  path = join(dir, "small.gguf");
  await synthesize({ arch: "qwen3", preset: "small", format: "gguf", quant: "q8_0", vocab: "spm", out: path, seed: 9 });
  bytes = await readFile(path);
  file = await GgufFile.open(path);
  table = { fileSize: file.fileSize, dataOffset: file.dataOffset, tensors: file.tensors.map((t) => ({ name: t.name, offset: t.offset, shape: t.shape, type: t.type })) };
});

after(async () => {
  await file.close();
  await rm(dir, { recursive: true, force: true });
});

const covered = (ranges: [number, number][], a: number, b: number) => ranges.some(([x, y]) => x <= a && b <= y);
const touches = (ranges: [number, number][], a: number, b: number) => ranges.some(([x, y]) => x < b && a < y);

test("a pipeline stage's ranges cover its tensors and the header, and nothing of the other stages", () => {
  const L = 4;
  const cases: { layers: [number, number]; want: (n: string) => boolean }[] = [
    { layers: [0, 2], want: (n) => /^blk\.[01]\./.test(n) || n === "token_embd.weight" },
    { layers: [1, 3], want: (n) => /^blk\.[12]\./.test(n) },
    { layers: [3, 4], want: (n) => /^blk\.3\./.test(n) || n.startsWith("output") },
  ];
  for (const { layers, want } of cases) {
    const ranges = shardByteRanges(table, { layers, numLayers: L }, 0);
    assert.ok(covered(ranges, 0, file.dataOffset), "header and tensor table");
    for (const t of file.tensors) {
      if (want(t.name)) assert.ok(covered(ranges, t.offset, t.offset + t.byteLength), `${layers}: ${t.name} missing`);
      else assert.ok(!touches(ranges, t.offset, t.offset + t.byteLength), `${layers}: ${t.name} included`);
    }
    assert.ok(rangeBytes(ranges) < file.fileSize * 0.8);
  }
  // the whole model is the whole file
  assert.deepEqual(shardByteRanges(table, { layers: [0, 4], numLayers: 4 }, 0), [[0, file.fileSize]]);
});

test("a tensor-parallel rank's ranges hold exactly the slices it reads", async () => {
  const src = await openModel(path);
  const cfg = src.config;
  await src.close();
  const slice = tpSplit(cfg, 2, { attnOutput: 32, ffnDown: 32 })[1]!;
  const vocab = file.tensor("output.weight")!.shape[0]!;
  const pick = tpTensorSlice(slice, { vocabRows: [vocab / 2, vocab], embedding: true });
  const ranges = shardByteRanges(table, { layers: [0, 4], numLayers: 4, slice: pick }, 0);
  // the middle layers alone: a rank of 2 needs about half their bytes
  const middle = rangeBytes(shardByteRanges(table, { layers: [1, 3], numLayers: 4, slice: pick }, 0)) - file.dataOffset;
  const middleWhole = rangeBytes(shardByteRanges(table, { layers: [1, 3], numLayers: 4 }, 0)) - file.dataOffset;
  assert.ok(middle < middleWhole * 0.6, `${middle} of ${middleWhole}`);
  // Zero every byte outside the ranges: the rank's slices still read the same, whole tensors do not.
  const sparse = Buffer.alloc(bytes.length);
  for (const [a, b] of ranges) bytes.copy(sparse, a, a, b);
  const sparsePath = join(dir, "tp-rank1.gguf");
  await (await import("node:fs/promises")).writeFile(sparsePath, sparse);
  const s = await GgufFile.open(sparsePath);
  try {
    for (const name of ["output.weight", "token_embd.weight", "blk.2.attn_q.weight", "blk.2.attn_k.weight", "blk.2.attn_output.weight", "blk.2.ffn_up.weight", "blk.2.ffn_down.weight", "blk.2.attn_norm.weight"]) {
      const sl = pick(name);
      const a = await file.read(name, sl);
      const b = await s.read(name, sl);
      assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)), name);
    }
    const full = await s.read("blk.2.attn_q.weight");
    assert.ok(!Buffer.from(full.data).equals(Buffer.from((await file.read("blk.2.attn_q.weight")).data)), "rank 0's q rows are not there (negative control)");
  } finally {
    await s.close();
  }
});

test("range helpers merge and subtract", () => {
  assert.deepEqual(mergeRanges([[10, 20], [0, 5], [5, 8], [30, 40], [19, 25]]), [[0, 8], [10, 25], [30, 40]]);
  assert.deepEqual(mergeRanges([[0, 5], [9, 10]], 4), [[0, 10]]);
  assert.deepEqual(subtractRanges([[0, 100]], [[10, 20], [50, 60]]), [[0, 10], [20, 50], [60, 100]]);
  assert.deepEqual(subtractRanges([[0, 10]], [[0, 10]]), []);
});

test("a shard is fetched as byte ranges into a sparse file: only those bytes are served, a second run fetches nothing", async () => {
  const hub = new HubServer([{ id: "o/small", files: [{ name: "small.gguf", data: bytes, lfs: true }] }]);
  await hub.start();
  try {
    const ranges = shardByteRanges(table, { layers: [2, 4], numLayers: 4 });
    const dest = join(dir, "shard.gguf");
    const url = `${hub.endpoint}/o/small/resolve/main/small.gguf`;
    const persisted: [number, number][][] = [];
    const held = await downloadRanges({ dest, size: bytes.length, ranges, held: [], sources: [{ label: "hub", url }] }, { onHeld: async (h) => void persisted.push(h) });
    assert.equal(hub.totalServed(), rangeBytes(ranges), "exactly the ranges");
    assert.ok(hub.totalServed() < bytes.length * 0.7);
    assert.deepEqual(held, mergeRanges(ranges));
    assert.deepEqual(persisted.at(-1), held);
    assert.equal((await stat(dest)).size, bytes.length, "full size, sparse");
    const s = await GgufFile.open(dest);
    try {
      for (const name of ["blk.3.ffn_down.weight", "output.weight", "blk.2.attn_q.weight"]) {
        assert.ok(Buffer.from((await s.read(name)).data).equals(Buffer.from((await file.read(name)).data)), name);
      }
      assert.ok((await s.read("blk.0.ffn_up.weight")).data.every((x) => x === 0), "another stage's tensor is a hole");
    } finally {
      await s.close();
    }
    hub.resetCounts();
    await downloadRanges({ dest, size: bytes.length, ranges, held, sources: [{ label: "hub", url }] });
    assert.equal(hub.totalServed(), 0);
  } finally {
    await hub.stop();
  }
});
