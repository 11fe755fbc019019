// What one tensor-parallel rank's graphs (its layers and its lm_head slice) cost per decode token
// with the network taken out (the all-reduce is a no-op): rank 0 alone, then ranks 0 and 1 in two
// processes at once, pinned to cores 0 and 1 where taskset exists. The gap between the two is what
// the ranks cost each other on a shared machine (memory bandwidth, cores). parallel.ts runs the same
// children inside its paired rounds; this standalone mode is the quick look.
// Usage: npx tsx bench/parallel/tp-compute.ts [--model PATH] [--tokens 48] [--rounds 2] [--no-pin]
// Child mode (--rank R): loads rank R of TP 2, prints "ready", then for each stdin line "go N" runs a
//   block (truncate to 0, a 16-position prompt, 2 untimed steps, N timed ones) and prints one JSON
//   line {wallMs, cpuMs, headMs} per token; "quit" or the end of stdin ends it.
import os from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { openModel } from "../../src/models/open.js";
import { TpRankEngine } from "../../src/engine/tp/rank-engine.js";
import { checkPlan, makePlan, splitBlocks } from "../../src/placement/shard-plan.js";
import { lmHeadRows, vocabSlices } from "../../src/runner/stage.js";
import { ComputeRanks } from "./compute-ranks.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string" },
    rounds: { type: "string" },
    rank: { type: "string" },
    ctx: { type: "string" },
    "no-pin": { type: "boolean" },
  },
});
const path = values.model ?? join(os.tmpdir(), "tessera-bench-models", "1b-llama-q4_0.gguf");
const CTX = Number(values.ctx ?? 256);
const PROMPT = 16;

async function child(rank: number): Promise<void> {
  const src = await openModel(path);
  const cfg = src.config;
  const slices = checkPlan(cfg, makePlan(cfg, { pp: 1, tp: 2 }), splitBlocks(src));
  const engine = await TpRankEngine.create(src, {
    layers: [0, cfg.numLayers],
    slice: slices[0]![rank]!,
    contextLength: CTX,
    threads: 1,
    embedding: false,
    vocabRows: vocabSlices(lmHeadRows(src), 2)[rank],
  });
  const H = cfg.hiddenSize;
  const noop = (): Promise<void> => Promise.resolve();
  const prompt = new Float32Array(PROMPT * H);
  const one = new Float32Array(H);
  let headMs = 0;
  const step = async (): Promise<void> => {
    one.fill(0.01);
    const h = await engine.layersForward(one, 1, noop);
    const t = performance.now();
    engine.logits(h, 1, false);
    headMs += performance.now() - t;
  };
  const block = async (tokens: number): Promise<string> => {
    engine.truncate(0, 0);
    prompt.fill(0.01);
    engine.logits(await engine.layersForward(prompt, PROMPT, noop), PROMPT, false);
    for (let i = 0; i < 2; i++) await step();
    headMs = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) await step();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return JSON.stringify({ wallMs: wall / tokens, cpuMs: (c.user + c.system) / 1000 / tokens, headMs: headMs / tokens });
  };
  await block(4);
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin })) {
    const m = /^go (\d+)$/.exec(line.trim());
    if (!m) break;
    console.log(await block(Number(m[1])));
  }
  engine.dispose();
  await src.close();
  process.exit(0);
}

if (values.rank !== undefined) await child(Number(values.rank));
else {
  const tokens = Number(values.tokens ?? 48);
  const ranks = await ComputeRanks.start(path, CTX, !values["no-pin"]);
  console.log(ranks.pinned ? "ranks pinned to cores 0 and 1" : "ranks not pinned");
  const show = (b: { wallMs: number; cpuMs: number; headMs: number }[]): string =>
    b.map((x, r) => `rank ${r} ${x.wallMs.toFixed(2)} ms/token (CPU ${x.cpuMs.toFixed(2)}, lm_head ${x.headMs.toFixed(2)})`).join(", ");
  for (let round = 0; round < Number(values.rounds ?? 2); round++) {
    console.log("rank 0 alone:     ", show(await ranks.block([0], tokens)));
    console.log("ranks 0+1 at once:", show(await ranks.block([0, 1], tokens)));
  }
  await ranks.close();
}
