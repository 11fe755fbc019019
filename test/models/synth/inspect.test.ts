import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { formatReport, inspectModel } from "../../../src/models/inspect.js";
import { main } from "../../../src/cli/main.js";

const dir = await mkdtemp(join(tmpdir(), "tessera-inspect-"));
after(() => rm(dir, { recursive: true, force: true }));

test("inspect reports architecture, parameters, types, layers, tokenizer and context", async () => {
  const path = join(dir, "m.gguf");
  const written = await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", seed: 2, out: path });
  const r = await inspectModel(path);
  const c = written.config;
  assert.equal(r.architecture, "qwen3");
  assert.equal(r.format, "gguf");
  assert.equal(r.layers, c.numLayers);
  assert.equal(r.contextLength, c.contextLength);
  const perLayer = c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize + 2 * c.headDim;
  assert.equal(r.parameters, 2 * c.vocabSize * c.hiddenSize + c.numLayers * perLayer + c.hiddenSize);
  assert.deepEqual(Object.keys(r.types).sort(), ["F32", "Q8_0"]);
  assert.equal(r.types.Q8_0!.tensors, 2 + 7 * c.numLayers);
  assert.equal(r.types.Q8_0!.bytes, (r.types.Q8_0!.parameters / 32) * 34);
  assert.equal(r.tensorBytes, r.types.Q8_0!.bytes + r.types.F32!.bytes);
  assert.ok(!("error" in r.tokenizer));
  if (!("error" in r.tokenizer)) {
    assert.equal(r.tokenizer.kind, "gguf-spm");
    assert.equal(r.tokenizer.vocabSize, 4096);
    assert.deepEqual(r.tokenizer.bos, { id: 1, piece: "<s>" });
  }
  const text = formatReport(r);
  assert.match(text, /architecture +qwen3 \(q\/k norm\)/);
  assert.match(text, /Q8_0 +16 tensors/);
});

test("tessera inspect --json prints the report; a missing path is a clear error", async () => {
  const path = join(dir, "m.gguf");
  const out: string[] = [];
  const log = console.log;
  const err = console.error;
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => out.push(s);
  try {
    assert.equal(await main(["inspect", path, "--json"]), 0);
    assert.equal(JSON.parse(out[0]!).architecture, "qwen3");
    assert.equal(await main(["inspect", join(dir, "nope.gguf")]), 1);
    assert.equal(out[1], `tessera inspect: ${join(dir, "nope.gguf")}: no such file or folder`);
  } finally {
    console.log = log;
    console.error = err;
  }
});
