import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { BatchEngine } from "../../../src/engine/session/batch-engine.js";
import { slotsThatFit } from "../../../src/engine/backend.js";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { openModel } from "../../../src/models/open.js";
import type { ModelConfig, ModelSource } from "../../../src/models/types.js";
import { isTesseraError } from "../../../src/errors.js";
import { rng, tinyConfig } from "./fixtures.js";
import { archSource } from "./arch-source.js";
import { relErr } from "./compare.js";

// Continuous batching in the engine: sequences decoded together in one run must give what each
// gives alone. The solo reference is the one-sequence engine (session/stepper.ts, its own KvCache).

const dir = await mkdtemp(join(tmpdir(), "tessera-batch-"));
after(() => rm(dir, { recursive: true, force: true }));

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

interface Trace {
  tokens: number[];
  logits: Float32Array[];
}

/** Greedy continuation of `prompt` by the one-sequence engine. */
async function solo(src: ModelSource, prompts: number[][], steps: number, ctx: number): Promise<Trace[]> {
  const s = await createStepper(src, { threads: 1, contextLength: ctx });
  try {
    return prompts.map((p) => {
      s.truncate(0);
      let logits = s.forward(Int32Array.from(p)).slice();
      const t: Trace = { tokens: [], logits: [] };
      for (let i = 0; i < steps; i++) {
        const tok = argmax(logits);
        t.tokens.push(tok);
        t.logits.push(logits);
        if (i + 1 < steps) logits = s.forward(Int32Array.of(tok)).slice();
      }
      return t;
    });
  } finally {
    await s.dispose();
  }
}

/**
 * The same prompts through one BatchEngine: sequence i lives in slotOf[i], joins the decode batch
 * `i` steps late (so each step's batch differs), and all decode steps run together. `wrong` breaks
 * one thing on purpose (negative controls).
 */
async function batched(src: ModelSource, prompts: number[][], steps: number, ctx: number, slots: number, slotOf: number[], wrong?: "swap-slots" | "short-mask"): Promise<Trace[]> {
  const e = await BatchEngine.create(src, { threads: 1, contextLength: ctx, slots });
  try {
    const traces: Trace[] = prompts.map(() => ({ tokens: [], logits: [] }));
    const next: (Float32Array | undefined)[] = prompts.map(() => undefined);
    const decodeSlot = [...slotOf];
    if (wrong === "swap-slots") [decodeSlot[0], decodeSlot[1]] = [decodeSlot[1]!, decodeSlot[0]!];
    for (let step = 0; traces.some((t) => t.tokens.length < steps); step++) {
      // sequence i's prompt goes in at step i (chunked in two when long: prefill chunks interleave)
      const joining = step < prompts.length ? step : -1;
      if (joining >= 0) {
        const p = prompts[joining]!;
        const half = p.length > 8 ? p.length >> 1 : 0;
        if (half > 0) e.prefill(slotOf[joining]!, Int32Array.from(p.slice(0, half)));
        next[joining] = e.prefill(slotOf[joining]!, Int32Array.from(p.slice(half))).slice();
        if (wrong === "short-mask" && joining === 2) e.truncate(slotOf[2]!, p.length - 1);
      }
      const entries: { slot: number; token: number; seq: number }[] = [];
      prompts.forEach((_, i) => {
        const t = traces[i]!;
        if (next[i] === undefined || t.tokens.length >= steps) return;
        const tok = argmax(next[i]!);
        t.tokens.push(tok);
        t.logits.push(next[i]!);
        next[i] = undefined;
        if (t.tokens.length < steps) entries.push({ slot: decodeSlot[i]!, token: tok, seq: i });
      });
      if (entries.length === 0) continue;
      const out = e.decode(entries);
      const V = e.vocabSize;
      entries.forEach((en, r) => (next[en.seq] = out.slice(r * V, (r + 1) * V)));
    }
    return traces;
  } finally {
    e.dispose();
  }
}

function prompts(vocab: number, lengths: number[], seed: number): number[][] {
  const r = rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => 1 + Math.floor(r.uniform() * (vocab - 1))));
}

const LENGTHS = [5, 23, 2, 41, 9, 60, 14, 33];
// slots 4 and 6 stay free: they sit inside the bound range as padding rows
const SLOT_OF = [9, 0, 3, 5, 1, 7, 2, 8];

const synthPath = join(dir, "llama-tiny.gguf");
await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", out: synthPath, seed: 7 });
const synth = await openModel(synthPath);
after(() => synth.close());
const synthPrompts = prompts(synth.config.vocabSize, LENGTHS, 3);
// 60 + 12 tokens: the longest sequence crosses the 64-position window step while others decode
const STEPS = 12;
const want = await solo(synth, synthPrompts, STEPS, 128);

