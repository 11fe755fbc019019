import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { waitGone } from "./processes.js";
import { openModel } from "../../src/models/open.js";
import { BatchEngine } from "../../src/engine/session/batch-engine.js";
import { ShardedStepper } from "../../src/runner/bridge.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { argmax } from "../../src/engine/sampling/select.js";
import { EngineWorker } from "../../src/inference/worker/engine-worker.js";
import { resolveRequest, type InferenceRequest } from "../../src/inference/request.js";
import type { GenerationResult } from "../../src/inference/result.js";
import type { BatchStepper } from "../../src/engine/types.js";
import { Sampler, type ResolvedSamplingParams, type SampleResult } from "../../src/engine/sampling/index.js";
import { ModelFiles, configOf, type ModelSpec } from "./models.js";

// Continuous batching across shards: runners hold many sequences' KV, a DECODE step carries one
// token of each through every stage (and one all-reduce per layer half for the whole batch under
// tensor parallelism). Each sequence must get what one process gives it.
const models = new ModelFiles();
before(() => models.open());
after(() => models.close());

const SPEC: ModelSpec = { arch: "llama", preset: "small", quant: "f16" };
const CTX = 256;
const SHAPES = [
  { name: "PP 2", pp: 2, tp: 1 },
  { name: "TP 2", pp: 1, tp: 2 },
];

/** Prompts of different lengths for slots 0, 1 and 3; slot 2 stays empty (a padding row). */
const PROMPTS = new Map<number, number[]>([
  [0, [1, 300, 301, 302, 700, 1200, 33]],
  [1, [1, 900, 17, 4000, 55, 56, 57, 58, 59, 60, 61, 62, 63, 900, 901, 902, 903, 2, 3]],
  [3, [1, 42]],
]);
const STEPS = 12;

/** Prefills every prompt, then STEPS greedy decode steps of all of them at once; each step's logits per slot. */
function runBatch(b: BatchStepper, feed: (slot: number) => number = (s) => s): Map<number, Float32Array[]> {
  const out = new Map<number, Float32Array[]>();
  const next = new Map<number, number>();
  for (const [slot, prompt] of PROMPTS) {
    const logits = b.prefill(slot, Int32Array.from(prompt));
    out.set(slot, [logits.slice()]);
    next.set(slot, argmax(logits));
  }
  const slots = [...PROMPTS.keys()];
  const V = b.vocabSize;
  for (let i = 0; i < STEPS; i++) {
    // the step's row for slot s carries the token chosen for feed(s)
    const logits = b.decode(slots.map((slot) => ({ slot, token: next.get(feed(slot))! })));
    slots.forEach((slot, r) => {
      const row = logits.slice(r * V, (r + 1) * V);
      out.get(slot)!.push(row);
      next.set(slot, argmax(row));
    });
  }
  return out;
}

/**
 * runBatch's steps with two decode steps in flight at once (slots 0 and 3, then slot 1), and a
 * prefill of slot 2 sent between a step and its logits at step 5: its logits.
 */
function runPipelined(b: BatchStepper, out: Map<number, Float32Array[]>): Float32Array {
  const next = new Map<number, number>();
  for (const [slot, prompt] of PROMPTS) {
    const logits = b.prefill(slot, Int32Array.from(prompt));
    out.set(slot, [logits.slice()]);
    next.set(slot, argmax(logits));
  }
  const groups = [[0, 3], [1]];
  let slot2 = new Float32Array(0);
  const V = b.vocabSize;
  for (let i = 0; i < STEPS; i++) {
    for (const g of groups) b.startDecode!(g.map((slot) => ({ slot, token: next.get(slot)! })));
    if (i === 5) slot2 = b.prefill(2, Int32Array.from(SLOT2_PROMPT)).slice();
    for (const g of groups) {
      const logits = b.finishDecode!();
      g.forEach((slot, r) => {
        const row = logits.slice(r * V, (r + 1) * V);
        out.get(slot)!.push(row);
        next.set(slot, argmax(row));
      });
    }
  }
  return slot2;
}

