import type { Command } from "../main.js";
import { TesseraError } from "../../errors.js";
import { intOption, parseCommandArgs } from "../args.js";
import { EngineWorker } from "../../inference/worker/engine-worker.js";
import { physicalCores } from "../../engine/session/threads.js";
import { ENGINE_FLAGS, engineFlags, modelArgument } from "./engine-flags.js";
import { SHARDING_FLAGS, shardingFlags, withSharding } from "../../runner/cli.js";

const USAGE = "tessera bench MODEL [--pp 256] [--tg 64] [--repeat 3] [--threads N] [--ctx N] [--device cpu|webgpu|cuda] [--stages N] [--tp M] [--compress-activations] [--json]";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const command: Command = {
  summary:
    "Measures prompt processing (--pp tokens in one prefill) and token generation (--tg single-token steps from " +
    "an empty cache), like llama-bench: the median of --repeat runs after one warm-up. --json prints " +
    "{ppTps, tgTps, peakRssBytes, runnerPeakRssBytes, ...} (runnerPeakRssBytes: each runner process's, when sharded).",
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      ...ENGINE_FLAGS,
      ...SHARDING_FLAGS,
      pp: { type: "string" },
      tg: { type: "string" },
      repeat: { type: "string" },
      json: { type: "boolean" },
      // --pp is llama-bench's prompt length here, so pipeline stages get their own name.
      stages: { type: "string" },
    });
    const model = modelArgument(positionals, USAGE);
    if (positionals.length > 1) throw new TesseraError(`unexpected argument '${positionals[1]}'\nusage: ${USAGE}`);
    const flags = engineFlags(values);
    const pp = intOption("pp", values.pp, 256);
    const tg = intOption("tg", values.tg, 64);
    const repeat = intOption("repeat", values.repeat, 3, 1);
    if (pp === 0 && tg === 0) throw new TesseraError("nothing to measure: --pp and --tg are both 0");
    const contextLength = flags.contextLength ?? Math.max(pp, tg, 1);
    if (contextLength < Math.max(pp, tg)) throw new TesseraError(`--ctx ${contextLength} is smaller than --pp ${pp} / --tg ${tg}`);
    const stages = intOption("stages", values.stages, 1, 1);
    const ranks = stages * flags.tp;
    // Runner processes write their peak RSS here as they exit (after engine.close()).
    const runnerPeakRss = new Float64Array(new SharedArrayBuffer(8 * (ranks > 1 ? ranks : 0)));
    const sharding = { ...shardingFlags(values, stages, flags.tp), runnerPeakRss };
    // Sharded, --threads is per runner process; by default the cores are shared out.
    const threads = flags.threads ?? Math.max(1, Math.floor(physicalCores() / ranks));

    const engine = await EngineWorker.start(model, withSharding({ threads, device: flags.device, contextLength }, sharding));
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
      device: flags.device,
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
    console.log(`${model} (${out.architecture ?? "?"}), ${flags.device}, ${threads} threads, median of ${repeat}`);
    console.log(rows.join("\n"));
    console.log(`peak RSS ${mib(peakRssBytes)}` + (out.weightBytes ? `, weights ${mib(out.weightBytes)}` : ""));
    if (runnerPeakRssBytes.length) {
      const sum = runnerPeakRssBytes.reduce((a, b) => a + b, 0);
      console.log(`runner peak RSS: sum ${mib(sum)}, max ${mib(Math.max(...runnerPeakRssBytes))} (${runnerPeakRssBytes.map(mib).join(", ")})`);
    }
    return 0;
  },
};
