import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize, type SynthFormat, type SynthQuant } from "../../../src/models/synth/synthesize.js";
import type { SynthArch } from "../../../src/models/synth/presets.js";
import { openModel } from "../../../src/models/open.js";
import type { ModelSource } from "../../../src/models/types.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { ReferenceDecoder, familyInvFreq } from "../../../src/engine/reference.js";
import { loadEmbedding, loadHead, loadLayer } from "../../../src/engine/weights/load.js";
import { argmax } from "./lockstep.js";
import { relErr } from "../core/compare.js";

/**
 * Each new family written as GGUF, as transformers safetensors (per-expert tensors, Gemma's w for a
 * (1 + w) norm, Phi's fused qkv / gate_up) and as MLX (8-bit, stacked switch_mlp experts): the same
 * greedy tokens from all three. And Mistral's sliding window, which llama.cpp does not apply to a
 * llama GGUF, against the plain JS reference decoder well past the window.
 */
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-family-formats-"));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function write(arch: SynthArch, format: SynthFormat, quant: SynthQuant): Promise<string> {
  const path = join(dir, `${arch}-${format}-${quant}${format === "gguf" ? ".gguf" : ""}`);
  await synthesize({ arch, preset: "tiny", format, quant, out: path, seed: 3 });
  return path;
}

const PROMPT = Int32Array.from({ length: 32 }, (_, i) => (11 + i * 977) % 100000);

async function greedy(src: ModelSource, steps: number): Promise<{ tokens: number[]; first: Float32Array }> {
  const s = await createStepper(src, { threads: 1, contextLength: 80 });
  try {
    let logits = s.forward(PROMPT);
    const first = logits.slice();
    const tokens: number[] = [];
    for (let i = 0; i < steps; i++) {
      tokens.push(argmax(logits));
      logits = s.forward(Int32Array.of(tokens.at(-1)!));
    }
    return { tokens, first };
  } finally {
    await s.dispose();
  }
}

async function run(path: string): Promise<{ tokens: number[]; first: Float32Array; format: string }> {
  const src = await openModel(path);
  try {
    return { ...(await greedy(src, 32)), format: src.format };
  } finally {
    await src.close();
  }
}

for (const arch of ["mistral", "mixtral", "qwen3moe", "gemma3", "phi3"] as const) {
  test(`${arch}: GGUF, safetensors and MLX 8-bit give the same greedy tokens`, async () => {
    const gguf = await run(await write(arch, "gguf", "f16"));
    const st = await run(await write(arch, "safetensors", "f16"));
    const mlx = await run(await write(arch, "mlx", "mlx8"));
    assert.deepEqual([gguf.format, st.format, mlx.format], ["gguf", "safetensors", "mlx"]);
    assert.deepEqual(st.tokens, gguf.tokens);
    assert.deepEqual(mlx.tokens, gguf.tokens);
    // same f16 weights: the first logits agree to f16 rounding (measured ≤ 1.2e-3 absolute)
    assert.ok(relErr(st.first, gguf.first) < 1e-3, `safetensors vs GGUF: ${relErr(st.first, gguf.first)}`);
    assert.ok(new Set(gguf.tokens).size >= 8);
  });
}

test("mistral GGUF: the engine equals the JS reference 3× past its 16-token window; the reference without the window does not", async () => {
  const src = await openModel(await write("mistral", "gguf", "f16"));
  try {
    const cfg = src.config;
    assert.equal(cfg.slidingWindow, 16);
    const layers = [];
    for (let l = 0; l < cfg.numLayers; l++) layers.push(await loadLayer(src, l));
    const emb = await loadEmbedding(src);
    const head = await loadHead(src, emb);
    const ref = new ReferenceDecoder(cfg, layers, emb, head.norm, head.lmHead, src.ropeInterleaved, familyInvFreq(cfg));
    const full = new ReferenceDecoder({ ...cfg, slidingWindow: undefined }, layers, emb, head.norm, head.lmHead, src.ropeInterleaved, familyInvFreq(cfg));
    const s = await createStepper(src, { threads: 1, contextLength: 64 });
    try {
      let worst = 0;
      let worstFull = 0;
      for (let i = 0; i < 48; i++) {
        const t = i < PROMPT.length ? PROMPT[i]! : 300 + i;
        const got = s.forward(Int32Array.of(t));
        const want = ref.step(t);
        const err = relErr(got, want);
        if (i >= 16) worstFull = Math.max(worstFull, relErr(got, full.step(t)));
        else full.step(t);
        worst = Math.max(worst, err);
      }
      assert.ok(worst < 1e-4, `engine vs reference: ${worst}`);
      assert.ok(worstFull > 1e-2, `past the window, full attention should differ: ${worstFull}`);
    } finally {
      await s.dispose();
    }
  } finally {
    await src.close();
  }
});
