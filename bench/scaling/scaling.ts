// Scaling benchmark (issue 16): one process vs pipeline, tensor and hybrid splits of the synthetic `1b`
// llama (Q4_0), each runner a process with --threads intra-op threads, beside llama.cpp (node-llama-cpp)
// at the same total threads, in the same run; then the chosen splits again over emulated links.
//   1. all-reduce of a decode-sized message among 2, 4, 8 ranks vs a raw TCP round trip (busy-polled);
//   2. decode: every configuration loaded at once, paired rounds (one block each, order rotating; ratios
//      within a round, then the median), as bench/parallel does;
//   3. time to first token for a --prompt-token prompt, paired rounds the same way;
//   4. emulated links: each runner counts as its own machine (the driver shares rank 1's), and every link
//      between machines goes through a delay proxy in a separate process (proxy-host.ts). The proxy's own
//      cost is measured first (round trip through a 0 µs proxy) and subtracted from the latency it is set
//      to; the effective one-way latency measured through it is reported beside the target.
// Usage: node dist/bench/scaling/scaling.js [--model PATH] [--threads 1] [--configs single,tp2,pp2,...]
//          [--llama-threads 1,2] [--rounds 8] [--tokens 16] [--prompt-tokens 128] [--ttft-rounds 3]
//          [--sweep tp2,pp2] [--latencies 5,50,300,2000] [--sweep-rounds 3] [--out FILE] [--notes TEXT]
//   5. the cost model's prediction (src/placement, fed with this run's machine probe and measured links)
//      beside every configuration, and its error (predicted / measured − 1); predict.ts.
//   Configurations: single, tpN, ppN, ppNxtpM. The defaults fit the cores: processes × threads ≤ cores.
// Targets (16-core machine): TP 2 ≥ 1.7×, TP 4 ≥ 3× one process; all-reduce ≤ 1.3× raw round trip.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { openModel } from "../../src/models/open.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { makePlan } from "../../src/placement/shard-plan.js";
import { placementModel, predictDecode } from "../../src/placement/index.js";
import { probeMachine, type ProbeResult } from "../../src/cluster/profile.js";
import { ProxyHost, emulatedLinks } from "./proxies.js";
import { bandwidthFrom, predict, relativeError, type LinkMeasure, type Prediction } from "./predict.js";
import { provenance } from "../provenance.js";
import { median, rotate, round2 as r2 } from "../stats.js";
import { PROMPT, shardedConfig, singleConfig, type Block, type Config } from "../parallel/configs.js";
import { allReduce, rawRtt, type Timings } from "../parallel/probes.js";
import { llamaConfig } from "../llama/llama-config.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "1" },
    configs: { type: "string" },
    "llama-threads": { type: "string" },
    rounds: { type: "string", default: "8" },
    tokens: { type: "string", default: "16" },
    "prompt-tokens": { type: "string", default: "128" },
    "ttft-rounds": { type: "string", default: "3" },
    sweep: { type: "string" },
    latencies: { type: "string", default: "5,50,300,2000" },
    "sweep-rounds": { type: "string", default: "3" },
    out: { type: "string" },
    notes: { type: "string" },
  },
});
const int = (name: string, v: string | undefined, min = 1): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
};
const THREADS = int("threads", values.threads);
const ROUNDS = int("rounds", values.rounds);
const TOKENS = int("tokens", values.tokens);
const PROMPT_TOKENS = int("prompt-tokens", values["prompt-tokens"]);
const TTFT_ROUNDS = int("ttft-rounds", values["ttft-rounds"], 0);
const SWEEP_ROUNDS = int("sweep-rounds", values["sweep-rounds"]);
const LATENCIES = values.latencies!.split(",").filter(Boolean).map((s) => int("latencies", s, 0));
const CORES = os.cpus().length;
const CTX = Math.max(256, PROMPT_TOKENS + TOKENS + 32);
const TTFT_PROMPT = Int32Array.from({ length: PROMPT_TOKENS }, (_, i) => 300 + ((i * 7919) % 30000));