const SLOT2_PROMPT = [1, 5000, 5001, 77];

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Largest logit difference between two runs, over every slot and step. */
function worst(a: Map<number, Float32Array[]>, b: Map<number, Float32Array[]>): number {
  let d = 0;
  for (const [slot, rows] of a) rows.forEach((r, i) => (d = Math.max(d, maxDiff(r, b.get(slot)![i]!))));
  return d;
}

// f16 weights: a sharded run differs from one process by float rounding only (sharded.test.ts: ≤ 4e-6 relative).
const TOLERANCE = 1e-3;

for (const shape of SHAPES) {
  test(`${shape.name}: a batched decode over shards gives every slot the one-process batch engine's logits`, async () => {
    const path = await models.path(SPEC);
    const src = await openModel(path);
    const one = await BatchEngine.create(src, { threads: 1, contextLength: CTX, slots: 4 });
    let want: Map<number, Float32Array[]>;
    let wantSlot2: Float32Array;
    try {
      want = runBatch(one);
      wantSlot2 = one.prefill(2, Int32Array.from(SLOT2_PROMPT)).slice();
    } finally {
      one.dispose();
      await src.close();
    }
    const sharded = await ShardedStepper.start({ plan: makePlan(await configOf(path), { pp: shape.pp, tp: shape.tp }), modelPath: path, contextLength: CTX, threads: 1, slots: 4 });
    try {
      const batch = sharded.batch!;
      assert.ok(batch, "a sharded engine with 4 slots batches");
      assert.equal(batch.slots, 4);
      const got = runBatch(batch);
      const d = worst(want, got);
      assert.ok(d < TOLERANCE, `largest logit difference ${d}`);
      for (const [slot, prompt] of PROMPTS) assert.equal(batch.length(slot), prompt.length + STEPS);
      assert.equal(batch.length(2), 0, "the padding slot cached nothing");

      // negative control: the same comparison after slots 0 and 1 were fed each other's tokens fails
      for (const slot of PROMPTS.keys()) batch.truncate(slot, 0);
      const swapped = runBatch(batch, (s) => (s === 0 ? 1 : s === 1 ? 0 : s));
      assert.ok(worst(want, swapped) > 0.1, "swapped tokens change the logits");

      // two steps in flight at once (a pipeline's stages compute both), with a prefill between them
      for (const slot of PROMPTS.keys()) batch.truncate(slot, 0);
      assert.equal(batch.depth, shape.pp);
      const pipelined = new Map<number, Float32Array[]>();
      const slot2 = runPipelined(batch, pipelined);
      assert.ok(worst(want, pipelined) < TOLERANCE, `pipelined: largest logit difference ${worst(want, pipelined)}`);
      assert.ok(maxDiff(slot2, wantSlot2) < TOLERANCE);

      // and the one-sequence path (slot 0) still gives its own sequence after the batch
      for (const slot of [0, 1, 2, 3]) batch.truncate(slot, 0);
      const alone = sharded.forward(Int32Array.from(PROMPTS.get(0)!));
      assert.ok(maxDiff(alone, want.get(0)![0]!) < TOLERANCE);
    } finally {
      await sharded.dispose();
    }
  });
}

// ---- sampled on the last stage ----

/** Each slot's sampling: hot, penalised, its own seed; slot 1 also asks for 3 logprobs. */
function params(slot: number): ResolvedSamplingParams {
  return { temperature: 2.5, topK: 40, topP: 0.95, minP: 0, repetitionPenalty: 1.3, presencePenalty: 0, frequencyPenalty: 0.2, penaltyLastN: 64, seed: 1000 + slot };
}
const LOGPROBS = new Map([[1, 3]]);

type Draws = Map<number, SampleResult[]>;

