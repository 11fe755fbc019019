import { test } from "node:test";
import assert from "node:assert/strict";
import type { TensorType } from "../../../src/models/types.js";
import { ShardGraphBuilder } from "../../../src/engine/graph/decoder.js";
import { SyncSession, ort } from "../../../src/engine/onnx/session.js";
import { KvCache } from "../../../src/engine/session/kv-cache.js";
import type { ExternalBlob } from "../../../src/engine/onnx/builder.js";
import { loadHead, loadLayer } from "../../../src/engine/weights/load.js";
import { randomSource, tinyConfig } from "./fixtures.js";

/**
 * ShardEngine drops the converted weight blobs once the session exists (it relies on onnxruntime
 * having packed or copied every initializer). This checks that assumption directly: overwrite all
 * blobs after session creation and the logits must not change. If a future onnxruntime reads the
 * caller's buffers at run time instead, this fails (and dropping them would be a use-after-free).
 */
async function buildSession(type: TensorType): Promise<{ session: SyncSession; blobs: ExternalBlob[]; hidden: number; vocab: number; layers: number[] }> {
  const cfg = tinyConfig("llama", { hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, headDim: 32, vocabSize: 256 });
  const src = randomSource(cfg, { linearType: type, seed: 5 });
  const builder = new ShardGraphBuilder(cfg, { maxSeq: 16, ropeInterleaved: false });
  for (let l = 0; l < cfg.numLayers; l++) builder.addLayer(l, await loadLayer(src, l));
  const head = await loadHead(src);
  const graph = builder.finishLogits(head.norm, head.lmHead);
  const session = SyncSession.create(graph.toBytes(), graph.blobs, { threads: 1 });
  return { session, blobs: graph.blobs, hidden: cfg.hiddenSize, vocab: cfg.vocabSize, layers: Array.from({ length: cfg.numLayers }, (_, l) => l) };
}

function logits(s: { session: SyncSession; hidden: number; vocab: number; layers: number[] }): Float32Array {
  const n = 3;
  const hidden = Float32Array.from({ length: n * s.hidden }, (_, i) => Math.sin(i * 0.37));
  const feeds: Record<string, ort.Tensor> = {
    hidden_in: new ort.Tensor("float32", hidden, [1, n, s.hidden]),
    logits_index: new ort.Tensor("int64", BigInt64Array.of(BigInt(n - 1)), [1]),
  };
  const outputs: Record<string, ort.Tensor | null> = { logits: null };
  const kv = new KvCache(s.layers, 2, 16, 32);
  kv.prepare(n);
  kv.bind(feeds, outputs, n);
  return (s.session.run(feeds, outputs).logits.data as Float32Array).slice();
}

for (const type of ["Q4_0", "Q8_0", "F16"] as TensorType[]) {
  test(`${type}: the session does not read the weight blobs after creation`, async () => {
    const fresh = await buildSession(type);
    const before = logits(fresh);
    fresh.session.dispose();
    const s = await buildSession(type);
    for (const b of s.blobs) b.data.fill(0xff);
    const after = logits(s);
    s.session.dispose();
    assert.equal(after.length, before.length);
    assert.ok(before.some((x) => x !== 0));
    assert.deepEqual(after, before);
  });
}
