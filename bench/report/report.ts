// Regenerates the measured part of docs/benchmarks.md (between its "generated" markers) and the SVG plots
// under docs/benchmarks/ from the newest bench/results/scaling-*.json of each machine size.
//   node dist/bench/report/report.js [--results bench/results] [--docs docs]
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { lineChart, type Series } from "./svg.js";
import { crossoverUs, type ScalingResult } from "./scaling-result.js";

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

function decodeTable(r: ScalingResult): string[] {
  const rows = ["| configuration | processes | threads | decode tok/s | × one process | × llama.cpp, same threads | TTFT ms |", "|---|---|---|---|---|---|---|"];
  for (const [name, d] of Object.entries(r.decode)) {
    rows.push(`| ${name} | ${cell(d.processes)} | ${cell(d.threads)} | ${d.median_tps} | ${d.ratio_to_single} | ${cell(d.vs_llama_cpp_same_threads)} | ${cell(r.ttft?.[name]?.median_ms)} |`);
  }
  return rows;
}

function emulatedTable(r: ScalingResult): string[] {
  if (!r.emulated.length) return [];
  const rows = ["| configuration | one-way latency: target (measured) µs | decode tok/s | × one process | × same split on loopback | TTFT ms |", "|---|---|---|---|---|---|"];
  for (const e of r.emulated) {
    rows.push(`| ${e.config} | ${e.target_one_way_us} (${e.effective_one_way_us}) | ${e.median_tps} | ${e.ratio_to_single} | ${cell(e.ratio_to_direct)} | ${cell(e.ttft_ms)} |`);
  }
  return rows;
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
    { name: "llama.cpp, N× threads", points: llama, dashed: true },
  ].filter((s) => s.points.length > 1 || (s.points.length === 1 && s.name.startsWith("llama")));
  return lineChart(series, {
    title: `Decode, 1b Q4_0, loopback (${r.machine.cores} cores)`,
    xLabel: `processes (${r.settings.threads_per_process} thread each); llama.cpp: threads ÷ ${r.settings.threads_per_process}`,
    yLabel: "tokens / s",
  });
}

function latencyPlot(r: ScalingResult): string | undefined {
  const configs = [...new Set(r.emulated.map((e) => e.config))];
  if (!configs.length) return undefined;
  const series: Series[] = configs.map((c) => ({
    name: c.toUpperCase().replace("X", " × "),
    points: [[0, r.decode[c]?.ratio_to_single ?? NaN] as [number, number], ...r.emulated.filter((e) => e.config === c).map((e) => [e.target_one_way_us, e.ratio_to_single] as [number, number])].filter(([, y]) => !Number.isNaN(y)),
  }));
  series.push({ name: "one process", points: [[0, 1], [Math.max(...r.emulated.map((e) => e.target_one_way_us)), 1]], dashed: true });
  return lineChart(series, { title: `Decode vs link latency (${r.machine.cores} cores)`, xLabel: "one-way latency between machines, µs (log)", yLabel: "× one process", xScale: "log" });
}

const results = newestPerMachine(values.results!);
const out = join(values.docs!, "benchmarks");
mkdirSync(out, { recursive: true });
const lines: string[] = [BEGIN, ""];
if (!results.length) lines.push("No scaling results yet: run `node dist/bench/scaling/scaling.js`.", "");
for (const r of results) {
  lines.push(`### ${r.machine.cores} cores`, "", machineLine(r) + `. Source: \`bench/results/${r.file}\`.`, "");
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
    const x = crossoverUs(r, "tp2", "pp2");
    lines.push(
      x === undefined
        ? "TP 2 and PP 2 were not both measured over emulated links, or one of them led at every latency: no crossover in this run."
        : `Crossover: tensor parallel (TP 2) decodes faster than pipeline (PP 2) below about **${x} µs** one-way latency, and slower above it (interpolated between the measured latencies).`,
      "",
    );
  }
  if (r.machine.cores >= 16) {
    lines.push(`Targets on this machine: TP 2 ≥ 1.7× one process: **${String(r.met.tp2)}**; TP 4 ≥ 3×: **${String(r.met.tp4)}**; all-reduce ≤ 1.3× raw RTT: **${String(r.met.all_reduce)}**.`, "");
  }
}
if (!results.some((r) => r.machine.cores >= 16)) {
  lines.push("### 16 cores", "", "Not measured. The check is prepared (`bench/device/run.sh`), but no session has yet been lent the 16-core device machine: on 2026-12-04 the loan was refused (new loans paused).", "");
}
lines.push(END);
const docPath = join(values.docs!, "benchmarks.md");
const doc = readFileSync(docPath, "utf8");
const [i, j] = [doc.indexOf(BEGIN), doc.indexOf(END)];
if (i < 0 || j < i) throw new Error(`${docPath} has no generated section markers`);
writeFileSync(docPath, doc.slice(0, i) + lines.join("\n") + doc.slice(j + END.length));
console.log(`wrote ${docPath} and ${results.length * 2} plots in ${out}`);
