// Sharded decode benchmark (issue 4): the `1b` synthetic llama, Q4_0, one thread per process, loopback.
//   1. decode tok/s: one process vs TP 2 vs PP 2 (runner processes over TCP), alternated in rounds;
//   2. all-reduce of a decode-sized message (hidden × 4 bytes) vs a raw TCP round trip of the same
//      size, same run (bench/transport's worker processes);
//   3. TP 2 with its tensor-group links through the delay proxy at 5, 50 and 300 µs one-way;
//   4. what a vocabulary-split lm_head would save: the head's time per token vs one round trip of
//      half the logits.
// Usage: node dist/bench/parallel/parallel.js [--model PATH] [--tokens 64] [--rounds 3] [--out FILE]
//   (or npx tsx bench/parallel/parallel.ts). Without --model it writes (once) or reuses
//   $TMPDIR/tessera-bench-models/1b-llama-q4_0.gguf. Writes bench/results/parallel-<date>.json.
// Targets: TP 2 ≥ 1.7× one process, all-reduce ≤ 1.3× raw RTT, PP 2 ≥ 0.9× one process.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { openModel } from "../../src/models/open.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { argmax } from "../../src/engine/sampling/select.js";
import { buildHeadGraph } from "../../src/engine/tp/head-graph.js";
import { SyncSession, ort } from "../../src/engine/onnx/session.js";
import { loadHead } from "../../src/engine/weights/load.js";
import { nodeModuleCommand } from "../../src/spawn.js";
import { DelayProxy, type PeerAddress } from "../../src/transport/index.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import { makePlan, type ShardPlan } from "../../src/runner/plan.js";
import { provenance } from "../provenance.js";

const { values } = parseArgs({
  options: { model: { type: "string" }, tokens: { type: "string" }, rounds: { type: "string" }, out: { type: "string" } },
});
const TOKENS = Number(values.tokens ?? 64);
const ROUNDS = Number(values.rounds ?? 3);
const CTX = 256;
const PROMPT = Int32Array.from({ length: 16 }, (_, i) => 300 + 37 * i);

async function modelPath(): Promise<string> {
  if (values.model) return values.model;
  const dir = join(os.tmpdir(), "tessera-bench-models");
  const path = join(dir, "1b-llama-q4_0.gguf");
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    console.log(`writing ${path} (once)...`);
    await synthesize({ arch: "llama", preset: "1b", format: "gguf", quant: "q4_0", vocab: "spm", out: path, seed: 1 });
  }
  return path;
}

type Forward = (tokens: Int32Array) => Promise<Float32Array> | Float32Array;

interface Decode {
  tps: number;
  /** CPU time per token of each computing process, ms: what the ranks cost without waiting on a shared machine. */
  cpuMs: number[];
  /** Resident memory of each runner after loading, MiB (sharded runs). */
  rssMiB?: number[];
}

/** CPU seconds (user + system) of a process, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** Decode tok/s: prompt, 4 untimed greedy steps, then TOKENS timed ones. */
async function decode(forward: Forward, vocab: number, pids: number[]): Promise<Decode> {
  let logits = await forward(PROMPT);
  for (let i = 0; i < 4; i++) logits = await forward(Int32Array.of(argmax(logits, vocab)));
  const c0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  for (let i = 0; i < TOKENS; i++) logits = await forward(Int32Array.of(argmax(logits, vocab)));
  const tps = (TOKENS * 1000) / (performance.now() - t0);
  return { tps, cpuMs: pids.map((p, i) => r2(((cpuSeconds(p) - c0[i]!) * 1000) / TOKENS)) };
}

async function single(path: string): Promise<Decode> {
  const src = await openModel(path);
  const s = await createStepper(src, { threads: 1, contextLength: CTX });
  try {
    return await decode((t) => s.forward(t), s.vocabSize, [process.pid]);
  } finally {
    await s.dispose();
    await src.close();
  }
}

/** busyPoll false: the runners' all-reduces wait on the event loop (TESSERA_BUSY_POLL=0), as before. */
async function sharded(path: string, plan: ShardPlan, latencyUs = 0, busyPoll = true): Promise<Decode> {
  process.env.TESSERA_BUSY_POLL = busyPoll ? "1" : "0";
  const proxies: DelayProxy[] = [];
  const routeTensorGroup = async (_stage: number, peers: PeerAddress[]): Promise<PeerAddress[]> => {
    if (latencyUs === 0) return peers;
    return Promise.all(
      peers.map(async (target) => {
        const p = await DelayProxy.start({ target, forward: { latencyUs } });
        proxies.push(p);
        return { host: "127.0.0.1", port: p.port };
      }),
    );
  };
  const d = await ShardedDriver.start({ plan, modelPath: path, contextLength: CTX, threads: 1, routeTensorGroup });
  try {
    const r = await decode((t) => d.forward(t), d.vocabSize, d.runners.pids);
    return { ...r, rssMiB: d.runners.rssBytes.map((b) => Math.round(b / 2 ** 20)) };
  } finally {
    await d.close();
    for (const p of proxies) await p.close();
  }
}

