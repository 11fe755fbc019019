/**
 * Engine benchmark: our ONNX engine vs llama.cpp (node-llama-cpp) on the synthetic `1b` llama
 * (hidden 2048, 16 layers, 32/8 heads, FFN 8192, vocab 32000), Q4_0 and Q8_0, at each thread count.
 * `--archs qwen3moe` measures the mixture-of-experts row instead (the same shape with 32 experts of
 * width 512, 4 per token: ~1.6 B parameters, ~0.2 B active per token).
 *
 *   node dist/bench/engine/engine-bench.js [--models DIR] [--threads 1,2] [--quants q4_0,q8_0]
 *        [--archs llama,qwen3moe] [--pp 256] [--tg 64] [--repeat 5] [--out bench/results]
 *
 * Each engine lives in its own child process (so peak RSS is that engine's alone); both stay
 * loaded and the parent alternates measurement rounds between them (ours, llama.cpp, ours, ...),
 * so on a shared, noisy machine both see the same conditions. A round is one prefill of `pp`
 * tokens from an empty cache, then `tg` single-token decode steps. Medians over `repeat` rounds.
 *
 * Writes bench/results/engine-<date>.json (engine-<date>-<archs>.json for other architectures): machine, commit, date, per (quant, threads) both
 * engines' prefill/decode tok/s, peak RSS, the ratios, and our RSS over (weight + KV bytes).
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { provenance } from "../provenance.js";
import { median } from "../stats.js";

interface Round {
  ppTps: number;
  tgTps: number;
}

interface Loaded {
  loadMs: number;
  weightBytes?: number;
  kvBytes?: number;
  /** RSS once loaded, after a GC (peak also counts load-time copies). */
  rssAfterLoadBytes?: number;
}

interface Engine {
  round(): Promise<Round>;
  close(): Promise<void>;
}


function promptTokens(n: number, vocab: number): number[] {
  // Skip the low ids (control and byte tokens of the synthetic vocabulary).
  return Array.from({ length: n }, (_, i) => 300 + ((i * 7919) % (vocab - 300)));
}

async function openOurs(model: string, threads: number, pp: number, tg: number): Promise<Engine & Loaded> {
  const { openModel } = await import("../../src/models/open.js");
  const { createStepper } = await import("../../src/engine/session/stepper.js");
  const t0 = performance.now();
  const src = await openModel(model);
  const ctx = pp + tg + 16;
  const s = await createStepper(src, { threads, contextLength: ctx });
  const loadMs = performance.now() - t0;
  (globalThis as { gc?: () => void }).gc?.();
  const cfg = src.config;
  const prompt = Int32Array.from(promptTokens(pp, s.vocabSize));
  s.forward(prompt.subarray(0, 16));
  return {
    loadMs,
    rssAfterLoadBytes: process.memoryUsage().rss,
    weightBytes: src.tensors().reduce((a, t) => a + t.byteLength, 0),
    kvBytes: 2 * cfg.numLayers * cfg.numKvHeads * ctx * cfg.headDim * 4,
    async round() {
      s.truncate(0);
      let t = performance.now();
      s.forward(prompt);
      const ppTps = pp / ((performance.now() - t) / 1000);
      t = performance.now();
      for (let i = 0; i < tg; i++) s.forward(Int32Array.of(prompt[i % pp]));
      return { ppTps, tgTps: tg / ((performance.now() - t) / 1000) };
    },
    async close() {
      await s.dispose();
      await src.close();
    },
  };
}

