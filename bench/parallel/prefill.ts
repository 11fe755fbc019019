// Prefill through a pipeline: one process vs PP 2 with its input cut into micro-batches that run on
// both stages at once (ShardedDriver's pipelined prefill) vs PP 2 sending the whole input as one step.
// Paired like the decode rounds: all three loaded at once, one prefill each per round, ratios per round.
import { openModel } from "../../src/models/open.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { PIPELINE_MICRO_BATCH, ShardedDriver } from "../../src/runner/driver.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { median, rotate, round2 as r2 } from "../stats.js";

export interface PrefillResult {
  prompt_tokens: number;
  micro_batch: number;
  rounds: number;
  single_tps: number;
  pp2_pipelined_tps: number;
  pp2_whole_tps: number;
  pp2_pipelined_ratio: number;
  pp2_whole_ratio: number;
}


export async function prefillRounds(path: string, tokens: number, rounds: number, log: (line: string) => void): Promise<PrefillResult> {
  const src = await openModel(path);
  const contextLength = tokens + 1;
  const single = await createStepper(src, { threads: 1, contextLength });
  const plan = makePlan(src.config, { pp: 2, tp: 1 });
  const pipelined = await ShardedDriver.start({ plan, modelPath: path, contextLength, threads: 1 });
  const whole = await ShardedDriver.start({ plan, modelPath: path, contextLength, threads: 1, microBatch: 0 });
  const prompt = Int32Array.from({ length: tokens }, (_, i) => 300 + ((i * 7919) % 30000));
  const runs: [string, (p: Int32Array) => Promise<unknown> | unknown, (pos: number) => void][] = [
    ["single", (p) => single.forward(p), (pos) => single.truncate(pos)],
    ["pipelined", (p) => pipelined.forward(p), (pos) => pipelined.truncate(pos)],
    ["whole", (p) => whole.forward(p), (pos) => whole.truncate(pos)],
  ];
  const tps: Record<string, number[]> = { single: [], pipelined: [], whole: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, forward, truncate] of rotate(runs, r)) {
        truncate(0);
        const t0 = performance.now();
        await forward(prompt);
        tps[name]!.push((tokens * 1000) / (performance.now() - t0));
      }
      log(`prefill round ${r + 1}/${rounds} tok/s: single ${tps.single![r]!.toFixed(1)}, PP 2 pipelined ${tps.pipelined![r]!.toFixed(1)}, PP 2 whole ${tps.whole![r]!.toFixed(1)}`);
    }
  } finally {
    await pipelined.close();
    await whole.close();
    await single.dispose();
    await src.close();
  }
  const ratio = (name: string): number => r2(median(tps[name]!.map((x, i) => x / tps.single![i]!)));
  return {
    prompt_tokens: tokens,
    micro_batch: PIPELINE_MICRO_BATCH,
    rounds,
    single_tps: r2(median(tps.single!)),
    pp2_pipelined_tps: r2(median(tps.pipelined!)),
    pp2_whole_tps: r2(median(tps.whole!)),
    pp2_pipelined_ratio: ratio("pipelined"),
    pp2_whole_ratio: ratio("whole"),
  };
}
