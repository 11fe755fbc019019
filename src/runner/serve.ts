import type { Group } from "../transport/index.js";
import { HEADER_INTS, Op, Tag } from "./protocol.js";
import type { RankPlace } from "./plan.js";
import type { StageCompute } from "./stage.js";

/**
 * A runner's step loop (see protocol.ts for the data-plane messages). Returns when the driver says
 * CLOSE; rejects when a group fails (the error names the lost rank).
 */
export async function serveSteps(
  world: Group,
  stage: StageCompute,
  me: RankPlace,
  places: RankPlace[],
  hidden: number,
  /** Tests only (RunnerInit.testStepDelay): block this thread so long before each prefill step. */
  testPrefillDelayMs = 0,
): Promise<void> {
  const header = new Int32Array(HEADER_INTS);
  const prevStage = places.filter((p) => p.stage === me.stage - 1);
  const from = prevStage.length ? prevStage[me.tpRank % prevStage.length]!.world : 0;
  const to = places.filter((p) => p.stage === me.stage + 1 && p.tpRank % me.tpSize === me.tpRank).map((p) => p.world);
  let tokens = new Int32Array(1);
  let buf = new Float32Array(hidden);
  for (;;) {
    await world.broadcast(0, header);
    const [op, n, allLogits, position] = [header[0]!, header[1]!, header[2] === 1, header[3]!];
    if (op === Op.CLOSE) return;
    if (op === Op.TRUNCATE) {
      stage.truncate(position);
      continue;
    }
    if (op !== Op.STEP) throw new Error(`unknown step op ${op}`);
    let x: Float32Array;
    if (stage.first) {
      if (tokens.length < n) tokens = new Int32Array(n);
      const t = tokens.subarray(0, n);
      await world.recv(0, t, Tag.TOKENS);
      x = stage.embed(t);
    } else {
      if (buf.length < n * hidden) buf = new Float32Array(n * hidden);
      x = buf.subarray(0, n * hidden);
      await world.recv(from, x, Tag.HIDDEN);
    }
    if (testPrefillDelayMs > 0 && n > 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, testPrefillDelayMs);
    const out = await stage.step(x, n, allLogits);
    const rows = stage.logitRows;
    if (rows) {
      const want = (allLogits ? n : 1) * (rows[1] - rows[0]);
      if (out.length !== want) throw new Error(`logits of ${out.length} values, expected ${want}`);
      await world.send(0, out, Tag.LOGITS);
    } else {
      for (const r of to) await world.send(r, out, Tag.HIDDEN);
    }
  }
}