async function openLlamaCpp(model: string, threads: number, pp: number, tg: number): Promise<Engine & Loaded> {
  const { getLlama } = await import("node-llama-cpp");
  type Token = import("node-llama-cpp").Token;
  const { openModel } = await import("../../src/models/open.js");
  const src = await openModel(model);
  const prompt = promptTokens(pp, src.config.vocabSize) as Token[];
  await src.close();
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: "error" as never });
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const ctx = await m.createContext({ contextSize: pp + tg + 16, batchSize: pp, threads: { ideal: threads, min: threads } });
  const seq = ctx.getSequence();
  const loadMs = performance.now() - t0;
  await seq.controlledEvaluate(prompt.slice(0, 16));
  return {
    loadMs,
    async round() {
      await seq.clearHistory();
      let t = performance.now();
      await seq.controlledEvaluate(prompt);
      const ppTps = pp / ((performance.now() - t) / 1000);
      t = performance.now();
      // One token per call, asking for the next token so the logits are computed every step.
      for (let i = 0; i < tg; i++) await seq.controlledEvaluate([[prompt[i % pp], { generateNext: { token: true } }]]);
      return { ppTps, tgTps: tg / ((performance.now() - t) / 1000) };
    },
    async close() {
      await ctx.dispose();
      await m.dispose();
      await llama.dispose();
    },
  };
}

/** Child side: load, then answer "round" and "close" messages from the parent. */
async function childMain(engine: string, model: string, threads: number, pp: number, tg: number): Promise<void> {
  const e = await (engine === "ours" ? openOurs : openLlamaCpp)(model, threads, pp, tg);
  const { round: _r, close: _c, ...loaded } = e;
  process.send!({ type: "loaded", ...loaded });
  process.on("message", (msg: { type: string }) => {
    void (async () => {
      if (msg.type === "round") {
        process.send!({ type: "round", ...(await e.round()) });
      } else {
        await e.close();
        process.send!({ type: "closed", peakRssBytes: process.resourceUsage().maxRSS * 1024 }, () => process.exit(0));
      }
    })();
  });
}

/**
 * glibc raises its mmap threshold after large frees, so the converted weight buffers freed once
 * onnxruntime has packed them stay in the heap (+330 MB RSS on the 1b Q4_0 model). A fixed 4 MiB
 * threshold returns them to the OS; 128 KiB returns even more but made decode 2.7× slower (some
 * per-step allocation then goes through mmap/munmap). Runner processes should use the same.
 */
const CHILD_ENV = { MALLOC_MMAP_THRESHOLD_: "4194304" };

/** Parent side of one child: request/response over the IPC channel. */
class ChildEngine {
  private readonly child: ChildProcess;
  private waiting: ((m: Record<string, number | string>) => void) | undefined;
  private stderr = "";

