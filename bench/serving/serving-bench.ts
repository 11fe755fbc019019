/**
 * Serving benchmark (continuous batching): aggregate decode tok/s and time to first token for 1, 2,
 * 4 and 8 concurrent streams on one node, through the HTTP API (streamed /v1/completions with token
 * prompts), against llama.cpp (node-llama-cpp, one context with as many sequences, evaluated
 * concurrently so it batches them) on the same model, threads and prompts, in the same run.
 *
 *   node dist/bench/serving/serving-bench.js [--models DIR] [--threads 2] [--streams 1,2,4,8]
 *        [--prompt 64] [--gen 48] [--repeat 2] [--out bench/results]
 *
 * Model: the synthetic 1b llama, Q4_0 (tessera synth --arch llama --preset 1b --quant q4_0 --vocab
 * spm --seed 1), written on first use. Each engine lives in its own child process; both stay loaded
 * and rounds alternate between them (ours, llama.cpp, ours, ...) so a noisy machine hits both alike.
 * A round starts N streams at once, each with its own prompt of `prompt` tokens, greedy, `gen` tokens.
 *
 * Per round: TTFT of each stream (start of its request → its first token), throughput (all tokens /
 * wall time), and aggregate decode tok/s = tokens produced while every stream was decoding (from
 * the last stream's first token to the first stream's end) / that window. Medians over rounds;
 * TTFT p50/p95 over every stream of every round. Writes bench/results/serving-<date>.json.
 * Not a test: it states targets (8 streams ≥ 4× one stream; ≥ 1.0× llama.cpp at 8) and measures them.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { provenance } from "../provenance.js";
import { median } from "../stats.js";
import { benchModel, percentile, prompts, roundStats, type RoundStats, type StreamTimes } from "./stream-stats.js";

// ---- child: our node (HTTP API over the batching engine worker) ----

async function oursChild(model: string, threads: number, slots: number, ctx: number): Promise<void> {
  const { createNodeServing } = await import("../../src/api/node-serving.js");
  const { startApiServer } = await import("../../src/api/server.js");
  const { servingRoutes } = await import("../../src/api/serving-routes.js");
  const ns = createNodeServing({ nodeId: "bench", modelPaths: [model], engine: { threads, contextLength: ctx, slots }, maxQueued: 64, version: "bench", log: () => undefined });
  const server = await startApiServer({ host: "127.0.0.1", port: 0, routes: servingRoutes(ns.serving) });
  const info = await ns.local.load(ns.local.models()[0]!.id);
  process.send!({ type: "ready", port: server.port, id: ns.local.models()[0]!.id, slots: ns.local.models()[0]!.slots, vocab: info.vocabSize });
  process.on("message", (m: { type: string }) => {
    if (m.type !== "close") return;
    void (async () => {
      await server.close();
      await ns.close();
      process.send!({ type: "closed" }, () => process.exit(0));
    })();
  });
}

/** One streamed completion through the HTTP API: token arrival times (each SSE chunk with text is a token). */
async function httpStream(port: number, id: string, prompt: number[], gen: number, clock: () => number): Promise<StreamTimes> {
  const out: StreamTimes = { start: clock(), tokens: [] };
  const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: id, prompt, max_tokens: gen, temperature: 0, stream: true }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = "";
  for await (const part of res.body!) {
    buf += decoder.decode(part as Uint8Array, { stream: true });
    let at: number;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const chunk = JSON.parse(line.slice(6));
      if (chunk.choices?.[0]?.text) out.tokens.push(clock());
    }
  }
  return out;
}

// ---- child: llama.cpp (node-llama-cpp), one context with `slots` sequences ----

async function llamaChild(model: string, threads: number, slots: number, ctx: number): Promise<void> {
  const { getLlama } = await import("node-llama-cpp");
  type Token = import("node-llama-cpp").Token;
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: "error" as never });
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const context = await m.createContext({ contextSize: ctx, sequences: slots, batchSize: 512, threads: { ideal: threads, min: threads } });
  process.send!({ type: "ready" });
  process.on("message", (msg: { type: string; prompts?: number[][]; gen?: number }) => {
    void (async () => {
      if (msg.type === "close") {
        await context.dispose();
        await m.dispose();
        await llama.dispose();
        process.send!({ type: "closed" }, () => process.exit(0));
        return;
      }
      const t0 = performance.now();
      const clock = () => performance.now() - t0;
      const seqs = msg.prompts!.map(() => context.getSequence());
      const streams = await Promise.all(
        msg.prompts!.map(async (p, i) => {
          const s: StreamTimes = { start: clock(), tokens: [] };
          // greedy (temperature 0 by default); stops after `gen` tokens whatever they are
          for await (const _token of seqs[i]!.evaluate(p as Token[])) {
            s.tokens.push(clock());
            if (s.tokens.length >= msg.gen!) break;
          }
          return s;
        }),
      );
      for (const s of seqs) s.dispose();
      process.send!({ type: "round", streams });
    })();
  });
}

// ---- parent ----

const CHILD_ENV = { ...process.env, ORT_DISABLE_TELEMETRY: "1" };

