import { test, after } from "node:test";
import assert from "node:assert/strict";
import { BatchScheduler } from "../../../src/inference/batch-scheduler.js";
import { Generator } from "../../../src/inference/generator.js";
import { BatchEngine } from "../../../src/engine/session/batch-engine.js";
import { createStepper } from "../../../src/engine/session/stepper.js";
import { openModel } from "../../../src/models/open.js";
import { resolveRequest, type InferenceRequest } from "../../../src/inference/request.js";
import type { GenerationResult, PromptInfo } from "../../../src/inference/result.js";
import { isInferenceError } from "../../../src/inference/errors.js";
import { tinyModel } from "../../api/serving/fixtures.js";

// The batch scheduler against the one-at-a-time loop (Generator over the one-sequence engine): the
// same requests must give the same results, whatever runs beside them.

const model = await tinyModel("batch-sched");
const source = await openModel(model.path);
after(async () => {
  await source.close();
  await model.remove();
});
const tk = model.tokenizer;
const CTX = 1024;
const solo = new Generator(await createStepper(source, { threads: 1, contextLength: CTX }), tk);
after(() => solo.stepper.dispose());

async function batchEngine(slots: number): Promise<BatchEngine> {
  return BatchEngine.create(source, { threads: 1, contextLength: CTX, slots });
}

function chat(text: string, extra: Partial<InferenceRequest> = {}): InferenceRequest {
  return { input: { kind: "chat", messages: [{ role: "user", content: text }] }, temperature: 0, ...extra };
}

async function soloRun(req: InferenceRequest): Promise<GenerationResult> {
  solo.reset();
  return solo.generate(resolveRequest(req));
}

const TOPICS = ["the sea", "a long list of prime numbers and why they matter to anyone who counts", "bread", "the history of clocks, told slowly, with every detail you know about escapements and pendulums", "cats", "rain on a tin roof", "mountains and the people who climb them in winter", "a"];

/** Eight requests: different prompts, lengths, sampling parameters and stop strings. */
async function eightRequests(): Promise<InferenceRequest[]> {
  const reqs: InferenceRequest[] = TOPICS.map((t, i) => {
    const sampling: Partial<InferenceRequest> = i % 3 === 1 ? { temperature: 0.8, topK: 20, seed: 100 + i } : i % 3 === 2 ? { temperature: 0, repetitionPenalty: 1.3 } : { temperature: 0 };
    return chat(`Tell me about ${t}.`, { maxTokens: 14 + 2 * i, stopTokenIds: [], ...sampling });
  });
  // stop strings that do occur: a piece of what the request says alone, past its 12th token
  for (const i of [2, 5]) {
    const r = await soloRun(reqs[i]!);
    const piece = tk.decode(r.tokens.slice(12, 14));
    assert.ok(piece.length > 0);
    reqs[i] = { ...reqs[i]!, stop: [piece] };
  }
  return reqs;
}

function sameResult(got: GenerationResult, want: GenerationResult, what: string): void {
  assert.deepEqual(got.tokens, want.tokens, `${what}: tokens`);
  assert.equal(got.text, want.text, `${what}: text`);
  assert.equal(got.finishReason, want.finishReason, `${what}: finish reason`);
  assert.deepEqual(got.stoppedBy, want.stoppedBy, `${what}: stopped by`);
}