/**
 * Prefills every prompt, then STEPS decode steps of all of them at once, each sampling its next
 * token: with `sampling`, on the last stage (two steps in flight when `pipelined`); without, here,
 * from the logits the runners return.
 */
function sampleBatch(b: BatchStepper, onLastStage: boolean, pipelined = false, seedOf: (slot: number) => number = (s) => s): Draws {
  const out: Draws = new Map();
  const samplers = new Map<number, Sampler>();
  for (const [slot, prompt] of PROMPTS) {
    const p = params(seedOf(slot));
    const lp = LOGPROBS.has(slot) ? { logprobs: LOGPROBS.get(slot)! } : {};
    let first: SampleResult;
    if (onLastStage) {
      b.sampling!.begin(slot, p, lp, prompt);
      first = b.sampling!.prefill(slot, Int32Array.from(prompt));
    } else {
      const sampler = new Sampler(b.vocabSize, p, lp);
      for (const t of prompt) sampler.accept(t);
      first = sampler.sample(b.prefill(slot, Int32Array.from(prompt)));
      sampler.accept(first.token);
      samplers.set(slot, sampler);
    }
    out.set(slot, [first]);
  }
  const V = b.vocabSize;
  const last = (slot: number) => out.get(slot)!.at(-1)!.token;
  const take = (slots: number[], got: SampleResult[] | Float32Array) =>
    slots.forEach((slot, r) => {
      if (!(got instanceof Float32Array)) return void out.get(slot)!.push(got[r]!);
      const sampler = samplers.get(slot)!;
      const d = sampler.sample(got.slice(r * V, (r + 1) * V));
      sampler.accept(d.token);
      out.get(slot)!.push(d);
    });
  // entries out of slot order: rows come back in entry order
  const groups = pipelined ? [[3, 0], [1]] : [[3, 0, 1]];
  for (let i = 0; i < STEPS; i++) {
    if (!onLastStage) {
      for (const g of groups) take(g, b.decode(g.map((slot) => ({ slot, token: last(slot) }))));
    } else if (!pipelined) {
      for (const g of groups) take(g, b.sampling!.decode(g.map((slot) => ({ slot, token: last(slot) }))));
    } else {
      for (const g of groups) b.sampling!.startDecode!(g.map((slot) => ({ slot, token: last(slot) })));
      for (const g of groups) take(g, b.sampling!.finishDecode!());
    }
  }
  return out;
}

for (const shape of SHAPES) {
  test(`${shape.name}: a batched decode sampled on the last stage draws each slot's tokens with its own sampler`, async () => {
    const path = await models.path(SPEC);
    const sharded = await ShardedStepper.start({ plan: makePlan(await configOf(path), { pp: shape.pp, tp: shape.tp }), modelPath: path, contextLength: CTX, threads: 1, slots: 4 });
    try {
      const b = sharded.batch!;
      const reset = () => {
        for (const slot of [0, 1, 2, 3]) b.truncate(slot, 0);
      };
      // the same runners' logits sampled here: the reference (the same seeds give the same draws)
      const here = sampleBatch(b, false);
      reset();
      const there = sampleBatch(b, true);
      reset();
      const tokens = (d: Draws) => [...d].map(([slot, r]) => `${slot}: ${r.map((x) => x.token).join(" ")}`);
      assert.deepEqual(tokens(there), tokens(here));
      assert.ok(new Set(here.get(0)!.map((r) => r.token)).size > 3, "hot sampling leaves the greedy path");
      for (const [slot, draws] of there) {
        for (const [i, d] of draws.entries()) {
          if (!LOGPROBS.has(slot)) assert.equal(d.logprobs, undefined, `slot ${slot} asked for no logprobs`);
          else {
            const want = here.get(slot)![i]!.logprobs!;
            assert.equal(d.logprobs!.top.length, 3);
            assert.deepEqual(d.logprobs!.top.map((t) => t.token), want.top.map((t) => t.token));
            assert.ok(Math.abs(d.logprobs!.logprob - want.logprob) < 1e-6);
          }
        }
      }
      assert.deepEqual(tokens(sampleBatch(b, true, true)), tokens(here), "two steps in flight");
      reset();
      // negative control: slots 0 and 1 begun with each other's seeds draw other tokens
      const swapped = sampleBatch(b, true, false, (s) => (s === 0 ? 1 : s === 1 ? 0 : s));
      assert.notDeepEqual(tokens(swapped).slice(0, 2), tokens(here).slice(0, 2));
    } finally {
      await sharded.dispose();
    }
  });
}