// ---- transport: bench/transport's worker processes ----

interface Timings {
  median: number;
  p10: number;
  p90: number;
  n: number;
}
const children = new Set<ChildProcess>();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

function worker(args: string[]): { child: ChildProcess; line: () => Promise<string> } {
  const cmd = nodeModuleCommand("../transport/worker", import.meta.url);
  const child = spawn(cmd.command, [...cmd.args, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
  return { child, line: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r))) };
}
const portOf = async (line: () => Promise<string>): Promise<number> => Number((await line()).replace(/^port /, ""));

async function rawRtt(bytes: number, iters: number): Promise<Timings> {
  const echo = worker(["echo"]);
  const port = await portOf(echo.line);
  const ping = worker(["ping", String(port), String(iters), String(Math.ceil(iters / 5)), String(bytes)]);
  const t = JSON.parse(await ping.line()) as Timings;
  echo.child.kill("SIGTERM");
  return t;
}

async function allReduce(floats: number, iters: number, mode = "auto"): Promise<Timings> {
  const id = `parallel-bench-${process.pid}-${Date.now()}`;
  const ranks = [0, 1].map((r) => worker(["rank", String(r), "2", id, String(iters), String(Math.ceil(iters / 5)), String(floats), mode]));
  const ports = await Promise.all(ranks.map((r) => portOf(r.line)));
  for (const r of ranks) r.child.stdin!.end(JSON.stringify({ peers: ports.map((port) => ({ host: "127.0.0.1", port })) }) + "\n");
  const [t] = await Promise.all(ranks.map(async (r) => JSON.parse(await r.line()) as Timings));
  return t!;
}