test("8 concurrent requests (different prompts, lengths, sampling, stops) each equal their solo run, and run together", async () => {
  const reqs = await eightRequests();
  const want: GenerationResult[] = [];
  for (const r of reqs) want.push(await soloRun(r));
  assert.ok(want.some((w) => w.finishReason === "stop" && w.stoppedBy && "string" in w.stoppedBy), "a stop string ended some solo run");
  const engine = await batchEngine(8);
  try {
    const s = new BatchScheduler(engine, tk, { prefillChunk: 64 });
    const firstAt: number[] = [];
    const lastAt: number[] = [];
    const got = await Promise.all(
      reqs.map((r, i) =>
        s.generate(resolveRequest(r), {
          onToken: () => {
            firstAt[i] ??= s.stats().decodeSteps + s.stats().prefillChunks;
            lastAt[i] = s.stats().decodeSteps + s.stats().prefillChunks;
          },
        }),
      ),
    );
    got.forEach((g, i) => sameResult(g, want[i]!, `request ${i}`));
    // every stream started before any had finished: none waited for another
    assert.ok(Math.max(...firstAt) < Math.min(...lastAt), `first tokens ${firstAt} vs last tokens ${lastAt}`);
    assert.ok(s.stats().decodeSteps < want.reduce((n, w) => n + w.tokens.length, 0) / 4, `decode steps ${s.stats().decodeSteps}`);
  } finally {
    engine.dispose();
  }
});

test("a request cancelled mid-stream ends at once while the others go on to their solo results", async () => {
  const reqs = TOPICS.slice(0, 4).map((t) => chat(`Write about ${t}.`, { maxTokens: 16, stopTokenIds: [] }));
  const want: GenerationResult[] = [];
  for (const r of reqs) want.push(await soloRun(r));
  const engine = await batchEngine(4);
  try {
    const s = new BatchScheduler(engine, tk);
    const ac = new AbortController();
    let seen = 0;
    const got = await Promise.all(
      reqs.map((r, i) =>
        s.generate(resolveRequest(r), {
          signal: i === 1 ? ac.signal : undefined,
          onToken: i === 1 ? () => ++seen === 3 && ac.abort() : undefined,
        }),
      ),
    );
    assert.equal(got[1]!.finishReason, "cancelled");
    assert.equal(got[1]!.tokens.length, 3);
    assert.deepEqual(got[1]!.tokens, want[1]!.tokens.slice(0, 3));
    for (const i of [0, 2, 3]) sameResult(got[i]!, want[i]!, `request ${i}`);
  } finally {
    engine.dispose();
  }
});

test("beyond the free slots and the queue bound a request is refused as overloaded; a queued one runs when a slot frees", async () => {
  const engine = await batchEngine(2);
  try {
    const s = new BatchScheduler(engine, tk, { maxQueued: 1 });
    const runs = [0, 1, 2].map((i) => s.generate(resolveRequest(chat(`Count to ${i}.`, { maxTokens: 6, stopTokenIds: [] }))));
    await assert.rejects(s.generate(resolveRequest(chat("One more.", { maxTokens: 6 }))), (e) => isInferenceError(e) && e.kind === "overloaded");
    assert.deepEqual([s.stats().running + s.stats().queued], [3]);
    const done = await Promise.all(runs);
    assert.ok(done.every((d) => d.tokens.length === 6));
    // negative control: with room in the queue the same fourth request is accepted
    const s2 = new BatchScheduler(engine, tk, { maxQueued: 2 });
    const more = [0, 1, 2, 3].map((i) => s2.generate(resolveRequest(chat(`Count to ${i}.`, { maxTokens: 2 }))));
    assert.equal((await Promise.all(more)).length, 4);
  } finally {
    engine.dispose();
  }
});

