// What one tensor-parallel rank's graphs cost per decode token with the network taken out (the
// all-reduce is a no-op): rank 0 alone, then ranks 0 and 1 in two processes at once. The gap between
// the two is what the ranks cost each other on a shared machine (memory bandwidth, cores).
// Usage: npx tsx bench/parallel/tp-compute.ts [--model PATH] [--tokens 48]
//   (child mode: --rank R prints one JSON line {cpuMs, wallMs} per token)
import { spawn } from "node:child_process";
import os from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { openModel } from "../../src/models/open.js";
import { TpRankEngine } from "../../src/engine/tp/rank-engine.js";
import { nodeModuleCommand } from "../../src/spawn.js";
import { checkPlan, makePlan, splitBlocks } from "../../src/runner/plan.js";

const { values } = parseArgs({ options: { model: { type: "string" }, tokens: { type: "string" }, rank: { type: "string" } } });
const TOKENS = Number(values.tokens ?? 48);
const path = values.model ?? join(os.tmpdir(), "tessera-bench-models", "1b-llama-q4_0.gguf");

async function child(rank: number): Promise<void> {
  const src = await openModel(path);
  const slices = checkPlan(src.config, makePlan(src.config, { pp: 1, tp: 2 }), splitBlocks(src));
  const engine = await TpRankEngine.create(src, { layers: [0, src.config.numLayers], slice: slices[0]![rank]!, contextLength: 256, threads: 1, embedding: false });
  const H = src.config.hiddenSize;
  const noop = (): Promise<void> => Promise.resolve();
  for (let i = 0; i < 4; i++) await engine.layersForward(new Float32Array(H).fill(0.01), 1, noop);
  // both processes start timing together: wait for the parent's go
  console.log("ready");
  await new Promise((r) => process.stdin.once("data", r));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < TOKENS; i++) await engine.layersForward(new Float32Array(H).fill(0.01), 1, noop);
  const c = process.cpuUsage(c0);
  console.log(JSON.stringify({ cpuMs: (c.user + c.system) / 1000 / TOKENS, wallMs: (performance.now() - t0) / TOKENS }));
  engine.dispose();
  await src.close();
  process.exit(0);
}

async function run(ranks: number[]): Promise<unknown[]> {
  const cmd = nodeModuleCommand("./tp-compute", import.meta.url);
  const procs = ranks.map((r) => spawn(cmd.command, [...cmd.args, "--rank", String(r), "--tokens", String(TOKENS), "--model", path], { stdio: ["pipe", "pipe", "inherit"] }));
  const lines = procs.map((p) => {
    const rl = createInterface({ input: p.stdout! });
    const q: string[] = [];
    const w: ((l: string) => void)[] = [];
    rl.on("line", (l) => (w.length ? w.shift()!(l) : q.push(l)));
    return (): Promise<string> => (q.length ? Promise.resolve(q.shift()!) : new Promise((res) => w.push(res)));
  });
  await Promise.all(lines.map((l) => l()));
  for (const p of procs) p.stdin!.write("go\n");
  return Promise.all(lines.map(async (l) => JSON.parse(await l())));
}

if (values.rank !== undefined) await child(Number(values.rank));
else {
  for (let round = 0; round < 2; round++) {
    console.log("rank 0 alone:    ", JSON.stringify(await run([0])));
    console.log("ranks 0+1 at once:", JSON.stringify(await run([0, 1])));
  }
}
