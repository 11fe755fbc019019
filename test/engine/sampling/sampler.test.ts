import { test } from "node:test";
import assert from "node:assert/strict";
import { Sampler, topIndices, argmax, Prng } from "../../../src/engine/sampling/index.js";
import { resolveSamplingParams, type SamplingParams } from "../../../src/inference/sampling.js";
import { PenaltyWindow } from "../../../src/engine/sampling/penalties.js";

function randomLogits(n: number, rng: Prng, scale = 4): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (rng.next() * 2 - 1) * scale;
  return v;
}

function sampler(logits: Float32Array, p: SamplingParams, seed = 1, logprobs?: number): Sampler {
  return new Sampler(logits.length, resolveSamplingParams(p, seed), { logprobs });
}

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs.map(Math.log));
}

function drawSet(logits: Float32Array, p: SamplingParams, draws = 400): Map<number, number> {
  const s = sampler(logits, p, 12345);
  const seen = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const t = s.sample(logits).token;
    seen.set(t, (seen.get(t) ?? 0) + 1);
  }
  return seen;
}

test("topIndices equals a full sort (ties: lower id first)", () => {
  const rng = new Prng(7);
  for (const n of [1, 5, 100, 1000]) {
    const v = randomLogits(n, rng);
    for (let i = 0; i < n; i += 7) v[i] = 1.25; // ties
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => v[b]! - v[a]! || a - b);
    for (const m of [1, 3, 64, n + 5]) {
      const out = new Int32Array(Math.max(m, 1));
      const k = topIndices(v, n, m, out);
      assert.equal(k, Math.min(m, n));
      assert.deepEqual(Array.from(out.subarray(0, k)), order.slice(0, k));
    }
  }
});

test("temperature 0 is the argmax, whatever the filters say", () => {
  const rng = new Prng(3);
  for (let trial = 0; trial < 20; trial++) {
    const logits = randomLogits(5000, rng);
    const expect = argmax(logits);
    const s = sampler(logits, { temperature: 0, topK: 7, topP: 0.3, minP: 0.5 }, trial);
    assert.equal(s.sample(logits).token, expect);
  }
});

test("top-k = 1 is greedy at any temperature and seed", () => {
  const rng = new Prng(4);
  for (let trial = 0; trial < 20; trial++) {
    const logits = randomLogits(3000, rng, 0.5);
    const s = sampler(logits, { temperature: 1.5, topK: 1 }, trial);
    assert.equal(s.sample(logits).token, argmax(logits));
  }
});

test("top-k keeps exactly the k best", () => {
  const logits = logitsOf([0.3, 0.1, 0.25, 0.2, 0.15]);
  assert.deepEqual([...drawSet(logits, { topK: 3 }).keys()].sort(), [0, 2, 3]);
});