interface Shape {
  name: string;
  pp: number;
  tp: number;
}
function shapeOf(name: string): Shape {
  if (name === "single") return { name, pp: 1, tp: 1 };
  const m = /^(?:pp(\d+))?(?:x?tp(\d+))?$/.exec(name);
  if (!m || (!m[1] && !m[2])) throw new Error(`unknown configuration '${name}' (single, tpN, ppN, ppNxtpM)`);
  return { name, pp: Number(m[1] ?? 1), tp: Number(m[2] ?? 1) };
}
const processes = (s: Shape): number => s.pp * s.tp;
const fits = (s: Shape): boolean => processes(s) * THREADS <= CORES;
const DEFAULT_CONFIGS = ["tp2", "pp2", "tp4", "pp4", "pp2xtp2", "tp8", "pp4xtp2"];
const shapes = [shapeOf("single"), ...(values.configs ?? DEFAULT_CONFIGS.join(",")).split(",").filter((n) => n && n !== "single").map(shapeOf)].filter(
  (s) => values.configs !== undefined || fits(s),
);
const sweep = (values.sweep ?? "tp2,pp2").split(",").filter(Boolean).map(shapeOf);
const llamaThreads = values["llama-threads"]
  ? values["llama-threads"].split(",").map((s) => int("llama-threads", s))
  : [...new Set(shapes.map((s) => processes(s) * THREADS))].filter((t) => t <= CORES).sort((a, b) => a - b);

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

/** Rounds of one decode block per configuration, order rotating; blocks[name][round]. */
async function decodeRounds(configs: Config[], n: number, label: string): Promise<Map<string, Block[]>> {
  const blocks = new Map<string, Block[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < n; r++) {
    for (const c of rotate(configs, r)) blocks.get(c.name)!.push(await c.block(TOKENS));
    const one = tps(blocks.get("single")![r]!);
    console.log(`${label} ${r + 1}/${n} tok/s: ${configs.map((c) => `${c.name} ${tps(blocks.get(c.name)![r]!).toFixed(1)}${c.name === "single" ? "" : ` (${(tps(blocks.get(c.name)![r]!) / one).toFixed(2)}×)`}`).join(", ")}`);
  }
  return blocks;
}

/** Median tok/s and the median of per-round ratios to `ref` (default the single process). */
function decodeSummary(blocks: Map<string, Block[]>, name: string, ref = "single") {
  const bs = blocks.get(name)!;
  const rs = blocks.get(ref)!;
  return {
    median_tps: r2(median(bs.map(tps))),
    ratio_to_single: r2(median(bs.map((b, i) => tps(b) / tps(blocks.get("single")![i]!)))),
    ratio_to_ref: ref === "single" ? undefined : r2(median(bs.map((b, i) => tps(b) / tps(rs[i]!)))),
    tps_per_round: bs.map((b) => r2(tps(b))),
    cpu_ms_per_token: bs[0]!.cpuMs.map((_, i) => r2(median(bs.map((b) => b.cpuMs[i]!)))),
  };
}

async function ttftRounds(configs: Config[], n: number): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < n; r++) {
    for (const c of rotate(configs, r)) out.get(c.name)!.push(await c.ttft!(TTFT_PROMPT));
    console.log(`TTFT ${r + 1}/${n} (${PROMPT_TOKENS} tokens), ms: ${configs.map((c) => `${c.name} ${out.get(c.name)![r]!.toFixed(0)}`).join(", ")}`);
  }
  return out;
}

const RTT_BYTES = 2048 * 4;
const RTT_ITERS = 400;
/** A bulk message for the links' bandwidth (round trip of 1 MiB vs RTT_BYTES on the same path). */
const BULK_BYTES = 2 ** 20;
const BULK_ITERS = 12;

