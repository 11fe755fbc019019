import { test } from "node:test";
import assert from "node:assert/strict";
import { EngineWorker } from "../../../src/inference/worker/engine-worker.js";
import { Generator } from "../../../src/inference/generator.js";
import { asRequest, scriptStepper } from "./helpers.js";

// Its own file (own process): the main thread here holds no tokenizer, as in the node, where the
// engine's tokenizer lives in the worker. (A big heap on the main thread brings GC pauses of its own.)

const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
const backend = { kind: "module", url: new URL(`./fake-backend${EXT}`, import.meta.url).href } as const;

interface Blocking {
  /** Longest time the loop was busy (running JS, not waiting for events) between two 5 ms ticks. */
  busy: number;
  /** Longest lateness of a tick: busy time plus time the OS gave the CPU to someone else. */
  late: number;
}

/**
 * Watches the event loop with a 5 ms interval timer while `work` runs. Lateness alone cannot tell
 * our code blocking the loop from the OS running other processes (this build machine often has
 * 5-10 runnable threads per 2 cores), so each tick also reads the loop's utilization: the loop's
 * busy time between ticks is what our code can be blamed for.
 */
async function watchLoop(work: () => Promise<unknown>): Promise<Blocking> {
  const period = 5;
  let last = performance.now();
  let prev = performance.eventLoopUtilization();
  const worst: Blocking = { busy: 0, late: 0 };
  const timer = setInterval(() => {
    const now = performance.now();
    const elu = performance.eventLoopUtilization();
    worst.late = Math.max(worst.late, now - last - period);
    worst.busy = Math.max(worst.busy, performance.eventLoopUtilization(elu, prev).active);
    last = now;
    prev = elu;
  }, period);
  try {
    await work();
    return worst;
  } finally {
    clearInterval(timer);
  }
}

test("the main event loop is never blocked > 20 ms while the worker generates", async () => {
  const busyMs = 40; // each forward blocks its thread this long, like a synchronous ORT run
  // Control: the same loop on the main thread does block it, and the watch sees it.
  const prompt = [14990, 11, 1879];
  const onMain = await watchLoop(() =>
    new Generator(scriptStepper([64, 293, 272, 294], prompt.length, 151_669, 256, busyMs)).generate(asRequest({
      promptTokens: prompt,
      temperature: 0,
      maxTokens: 4,
    })),
  );
  assert.ok(onMain.busy > busyMs * 0.8, `control: main-thread generation kept the loop busy only ${onMain.busy.toFixed(1)} ms`);
  assert.ok(onMain.late > busyMs * 0.8);

  const slow = await EngineWorker.start(`ids:${busyMs}:825,1378,2326,3040,4236,4743,8094,8063,11627,5779`, { backend });
  try {
    // Blocking by our code would show in every round; a GC pause stretched by a busy machine (or
    // the OS preempting a callback) does not repeat, so the better of two rounds is what counts.
    const rounds: Blocking[] = [];
    for (let round = 0; round < 2; round++) {
      let tokens = 0;
      rounds.push(
        await watchLoop(() =>
          slow.generate(asRequest({ promptTokens: prompt, temperature: 0.7, seed: round, maxTokens: 10 }), { onToken: () => tokens++ }),
        ),
      );
      assert.ok(tokens >= 10);
    }
    const busy = Math.min(...rounds.map((r) => r.busy));
    const seen = rounds.map((r) => `busy ${r.busy.toFixed(1)} ms, timer late ${r.late.toFixed(1)} ms`).join("; ");
    assert.ok(busy < 20, `event loop blocked: ${seen}`);
  } finally {
    await slow.close();
  }
});