/** lm_head (final norm + matmul) time per decode token, one thread. */
async function headMs(path: string): Promise<number> {
  const src = await openModel(path);
  try {
    const h = await loadHead(src);
    const g = buildHeadGraph(src.config, h.norm, h.lmHead);
    const s = SyncSession.create(g.toBytes(), g.blobs, { threads: 1 });
    const feeds = {
      hidden_in: new ort.Tensor("float32", new Float32Array(src.config.hiddenSize).fill(0.1), [1, 1, src.config.hiddenSize]),
      logits_index: new ort.Tensor("int64", BigInt64Array.of(0n), [1]),
    };
    for (let i = 0; i < 5; i++) s.run(feeds, { logits: null });
    const t0 = performance.now();
    const n = 40;
    for (let i = 0; i < n; i++) s.run(feeds, { logits: null });
    const ms = (performance.now() - t0) / n;
    s.dispose();
    return ms;
  } finally {
    await src.close();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const r2 = (x: number): number => Math.round(x * 100) / 100;

const path = await modelPath();
const src = await openModel(path);
const cfg = src.config;
await src.close();
const tp2 = makePlan(cfg, { pp: 1, tp: 2 });
const pp2 = makePlan(cfg, { pp: 2, tp: 1 });

// The machine is shared and its load drifts: alternate the runs, compare within a round.
const rounds: { single: Decode; tp2: Decode; tp2EventLoop: Decode; pp2: Decode }[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const row = { single: await single(path), tp2: await sharded(path, tp2), tp2EventLoop: await sharded(path, tp2, 0, false), pp2: await sharded(path, pp2) };
  rounds.push(row);
  console.log(
    `round ${i + 1}: decode tok/s single ${row.single.tps.toFixed(2)}, TP 2 ${row.tp2.tps.toFixed(2)} (event-loop all-reduce ${row.tp2EventLoop.tps.toFixed(2)}), PP 2 ${row.pp2.tps.toFixed(2)}; ` +
      `CPU ms/token single ${row.single.cpuMs}, TP 2 ranks ${row.tp2.cpuMs.join(" + ")} (event loop ${row.tp2EventLoop.cpuMs.join(" + ")}), PP 2 stages ${row.pp2.cpuMs.join(" + ")}`,
  );
}
const tpSpeedup = median(rounds.map((r) => r.tp2.tps / r.single.tps));
const tpEventLoopSpeedup = median(rounds.map((r) => r.tp2EventLoop.tps / r.single.tps));
const ppSpeedup = median(rounds.map((r) => r.pp2.tps / r.single.tps));
// Speedup if every rank had a core to itself and the network cost nothing but its CPU time.
const tpCpuBound = median(rounds.map((r) => r.single.cpuMs[0]! / Math.max(...r.tp2.cpuMs)));
console.log(
  `TP 2 / single: ${tpSpeedup.toFixed(2)}× (target ≥ 1.7; CPU-time bound ${tpCpuBound.toFixed(2)}×), PP 2 / single: ${ppSpeedup.toFixed(2)}× (target ≥ 0.9)`,
);

const H = cfg.hiddenSize;
const rtt = await rawRtt(H * 4, 1000);
const arEventLoop = await allReduce(H, 1000);
const ar = await allReduce(H, 1000, "poll");
const arRatio = ar.median / rtt.median;
console.log(
  `${H * 4}-byte raw TCP RTT median ${rtt.median} µs, all-reduce of ${H} floats median ${ar.median} µs busy-polled ` +
    `(${arEventLoop.median} µs through the event loop): ${arRatio.toFixed(2)}× (target ≤ 1.3)`,
);

const delayed: { one_way_latency_us: number; tp2_tps: number; single_tps: number; ratio: number }[] = [];
for (const latencyUs of [5, 50, 300]) {
  const one = (await single(path)).tps;
  const tps = (await sharded(path, tp2, latencyUs)).tps;
  delayed.push({ one_way_latency_us: latencyUs, tp2_tps: r2(tps), single_tps: r2(one), ratio: r2(tps / one) });
  console.log(`TP 2 through the delay proxy at ${latencyUs} µs one-way: ${tps.toFixed(2)} tok/s (${(tps / one).toFixed(2)}× single ${one.toFixed(2)})`);
}

const head = await headMs(path);
const halfLogits = await rawRtt((cfg.vocabSize / 2) * 4, 300);
console.log(
  `lm_head ${head.toFixed(2)} ms/token on one rank; a 2-way vocabulary split would save ~${(head / 2).toFixed(2)} ms and cost a ` +
    `${((cfg.vocabSize / 2) * 4) / 1024} KiB gather (raw RTT ${halfLogits.median} µs)`,
);

const result = {
  ...provenance("sharded decode: single process vs TP 2 vs PP 2 (runner processes, loopback TCP)", ["src", "bench/parallel"]),
  model: { file: basename(path), layers: cfg.numLayers, hidden: H, heads: cfg.numHeads, kv_heads: cfg.numKvHeads, ffn: cfg.intermediateSize, vocab: cfg.vocabSize, quant: "Q4_0" },
  settings: { busy_poll: "TP 2 runs busy-poll decode all-reduces unless marked event_loop", threads_per_process: 1, decode_tokens: TOKENS, rounds: ROUNDS, context: CTX },
  decode_tps: rounds.map((r) => ({ single: r2(r.single.tps), tp2: r2(r.tp2.tps), tp2_event_loop: r2(r.tp2EventLoop.tps), pp2: r2(r.pp2.tps) })),
  cpu_ms_per_token: rounds.map((r) => ({ single: r.single.cpuMs, tp2_ranks: r.tp2.cpuMs, tp2_event_loop_ranks: r.tp2EventLoop.cpuMs, pp2_stages: r.pp2.cpuMs })),
  runner_rss_mib: { tp2: rounds[0]!.tp2.rssMiB, pp2: rounds[0]!.pp2.rssMiB },
  tp2_speedup: r2(tpSpeedup),
  tp2_event_loop_speedup: r2(tpEventLoopSpeedup),
  tp2_cpu_time_bound_speedup: r2(tpCpuBound),
  pp2_speedup: r2(ppSpeedup),
  all_reduce: { bytes: H * 4, raw_tcp_rtt_us: rtt, all_reduce_us: ar, all_reduce_event_loop_us: arEventLoop, ratio: r2(arRatio) },
  tp2_through_delay_proxy: delayed,
  lm_head: { ms_per_token: r2(head), half_vocab_bytes: (cfg.vocabSize / 2) * 4, half_vocab_raw_rtt_us: halfLogits },
  targets: { tp2_speedup: 1.7, all_reduce_ratio: 1.3, pp2_speedup: 0.9 },
  met: { tp2: tpSpeedup >= 1.7, all_reduce: arRatio <= 1.3, pp2: ppSpeedup >= 0.9 },
};
const out = values.out ?? join("bench", "results", `parallel-${result.date.slice(0, 10)}.json`);
mkdirSync(join("bench", "results"), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`wrote ${out}`);
process.exit(0);
