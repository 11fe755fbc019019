// Regenerates the measured part of docs/benchmarks.md (between its "generated" markers) and the SVG plots
// under docs/benchmarks/ from the newest bench/results/scaling-*.json of each machine size.
//   node dist/bench/report/report.js [--results bench/results] [--docs docs]
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { lineChart, type Series } from "./svg.js";
import { crossover, signChange, sweepOf, type DecodeRow, type EmulatedRow, type ScalingResult } from "./scaling-result.js";
import { predictDecode } from "../../src/placement/index.js";

const { values } = parseArgs({ options: { results: { type: "string", default: join("bench", "results") }, docs: { type: "string", default: "docs" } } });
const BEGIN = "<!-- generated:begin (bench/report/report.ts; do not edit by hand) -->";
const END = "<!-- generated:end -->";

/** The newest scaling result per core count. */
function newestPerMachine(dir: string): ScalingResult[] {
  const byCores = new Map<number, ScalingResult>();
  for (const f of readdirSync(dir).filter((n) => /^scaling-.*\.json$/.test(n)).sort()) {
    const r = JSON.parse(readFileSync(join(dir, f), "utf8")) as ScalingResult;
    r.file = f;
    const prev = byCores.get(r.machine.cores);
    if (!prev || prev.date < r.date) byCores.set(r.machine.cores, r);
  }
  return [...byCores.values()].sort((a, b) => a.machine.cores - b.machine.cores);
}

const cell = (v: number | undefined, suffix = ""): string => (v === undefined || Number.isNaN(v) ? "—" : `${v}${suffix}`);
const TARGET = 0.2;
/** "tp2" → "TP 2", "pp2xtp2" → "PP 2 × TP 2". */
const shapeName = (c: string): string => c.replace(/x/g, " × ").replace(/(tp|pp)(\d+)/g, (_, k: string, n: string) => `${k.toUpperCase()} ${n}`);
const pct = (e: number | undefined): string => (e === undefined || Number.isNaN(e) ? "—" : `${e >= 0 ? "+" : "−"}${Math.round(Math.abs(e) * 100)} %`);
/** "value (error)", the error in bold when it misses the ±20 % target. */
const vsMeasured = (v: number | undefined, e: number | undefined): string => {
  if (v === undefined) return "—";
  if (e === undefined) return `${v}`;
  return Math.abs(e) <= TARGET ? `${v} (${pct(e)})` : `${v} (**${pct(e)}**)`;
};
const predictedCells = (p: DecodeRow | EmulatedRow): string =>
  `${vsMeasured(p.predicted?.decode_tps, p.error?.decode_tps)} | ${vsMeasured(p.predicted?.ttft_ms, p.error?.ttft_ms)} | ${vsMeasured(p.predicted_from_single?.decode_tps, p.predicted_from_single?.error)}`;
const PREDICTED_HEAD = "predicted tok/s (error) | predicted TTFT ms (error) | tok/s predicted from one process (error)";

function decodeTable(r: ScalingResult): string[] {
  const rows = [`| configuration | processes | threads | decode tok/s | × one process | × llama.cpp, same threads | TTFT ms | ${PREDICTED_HEAD} |`, "|---|---|---|---|---|---|---|---|---|---|"];
  for (const [name, d] of Object.entries(r.decode)) {
    rows.push(`| ${name} | ${cell(d.processes)} | ${cell(d.threads)} | ${d.median_tps} | ${d.ratio_to_single} | ${cell(d.vs_llama_cpp_same_threads)} | ${cell(r.ttft?.[name]?.median_ms)} | ${predictedCells(d)} |`);
  }
  return rows;
}

function emulatedTable(r: ScalingResult): string[] {
  if (!r.emulated.length) return [];
  const rows = [`| configuration | one-way latency: target (measured) µs | decode tok/s | × one process | × same split on loopback | TTFT ms | ${PREDICTED_HEAD} |`, "|---|---|---|---|---|---|---|---|---|"];
  for (const e of r.emulated) {
    rows.push(`| ${e.config} | ${e.target_one_way_us} (${e.effective_one_way_us}) | ${e.median_tps} | ${e.ratio_to_single} | ${cell(e.ratio_to_direct)} | ${cell(e.ttft_ms)} | ${predictedCells(e)} |`);
  }
  return rows;
}

