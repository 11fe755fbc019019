import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelSource, TensorType } from "../../../src/models/types.js";
import { buildTpAttentionGraph, buildTpMlpGraph } from "../../../src/engine/graph/decoder.js";
import { tpSplit } from "../../../src/placement/split.js";
import { SyncSession, ort } from "../../../src/engine/onnx/session.js";
import { KvCache } from "../../../src/engine/session/kv-cache.js";
import { loadLayer } from "../../../src/engine/weights/load.js";
import { isTesseraError } from "../../../src/errors.js";
import { randomSource, rng, tinyConfig } from "./fixtures.js";
import { relErr } from "./compare.js";

const maxSeq = 16;

/** One rank's two graphs for layer `l`, with its own KV cache. */
async function rankGraphs(src: ModelSource, l: number, rank: number, size: number) {
  const cfg = src.config;
  const slice = tpSplit(cfg, size, { attnOutput: 32, ffnDown: 32 })[rank]!;
  const w = await loadLayer(src, l, slice);
  const opts = { maxSeq, ropeInterleaved: src.ropeInterleaved };
  const a = buildTpAttentionGraph(cfg, opts, l, w, { heads: slice.heads, kvHeads: slice.kvHeads });
  const b = buildTpMlpGraph(cfg, l, w);
  return {
    attn: SyncSession.create(a.toBytes(), a.blobs, { threads: 1, spinning: false }),
    mlp: SyncSession.create(b.toBytes(), b.blobs, { threads: 1, spinning: false }),
    kv: new KvCache([l], slice.kvHeads, maxSeq, cfg.headDim),
  };
}

type Rank = Awaited<ReturnType<typeof rankGraphs>>;

function runAttention(r: Rank, x: Float32Array, s: number): Float32Array {
  const H = x.length / s;
  r.kv.prepare(s);
  const feeds: Record<string, ort.Tensor> = { hidden_in: new ort.Tensor("float32", x, [1, s, H]) };
  const outputs: Record<string, ort.Tensor | null> = { partial: null };
  r.kv.bind(feeds, outputs, s);
  const result = r.attn.run(feeds, outputs);
  r.kv.store(result, s);
  return result.partial.data as Float32Array;
}

function runMlp(r: Rank, x: Float32Array, s: number): Float32Array {
  return r.mlp.run({ hidden_in: new ort.Tensor("float32", x, [1, s, x.length / s]) }, { partial: null }).partial.data as Float32Array;
}

for (const [arch, type, tol] of [["qwen2", "F32", 1e-5], ["qwen3", "F32", 1e-5], ["llama", "Q8_0", 2e-2]] as const) {
  test(`${arch} ${type}: 2-way tensor-parallel partials sum to the full layer (prefill then decode)`, async () => {
    const cfg = tinyConfig(arch);
    const src = randomSource(cfg, { seed: 21, linearType: type as TensorType });
    const full = await rankGraphs(src, 1, 0, 1);
    const ranks = [await rankGraphs(src, 1, 0, 2), await rankGraphs(src, 1, 1, 2)];
    const r = rng(4);
    try {
      for (const s of [4, 1, 1]) {
        const x = Float32Array.from({ length: s * cfg.hiddenSize }, () => r.normal());
        const want = runAttention(full, x, s);
        const parts = ranks.map((rk) => runAttention(rk, x, s));
        const sum = parts[0].map((v, i) => v + parts[1][i]);
        assert.ok(relErr(sum, want) < tol, `attention, ${s} tokens: ${relErr(sum, want)}`);
        // A single rank alone is far from the whole: the test sees the split.
        assert.ok(relErr(parts[0], want) > 0.1);
        const wantMlp = runMlp(full, x, s);
        const mlps = ranks.map((rk) => runMlp(rk, x, s));
        const sumMlp = mlps[0].map((v, i) => v + mlps[1][i]);
        assert.ok(relErr(sumMlp, wantMlp) < tol, `mlp, ${s} tokens: ${relErr(sumMlp, wantMlp)}`);
      }
    } finally {
      for (const g of [full, ...ranks]) {
        g.attn.dispose();
        g.mlp.dispose();
      }
    }
  });
}

test("tensor-parallel slices: head ranges tile the model", () => {
  const cfg = tinyConfig("llama", { numHeads: 8, numKvHeads: 4, intermediateSize: 256 });
  const s = tpSplit(cfg, 4, { attnOutput: 32, ffnDown: 32 });
  assert.deepEqual(s.map((x) => x.qRows), [[0, 32], [32, 64], [64, 96], [96, 128]]);
  assert.deepEqual(s.map((x) => x.kvRows), [[0, 16], [16, 32], [32, 48], [48, 64]]);
  assert.deepEqual(s.map((x) => x.downCols), [[0, 64], [64, 128], [128, 192], [192, 256]]);
  assert.throws(() => tpSplit(cfg, 8, { attnOutput: 32, ffnDown: 32 }), (e) => isTesseraError(e) && /quantization blocks/.test((e as Error).message));
});