/** The node's machine probe at the runners' thread count, measured now (a fresh cache directory). */
async function probeNow(): Promise<ProbeResult> {
  const dir = mkdtempSync(join(os.tmpdir(), "tessera-scaling-probe-"));
  try {
    const p = await probeMachine(dir, THREADS, 60000);
    if (!p) throw new Error("the machine probe (src/cluster/probe-main.ts) failed");
    return p;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const started = performance.now();
const path = await modelPath();
const src = await openModel(path);
const cfg = src.config;
const pmodel = placementModel(src, basename(path));
await src.close();
const loadStart = os.loadavg()[0]!;
const probeStart = await probeNow();
console.log(`machine probe (${THREADS} thread): decode ${(probeStart.decodeBytesPerSec / 1e9).toFixed(2)} GB/s, MatMul ${probeStart.matmulGflops.toFixed(1)} GFLOP/s`);
const H = cfg.hiddenSize;

// ---- 1. all-reduce vs raw round trip ----
const rtt = await rawRtt(H * 4, 1000, true);
const reduces: Record<string, Timings> = {};
for (const size of [2, 4, 8].filter((k) => k <= CORES)) reduces[`ranks_${size}`] = await allReduce(H, 1000, "poll", size);
const loopSmall = await rawRtt(RTT_BYTES, RTT_ITERS, false);
const loopBulk = await rawRtt(BULK_BYTES, BULK_ITERS, false);
const loopback: LinkMeasure = { rttMs: rtt.median / 1000, bandwidthBytesPerSec: bandwidthFrom(loopSmall.median, RTT_BYTES, loopBulk.median, BULK_BYTES) };
console.log(`loopback link for the cost model: RTT ${rtt.median} µs (busy-polled), ${(loopback.bandwidthBytesPerSec / 1e9).toFixed(2)} GB/s`);
console.log(`${H * 4}-byte busy-polled raw RTT ${rtt.median} µs; all-reduce ${Object.entries(reduces).map(([k, t]) => `${k} ${t.median} µs`).join(", ")}`);

// ---- 2, 3. decode and TTFT, every configuration loaded at once ----
const configs: Config[] = [];
const loadSeconds: Record<string, number> = {};
const timedLoad = async (name: string, load: () => Promise<Config>): Promise<Config> => {
  const t0 = performance.now();
  const c = await load();
  loadSeconds[name] = r2((performance.now() - t0) / 1000);
  console.log(`loaded ${name} in ${loadSeconds[name]} s`);
  return c;
};
for (const s of shapes) {
  configs.push(
    await timedLoad(s.name, () =>
      s.name === "single"
        ? singleConfig(path, CTX, THREADS)
        : shardedConfig({ name: s.name, path, plan: makePlan(cfg, { pp: s.pp, tp: s.tp }), contextLength: CTX, threads: THREADS }),
    ),
  );
}
const llamaNames: string[] = [];
for (const t of llamaThreads) {
  const name = `llama.cpp-${t}t`;
  llamaNames.push(name);
  configs.push(await timedLoad(name, () => llamaConfig({ name, path, threads: t, contextLength: CTX }, PROMPT)));
}
const blocks = await decodeRounds(configs, ROUNDS, "round");
const ttft = TTFT_ROUNDS > 0 ? await ttftRounds(configs, TTFT_ROUNDS) : undefined;

const llamaAt = (threads: number): string | undefined => llamaNames.find((n) => n === `llama.cpp-${threads}t`);
const decode: Record<string, unknown> = {};
for (const c of configs) {
  const s = shapes.find((x) => x.name === c.name);
  const ref = s ? llamaAt(processes(s) * THREADS) : undefined;
  const threads = s ? processes(s) * THREADS : Number(/-(\d+)t$/.exec(c.name)![1]);
  decode[c.name] = { ...decodeSummary(blocks, c.name), processes: s ? processes(s) : 1, threads, vs_llama_cpp_same_threads: ref ? decodeSummary(blocks, c.name, ref).ratio_to_ref : undefined };
}
const ttftSummary = ttft
  ? Object.fromEntries(
      [...ttft].map(([name, ms]) => [name, { median_ms: r2(median(ms)), ratio_to_single: r2(median(ms.map((x, i) => ttft.get("single")![i]! / x))) }]),
    )
  : undefined;

// ---- 4. emulated links: only single and the swept configurations stay loaded ----
const keep = new Set(["single", ...sweep.map((s) => s.name)]);
for (const c of configs.filter((c) => !keep.has(c.name))) await c.close();
const base = configs.filter((c) => keep.has(c.name));
const zero = ProxyHost.start();
const through0 = await rawRtt(RTT_BYTES, RTT_ITERS, false, (p) => zero.open(p, 0));
const direct = await rawRtt(RTT_BYTES, RTT_ITERS, false);
zero.close();
const proxyOneWayUs = Math.max(0, (through0.median - direct.median) / 2);
console.log(`delay proxy's own cost: ${proxyOneWayUs.toFixed(1)} µs one way (RTT ${through0.median} through it vs ${direct.median} µs direct)`);
const emulated = [];
const emulatedShapes: Shape[] = [];
const emulatedLinksUsed: LinkMeasure[] = [];
for (const targetUs of LATENCIES) {
  const setUs = Math.max(0, targetUs - proxyOneWayUs);
  const probe = ProxyHost.start();
  const via = await rawRtt(RTT_BYTES, RTT_ITERS, false, (p) => probe.open(p, setUs));
  const viaBulk = await rawRtt(BULK_BYTES, BULK_ITERS, false, (p) => probe.open(p, setUs));
  probe.close();
  const effectiveUs = r2(Math.max(0, (via.median - direct.median) / 2));
  // the runners' all-reduce busy-polls: the loopback floor plus what the proxy adds each way
  const link: LinkMeasure = { rttMs: (rtt.median + 2 * effectiveUs) / 1000, bandwidthBytesPerSec: bandwidthFrom(via.median, RTT_BYTES, viaBulk.median, BULK_BYTES) };
  for (const s of sweep) {
    if (!fits(s) && values.sweep === undefined) continue;
    const host = ProxyHost.start();
    const name = `${s.name}@${targetUs}us`;
    const c = await timedLoad(name, () =>
      shardedConfig({ name, path, plan: makePlan(cfg, { pp: s.pp, tp: s.tp }), contextLength: CTX, threads: THREADS, routeLink: emulatedLinks(host, setUs) }),
    );
    const b = await decodeRounds([...base, c], SWEEP_ROUNDS, `${name} round`);
    const t = TTFT_ROUNDS > 0 ? await ttftRounds([base[0]!, c], 1) : undefined;
    const lateness = await host.lateness();
    await c.close();
    host.close();
    emulated.push({
      config: s.name,
      target_one_way_us: targetUs,
      proxy_set_us: r2(setUs),
      effective_one_way_us: effectiveUs,
      ...decodeSummary(b, name),
      single_median_tps: decodeSummary(b, "single").median_tps,
      ratio_to_direct: b.has(s.name) ? decodeSummary(b, name, s.name).ratio_to_ref : undefined,
      ttft_ms: t ? r2(t.get(name)![0]!) : undefined,
      proxy_lateness: lateness,
      link_for_cost_model: { rtt_ms: r2(link.rttMs * 1000) / 1000, bandwidth_bytes_per_sec: Math.round(link.bandwidthBytesPerSec) },
      predicted: undefined as Prediction | undefined,
    });
    emulatedShapes.push(s);
    emulatedLinksUsed.push(link);
  }
}
for (const c of base) await c.close();

// ---- 5. the cost model beside every measured configuration ----
const probeEnd = await probeNow();
const loadEnd = os.loadavg()[0]!;
// The probe is a best-of-windows figure; taken before and after, their mean stands for the run.
const probe: ProbeResult = {
  decodeBytesPerSec: (probeStart.decodeBytesPerSec + probeEnd.decodeBytesPerSec) / 2,
  matmulGflops: (probeStart.matmulGflops + probeEnd.matmulGflops) / 2,
  providers: probeStart.providers,
};
const predictShape = (s: Shape, link: LinkMeasure): Prediction => predict(pmodel, probe, s.pp, s.tp, link, CTX, PROMPT_TOKENS);
// The same model's split costs from the single process measured in the same rounds (predictDecode):
// it leaves out the probe, so its error is what the model gets wrong about splitting alone.
const fromSingle = (s: Shape, link: LinkMeasure, singleTps: number): number =>
  r2(predictDecode({ singleMsPerToken: 1000 / singleTps, layers: cfg.numLayers, hiddenSize: H, vocabSize: cfg.vocabSize, pp: s.pp, tp: s.tp, rttMs: link.rttMs, bandwidthBytesPerSec: link.bandwidthBytesPerSec }).decodeTps);
const singleTps = (decode.single as { median_tps: number }).median_tps;
for (const s of shapes) {
  const d = decode[s.name] as { median_tps: number };
  const p = predictShape(s, loopback);
  const t = ttftSummary?.[s.name]?.median_ms;
  const calibrated = fromSingle(s, loopback, singleTps);
  Object.assign(decode[s.name] as object, {
    predicted: p,
    error: { decode_tps: relativeError(p.decode_tps, d.median_tps), ttft_ms: relativeError(p.ttft_ms, t) },
    predicted_from_single: { decode_tps: calibrated, error: relativeError(calibrated, d.median_tps) },
  });
}
emulated.forEach((e, i) => {
  const p = predictShape(emulatedShapes[i]!, emulatedLinksUsed[i]!);
  const calibrated = fromSingle(emulatedShapes[i]!, emulatedLinksUsed[i]!, e.single_median_tps);
  Object.assign(e, {
    predicted: p,
    error: { decode_tps: relativeError(p.decode_tps, e.median_tps), ttft_ms: relativeError(p.ttft_ms, e.ttft_ms) },
    predicted_from_single: { decode_tps: calibrated, error: relativeError(calibrated, e.median_tps) },
  });
});

const ratioOf = (name: string): number | undefined => (decode[name] as { ratio_to_single: number } | undefined)?.ratio_to_single;
const arRatio = (k: string): number | undefined => (reduces[k] ? r2(reduces[k]!.median / rtt.median) : undefined);
const targets = { tp2: 1.7, tp4: 3, all_reduce: 1.3 };
const result = {
  ...provenance("scaling: one process vs PP / TP / hybrid runner processes and llama.cpp, loopback and emulated links", ["src", "bench/scaling", "bench/parallel"]),
  model: { file: basename(path), layers: cfg.numLayers, hidden: H, heads: cfg.numHeads, kv_heads: cfg.numKvHeads, ffn: cfg.intermediateSize, vocab: cfg.vocabSize, quant: "Q4_0" },
  settings: {
    threads_per_process: THREADS,
    context: CTX,
    decode_prompt_tokens: PROMPT.length,
    block_tokens: TOKENS,
    rounds: ROUNDS,
    ttft_prompt_tokens: PROMPT_TOKENS,
    ttft_rounds: TTFT_ROUNDS,
    sweep_rounds: SWEEP_ROUNDS,
    configurations: configs.map((c) => c.name),
    pairing: "all configurations loaded at once; one block each per round, order rotating; ratios per round, then the median",
    emulated_links: "each runner its own machine, the driver on world rank 1's; links between machines through delay proxies in a separate process, set to the target minus the proxy's own measured one-way cost",
    load_seconds: loadSeconds,
  },
  all_reduce: { bytes: H * 4, raw_rtt_busy_polled_us: rtt, busy_polled_us: reduces, ratio_to_raw_rtt: Object.fromEntries(Object.keys(reduces).map((k) => [k, arRatio(k)])) },
  decode,
  ttft: ttftSummary,
  proxy: { own_one_way_us: r2(proxyOneWayUs), rtt_direct_us: direct, rtt_through_0us_proxy_us: through0 },
  emulated,
  cost_model: {
    source: "src/placement place(): each runner a node with this run's machine probe (src/cluster/profile.ts, at the runners' thread count; mean of a probe before and after the run), links as measured (loopback: busy-polled RTT and bulk bandwidth; emulated: that RTT plus the proxy's measured one-way latency twice, bulk bandwidth through the proxy)",
    probe_start: probeStart,
    probe_end: probeEnd,
    probe_used: probe,
    loopback_link: { rtt_ms: loopback.rttMs, bandwidth_bytes_per_sec: Math.round(loopback.bandwidthBytesPerSec) },
    error: "predicted / measured − 1 per configuration (decode tok/s and TTFT); target within ±20 %",
    predicted_from_single: "predictDecode (src/placement/cost.ts): the same cost model fed the single process's decode speed measured in the same rounds instead of the probe, so only the split costs are predicted",
  },
  load: { load_average_1m_start: r2(loadStart), load_average_1m_end: r2(loadEnd), cores: CORES },
  notes: values.notes ?? "",
  targets,
  met: {
    tp2: ratioOf("tp2") === undefined ? "not measured" : ratioOf("tp2")! >= targets.tp2,
    tp4: ratioOf("tp4") === undefined ? "not measured" : ratioOf("tp4")! >= targets.tp4,
    all_reduce: arRatio("ranks_2") === undefined ? "not measured" : arRatio("ranks_2")! <= targets.all_reduce,
  },
  run_seconds: Math.round((performance.now() - started) / 1000),
};

console.log(`\ndecode, median of ${ROUNDS} paired rounds of ${TOKENS} tokens, ${THREADS} thread(s) per process:`);
for (const c of configs) {
  const d = decode[c.name] as ReturnType<typeof decodeSummary> & { vs_llama_cpp_same_threads?: number };
  const vs = d.vs_llama_cpp_same_threads === undefined ? "" : `, ${d.vs_llama_cpp_same_threads}× llama.cpp at the same threads`;
  const t = ttftSummary?.[c.name] ? `; TTFT ${ttftSummary[c.name]!.median_ms} ms` : "";
  const p = (d as { predicted?: Prediction }).predicted;
  const pr = p ? `; predicted ${p.decode_tps} tok/s, TTFT ${p.ttft_ms} ms` : "";
  console.log(`  ${c.name.padEnd(16)} ${d.median_tps.toFixed(2).padStart(7)} tok/s  ${d.ratio_to_single.toFixed(2)}× one process${vs}${t}${pr}`);
}
for (const e of emulated) {
  console.log(`  ${e.config} at ${e.target_one_way_us} µs (effective ${e.effective_one_way_us}): ${e.median_tps} tok/s, ${e.ratio_to_single}× one process, ${e.ratio_to_direct ?? "-"}× direct; predicted ${e.predicted?.decode_tps ?? "-"} tok/s`);
}
console.log(`targets: TP 2 ${String(result.met.tp2)} (${ratioOf("tp2") ?? "-"}×), TP 4 ${String(result.met.tp4)} (${ratioOf("tp4") ?? "-"}×), all-reduce ${String(result.met.all_reduce)} (${arRatio("ranks_2") ?? "-"}× raw RTT)`);
const out = values.out ?? join("bench", "results", `scaling-${result.date.slice(0, 10)}-${CORES}cores.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`wrote ${out} (${result.run_seconds} s)`);
process.exit(0);