/** How many predictions of one kind land within ±20 %, and the worst miss. */
function errorSummary(what: string, errs: [string, number | undefined][]): string | undefined {
  const known = errs.filter((x): x is [string, number] => x[1] !== undefined && !Number.isNaN(x[1]));
  if (!known.length) return undefined;
  const within = known.filter(([, e]) => Math.abs(e) <= TARGET).length;
  const [worstName, worstErr] = known.reduce((w, x) => (Math.abs(x[1]) > Math.abs(w[1]) ? x : w));
  const mean = known.reduce((a, [, e]) => a + e, 0) / known.length;
  return `${what}: ${within} of ${known.length} within ±20 %; mean error ${pct(mean)}, worst ${worstName} ${pct(worstErr)}.`;
}

function costModelLines(r: ScalingResult): string[] {
  const rows: [string, DecodeRow | EmulatedRow][] = [
    ...Object.entries(r.decode).filter(([, d]) => d.predicted),
    ...r.emulated.map((e): [string, EmulatedRow] => [`${e.config}@${e.target_one_way_us}µs`, e]),
  ];
  if (!rows.length) return [];
  const lines = [
    errorSummary("Decode tok/s predicted from the machine probe", rows.map(([n, d]) => [n, d.error?.decode_tps])),
    errorSummary("TTFT predicted from the machine probe", rows.map(([n, d]) => [n, d.error?.ttft_ms])),
    ...[
      ["pipeline", /^pp\d+(@|$)/],
      ["tensor parallel", /^tp\d+(@|$)/],
      ["hybrid", /^pp\d+xtp\d+(@|$)/],
    ].map(([what, re]) => errorSummary(`Decode tok/s predicted from the one process measured in the same rounds, ${String(what)}`, rows.filter(([n]) => (re as RegExp).test(n)).map(([n, d]) => [n, d.predicted_from_single?.error]))),
  ].filter((x): x is string => x !== undefined);
  const c = r.cost_model;
  const probe = c ? ` The probe: ${(c.probe_used.decodeBytesPerSec / 1e9).toFixed(1)} GB/s of 4-bit weights in decode GEMVs, ${c.probe_used.matmulGflops.toFixed(1)} GFLOP/s float32 MatMul; loopback link ${(c.loopback_link.rtt_ms * 1000).toFixed(1)} µs RTT (busy-polled), ${(c.loopback_link.bandwidth_bytes_per_sec / 1e6).toFixed(0)} MB/s.` : "";
  return [`**Cost model** (error = predicted / measured − 1; target ±20 %; misses in bold).${probe}`, "", ...lines.map((l) => `- ${l}`), ""];
}

/** The cost model (predictDecode, from the one process measured in this run) for pp × tp at `oneWayUs` added to loopback. */
function modelTps(r: ScalingResult, pp: number, tp: number, oneWayUs: number): number | undefined {
  const c = r.cost_model;
  const single = r.decode.single?.median_tps;
  if (!c || !r.model || !single) return undefined;
  return predictDecode({ singleMsPerToken: 1000 / single, layers: r.model.layers, hiddenSize: r.model.hidden, vocabSize: r.model.vocab, pp, tp, rttMs: c.loopback_link.rtt_ms + (2 * oneWayUs) / 1000, bandwidthBytesPerSec: c.loopback_link.bandwidth_bytes_per_sec }).decodeTps;
}

