/**
 * What placement's memory model (src/placement/model.ts, memory.ts) counts, measured:
 *   - bytes the engine holds per weight of each stored type: a middle shard of 2 layers and of
 *     2 + K layers of the 1b model, each loaded in its own process; (RSS difference) / (K layers'
 *     weights), steady (after load, one step and GC) and peak (maxRSS);
 *   - a runner's base: a process with onnxruntime, a session of the tiny model and a liveness thread;
 *   - what a driver adds to its node: an engine worker (thread, tokenizer, one tiny session) in a
 *     process, for the spm and the qwen3 vocabulary.
 *
 *   MALLOC_MMAP_THRESHOLD_=4194304 node --expose-gc dist/bench/placement/held-bytes.js \
 *     --models q4_0=/path/1b-q4_0.gguf,q8_0=/path/1b-q8_0.gguf,f16=/path/1b-f16.gguf [--extra 3] [--out FILE]
 *
 * The 1b files come from `tessera synth --arch llama --preset 1b --vocab spm --quant Q`.
 */
import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { provenance } from "../provenance.js";

const MiB = 2 ** 20;
const self = fileURLToPath(import.meta.url);

interface ChildResult {
  steadyBytes: number;
  peakBytes: number;
  baselineBytes: number;
  weights?: number;
}

function rssBytes(): number {
  const rollup = readFileSync("/proc/self/smaps_rollup", "utf8");
  return Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
}

function settle(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return rssBytes();
}

if (process.env.HELD_BYTES_CHILD) {
  const job = JSON.parse(process.env.HELD_BYTES_CHILD) as { kind: "shard" | "runner-base" | "driver"; model: string; layers?: [number, number] };
  const baselineBytes = settle();
  const result: ChildResult = { steadyBytes: 0, peakBytes: 0, baselineBytes };
  if (job.kind === "shard") {
    const { openModel } = await import("../../src/models/open.js");
    const { ShardEngine } = await import("../../src/engine/session/shard.js");
    const source = await openModel(job.model);
    const [a, b] = job.layers!;
    result.weights = source.tensors().filter((t) => {
      const l = Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1);
      return l >= a && l < b && t.shape.length === 2;
    }).reduce((s, t) => s + t.shape[0]! * t.shape[1]!, 0);
    const shard = await ShardEngine.create(source, { layers: job.layers, threads: 1, contextLength: 64, spinning: false });
    shard.run(new Float32Array(source.config.hiddenSize), 1, {});
    result.steadyBytes = settle();
    shard.dispose();
    await source.close();
  } else if (job.kind === "runner-base") {
    const { openModel } = await import("../../src/models/open.js");
    const { ShardEngine } = await import("../../src/engine/session/shard.js");
    const { Liveness } = await import("../../src/transport/index.js");
    const source = await openModel(job.model);
    const shard = await ShardEngine.create(source, { threads: 1, contextLength: 64, spinning: false });
    shard.run(shard.embed(Int32Array.of(1)), 1, {});
    const live = await Liveness.start({ host: "127.0.0.1", self: 0, count: 2, groupId: "bench" });
    result.steadyBytes = settle();
    live.close();
    shard.dispose();
  } else {
    const { EngineWorker } = await import("../../src/inference/worker/engine-worker.js");
    const { resolveRequest } = await import("../../src/inference/request.js");
    const e = await EngineWorker.start(job.model, { threads: 1, contextLength: 64 });
    await e.generate(resolveRequest({ input: { kind: "tokens", tokens: [1, 2, 3] }, maxTokens: 4, temperature: 0 }));
    result.steadyBytes = settle();
    await e.close();
  }
  result.peakBytes = process.resourceUsage().maxRSS * 1024;
  process.send!(result, () => process.exit(0));
} else {
  await main();
}

function run(job: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = fork(self, [], { execArgv: [...process.execArgv, "--expose-gc"], env: { ...process.env, HELD_BYTES_CHILD: JSON.stringify(job) } });
    child.once("message", (m) => resolve(m as ChildResult));
    child.once("exit", (code) => code !== 0 && reject(new Error(`child exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { models: { type: "string" }, extra: { type: "string" }, out: { type: "string" } } });
  if (!values.models) throw new Error("--models q4_0=PATH,... is required");
  const extra = Number(values.extra ?? 3);
  const { synthesize } = await import("../../src/models/synth/synthesize.js");
  const dir = mkdtempSync(join(tmpdir(), "tessera-held-"));
  const tinySpm = join(dir, "tiny-spm.gguf");
  const tinyQwen = join(dir, "tiny-qwen3.gguf");
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: tinySpm });
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "qwen3", out: tinyQwen });
  const types: Record<string, unknown> = {};
  for (const spec of values.models.split(",")) {
    const [type, path] = spec.split("=") as [string, string];
    // both shards over onnx/staging.ts's 64 MiB threshold, so both load the same way (staged on disk)
    const one = await run({ kind: "shard", model: path, layers: [1, 3] });
    const more = await run({ kind: "shard", model: path, layers: [1, 3 + extra] });
    const weights = more.weights! - one.weights!;
    types[type] = {
      steadyBytesPerWeight: round((more.steadyBytes - one.steadyBytes) / weights, 3),
      peakBytesPerWeight: round((more.peakBytes - one.peakBytes) / weights, 3),
      layersCompared: `[1, 3) vs [1, ${3 + extra})`,
      weightsCompared: weights,
      steadyMiB: [round(one.steadyBytes / MiB, 1), round(more.steadyBytes / MiB, 1)],
      peakMiB: [round(one.peakBytes / MiB, 1), round(more.peakBytes / MiB, 1)],
    };
    console.log(type, JSON.stringify(types[type]));
  }
  const base = await run({ kind: "runner-base", model: tinySpm });
  const spm = await run({ kind: "driver", model: tinySpm });
  const qwen = await run({ kind: "driver", model: tinyQwen });
  const result = {
    ...provenance("placement memory model: bytes held per weight, runner base, driver", ["src/engine", "src/runner", "src/placement"]),
    env: { MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? null },
    types,
    runnerBase: { steadyMiB: round(base.steadyBytes / MiB, 1), peakMiB: round(base.peakBytes / MiB, 1), note: "tiny model session + liveness thread, in a process of its own" },
    driver: {
      spmVocabMiB: round((spm.steadyBytes - spm.baselineBytes) / MiB, 1),
      qwen3VocabMiB: round((qwen.steadyBytes - qwen.baselineBytes) / MiB, 1),
      note: "RSS an engine worker (thread, tokenizer, one tiny session) adds to a process that already runs Node",
    },
  };
  console.log(JSON.stringify({ runnerBase: result.runnerBase, driver: result.driver }));
  const out = values.out ?? join("bench", "results", `placement-held-bytes-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${out}`);
  rmSync(dir, { recursive: true, force: true });
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