test("a request sharing a prefix with a finished one reuses its KV: cached tokens reported, less prefill, the solo result", async () => {
  const long = `You are a careful assistant. ${"Remember every rule of this long system prompt. ".repeat(30)}`;
  const first = { input: { kind: "chat" as const, messages: [{ role: "system" as const, content: long }, { role: "user" as const, content: "Hi." }] }, temperature: 0, maxTokens: 4, stopTokenIds: [] };
  const second = { ...first, input: { kind: "chat" as const, messages: [...first.input.messages, { role: "assistant" as const, content: "Hello." }, { role: "user" as const, content: "Go on." }] } };
  const want = await soloRun(second);
  const engine = await batchEngine(3);
  try {
    const s = new BatchScheduler(engine, tk);
    const infos: PromptInfo[] = [];
    const a = await s.generate(resolveRequest(first), { onPrompt: (i) => infos.push(i) });
    const b = await s.generate(resolveRequest(second), { onPrompt: (i) => infos.push(i) });
    assert.equal(infos[0]!.cachedTokens, 0);
    // all of the first conversation but its last few template tokens
    assert.ok(infos[1]!.cachedTokens > 0.9 * infos[0]!.promptTokens, `cached ${infos[1]!.cachedTokens} of ${infos[1]!.promptTokens}`);
    assert.equal(b.timings.cachedTokens, infos[1]!.cachedTokens);
    sameResult(b, want, "follow-up turn");
    // it computed only what was new: its prefill is far shorter than the first request's
    assert.ok(b.timings.prefillMs < a.timings.prefillMs, `prefill ${b.timings.prefillMs} ms vs ${a.timings.prefillMs} ms`);
    // negative control: an unrelated prompt gets nothing from the cache
    const infos2: PromptInfo[] = [];
    await s.generate(resolveRequest(chat("Something else entirely.", { maxTokens: 2 })), { onPrompt: (i) => infos2.push(i) });
    assert.ok(infos2[0]!.cachedTokens < 10, `cached ${infos2[0]!.cachedTokens}`);
  } finally {
    engine.dispose();
  }
});

test("fairness: a long prompt's prefill goes in chunks between decode steps, so running streams keep going", async () => {
  const longPrompt = chat(`Summarize: ${"the quick brown fox jumps over the lazy dog. ".repeat(40)}`, { maxTokens: 2, stopTokenIds: [] });
  for (const [chunk, atLeast, atMost] of [[32, 8, Infinity], [4096, 0, 1]] as const) {
    const engine = await batchEngine(3);
    try {
      const s = new BatchScheduler(engine, tk, { prefillChunk: chunk });
      let others = 0;
      let during: number | undefined;
      let inLong = false;
      const running = [0, 1].map((i) => s.generate(resolveRequest(chat(`Story ${i}.`, { maxTokens: 60, stopTokenIds: [] })), { onToken: () => others++ }));
      while (others < 4) await new Promise((r) => setImmediate(r));
      const long = s.generate(resolveRequest(longPrompt), {
        onPrompt: () => {
          inLong = true;
          during = others;
        },
        onToken: () => {
          if (inLong) during = others - during!;
          inLong = false;
        },
      });
      await Promise.all([long, ...running]);
      // tokens the two running streams produced while the long prompt was prefilled
      assert.ok(during! >= atLeast && during! <= atMost, `chunk ${chunk}: ${during} tokens of the others during the prefill`);
    } finally {
      engine.dispose();
    }
  }
});

/**
 * A batch engine that acts like a pipeline of `depth` stages: startDecode computes at once but its
 * logits wait in a queue for finishDecode. It records how many steps were in flight, each step's
 * slots, and refuses any use of a slot whose step is still in flight (the runners would be appending
 * to it).
 */
function asPipeline(engine: BatchEngine, depth: number) {
  const queue: { slots: number[]; logits: Float32Array }[] = [];
  const seen = { maxInFlight: 0, steps: [] as number[][], interleaved: 0 };
  const busy = (slot: number, what: string) => {
    if (queue.some((q) => q.slots.includes(slot))) throw new Error(`${what} on slot ${slot} while its decode step is in flight`);
  };
  return {
    seen,
    stepper: {
      vocabSize: engine.vocabSize,
      contextLength: engine.contextLength,
      slots: engine.slots,
      depth,
      length: (slot: number) => engine.length(slot),
      prefill: (slot: number, tokens: Int32Array) => (busy(slot, "prefill"), engine.prefill(slot, tokens)),
      truncate: (slot: number, pos: number) => (busy(slot, "truncate"), engine.truncate(slot, pos)),
      // one step, sent and finished at once (what a scheduler of depth 1 does)
      decode(entries: readonly { slot: number; token: number }[]): Float32Array {
        this.startDecode(entries);
        return this.finishDecode();
      },
      startDecode: (entries: readonly { slot: number; token: number }[]) => {
        for (const e of entries) busy(e.slot, "decode");
        const lo = Math.min(...entries.map((e) => e.slot));
        const hi = Math.max(...entries.map((e) => e.slot));
        // steps in flight together should span disjoint slot ranges (else each carries the other's as padding)
        if (queue.some((q) => !(Math.max(...q.slots) < lo || hi < Math.min(...q.slots)))) seen.interleaved++;
        queue.push({ slots: entries.map((e) => e.slot), logits: engine.decode(entries) });
        seen.steps.push(entries.map((e) => e.slot));
        seen.maxInFlight = Math.max(seen.maxInFlight, queue.length);
      },
      finishDecode: () => queue.shift()!.logits,
      dispose: () => engine.dispose(),
    },
  };
}

