// Sharded decode benchmark (issue 4): the `1b` synthetic llama, Q4_0, one thread per process, loopback.
// This VM's speed drifts by tens of percent over minutes, so every configuration is loaded once and the
// rounds alternate them in short blocks; each ratio is taken within a round, then the median over rounds.
//   1. decode: one process (in this process) vs TP 2, PP 2 and TP 2 with each runner pinned to its own
//      core (taskset), plus the compute-only TP 2 ceiling: the two ranks' graphs in two processes at once
//      with no network (tp-compute.ts children, pinned to cores 0/1), and rank 0 alone. A block starts
//      from an empty cache: a 16-token prompt, 2 untimed steps, then --tokens timed ones; the order of
//      the configurations rotates every round;
//   2. all-reduce of a decode-sized message (hidden × 4 bytes) vs a raw TCP round trip of the same
//      size (bench/transport's worker processes), measured before the rounds;
//   3. TP 2 with its tensor-group links through the delay proxy at 5, 50 and 300 µs one-way, each loaded
//      after the main rounds and alternated with the single process and direct TP 2;
//   4. lm_head's time per token vs one round trip of half the logits (what the vocabulary split buys);
//   5. prefill of 256 tokens: one process vs PP 2 pipelined (micro-batches on both stages at once) vs
//      PP 2 with the input as one step (prefill.ts), paired rounds;
//   6. a decomposition of the TP 2 token (compute + all-reduces + driver and the rest) and "limits"
//      sentences computed from these numbers.
// Each block also records how much CPU processes outside the benchmark took meanwhile (/proc/stat);
// the ratios over the rounds that no one else disturbed are reported beside the headline ones.
// Usage: node dist/bench/parallel/parallel.js [--model PATH] [--tokens 24] [--rounds 40] [--proxy-rounds 5]
//          [--configs single,tp2,pp2,tp2-pinned,tp2-compute,rank0-compute,proxy,prefill] [--quick] [--out FILE]
//   (or npx tsx bench/parallel/parallel.ts). --configs may add tp2-event-loop (TESSERA_BUSY_POLL=0);
//   --quick is 2 rounds of 8 tokens and 1 proxy round (~2 minutes). Without --model it writes (once) or
//   reuses $TMPDIR/tessera-bench-models/1b-llama-q4_0.gguf. Writes bench/results/parallel-<date>.json.
// Targets: TP 2 ≥ 1.7× one process, all-reduce ≤ 1.3× raw RTT, PP 2 ≥ 0.9× one process.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { openModel } from "../../src/models/open.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { provenance } from "../provenance.js";
import { cpuSeconds, hasTaskset, systemBusySeconds } from "./children.js";
import { ComputeRanks } from "./compute-ranks.js";
import { PROMPT, computeConfig, shardedConfig, singleConfig, type Block, type Config } from "./configs.js";
import { decompose, limits, type Measured, type Timed } from "./limits.js";
import { allReduce, headMs, rawRtt } from "./probes.js";
import { prefillRounds } from "./prefill.js";
import { median, rotate, round2 as r2 } from "../stats.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string" },
    rounds: { type: "string" },
    "proxy-rounds": { type: "string" },
    configs: { type: "string" },
    quick: { type: "boolean" },
    out: { type: "string" },
  },
});
const QUICK = values.quick === true;
const TOKENS = Number(values.tokens ?? (QUICK ? 8 : 24));
const ROUNDS = Number(values.rounds ?? (QUICK ? 2 : 40));
const PROXY_ROUNDS = Number(values["proxy-rounds"] ?? (QUICK ? 1 : 5));
const LATENCIES_US = [5, 50, 300];
const CTX = 256;
/** A round is "quiet" when no other process took this many cores' worth of CPU during any of its blocks. */
const QUIET_CORES = 0.1;
const KNOWN = ["single", "tp2", "pp2", "tp2-pinned", "tp2-event-loop", "tp2-compute", "rank0-compute", "proxy", "prefill"];
const WANTED = new Set(["single", ...(values.configs ?? "tp2,pp2,tp2-pinned,tp2-compute,rank0-compute,proxy,prefill").split(",").map((s) => s.trim())]);
const PREFILL_TOKENS = 256;
for (const w of WANTED) if (!KNOWN.includes(w)) throw new Error(`unknown configuration '${w}' (known: ${KNOWN.join(", ")})`);
for (const [k, v] of [["--tokens", TOKENS], ["--rounds", ROUNDS], ["--proxy-rounds", PROXY_ROUNDS]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer`);
}
if (PROMPT.length + 2 + TOKENS > CTX) throw new Error(`--tokens ${TOKENS} does not fit the ${CTX}-token context after the prompt`);

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

const tps = (b: Block): number => 1000 / b.msPerToken;

/** This benchmark's processes' CPU seconds (this one, the configurations' runners and compute ranks). */
const ownCpuSeconds = (configs: Config[]): number =>
  [process.pid, ...configs.flatMap((c) => c.pids)].reduce((a, pid) => a + cpuSeconds(pid), 0);

/** A block, with how many cores' worth of CPU other processes on the machine took meanwhile. */
async function timedBlock(c: Config, configs: Config[]): Promise<Block> {
  const busy0 = systemBusySeconds();
  const own0 = ownCpuSeconds(configs);
  const t0 = performance.now();
  const b = await c.block(TOKENS);
  const busy1 = systemBusySeconds();
  if (busy0 !== undefined && busy1 !== undefined) {
    b.otherCores = Math.max(0, (busy1 - busy0 - (ownCpuSeconds(configs) - own0)) / ((performance.now() - t0) / 1000));
  }
  return b;
}

/** Rounds of one block per configuration, order rotating; blocks[name][round]. */
async function rounds(configs: Config[], n: number, label: string): Promise<Map<string, Block[]>> {
  const blocks = new Map<string, Block[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < n; r++) {
    for (const c of rotate(configs, r)) blocks.get(c.name)!.push(await timedBlock(c, configs));
    const one = tps(blocks.get("single")![r]!);
    const row = configs.map((c) => {
      const t = tps(blocks.get(c.name)![r]!);
      return c.name === "single" ? `single ${t.toFixed(1)}` : `${c.name} ${t.toFixed(1)} (${(t / one).toFixed(2)}×)`;
    });
    const other = roundLoad(blocks, r);
    console.log(`${label} ${r + 1}/${n} tok/s: ${row.join(", ")}${other === undefined ? "" : `; other load ≤ ${other.toFixed(2)} cores`}`);
  }
  return blocks;
}

/** The most CPU (in cores) other processes took during any block of round r. */
function roundLoad(blocks: Map<string, Block[]>, r: number): number | undefined {
  const xs = [...blocks.values()].map((bs) => bs[r]!.otherCores);
  return xs.some((x) => x === undefined) ? undefined : Math.max(...(xs as number[]));
}

/** The same blocks, only the rounds in which other processes took less than QUIET_CORES. */
function quietRounds(blocks: Map<string, Block[]>): Map<string, Block[]> {
  const n = blocks.get("single")!.length;
  const keep = Array.from({ length: n }, (_, r) => r).filter((r) => (roundLoad(blocks, r) ?? Infinity) < QUIET_CORES);
  return new Map([...blocks].map(([k, bs]) => [k, keep.map((r) => bs[r]!)]));
}

/** Median tok/s, ms/token and paired ratio to the single process of the same round. */
function timed(blocks: Map<string, Block[]>, name: string): Timed & { tps: number } {
  const bs = blocks.get(name)!;
  const single = blocks.get("single")!;
  return { tps: median(bs.map(tps)), ms: median(bs.map((b) => b.msPerToken)), ratio: median(bs.map((b, i) => tps(b) / tps(single[i]!))) };
}

function summary(blocks: Map<string, Block[]>, c: Config) {
  const bs = blocks.get(c.name)!;
  const t = timed(blocks, c.name);
  const perProcess = (pick: (b: Block) => number[] | undefined): number[] | undefined =>
    pick(bs[0]!) ? pick(bs[0]!)!.map((_, i) => r2(median(bs.map((b) => pick(b)![i]!)))) : undefined;
  return {
    median_tps: r2(t.tps),
    median_ms_per_token: r2(t.ms),
    ratio_to_single: r2(t.ratio),
    tps_per_round: bs.map((b) => r2(tps(b))),
    cpu_ms_per_token: perProcess((b) => b.cpuMs),
    driver_cpu_ms_per_token: bs[0]!.driverCpuMs === undefined ? undefined : r2(median(bs.map((b) => b.driverCpuMs!))),
    lm_head_ms_per_token: perProcess((b) => b.headMs),
    rss_mib: c.rssMiB,
    other_load_cores_median: bs[0]!.otherCores === undefined ? undefined : r2(median(bs.map((b) => b.otherCores!))),
  };
}

const started = performance.now();
const path = await modelPath();
const src = await openModel(path);
const cfg = src.config;
await src.close();
const H = cfg.hiddenSize;
const tp2 = makePlan(cfg, { pp: 1, tp: 2 });
const pp2 = makePlan(cfg, { pp: 2, tp: 1 });
const taskset = hasTaskset();
const skipped: Record<string, string> = {};

// ---- load every configuration once ----
const configs: Config[] = [await singleConfig(path, CTX)];
let computeRanks: ComputeRanks | undefined;
for (const name of KNOWN.filter((k) => WANTED.has(k))) {
  const t0 = performance.now();
  if (name === "tp2") configs.push(await shardedConfig({ name, path, plan: tp2, contextLength: CTX }));
  else if (name === "pp2") configs.push(await shardedConfig({ name, path, plan: pp2, contextLength: CTX }));
  else if (name === "tp2-event-loop") configs.push(await shardedConfig({ name, path, plan: tp2, contextLength: CTX, busyPoll: false }));
  else if (name === "tp2-pinned") {
    if (!taskset) skipped[name] = "skipped: no taskset";
    else configs.push(await shardedConfig({ name, path, plan: tp2, contextLength: CTX, pinned: true }));
  } else if (name === "tp2-compute" || name === "rank0-compute") {
    computeRanks ??= await ComputeRanks.start(path, CTX, true);
    configs.push(computeConfig(name, computeRanks, name === "tp2-compute" ? [0, 1] : [0]));
  } else continue;
  console.log(`loaded ${name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
if (computeRanks && !computeRanks.pinned) skipped["compute pinning"] = "skipped: no taskset (compute ranks run unpinned)";

// ---- all-reduce vs raw TCP round trip, while the loaded configurations sit idle ----
const iters = QUICK ? 300 : 1000;
// like for like: the busy-polled all-reduce against a busy-polled raw ping, the event-loop one against an event-loop ping
const rtt = await rawRtt(H * 4, iters, true);
const rttEventLoop = await rawRtt(H * 4, iters);
const arEventLoop = await allReduce(H, iters);
const ar = await allReduce(H, iters, "poll");
console.log(
  `${H * 4}-byte messages, medians: busy-polled raw TCP RTT ${rtt.median} µs, all-reduce ${ar.median} µs; through the event loop raw RTT ${rttEventLoop.median} µs, all-reduce ${arEventLoop.median} µs`,
);

// ---- paired rounds ----
const blocks = await rounds(configs, ROUNDS, "round");
const decode: Record<string, ReturnType<typeof summary>> = {};
for (const c of configs) decode[c.name] = summary(blocks, c);
const has = (name: string): boolean => blocks.has(name);
// For the limits, every configuration's ms per token is the median single-process ms divided by its
// paired ratio: then sums and differences agree with the headline ratios (medians of ms would not).
const singleMs = timed(blocks, "single").ms;
const pick = (name: string): Timed | undefined => {
  if (!has(name)) return undefined;
  const t = timed(blocks, name);
  return { ratio: t.ratio, ms: name === "single" ? singleMs : singleMs / t.ratio };
};

// ---- delay proxy: one configuration at a time, alternated with single and direct TP 2 ----
const keep = new Set(["single", "tp2"]);
for (const c of configs.filter((c) => !keep.has(c.name))) await c.close();
const base = configs.filter((c) => keep.has(c.name));
const delayed: { one_way_latency_us: number; tp2_tps: number; tp2_direct_tps?: number; single_tps: number; ratio_to_single: number; ratio_to_direct?: number }[] = [];
if (WANTED.has("proxy")) {
  for (const latencyUs of LATENCIES_US) {
    const name = `tp2-proxy-${latencyUs}us`;
    const c = await shardedConfig({ name, path, plan: tp2, contextLength: CTX, latencyUs });
    const b = await rounds([...base, c], PROXY_ROUNDS, `proxy ${latencyUs} µs round`);
    await c.close();
    const t = timed(b, name);
    const direct = b.has("tp2") ? timed(b, "tp2") : undefined;
    delayed.push({
      one_way_latency_us: latencyUs,
      tp2_tps: r2(t.tps),
      tp2_direct_tps: direct && r2(direct.tps),
      single_tps: r2(timed(b, "single").tps),
      ratio_to_single: r2(t.ratio),
      ratio_to_direct: direct && r2(median(b.get(name)!.map((x, i) => tps(x) / tps(b.get("tp2")![i]!)))),
    });
  }
}
for (const c of base) await c.close();

// ---- prefill through a pipeline ----
const prefill = WANTED.has("prefill") ? await prefillRounds(path, PREFILL_TOKENS, QUICK ? 2 : 8, console.log) : undefined;

// ---- lm_head: what the vocabulary split saves vs what gathering the halves costs ----
const head = await headMs(path);
const halfLogits = await rawRtt((cfg.vocabSize / 2) * 4, QUICK ? 100 : 300);

const targets = { tp2: 1.7, pp2: 0.9, allReduce: 1.3 };
const compute = pick("tp2-compute");
const tp2Med = pick("tp2");
const measured: Measured = {
  layers: cfg.numLayers,
  single: pick("single")!,
  tp2: tp2Med && { ...tp2Med, driverCpuMs: decode["tp2"]!.driver_cpu_ms_per_token! },
  tp2Pinned: has("tp2-pinned") ? { ...pick("tp2-pinned")!, driverCpuMs: decode["tp2-pinned"]!.driver_cpu_ms_per_token! } : undefined,
  pp2: pick("pp2"),
  computePair: compute && { ...compute, pinned: computeRanks?.pinned ?? false, headMs: Math.max(...decode["tp2-compute"]!.lm_head_ms_per_token!) },
  computeAlone: pick("rank0-compute"),
  allReduceUs: ar.median,
  rawRttUs: rtt.median,
  logitsRttUs: halfLogits.median,
  delayed: delayed.filter((d) => d.ratio_to_direct).map((d) => ({ latencyUs: d.one_way_latency_us, ratioToDirect: d.ratio_to_direct! })),
  targets,
};
const limitLines = limits(measured);
const arRatio = ar.median / rtt.median;
const ratio = (name: string): number | undefined => (has(name) ? r2(timed(blocks, name).ratio) : undefined);
// Rounds no other process disturbed: on a busy machine these are the ones to read.
const quiet = quietRounds(blocks);
const quietCount = quiet.get("single")!.length;
const quietRatios = Object.fromEntries(
  quietCount ? configs.filter((c) => c.name !== "single").map((c) => [c.name, r2(timed(quiet, c.name).ratio)]) : [],
) as Record<string, number>;

const result = {
  ...provenance("sharded decode: single process vs TP 2 vs PP 2 (runner processes, loopback TCP), paired rounds", ["src", "bench/parallel"]),
  model: { file: basename(path), layers: cfg.numLayers, hidden: H, heads: cfg.numHeads, kv_heads: cfg.numKvHeads, ffn: cfg.intermediateSize, vocab: cfg.vocabSize, quant: "Q4_0" },
  settings: {
    threads_per_process: 1,
    context: CTX,
    prompt_tokens: PROMPT.length,
    untimed_steps: 2,
    block_tokens: TOKENS,
    rounds: ROUNDS,
    proxy_rounds: PROXY_ROUNDS,
    configurations: configs.map((c) => c.name),
    pairing: "all configurations loaded at once; one block each per round, order rotating; ratios per round, then the median",
    busy_poll: "TP runners busy-poll decode all-reduces except tp2-event-loop",
    ms_in_limits_and_decomposition: "median single-process ms per token ÷ the configuration's paired ratio",
    other_load: "cores' worth of CPU taken by processes outside this benchmark during a block (/proc/stat minus our processes)",
    pinning: taskset ? "taskset -a -p -c N: runner / compute rank i on core i" : "skipped: no taskset",
    skipped,
  },
  decode,
  tp2_speedup: ratio("tp2"),
  tp2_pinned_speedup: ratio("tp2-pinned"),
  tp2_event_loop_speedup: ratio("tp2-event-loop"),
  pp2_speedup: ratio("pp2"),
  tp2_compute_ceiling: ratio("tp2-compute"),
  rank0_alone_ratio: ratio("rank0-compute"),
  tp2_decomposition_ms: decompose(measured),
  quiet_rounds: {
    threshold_other_load_cores: QUIET_CORES,
    rounds: quietCount,
    of: ROUNDS,
    single_tps: quietCount ? r2(timed(quiet, "single").tps) : undefined,
    ratio_to_single: quietRatios,
  },
  all_reduce: {
    bytes: H * 4,
    raw_tcp_rtt_us: rtt,
    all_reduce_us: ar,
    ratio: r2(arRatio),
    raw_tcp_rtt_event_loop_us: rttEventLoop,
    all_reduce_event_loop_us: arEventLoop,
    event_loop_ratio: r2(arEventLoop.median / rttEventLoop.median),
    note: "both ends busy-poll in the first pair (as decode all-reduces do); both wait on the event loop in the second",
  },
  tp2_through_delay_proxy: delayed,
  prefill,
  lm_head: { ms_per_token: r2(head), half_vocab_bytes: (cfg.vocabSize / 2) * 4, half_vocab_raw_rtt_us: halfLogits },
  targets: { tp2_speedup: targets.tp2, all_reduce_ratio: targets.allReduce, pp2_speedup: targets.pp2 },
  met: {
    tp2: tp2Med ? tp2Med.ratio >= targets.tp2 : undefined,
    all_reduce: arRatio <= targets.allReduce,
    pp2: has("pp2") ? timed(blocks, "pp2").ratio >= targets.pp2 : undefined,
  },
  limits: limitLines,
  run_seconds: Math.round((performance.now() - started) / 1000),
};

// ---- report ----
console.log(`\nmedian over ${ROUNDS} rounds of ${TOKENS} tokens (ratio: paired with the single process of the same round)`);
for (const c of configs) {
  const s = decode[c.name]!;
  const driver = s.driver_cpu_ms_per_token === undefined ? "" : `, driver ${s.driver_cpu_ms_per_token}`;
  const heads = s.lm_head_ms_per_token ? ` (lm_head ${s.lm_head_ms_per_token.join(" + ")})` : "";
  console.log(`  ${c.name.padEnd(14)} ${s.median_tps.toFixed(2).padStart(6)} tok/s  ${s.ratio_to_single.toFixed(2)}×  CPU ms/token ${s.cpu_ms_per_token!.join(" + ")}${heads}${driver}`);
}
for (const [k, v] of Object.entries(skipped)) console.log(`  ${k}: ${v}`);
console.log(
  `quiet rounds (other processes < ${QUIET_CORES} core in every block): ${quietCount}/${ROUNDS}` +
    (quietCount ? `: ${Object.entries(quietRatios).map(([k, v]) => `${k} ${v.toFixed(2)}×`).join(", ")}` : ""),
);
const vs = (x: number | undefined, t: string): string => (x === undefined ? "not run" : `${x.toFixed(2)}× (target ${t})`);
console.log(`TP 2 ${vs(ratio("tp2"), "≥ 1.7")}, pinned ${vs(ratio("tp2-pinned"), "≥ 1.7")}; PP 2 ${vs(ratio("pp2"), "≥ 0.9")}; all-reduce ${vs(r2(arRatio), "≤ 1.3")} raw RTT`);
console.log(`compute-only TP 2 ceiling ${vs(ratio("tp2-compute"), "≥ 1.7")}, rank 0 alone ${ratio("rank0-compute")?.toFixed(2) ?? "not run"}×`);
for (const d of delayed) {
  console.log(`TP 2 through the delay proxy at ${d.one_way_latency_us} µs one-way: ${d.tp2_tps} tok/s, ${d.ratio_to_single}× single, ${d.ratio_to_direct ?? "-"}× direct TP 2`);
}
if (prefill) {
  console.log(
    `prefill ${prefill.prompt_tokens} tokens: PP 2 pipelined (micro-batches of ${prefill.micro_batch}) ${prefill.pp2_pipelined_ratio}× one process, ` +
      `as one step ${prefill.pp2_whole_ratio}× (${prefill.pp2_pipelined_tps} / ${prefill.pp2_whole_tps} / ${prefill.single_tps} tok/s)`,
  );
}
console.log(
  `lm_head ${head.toFixed(2)} ms/token on one rank; the 2-way vocabulary split saves ~${(head / 2).toFixed(2)} ms and costs a ` +
    `${((cfg.vocabSize / 2) * 4) / 1024} KiB gather (raw RTT ${halfLogits.median} µs)`,
);
console.log("\nlimits:\n  " + limitLines.join("\n  "));
const out = values.out ?? join("bench", "results", `parallel-${result.date.slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`wrote ${out} (${result.run_seconds} s)`);
process.exit(0);