  constructor(engine: string, model: string, threads: number, pp: number, tg: number) {
    const self = fileURLToPath(import.meta.url);
    const args = ["--child", engine, "--model", model, "--threads", String(threads), "--pp", String(pp), "--tg", String(tg)];
    this.child = fork(self, args, {
      execArgv: ["--expose-gc", ...process.execArgv],
      env: { ...process.env, ...CHILD_ENV },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.child.on("message", (m) => this.waiting?.(m as Record<string, number | string>));
    this.child.on("exit", (code) => {
      if (code !== 0) this.waiting?.({ type: "error", message: `${engine} child exited with ${code}: ${this.stderr}` });
    });
  }

  next(send?: object): Promise<Record<string, number | string>> {
    return new Promise((resolve, reject) => {
      this.waiting = (m) => (m.type === "error" ? reject(new Error(String(m.message))) : resolve(m));
      if (send) this.child.send(send);
    });
  }
}

async function measurePair(model: string, threads: number, pp: number, tg: number, repeat: number) {
  const ours = new ChildEngine("ours", model, threads, pp, tg);
  const oursLoaded = await ours.next();
  const ref = new ChildEngine("llama", model, threads, pp, tg);
  const refLoaded = await ref.next();
  const rounds: { ours: Round[]; llamaCpp: Round[] } = { ours: [], llamaCpp: [] };
  for (let r = 0; r < repeat; r++) {
    rounds.ours.push((await ours.next({ type: "round" })) as unknown as Round);
    rounds.llamaCpp.push((await ref.next({ type: "round" })) as unknown as Round);
  }
  const oursPeak = (await ours.next({ type: "close" })).peakRssBytes as number;
  const refPeak = (await ref.next({ type: "close" })).peakRssBytes as number;
  const summary = (rs: Round[], loaded: Record<string, number | string>, peak: number) => ({
    ppTps: median(rs.map((x) => x.ppTps)),
    tgTps: median(rs.map((x) => x.tgTps)),
    peakRssBytes: peak,
    loadMs: loaded.loadMs as number,
    weightBytes: loaded.weightBytes as number | undefined,
    kvBytes: loaded.kvBytes as number | undefined,
    rssAfterLoadBytes: loaded.rssAfterLoadBytes as number | undefined,
    rounds: rs,
  });
  return { ours: summary(rounds.ours, oursLoaded, oursPeak), llamaCpp: summary(rounds.llamaCpp, refLoaded, refPeak) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: "string" },
      model: { type: "string" },
      models: { type: "string", default: join(tmpdir(), "tessera-bench-models") },
      threads: { type: "string", default: "1,2" },
      quants: { type: "string", default: "q4_0,q8_0" },
      archs: { type: "string", default: "llama" },
      pp: { type: "string", default: "256" },
      tg: { type: "string", default: "64" },
      repeat: { type: "string", default: "5" },
      out: { type: "string", default: join("bench", "results") },
    },
  });
  const pp = Number(values.pp);
  const tg = Number(values.tg);
  const repeat = Number(values.repeat);
  if (values.child) return childMain(values.child, values.model!, Number(values.threads), pp, tg);
  const { synthesize } = await import("../../src/models/synth/synthesize.js");
  mkdirSync(values.models!, { recursive: true });
  const results = [];
  const archs = values.archs!.split(",") as ("llama" | "qwen3moe")[];
  for (const arch of archs) for (const quant of values.quants!.split(",") as ("q4_0" | "q8_0")[]) {
    const model = join(values.models!, `1b-${arch}-${quant}.gguf`);
    if (!existsSync(model)) {
      console.error(`writing ${model} ...`);
      await synthesize({ arch, preset: "1b", format: "gguf", quant, out: model, seed: 1, vocab: "spm" });
    }
    for (const threads of values.threads!.split(",").map(Number)) {
      console.error(`${arch} ${quant} ${threads}T ...`);
      const { ours, llamaCpp } = await measurePair(model, threads, pp, tg, repeat);
      const wk = ours.weightBytes! + ours.kvBytes!;
      const row = {
        arch,
        quant,
        threads,
        fileBytes: statSync(model).size,
        ours,
        llamaCpp,
        ratios: {
          pp: ours.ppTps / llamaCpp.ppTps,
          tg: ours.tgTps / llamaCpp.tgTps,
          peakRssOverWeightsPlusKv: ours.peakRssBytes / wk,
          rssAfterLoadOverWeightsPlusKv: ours.rssAfterLoadBytes! / wk,
        },
      };
      console.error(JSON.stringify({ arch, quant, threads, ours: [ours.ppTps, ours.tgTps], llamaCpp: [llamaCpp.ppTps, llamaCpp.tgTps], ratios: row.ratios }));
      results.push(row);
    }
  }
  const report = {
    ...provenance("engine", ["src", "bench/engine"]),
    childEnv: CHILD_ENV,
    model: `synthetic 1b ${archs.join(", ")} (tessera synth --arch A --preset 1b --vocab spm --seed 1)`,
    pp,
    tg,
    repeat,
    targets: { tgAt2Threads: 1.0, tgAt1Thread: 0.9, pp: 0.9, peakRssOverWeightsPlusKv: 1.3 },
    results,
  };
  mkdirSync(values.out!, { recursive: true });
  const suffix = values.archs === "llama" ? "" : `-${archs.join("-")}`;
  const file = join(values.out!, `engine-${report.date.slice(0, 10)}${suffix}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  console.error(`wrote ${file}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