function crossoverLines(r: ScalingResult): string[] {
  const x = crossover(r, "tp2", "pp2");
  const at = (c: string, us: number): string => `${shapeName(c)} ${(us === 1 ? r.decode[c]?.ratio_to_single : r.emulated.find((e) => e.config === c && Math.max(1, e.effective_one_way_us) === us)?.ratio_to_single) ?? "—"}×`;
  const lines: string[] = [];
  const where = (us: number): string => (us === 1 ? "loopback" : `${Math.round(us)} µs`);
  const stray = (xs: number[]): string =>
    xs.length ? ` TP 2 came out ahead again at ${xs.map((us) => `${where(us)} (${at("tp2", us)} vs ${at("pp2", us)})`).join(", ")}: added latency cannot speed a split up, so that is this machine's noise, not a second crossover.` : "";
  if (x.kind === "crossover") {
    lines.push(`**Crossover (measured): tensor parallel (TP 2) decodes faster than pipeline (PP 2) below about ${x.us} µs one-way latency**, and slower above it: interpolated in log latency between ${where(x.below[0])} (TP 2 ahead by ${x.below[1].toFixed(2)}× one process) and ${where(x.above[0])} (behind by ${(-x.above[1]).toFixed(2)}×).${stray(x.strayLeads)}`);
  } else if (x.kind === "never-leads") {
    const pts = [...new Set([1, ...r.emulated.map((e) => Math.max(1, e.effective_one_way_us))])].sort((a, b) => a - b);
    lines.push(`**Crossover (measured): none in this run — TP 2 was not faster than PP 2 even on loopback**, so there is no latency below which it wins (${pts.map((us) => `${where(us)}: ${at("tp2", us)} vs ${at("pp2", us)}`).join("; ")}; × one process).${stray(x.strayLeads)}`);
  } else if (x.kind === "always-leads") {
    lines.push(`**Crossover (measured): above the sweep — TP 2 decoded faster than PP 2 at every measured latency**, up to ${Math.max(...r.emulated.map((e) => e.effective_one_way_us))} µs.`);
  } else {
    lines.push("Crossover: TP 2 and PP 2 were not both measured over emulated links in this run.");
  }
  const model = signChange((us) => (modelTps(r, 1, 2, us) ?? NaN) - (modelTps(r, 2, 1, us) ?? NaN));
  if (modelTps(r, 1, 2, 0) !== undefined) {
    lines.push(
      "",
      model === undefined
        ? "The cost model, fed the one process measured in this run, has TP 2 behind PP 2 at every latency from 1 µs up."
        : `The cost model, fed the one process measured in this run, puts the crossover at **${model} µs** one way (dashed lines in the plot).`,
    );
  }
  return [...lines, ""];
}

function machineLine(r: ScalingResult): string {
  const m = r.machine;
  return `${m.cores} cores, ${m.cpu}, ${m.memory_gib} GiB; commit ${r.commit.slice(0, 10)}${r.dirty ? " (with local changes)" : ""}, ${r.date.slice(0, 10)}; ${r.settings.threads_per_process} thread(s) per process, ${r.settings.rounds} paired rounds of ${r.settings.block_tokens} tokens`;
}

function scalingPlot(r: ScalingResult): string {
  const pick = (re: RegExp): [number, number][] =>
    Object.entries(r.decode)
      .filter(([n]) => n === "single" || re.test(n))
      .map(([, d]) => [d.processes ?? 1, d.median_tps]);
  const llama: [number, number][] = Object.entries(r.decode)
    .filter(([n]) => n.startsWith("llama.cpp-"))
    .map(([n, d]) => [Number(/-(\d+)t$/.exec(n)![1]) / r.settings.threads_per_process, d.median_tps]);
  const series: Series[] = [
    { name: "tensor parallel", points: pick(/^tp\d+$/) },
    { name: "pipeline", points: pick(/^pp\d+$/) },
    { name: "hybrid (PP × TP)", points: pick(/^pp\d+xtp\d+$/) },
    { name: "llama.cpp", points: llama, dashed: true },
  ].filter((s) => s.points.length > 1 || (s.points.length === 1 && s.name.startsWith("llama")));
  return lineChart(series, {
    title: `Decode, 1b Q4_0, loopback (${r.machine.cores} cores)`,
    xLabel: `processes × ${r.settings.threads_per_process} thread; llama.cpp: the same total threads`,
    yLabel: "tokens / s",
  });
}

