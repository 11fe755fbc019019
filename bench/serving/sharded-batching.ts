/**
 * Continuous batching across shards: aggregate decode tok/s of 1 and N concurrent streams on one
 * process, a pipeline and a tensor-parallel group, each engine batching N KV slots, in one run.
 *
 *   node dist/bench/serving/sharded-batching.js [--models DIR] [--streams 1,8] [--prompt 32]
 *        [--gen 32] [--repeat 3] [--out bench/results]
 *
 * Model: the synthetic 1b llama, Q4_0 (as bench/serving/serving-bench.ts). Every engine runs in an
 * engine worker (the batch scheduler over its BatchStepper), without HTTP: one process with as many
 * threads as the shards have in all, PP 2 and TP 2 with 1 thread per runner. All stay loaded and
 * every round runs each configuration once, in a rotating order, so a noisy machine hits all alike.
 * Greedy, `gen` tokens per stream, fresh prompts per round (no prefix cache helps). Reports the
 * median aggregate decode rate (stream-stats.ts) and each configuration's N-stream over 1-stream
 * ratio: what batching gains on one process and across shards.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EngineWorker, type EngineWorkerOptions } from "../../src/inference/worker/engine-worker.js";
import { resolveRequest } from "../../src/inference/request.js";
import { provenance } from "../provenance.js";
import { median, rotate, round2 } from "../stats.js";
import { benchModel, prompts, roundStats, type RoundStats, type StreamTimes } from "./stream-stats.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: join(tmpdir(), "tessera-bench-models") },
    streams: { type: "string", default: "1,8" },
    prompt: { type: "string", default: "32" },
    gen: { type: "string", default: "32" },
    repeat: { type: "string", default: "3" },
    out: { type: "string", default: join("bench", "results") },
  },
});
const streams = values.streams!.split(",").map(Number);
const promptLen = Number(values.prompt);
const gen = Number(values.gen);
const repeat = Number(values.repeat);
const slots = Math.max(...streams);
const ctx = promptLen + gen + 16;

const model = await benchModel(values.models!);

const CONFIGS: { name: string; opts: EngineWorkerOptions }[] = [
  { name: "single", opts: { threads: 2 } },
  { name: "pp2", opts: { threads: 1, backend: { kind: "sharded", sharding: { pp: 2, tp: 1 } } } },
  { name: "tp2", opts: { threads: 1, backend: { kind: "sharded", sharding: { pp: 1, tp: 2 } } } },
];

console.error("loading ...");
const engines: EngineWorker[] = [];
for (const c of CONFIGS) engines.push(await EngineWorker.start(model, { ...c.opts, contextLength: ctx, slots }));
const vocab = engines[0]!.info.vocabSize;

async function round(engine: EngineWorker, ps: number[][]): Promise<StreamTimes[]> {
  const t0 = performance.now();
  const clock = () => performance.now() - t0;
  return Promise.all(
    ps.map(async (p) => {
      const s: StreamTimes = { start: clock(), tokens: [] };
      await engine.generate(resolveRequest({ input: { kind: "tokens", tokens: p }, maxTokens: gen, temperature: 0, stopTokenIds: [] }), { onToken: () => s.tokens.push(clock()) });
      return s;
    }),
  );
}

for (const e of engines) await round(e, prompts(2, promptLen, vocab)); // warm-up
const stats: Record<string, Record<number, RoundStats[]>> = Object.fromEntries(CONFIGS.map((c) => [c.name, Object.fromEntries(streams.map((n) => [n, []]))]));
for (let r = 0; r < repeat; r++) {
  for (const n of streams) {
    const ps = prompts(n, promptLen, vocab).map((p) => p.map((t) => 300 + ((t + r * 31 + n) % (vocab - 300))));
    for (const k of rotate([...CONFIGS.keys()], r)) {
      stats[CONFIGS[k]!.name]![n]!.push(roundStats(await round(engines[k]!, ps)));
    }
  }
  console.error(`round ${r + 1}/${repeat}`);
}
for (const e of engines) await e.close();

const results = CONFIGS.map((c) => {
  const byN = Object.fromEntries(streams.map((n) => [n, round2(median(stats[c.name]![n]!.map((s) => s.decodeTps)))]));
  return { config: c.name, slots, decodeTps: byN, batchGain: round2(byN[slots]! / byN[streams[0]!]!) };
});
const report = {
  ...provenance("sharded-batching", ["src", "bench/serving"]),
  model: "synthetic 1b llama Q4_0 (tessera synth --arch llama --preset 1b --quant q4_0 --vocab spm --seed 1)",
  promptTokens: promptLen,
  genTokens: gen,
  repeat,
  configs: Object.fromEntries(CONFIGS.map((c) => [c.name, c.opts.backend?.kind === "sharded" ? { ...c.opts.backend.sharding, threadsPerRunner: c.opts.threads } : { threads: c.opts.threads }])),
  results,
};
mkdirSync(values.out!, { recursive: true });
const file = join(values.out!, `sharded-batching-${report.date.slice(0, 10)}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
console.error(`wrote ${file}`);
for (const r of results) console.error(`${r.config}: ${JSON.stringify(r.decodeTps)} tok/s aggregate; ${slots} streams / 1 = ${r.batchGain}×`);