test("8 prompts of different lengths decoded in one batch give each its solo greedy tokens", async () => {
  const got = await batched(synth, synthPrompts, STEPS, 128, 10, SLOT_OF);
  for (let i = 0; i < LENGTHS.length; i++) {
    assert.deepEqual(got[i]!.tokens, want[i]!.tokens, `sequence ${i} (prompt ${LENGTHS[i]} tokens)`);
    for (let s = 0; s < STEPS; s++) {
      const err = relErr(got[i]!.logits[s]!, want[i]!.logits[s]!);
      assert.ok(err < 1e-4, `sequence ${i} step ${s}: relative logit error ${err}`);
    }
  }
  // the solo runs are not all alike, else equality would prove little
  assert.ok(new Set(want.map((t) => t.tokens.join())).size === LENGTHS.length);
});

test("negative control: decoding a sequence in another's slot changes its tokens", async () => {
  const got = await batched(synth, synthPrompts, STEPS, 128, 10, SLOT_OF, "swap-slots");
  assert.notDeepEqual(got[0]!.tokens, want[0]!.tokens);
  assert.notDeepEqual(got[1]!.tokens, want[1]!.tokens);
  // the others are untouched by the swap
  for (let i = 2; i < LENGTHS.length; i++) assert.deepEqual(got[i]!.tokens, want[i]!.tokens, `sequence ${i}`);
});

test("negative control: a mask one cached position short changes that sequence's tokens", async () => {
  const got = await batched(synth, synthPrompts, STEPS, 128, 10, SLOT_OF, "short-mask");
  assert.notDeepEqual(got[2]!.tokens, want[2]!.tokens);
  const err = relErr(got[2]!.logits[1]!, want[2]!.logits[1]!);
  assert.ok(err > 1e-2, `relative logit error ${err}`);
  for (const i of [0, 1, 3, 4, 5, 6, 7]) assert.deepEqual(got[i]!.tokens, want[i]!.tokens, `sequence ${i}`);
});

// Families whose attention masks or MLPs differ: batch logits against solo logits (random weights).
const FAMILIES: [string, ModelConfig][] = [
  ["sliding window (Mistral-like)", tinyConfig("llama", { slidingWindow: 8, contextLength: 128 })],
  ["sliding layers with their own rope (Gemma-like)", tinyConfig("qwen3", { slidingWindow: 6, slidingLayers: [true, false], ropeThetaSliding: 10000, ropeTheta: 1e6 })],
  ["mixture of experts", tinyConfig("llama", { moe: { numExperts: 4, expertsPerToken: 2, expertFfnSize: 64 } })],
  ["qwen2 biases", tinyConfig("qwen2")],
];
for (const [name, cfg] of FAMILIES) {
  test(`batched decode equals solo decode: ${name}`, async () => {
    const src = archSource(cfg, { seed: 13 });
    const ps = prompts(cfg.vocabSize, [3, 19, 11, 70], 5);
    const steps = 6;
    const ref = await solo(src, ps, steps, 96);
    const got = await batched(src, ps, steps, 96, 4, [2, 0, 3, 1]);
    for (let i = 0; i < ps.length; i++) {
      for (let s = 0; s < steps; s++) {
        const err = relErr(got[i]!.logits[s]!, ref[i]!.logits[s]!);
        assert.ok(err < 1e-4, `sequence ${i} step ${s}: relative logit error ${err}`);
      }
    }
  });
}

test("slots are checked: overflow is the context error, a slot twice in a step or out of range refused", async () => {
  const e = await BatchEngine.create(synth, { threads: 1, contextLength: 8, slots: 2 });
  try {
    e.prefill(0, Int32Array.from([1, 2, 3, 4, 5, 6, 7]));
    e.decode([{ slot: 0, token: 3 }]);
    assert.throws(() => e.decode([{ slot: 0, token: 3 }]), (x) => isTesseraError(x) && /context overflow: 8 cached \+ 1 new/.test(x.message));
    assert.equal(e.length(0), 8);
    assert.throws(() => e.decode([{ slot: 1, token: 3 }, { slot: 1, token: 4 }]), /twice/);
    assert.throws(() => e.prefill(2, Int32Array.of(1)), /not in \[0, 2\)/);
    e.truncate(0, 2);
    assert.equal(e.length(0), 2);
  } finally {
    e.dispose();
  }
});

test("slotsThatFit: slots past the first come out of 75 % of free memory, never fewer than one", () => {
  // 1000 bytes for the model with one slot's KV (100): 0.75 · 2000 − 1000 = 500 → 5 more slots
  const e = { weightBytes: 800, kvBytes: 100, scratchBytes: 100, totalBytes: 1000 };
  assert.equal(slotsThatFit(8, e, 2000), 6);
  assert.equal(slotsThatFit(4, e, 2000), 4);
  assert.equal(slotsThatFit(8, e, 1000), 1);
  assert.throws(() => slotsThatFit(0, e, 2000), /--parallel must be an integer ≥ 1/);
});