test("on a pipeline the scheduler keeps a step per stage in flight, in groups of consecutive slots, with the solo results; a cancelled sequence keeps its slot until its step is back", async () => {
  const reqs = await eightRequests();
  const want: GenerationResult[] = [];
  for (const r of reqs) want.push(await soloRun(r));
  const engine = await batchEngine(8);
  try {
    const pipe = asPipeline(engine, 2);
    const s = new BatchScheduler(pipe.stepper, tk, { prefillChunk: 64 });
    const got = await Promise.all(reqs.map((r) => s.generate(resolveRequest(r))));
    got.forEach((g, i) => sameResult(g, want[i]!, `request ${i}`));
    assert.equal(pipe.seen.maxInFlight, 2);
    // steps in flight together span disjoint slot ranges, in slot order, and some carry half the batch or so
    assert.equal(pipe.seen.interleaved, 0);
    for (const slots of pipe.seen.steps) assert.deepEqual(slots, [...slots].sort((a, b) => a - b));
    assert.ok(pipe.seen.steps.some((x) => x.length >= 3 && x.length <= 5), `step sizes ${pipe.seen.steps.map((x) => x.length)}`);

    // cancel one of four after 3 tokens; new requests come in while its step may be in flight
    const ac = new AbortController();
    let n = 0;
    const four = reqs.slice(0, 4).map((r, i) => s.generate(resolveRequest(r), i === 1 ? { signal: ac.signal, onToken: () => ++n === 3 && ac.abort() } : {}));
    const more = reqs.slice(4).map((r) => s.generate(resolveRequest(r)));
    const all = await Promise.all([...four, ...more]);
    assert.equal(all[1]!.finishReason, "cancelled");
    for (const i of [0, 2, 3, 4, 5, 6, 7]) sameResult(all[i]!, want[i]!, `request ${i} beside a cancelled one`);

    // three stages, four slots, eight requests: one cancelled from another's stream (so maybe while its
    // step is in flight behind an older one); the waiting requests must not get its slot before the step is back
    const four2 = await batchEngine(4);
    try {
      const deep = asPipeline(four2, 3);
      const s3 = new BatchScheduler(deep.stepper, tk, { prefillChunk: 64 });
      const stop = new AbortController();
      let told = 0;
      const runs = reqs.map((r, i) =>
        s3.generate(resolveRequest(r), i === 1 ? { signal: stop.signal } : i === 0 ? { onToken: () => ++told === 4 && stop.abort() } : {}),
      );
      const done = await Promise.all(runs);
      assert.equal(done[1]!.finishReason, "cancelled");
      for (const i of [0, 2, 3, 4, 5, 6, 7]) sameResult(done[i]!, want[i]!, `request ${i} on 3 stages`);
      assert.equal(deep.seen.maxInFlight, 3);
    } finally {
      four2.dispose();
    }

    // negative control: depth 1 never has two steps in flight
    for (let slot = 0; slot < 8; slot++) engine.truncate(slot, 0);
    const flat = asPipeline(engine, 1);
    const one = new BatchScheduler(flat.stepper, tk);
    const alone = await Promise.all(reqs.slice(0, 4).map((r) => one.generate(resolveRequest(r))));
    alone.forEach((g, i) => sameResult(g, want[i]!, `request ${i} at depth 1`));
    assert.equal(flat.seen.maxInFlight, 1);
  } finally {
    engine.dispose();
  }
});
