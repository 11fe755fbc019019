import { basename } from "node:path";
import type { Command } from "../main.js";
import { TesseraError } from "../../errors.js";
import { checkPath, flag, parseFlags, usageText, type FlagValues } from "../flags.js";
import { progress } from "../progress.js";
import type { EngineWorker } from "../../inference/worker/engine-worker.js";
import { physicalCores } from "../../engine/session/threads.js";
import { ENGINE_FLAGS, shardingFlags, deviceFlag } from "./engine-flags.js";


// Prompt and generation lengths get names that cannot be read as pipeline stages; -p/-n are
// llama-bench's. --pp/--tg (the old names) explain themselves.
const FLAGS = {
  url: flag.string({ metavar: "URL", help: "benchmark a running node (or any OpenAI-compatible server) at URL through /v1/completions instead of a model file" }),
  model: flag.string({ metavar: "NAME", help: "with --url: the served model's id (GET URL/v1/models lists them)" }),
  concurrency: flag.int({ min: 1, max: 1024, default: 1, short: "c", help: "with --url: requests in flight at once; aggregate tok/s and TTFT p50/p95 cover them all" }),
  text: flag.bool({ help: "with --url: send the prompt as words (about one token each) instead of token ids" }),
  timeout: flag.int({ min: 1, default: 600, metavar: "SECONDS", help: "with --url: give up on a request after this long" }),
  "prompt-tokens": flag.int({ min: 0, default: 256, short: "p", help: "prompt-processing test: this many tokens in one prefill; 0 = skip" }),
  "gen-tokens": flag.int({ min: 0, default: 64, short: "n", help: "generation test: this many single-token steps from an empty cache; 0 = skip" }),
  repeat: flag.int({ min: 1, default: 3, short: "r", help: "measured runs (after one warm-up); the median is reported" }),
  json: flag.bool({ help: "print one JSON object: {ppTps, tgTps, peakRssBytes, runnerPeakRssBytes, ...}, with --url {aggregateTps, decodeTps, ttftMsP50, ttftMsP95, runs, ...}" }),
  ...ENGINE_FLAGS,
  pp: flag.renamed("the prompt length is --prompt-tokens (-p); pipeline stages are --stages"),
  tg: flag.renamed("the generation length is --gen-tokens (-n)"),
};

const SYNOPSIS = "tessera bench MODEL [options]\n       tessera bench --url URL --model NAME [options]";

