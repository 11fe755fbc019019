import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { openModel } from "../../src/models/open.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { Generator } from "../../src/inference/generator.js";
import { resolveRequest, type InferenceRequest, type ResolvedRequest } from "../../src/inference/request.js";
import type { GenerationResult } from "../../src/inference/result.js";
import { samplesItself, type Stepper } from "../../src/engine/types.js";
import { ShardedStepper } from "../../src/runner/bridge.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { CONTEXT, ModelFiles, PROMPT, configOf, type ModelSpec } from "./models.js";
import { waitGone } from "./processes.js";

// A sharded model samples on its last stage (tensor rank 0 gathers the vocabulary slices), so only
// the token and its logprobs come back to the driver. For one seed it must draw the tokens one
// process draws from its own logits: same sampler code, same PRNG, same penalty window, and logits
// equal to float rounding (f16 weights: ≤ 4e-6 relative, sharded.test.ts), however the prompt is chunked.
const models = new ModelFiles();
before(() => models.open());
after(() => models.close());

const SPEC: ModelSpec = { arch: "llama", preset: "small", quant: "f16" };
const base = { input: { kind: "tokens", tokens: [...PROMPT] }, maxTokens: 40, logprobs: 3 } satisfies InferenceRequest;
// Hot enough that the draw leaves the greedy path (the synthetic model's top-1 margin is ~7 logits).
const REQUESTS: ResolvedRequest[] = [
  { ...base, temperature: 3, topP: 0.95, repetitionPenalty: 1.3, presencePenalty: 0.5, seed: 11 },
  { ...base, temperature: 5, topK: 20, minP: 0.001, frequencyPenalty: 0.4, seed: 12 },
  { ...base, temperature: 0, logprobs: 0 },
].map((r) => resolveRequest(r));

async function generateAll(stepper: Stepper): Promise<GenerationResult[]> {
  const g = new Generator(stepper);
  const out: GenerationResult[] = [];
  for (const r of REQUESTS) out.push(await g.generate(r));
  return out;
}

test("PP 2 × TP 2 samples on its last stage: the one-process tokens and logprobs for each seed", async () => {
  const path = await models.path(SPEC);
  const src = await openModel(path);
  const local = await createStepper(src, { threads: 1, contextLength: CONTEXT });
  let want: GenerationResult[];
  try {
    want = await generateAll(local);
  } finally {
    await local.dispose();
    await src.close();
  }
  const greedy = want[2]!.tokens;
  // the hot requests really sample
  assert.notDeepEqual(want[0]!.tokens, greedy.slice(0, want[0]!.tokens.length));
  assert.notDeepEqual(want[1]!.tokens, greedy.slice(0, want[1]!.tokens.length));

  const sharded = await ShardedStepper.start({ plan: makePlan(await configOf(path), { pp: 2, tp: 2 }), modelPath: path, contextLength: CONTEXT, threads: 1 });
  const pids = sharded.runnerPids;
  try {
    assert.ok(samplesItself(sharded));
    const got = await generateAll(sharded);
    for (const [i, w] of want.entries()) {
      const g = got[i]!;
      assert.deepEqual(g.tokens, w.tokens, `request ${i}`);
      assert.equal(g.finishReason, w.finishReason);
      assert.equal(g.logprobs!.length, w.logprobs!.length);
      for (const [j, lp] of w.logprobs!.entries()) {
        const o = g.logprobs![j]!;
        assert.equal(o.token, lp.token);
        assert.ok(Math.abs(o.logprob - lp.logprob) < 1e-3, `request ${i} token ${j}: logprob ${o.logprob} vs ${lp.logprob}`);
        assert.deepEqual(o.top.map((t) => t.token), lp.top.map((t) => t.token));
        assert.equal(o.top.length, REQUESTS[i]!.logprobs);
      }
    }
    // prefill chunks of 3 go out without waiting (SamplingStepper.prefill): still the same draw
    const chunked = await new Generator(sharded, undefined, { prefillChunk: 3 }).generate(REQUESTS[0]!);
    assert.deepEqual(chunked.tokens, want[0]!.tokens);
    assert.ok(Math.abs(chunked.logprobs![0]!.logprob - want[0]!.logprobs![0]!.logprob) < 1e-3);
  } finally {
    await sharded.dispose();
  }
  assert.deepEqual(await waitGone(pids, 5000), [], "runner processes left behind");
});
