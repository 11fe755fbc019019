import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama } from "node-llama-cpp";
import { synthesize, type SynthQuant } from "../../../src/models/synth/synthesize.js";
import type { SynthArch } from "../../../src/models/synth/presets.js";
import { openModel } from "../../../src/models/open.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import { lockstep } from "./lockstep.js";

/**
 * The model families against llama.cpp (node-llama-cpp 3.21.1) on synthetic GGUF files, f16 and
 * Q4_0: both tokenize the prompt text to the same ids, then 32 greedy steps give the same tokens
 * with log-probabilities within the bounds of llama.cpp.test.ts (f16 0.03, 4-bit 0.15 nats; measured
 * ≤ 0.005 and ≤ 0.04). Gemma 3's tiny preset has a 16-token window on two of its three layers and
 * the run is ~60 tokens, so its sliding-window attention is checked well past the window; widening
 * the window (everything else alike) moves log-probs by far more than the bound (measured 0.37).
 * Mixture-of-experts routers stay F32 (as llama.cpp keeps them); near-tied routing decisions can
 * still flip between engines, which the synthetic routers make rare and cheap (synth/weights.ts).
 */
const TOLERANCE: Partial<Record<SynthQuant, number>> = { f16: 0.03, q4_0: 0.15 };
const STEPS = 32;
const TEXT = "The quick brown fox jumps over the lazy dog, then naps under the old oak tree.";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-families-"));
  llama = await getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: "error" as never });
});

after(async () => {
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function model(arch: SynthArch, quant: SynthQuant): Promise<string> {
  const out = join(dir, `${arch}-${quant}.gguf`);
  await synthesize({ arch, preset: "tiny", format: "gguf", quant, out, seed: 1, vocab: "spm" });
  return out;
}

/** The prompt text as both tokenizers see it: must be the same ids. */
async function promptTokens(path: string): Promise<number[]> {
  const ours = (await loadTokenizer(path)).encode(TEXT);
  const m = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    assert.deepEqual(ours, Array.from(m.tokenize(TEXT, true)), "prompt tokens differ");
  } finally {
    await m.dispose();
  }
  return ours;
}

for (const arch of ["mixtral", "qwen3moe", "gemma3", "phi3"] as const) {
  for (const quant of ["f16", "q4_0"] as const) {
    test(`${arch} ${quant}: same prompt tokens, greedy tokens and log-probs as llama.cpp`, async () => {
      const path = await model(arch, quant);
      const prompt = await promptTokens(path);
      assert.ok(prompt.length >= 16, `${prompt.length} prompt tokens`);
      const src = await openModel(path);
      try {
        assert.equal(src.config.architecture, arch === "mixtral" ? "llama" : arch);
        const run = await lockstep(llama, src, prompt, STEPS);
        assert.deepEqual(run.mismatches, [], "greedy tokens differ");
        const worst = Math.max(...run.errors);
        assert.ok(worst < TOLERANCE[quant]!, `log-probs differ by up to ${worst}`);
        assert.ok(new Set(run.tokens).size >= 8, `greedy output collapsed: ${run.tokens.join(",")}`);
      } finally {
        await src.close();
      }
    });
  }
}

test("gemma3: without its sliding window (everything else alike) the engine no longer matches llama.cpp", async () => {
  const path = await model("gemma3", "f16");
  const prompt = await promptTokens(path);
  const src = await openModel(path);
  try {
    assert.ok(prompt.length + STEPS > 2 * src.config.slidingWindow!);
    src.config.slidingWindow = 1 << 20;
    const run = await lockstep(llama, src, prompt, STEPS);
    assert.ok(Math.max(...run.errors) > 3 * TOLERANCE.f16!, `log-probs differ by only ${Math.max(...run.errors)}`);
  } finally {
    await src.close();
  }
});

test("mistral: llama.cpp ignores a llama GGUF's sliding window, so the engines agree while the context fits in it", async () => {
  const path = await model("mistral", "f16");
  const src = await openModel(path);
  try {
    const window = src.config.slidingWindow!;
    assert.equal(window, 16);
    const prompt = (await promptTokens(path)).slice(0, 8);
    const run = await lockstep(llama, src, prompt, window - prompt.length);
    assert.deepEqual(run.mismatches, []);
    assert.ok(Math.max(...run.errors) < TOLERANCE.f16!, `log-probs differ by up to ${Math.max(...run.errors)}`);
  } finally {
    await src.close();
  }
});