async function benchUrl(values: FlagValues<typeof FLAGS>, positionals: string[]): Promise<number> {
  if (positionals.length) throw new TesseraError(`give a MODEL file or --url, not both (got '${positionals[0]}' and --url)`);
  if (values.model === undefined) throw new TesseraError("--url needs --model NAME: the served model's id (GET URL/v1/models lists them)");
  if (values["prompt-tokens"] < 1 || values["gen-tokens"] < 1) throw new TesseraError("with --url, --prompt-tokens and --gen-tokens must both be ≥ 1 (each request prefills, then generates)");
  const { httpBench, printHttpBench } = await import("../http-bench.js");
  const o = { url: values.url!, model: values.model, promptTokens: values["prompt-tokens"], genTokens: values["gen-tokens"], concurrency: values.concurrency, repeat: values.repeat, text: values.text, timeoutMs: values.timeout * 1000 };
  const quiet = values.json;
  const r = await httpBench(o, quiet ? undefined : (i, run) => console.error(`run ${i + 1}/${o.repeat}: ${run.aggregateTps.toFixed(2)} tok/s aggregate in ${(run.wallMs / 1000).toFixed(2)} s`));
  if (values.json) console.log(JSON.stringify(r));
  else console.log(printHttpBench(r));
  return 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const command: Command = {
  summary:
    "Measures prompt processing (--prompt-tokens in one prefill) and token generation (--gen-tokens single-token " +
    "steps from an empty cache), like llama-bench: the median of --repeat runs after one warm-up " +
    "(runnerPeakRssBytes in --json: each runner process's, when sharded).",
  usage: usageText(SYNOPSIS, FLAGS, [
    "MODEL is a .gguf file or a safetensors / MLX folder. The printed rows are named like llama-bench's: pp<N> and tg<N>.",
    "With --url each request streams (stream: true): TTFT is the time to the first text, decode tok/s the rate after it.",
  ]),
  async run(argv) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: { max: 1, usage: SYNOPSIS } });
    if (values.url !== undefined) return benchUrl(values, positionals);
    const remoteOnly = (["model", "text"] as const).find((k) => values[k]) ?? (values.concurrency > 1 ? "concurrency" : undefined);
    if (remoteOnly) throw new TesseraError(`--${remoteOnly} needs --url (it benchmarks a running server)`);
    const model = positionals[0];
    if (model === undefined) throw new TesseraError(`missing MODEL (usage: ${SYNOPSIS})`);
    checkPath(model, "input", "");
    const pp = values["prompt-tokens"];
    const tg = values["gen-tokens"];
    const repeat = values.repeat;
    if (pp === 0 && tg === 0) throw new TesseraError("nothing to measure: --prompt-tokens and --gen-tokens are both 0");
    const wanted = values.ctx ?? Math.max(pp, tg, 1);
    if (wanted < Math.max(pp, tg)) throw new TesseraError(`--ctx ${wanted} is smaller than --prompt-tokens ${pp} / --gen-tokens ${tg}`);
    const stages = values.stages;
    const ranks = stages * values.tp;
    // Runner processes write their peak RSS here as they exit (after engine.close()).
    const runnerPeakRss = new Float64Array(new SharedArrayBuffer(8 * (ranks > 1 ? ranks : 0)));
    const sharding = { ...shardingFlags(values, stages, values.tp), runnerPeakRss };
    const label = values.ctx !== undefined ? undefined : `a context of ${wanted} tokens (--prompt-tokens / --gen-tokens)`;
    // The engine's modules load only once the options are known to be good.
    const [{ EngineWorker }, { preflight, withSharding }] = await Promise.all([import("../../inference/worker/engine-worker.js"), import("../../runner/cli.js")]);
    const contextLength = await preflight(model, sharding, wanted, label);
    // Sharded, --threads is per runner process; by default the cores are shared out.
    const threads = values.threads ?? Math.max(1, Math.floor(physicalCores() / ranks));

    const device = await deviceFlag(values.device);
    const shown = progress(`loading ${basename(model)}`);
    let engine: EngineWorker;
    try {
      engine = await EngineWorker.start(model, withSharding({ threads, device, contextLength, onProgress: (p) => shown.update(p) }, sharding));
    } finally {
      shown.done();
    }
    const ppRuns: number[] = [];
    const tgRuns: number[] = [];
    const info = engine.info;
    try {
      await engine.bench({ pp: Math.min(pp, 32), tg: Math.min(tg, 4), seed: 0 });
      for (let i = 0; i < repeat; i++) {
        const r = await engine.bench({ pp, tg, seed: i + 1 });
        if (pp > 0) ppRuns.push((pp * 1000) / r.ppMs);
        if (tg > 0) tgRuns.push((tg * 1000) / r.tgMs);
      }
    } finally {
      await engine.close();
    }
    // Worker threads share the process, so its peak RSS covers the engine too; runners have their own.
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;
    const runnerPeakRssBytes = Array.from(runnerPeakRss);
    const out = {
      model,
      architecture: info.architecture,
      device,
      threads,
      pp,
      tg,
      repeat,
      ppTps: pp > 0 ? median(ppRuns) : 0,
      tgTps: tg > 0 ? median(tgRuns) : 0,
      peakRssBytes,
      runnerPeakRssBytes,
      weightBytes: info.weightBytes,
      ppRuns,
      tgRuns,
    };
    if (values.json) {
      console.log(JSON.stringify(out));
      return 0;
    }
    const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
    const rows = [
      ...(pp > 0 ? [`pp${pp}`.padEnd(8) + `${out.ppTps.toFixed(2).padStart(10)} tok/s   runs ${ppRuns.map((x) => x.toFixed(1)).join(", ")}`] : []),
      ...(tg > 0 ? [`tg${tg}`.padEnd(8) + `${out.tgTps.toFixed(2).padStart(10)} tok/s   runs ${tgRuns.map((x) => x.toFixed(1)).join(", ")}`] : []),
    ];
    console.log(`${model} (${out.architecture ?? "?"}), ${device}, ${threads} threads, median of ${repeat}`);
    console.log(rows.join("\n"));
    console.log(`peak RSS ${mib(peakRssBytes)}` + (out.weightBytes ? `, weights ${mib(out.weightBytes)}` : ""));
    if (runnerPeakRssBytes.length) {
      const sum = runnerPeakRssBytes.reduce((a, b) => a + b, 0);
      console.log(`runner peak RSS: sum ${mib(sum)}, max ${mib(Math.max(...runnerPeakRssBytes))} (${runnerPeakRssBytes.map(mib).join(", ")})`);
    }
    return 0;
  },
};