// ---- through the engine worker and its batch scheduler ----

const TEXTS = ["the sea", "a long list of prime numbers and why they matter", "bread", "clocks and their escapements, slowly", "cats", "rain on a tin roof", "mountains in winter", "a"];

// temperature 3: hot enough that the synthetic model's draw leaves the greedy path (its top-1 margin is ~7 logits)
function requests(): InferenceRequest[] {
  return TEXTS.map((t, i) => ({
    input: { kind: "text", text: `Tell me about ${t}.` },
    maxTokens: 20 + 2 * i,
    ...(i % 3 === 1 ? { temperature: 3, topK: 20, seed: 100 + i } : i % 3 === 2 ? { temperature: 0, repetitionPenalty: 1.3 } : { temperature: 0 }),
  }));
}

interface Timed {
  result: GenerationResult;
  times: number[];
}

async function timed(engine: EngineWorker, r: InferenceRequest, signal?: AbortSignal, onToken?: (n: number) => void): Promise<Timed> {
  const times: number[] = [];
  const result = await engine.generate(resolveRequest(r), {
    signal,
    onToken: () => {
      times.push(performance.now());
      onToken?.(times.length);
    },
  });
  return { result, times };
}

/** Every stream's first token came before any stream's last: none waited for another to finish. */
function overlapped(runs: Timed[]): boolean {
  return Math.max(...runs.map((r) => r.times[0]!)) < Math.min(...runs.map((r) => r.times.at(-1)!));
}

for (const shape of SHAPES) {
  test(`${shape.name}: 8 concurrent requests batched across shards each equal their solo run, stream together, and one cancelled leaves the rest`, async () => {
    const path = await models.path(SPEC);
    const engine = await EngineWorker.start(path, { threads: 1, contextLength: CTX, slots: 8, backend: { kind: "sharded", sharding: { pp: shape.pp, tp: shape.tp } } });
    try {
      assert.equal(engine.info.slots, 8);
      const reqs = requests();
      const solo: Timed[] = [];
      for (const r of reqs) solo.push(await timed(engine, r));
      // a stop string from the middle of one solo answer
      const text = solo[4]!.result.text;
      const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 4);
      assert.ok(stop.trim().length > 0 && text.indexOf(stop) >= 8, `solo 4 said ${JSON.stringify(text)}`);
      reqs[4] = { ...reqs[4]!, stop: [stop] };
      solo[4] = await timed(engine, reqs[4]!);
      assert.equal(solo[4]!.result.finishReason, "stop");

      const together = await Promise.all(reqs.map((r) => timed(engine, r)));
      together.forEach((t, i) => {
        assert.deepEqual(t.result.tokens, solo[i]!.result.tokens, `request ${i}`);
        assert.equal(t.result.text, solo[i]!.result.text);
        assert.equal(t.result.finishReason, solo[i]!.result.finishReason);
      });
      assert.ok(overlapped(together), "the 8 streams overlap in time");
      // the sampled ones really sample: not the greedy answer to the same prompt
      const greedy = await timed(engine, { ...reqs[1]!, temperature: 0 });
      assert.notDeepEqual(greedy.result.tokens, solo[1]!.result.tokens);

      // one of four cancelled after 3 tokens; the others give their solo answers
      const ac = new AbortController();
      const four = await Promise.all(reqs.slice(0, 4).map((r, i) => timed(engine, r, i === 2 ? ac.signal : undefined, i === 2 ? (n) => n === 3 && ac.abort() : undefined)));
      assert.equal(four[2]!.result.finishReason, "cancelled");
      assert.ok(four[2]!.result.tokens.length < solo[2]!.result.tokens.length);
      for (const i of [0, 1, 3]) assert.deepEqual(four[i]!.result.tokens, solo[i]!.result.tokens, `request ${i}`);

      // a request sharing a long prefix with a finished one skips it
      const long = `${"Remember every rule of this long system prompt. ".repeat(12)}Now:`;
      const a = await engine.generate(resolveRequest({ input: { kind: "text", text: `${long} hello` }, maxTokens: 2, temperature: 0 }));
      const b = await engine.generate(resolveRequest({ input: { kind: "text", text: `${long} hello and more` }, maxTokens: 2, temperature: 0 }));
      assert.ok(a.timings.cachedTokens < 10, `first: ${a.timings.cachedTokens} cached`);
      assert.ok(b.timings.cachedTokens > 0.8 * a.timings.promptTokens, `second: ${b.timings.cachedTokens} of ${b.timings.promptTokens} cached`);
    } finally {
      await engine.close();
    }
  });
}