function startChild(kind: string, model: string, threads: number, slots: number, ctx: number): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = fork(fileURLToPath(import.meta.url), ["--child", kind, "--model", model, "--threads", String(threads), "--slots", String(slots), "--ctx", String(ctx)], { env: CHILD_ENV });
  return new Promise((resolve, reject) => {
    child.once("message", (m: Record<string, unknown>) => (m.type === "ready" ? resolve({ child, ready: m }) : reject(new Error(JSON.stringify(m)))));
    child.once("exit", (code) => reject(new Error(`${kind} child exited (${code})`)));
  });
}

function ask<T>(child: ChildProcess, msg: unknown, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off("message", on);
      resolve(m as T);
    };
    child.on("message", on);
    child.send(msg as never);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: "string" },
      model: { type: "string" },
      slots: { type: "string" },
      ctx: { type: "string" },
      models: { type: "string", default: join(tmpdir(), "tessera-bench-models") },
      threads: { type: "string", default: "2" },
      streams: { type: "string", default: "1,2,4,8" },
      prompt: { type: "string", default: "64" },
      gen: { type: "string", default: "48" },
      repeat: { type: "string", default: "2" },
      out: { type: "string", default: join("bench", "results") },
      notes: { type: "string" },
    },
  });
  const threads = Number(values.threads);
  if (values.child) {
    const args = [values.model!, threads, Number(values.slots), Number(values.ctx)] as const;
    return values.child === "ours" ? oursChild(...args) : llamaChild(...args);
  }
  const streams = values.streams!.split(",").map(Number);
  const promptLen = Number(values.prompt);
  const gen = Number(values.gen);
  const repeat = Number(values.repeat);
  const slots = Math.max(...streams);
  const ctx = promptLen + gen + 16;
  const model = await benchModel(values.models!);
  console.error("loading both engines ...");
  const ours = await startChild("ours", model, threads, slots, ctx);
  const llama = await startChild("llama", model, threads, slots, ctx);
  const port = ours.ready.port as number;
  const id = ours.ready.id as string;
  const vocab = ours.ready.vocab as number;
  const runOurs = async (ps: number[][]): Promise<StreamTimes[]> => {
    const t0 = performance.now();
    return Promise.all(ps.map((p) => httpStream(port, id, p, gen, () => performance.now() - t0)));
  };
  const runLlama = async (ps: number[][]): Promise<StreamTimes[]> => (await ask<{ streams: StreamTimes[] }>(llama.child, { type: "round", prompts: ps, gen }, "round")).streams;
  // warm-up: one short round each
  await runOurs(prompts(1, promptLen, vocab));
  await runLlama(prompts(1, promptLen, vocab));

  const summary = (rs: RoundStats[]) => ({
    decodeTps: median(rs.map((x) => x.decodeTps)),
    throughputTps: median(rs.map((x) => x.throughputTps)),
    ttftP50Ms: percentile(rs.flatMap((x) => x.ttftMs), 50),
    ttftP95Ms: percentile(rs.flatMap((x) => x.ttftMs), 95),
    tokensPerRound: rs.map((x) => x.tokens),
  });
  const rows: { streams: number; ours: ReturnType<typeof summary>; llamaCpp: ReturnType<typeof summary> }[] = [];
  for (const n of streams) {
    const rounds: Record<"ours" | "llamaCpp", RoundStats[]> = { ours: [], llamaCpp: [] };
    for (let r = 0; r < repeat; r++) {
      // fresh prompts every round: no prefix cache helps either engine
      const ps = prompts(n, promptLen, vocab).map((p) => p.map((t) => 300 + ((t + r * 31) % (vocab - 300))));
      rounds.ours.push(roundStats(await runOurs(ps)));
      rounds.llamaCpp.push(roundStats(await runLlama(ps)));
    }
    const row = { streams: n, ours: summary(rounds.ours), llamaCpp: summary(rounds.llamaCpp) };
    console.error(JSON.stringify(row));
    rows.push(row);
  }
  await ask(ours.child, { type: "close" }, "closed");
  await ask(llama.child, { type: "close" }, "closed");

  const at = (n: number) => rows.find((r) => r.streams === n);
  const one = at(1);
  const eight = at(8);
  const report = {
    ...provenance("serving", ["src", "bench/serving"]),
    ...(values.notes ? { notes: values.notes } : {}),
    model: "synthetic 1b llama Q4_0 (tessera synth --arch llama --preset 1b --quant q4_0 --vocab spm --seed 1)",
    threads,
    promptTokens: promptLen,
    genTokens: gen,
    repeat,
    ours: { slots: ours.ready.slots, contextPerSlot: ctx, api: "HTTP /v1/completions, streamed, token prompts", kv: "float32" },
    llamaCpp: { package: "node-llama-cpp 3.21.1", sequences: slots, contextSize: ctx, kv: "f16 (default)" },
    targets: { decode8Over1: 4, decode8OverLlamaCpp: 1 },
    measured: {
      decode8Over1: one && eight ? eight.ours.decodeTps / one.ours.decodeTps : null,
      decode8OverLlamaCpp: eight ? eight.ours.decodeTps / eight.llamaCpp.decodeTps : null,
      llamaCppDecode8Over1: one && eight ? eight.llamaCpp.decodeTps / one.llamaCpp.decodeTps : null,
    },
    results: rows,
  };
  mkdirSync(values.out!, { recursive: true });
  const file = join(values.out!, `serving-${report.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  console.error(`wrote ${file}: ${JSON.stringify(report.measured)}`);
}

await main();
