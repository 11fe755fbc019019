import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { isTesseraError } from "../../src/errors.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { CONTEXT, ModelFiles, configOf, PROMPT } from "./models.js";
import { relErr } from "../engine/core/compare.js";
import { alive, waitGone } from "./processes.js";

// Issue 4: a stalled peer fails every other rank within 5 s, also during prefill, while a rank that
// is only busy (its thread blocked in a long synchronous step) is waited for. Runner 1 blocks for
// DELAY_MS before every prefill step, longer than the 3 s stall timeout, as a long ORT run would.
const DELAY_MS = 5000;

const models = new ModelFiles();
before(() => models.open());
after(() => models.close());

test("a rank blocked in a long prefill is waited for; a stopped one fails every other rank within 5 s", async (t) => {
  const spec = { arch: "llama", preset: "small", quant: "q8_0" } as const;
  const path = await models.path(spec);
  const cfg = await configOf(path);
  const ref = await models.reference(spec);
  const driver = await ShardedDriver.start({
    plan: makePlan(cfg, { pp: 2, tp: 2 }),
    modelPath: path,
    contextLength: CONTEXT,
    testStepDelay: { world: 1, ms: DELAY_MS },
  });
  const pids = driver.runners.pids;
  // runner 1's tensor-group peer: it waits on runner 1 inside the prefill's all-reduces
  const victim = driver.runners.places.find((p) => p.stage === 0 && p.tpRank === 1)!;
  const victimPid = pids[victim.world - 1]!;
  try {
    const t0 = Date.now();
    const logits = await driver.forward(PROMPT, { allLogits: true });
    const took = Date.now() - t0;
    t.diagnostic(`healthy prefill with a ${DELAY_MS} ms blocked step took ${took} ms`);
    assert.ok(took >= DELAY_MS, `the step delay did not apply (${took} ms)`);
    assert.ok(relErr(logits, ref.promptLogits) < 5e-3, `prompt logits differ by ${relErr(logits, ref.promptLogits)}`);

    driver.truncate(0);
    const step = driver.forward(PROMPT).then(
      () => undefined,
      (e: unknown) => ({ e, at: Date.now() }),
    );
    await new Promise((r) => setTimeout(r, 300)); // runner 1 is now blocked
    process.kill(victimPid, "SIGSTOP");
    const stoppedAt = Date.now();
    const others = pids.filter((p) => p !== victimPid);
    assert.deepEqual(await waitGone(others, 5000), [], "other runners still alive 5 s after the SIGSTOP");
    t.diagnostic(`the other runners were gone after ${Date.now() - stoppedAt} ms`);
    const failed = await step;
    assert.ok(failed, "the step succeeded with a stopped rank");
    assert.ok(failed.at - stoppedAt < 5000, `the driver failed after ${failed.at - stoppedAt} ms`);
    assert.ok(isTesseraError(failed.e), String(failed.e));
    t.diagnostic(`driver: ${(failed.e as Error).message}`);
    // named by the driver itself, or by the first runner that noticed (then "reported by" it)
    assert.match((failed.e as Error).message, new RegExp(`^rank ${victim.world}\\b.*(sent no heartbeat|not even a heartbeat)`));
    // runner 1 was blocked in its step: its liveness thread ended it, naming the stopped rank (seen
    // itself, or in the reason another rank gave up with)
    const said = driver.runners.stderrOf(1);
    t.diagnostic(`runner 1: ${said.trim()}`);
    assert.match(said, new RegExp(`rank ${victim.world} \\(.*heartbeat.*blocked in a step`));
    assert.ok(alive(victimPid), "the stopped rank cannot have exited by itself");
  } finally {
    if (alive(victimPid)) process.kill(victimPid, "SIGCONT");
    await driver.close(1000);
  }
  assert.deepEqual(await waitGone(pids, 2000), [], "runner processes left behind");
});