test("negative control: a sharded engine with one slot runs the same 8 requests one after another", async () => {
  const path = await models.path(SPEC);
  const engine = await EngineWorker.start(path, { threads: 1, contextLength: CTX, slots: 1, backend: { kind: "sharded", sharding: { pp: 2, tp: 1 } } });
  try {
    assert.equal(engine.info.slots, 1);
    const runs = await Promise.all(requests().map((r) => timed(engine, r)));
    assert.ok(!overlapped(runs));
  } finally {
    await engine.close();
  }
});

/** This process's runner children (the engine worker's driver thread started them). */
function runnerPids(): number[] {
  const out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => l.includes("runner-main"))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

test("a runner killed while a batch decodes fails every running and waiting request within 5 s, naming its rank, and leaves no process", async () => {
  const path = await models.path(SPEC);
  const before = new Set(runnerPids());
  const engine = await EngineWorker.start(path, { threads: 1, contextLength: CTX, slots: 4, backend: { kind: "sharded", sharding: { pp: 2, tp: 1 } } });
  const pids = runnerPids().filter((p) => !before.has(p));
  try {
    assert.equal(pids.length, 2);
    let tokens = 0;
    // 6 requests for 4 slots: 4 decode (two steps in flight on the pipeline), 2 wait
    const runs = requests()
      .slice(0, 6)
      .map((r) => engine.generate(resolveRequest({ ...r, maxTokens: 200, stopTokenIds: [] }), { onToken: () => tokens++ }).then((x) => x, (e: unknown) => e));
    for (let i = 0; i < 400 && tokens < 12; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(tokens >= 12, `${tokens} tokens streamed before the kill`);
    // the last stage (world rank 2): the driver waits on its logits or tokens
    process.kill(pids[1]!, "SIGKILL");
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("requests still running 10 s after the kill")), 10000)));
    const outcomes = await Promise.race([Promise.all(runs), hung]).finally(() => clearTimeout(timer));
    assert.ok(Date.now() - t0 < 5000, `requests failed after ${Date.now() - t0} ms`);
    outcomes.forEach((o, i) => {
      assert.ok(o instanceof Error, `request ${i} ended ${JSON.stringify(o)}`);
      assert.match(o.message, /rank 2\b/, `request ${i}`);
    });
    // control: nothing hangs afterwards either; a new request is refused with the reason too
    await assert.rejects(engine.generate(resolveRequest({ input: { kind: "text", text: "again" }, maxTokens: 4 })), /rank 2\b/);
  } finally {
    await engine.close();
  }
  assert.deepEqual(await waitGone(pids, 5000), []);
});