function latencyPlot(r: ScalingResult): string | undefined {
  const configs = [...new Set(r.emulated.map((e) => e.config))];
  if (!configs.length) return undefined;
  const series: Series[] = configs.map((c) => ({
    name: `${shapeName(c)}, measured`,
    points: [...sweepOf(r, c)],
  }));
  const xMax = Math.max(...r.emulated.map((e) => e.effective_one_way_us), 10);
  const grid = Array.from({ length: 25 }, (_, i) => 10 ** ((i / 24) * Math.log10(xMax)));
  for (const [c, pp, tp] of [["tp2", 1, 2], ["pp2", 2, 1]] as const) {
    const single = r.decode.single?.median_tps;
    if (!configs.includes(c) || !single || modelTps(r, pp, tp, 1) === undefined) continue;
    series.push({ name: `${shapeName(c)}, cost model`, points: grid.map((us) => [us, modelTps(r, pp, tp, us)! / single]), dashed: true, noMarkers: true, color: configs.indexOf(c) });
  }
  series.push({ name: "one process", points: [[1, 1], [xMax, 1]], dashed: true, noMarkers: true, color: 7 });
  return lineChart(series, { title: `Decode vs link latency, 1b Q4_0 (${r.machine.cores} cores)`, xLabel: "one-way latency added between machines, µs (log; 1 = loopback)", yLabel: "× one process", xScale: "log" });
}

const results = newestPerMachine(values.results!);
const out = join(values.docs!, "benchmarks");
mkdirSync(out, { recursive: true });
const lines: string[] = [BEGIN, ""];
if (!results.length) lines.push("No scaling results yet: run `node dist/bench/scaling/scaling.js`.", "");
for (const r of results) {
  lines.push(`### ${r.machine.cores} cores`, "", machineLine(r) + `. Source: \`bench/results/${r.file}\`.`, "");
  if (r.load) lines.push(`Load: ${r.load.load_average_1m_start} (start) and ${r.load.load_average_1m_end} (end) one-minute load average on ${r.load.cores} cores.${r.notes ? ` ${r.notes}` : ""}`, "");
  const plot = `scaling-${r.machine.cores}cores.svg`;
  writeFileSync(join(out, plot), scalingPlot(r));
  lines.push(`![decode scaling](benchmarks/${plot})`, "", ...decodeTable(r), "");
  const a = r.all_reduce;
  lines.push(
    `All-reduce of ${a.bytes} bytes, busy-polled, against a raw busy-polled TCP round trip of the same size (${a.raw_rtt_busy_polled_us.median} µs): ` +
      Object.entries(a.busy_polled_us).map(([k, t]) => `${k.replace("ranks_", "")} ranks ${t.median} µs (${a.ratio_to_raw_rtt[k]}×)`).join(", ") + ".",
    "",
  );
  const lp = latencyPlot(r);
  if (lp) {
    const file = `latency-${r.machine.cores}cores.svg`;
    writeFileSync(join(out, file), lp);
    lines.push(`![decode vs latency](benchmarks/${file})`, "", ...emulatedTable(r), "");
    lines.push(...crossoverLines(r));
  }
  lines.push(...costModelLines(r));
  if (r.machine.cores >= 16) {
    lines.push(`Targets on this machine: TP 2 ≥ 1.7× one process: **${String(r.met.tp2)}**; TP 4 ≥ 3×: **${String(r.met.tp4)}**; all-reduce ≤ 1.3× raw RTT: **${String(r.met.all_reduce)}**.`, "");
  }
}
if (!results.some((r) => r.machine.cores >= 16)) {
  lines.push("### 16 cores", "", "Not measured: TP 2, TP 4 and TP 8 against one process, PP 2/4 and all-reduce against a raw round trip on 16 cores (targets TP 2 ≥ 1.7×, TP 4 ≥ 3×, all-reduce ≤ 1.3× raw RTT). The check is prepared (`bench/device/run.sh`), but no session has been lent the 16-core device machine: on 2026-12-04 and again on 2026-12-05 new loans were paused.", "");
}
lines.push(END);
const docPath = join(values.docs!, "benchmarks.md");
const doc = readFileSync(docPath, "utf8");
const [i, j] = [doc.indexOf(BEGIN), doc.indexOf(END)];
if (i < 0 || j < i) throw new Error(`${docPath} has no generated section markers`);
writeFileSync(docPath, doc.slice(0, i) + lines.join("\n") + doc.slice(j + END.length));
console.log(`wrote ${docPath} and ${results.length * 2} plots in ${out}`);