test("top-p keeps the smallest prefix reaching p, crossing token included", () => {
  const logits = logitsOf([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual([...drawSet(logits, { topP: 0.45 }).keys()].sort(), [0]);
  assert.deepEqual([...drawSet(logits, { topP: 0.75 }).keys()].sort(), [0, 1]);
  assert.deepEqual([...drawSet(logits, { topP: 0.9 }).keys()].sort(), [0, 1, 2]);
  // top-p after top-k renormalizes over the k kept: 0.5/0.8 = 0.625 < 0.7, so token 1 stays.
  assert.deepEqual([...drawSet(logits, { topK: 2, topP: 0.7 }).keys()].sort(), [0, 1]);
  assert.deepEqual([...drawSet(logits, { topK: 2, topP: 0.6 }).keys()].sort(), [0]);
});

test("top-p over a large flat vocabulary grows its candidate set beyond the first guess", () => {
  const rng = new Prng(11);
  const n = 151_000;
  const logits = randomLogits(n, rng, 1);
  const probs = Array.from(logits, (l) => Math.exp(l));
  const z = probs.reduce((a, b) => a + b, 0);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  let cum = 0;
  let cut = 0;
  while (cum < 0.05 * z) cum += probs[order[cut++]!]!;
  assert.ok(cut > 64, `nucleus of ${cut} tokens should exceed the first guess`);
  const allowed = new Set(order.slice(0, cut));
  const seen = drawSet(logits, { topP: 0.05 }, 300);
  for (const t of seen.keys()) assert.ok(allowed.has(t), `token ${t} outside the nucleus`);
  assert.ok(seen.size > 50);
});

test("min-p keeps tokens with p ≥ minP · p_max", () => {
  const logits = logitsOf([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual([...drawSet(logits, { minP: 0.2 }).keys()].sort(), [0, 1, 2]);
  assert.deepEqual([...drawSet(logits, { minP: 0.5 }).keys()].sort(), [0, 1]);
  assert.deepEqual([...drawSet(logits, { minP: 0.2, topK: 2 }).keys()].sort(), [0, 1]);
});

test("draws follow the tempered distribution", () => {
  const logits = logitsOf([0.5, 0.3, 0.2]);
  const draws = 20_000;
  const at1 = drawSet(logits, { temperature: 1 }, draws);
  for (const [t, p] of [[0, 0.5], [1, 0.3], [2, 0.2]] as const) {
    assert.ok(Math.abs(at1.get(t)! / draws - p) < 0.02, `T=1 token ${t}: ${at1.get(t)! / draws}`);
  }
  // T = 0.5 squares the probabilities before renormalizing.
  const sq = [0.25, 0.09, 0.04].map((x) => x / 0.38);
  const atHalf = drawSet(logits, { temperature: 0.5 }, draws);
  for (let t = 0; t < 3; t++) assert.ok(Math.abs((atHalf.get(t) ?? 0) / draws - sq[t]!) < 0.02);
});

test("same seed gives the same tokens; another seed does not", () => {
  const rng = new Prng(5);
  const steps = Array.from({ length: 50 }, () => randomLogits(2000, rng, 1));
  const run = (seed: number) => {
    const s = sampler(steps[0]!, { temperature: 0.9, topP: 0.95, minP: 0.01, repetitionPenalty: 1.1 }, seed);
    return steps.map((l) => {
      const t = s.sample(l).token;
      s.accept(t);
      return t;
    });
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

test("repetition penalty divides positive and multiplies negative logits of seen tokens", () => {
  const w = new PenaltyWindow(4, 64);
  w.push(0);
  w.push(1);
  w.push(1);
  const l = Float32Array.from([2, -2, 1, -1]);
  w.apply(l, 2, 0, 0);
  assert.deepEqual(Array.from(l), [1, -4, 1, -1]);
});

test("frequency and presence penalties follow OpenAI: count·f + (count>0)·p", () => {
  const w = new PenaltyWindow(4, -1);
  for (const t of [2, 2, 2, 3]) w.push(t);
  const l = Float32Array.from([0, 0, 1, 1]);
  w.apply(l, 1, 0.5, 0.25);
  assert.deepEqual(Array.from(l), [0, 0, 1 - 1.5 - 0.25, 1 - 0.5 - 0.25]);
});

test("the penalty window forgets tokens older than penaltyLastN", () => {
  const w = new PenaltyWindow(5, 2);
  for (const t of [0, 1, 2]) w.push(t);
  assert.equal(w.count(0), 0);
  assert.equal(w.count(1), 1);
  w.push(2);
  assert.equal(w.count(1), 0);
  assert.equal(w.count(2), 2);
  const l = Float32Array.from([1, 1, 1, 1, 1]);
  w.apply(l, 1, 1, 0);
  assert.deepEqual(Array.from(l), [1, 1, -1, 1, 1]);
});

test("penalties change the greedy choice through the sampler", () => {
  const logits = Float32Array.from([2, 1.5, 0]);
  const s = sampler(logits, { temperature: 0, repetitionPenalty: 2 });
  assert.equal(s.sample(logits).token, 0);
  s.accept(0);
  assert.equal(s.sample(logits).token, 1);
  const noWindow = sampler(logits, { temperature: 0, repetitionPenalty: 2, penaltyLastN: 0 });
  noWindow.accept(0);
  assert.equal(noWindow.sample(logits).token, 0);
});

test("logprobs are the log-softmax of the raw logits, top-N best first", () => {
  const rng = new Prng(9);
  const logits = randomLogits(500, rng);
  const s = sampler(logits, { temperature: 2, repetitionPenalty: 3 }, 1, 500);
  s.accept(argmax(logits));
  const { token, logprobs } = s.sample(logits);
  assert.ok(logprobs);
  assert.equal(logprobs.token, token);
  let z = 0;
  for (const l of logits) z += Math.exp(l);
  assert.ok(Math.abs(logprobs.logprob - (logits[token]! - Math.log(z))) < 1e-5);
  const total = logprobs.top.reduce((a, t) => a + Math.exp(t.logprob), 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `probabilities sum to ${total}`);
  for (let i = 1; i < logprobs.top.length; i++) assert.ok(logprobs.top[i - 1]!.logprob >= logprobs.top[i]!.logprob);
  assert.equal(logprobs.top[0]!.token, argmax(logits));
  const five = sampler(logits, { temperature: 0 }, 1, 5).sample(logits).logprobs!;
  assert.equal(five.top.length, 5);
  assert.deepEqual(five.top, logprobs.top.slice(0, 5));
});

test("bad parameters give one clear error", () => {
  assert.throws(() => resolveSamplingParams({ temperature: -1 }, 0), /temperature must be a number ≥ 0/);
  assert.throws(() => resolveSamplingParams({ topP: 0 }, 0), /topP must be in \(0, 1\]/);
  assert.throws(() => resolveSamplingParams({ topK: 1.5 }, 0), /topK must be an integer/);
  assert.throws(() => resolveSamplingParams({}, -3), /seed must be/);
});
