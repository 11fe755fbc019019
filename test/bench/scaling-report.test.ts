import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { crossover, signChange, type ScalingResult } from "../../bench/report/scaling-result.js";
import { bandwidthFrom, planFor, predict, relativeError } from "../../bench/scaling/predict.js";
import { placementModel } from "../../src/placement/index.js";
import { randomSource, tinyConfig } from "../engine/core/fixtures.js";

// The scaling report's arithmetic (crossover, errors, bandwidth), the cost model's plan per measured
// shape, and the report script end to end on a hand-made result file. Expected values are worked
// out by hand in the comments, not by the code under test.

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A result with TP 2 / PP 2 measured on loopback and at the given effective latencies (× one process). */
function result(points: { us: number; tp2: number; pp2: number }[], loop = { tp2: 1.2, pp2: 0.95 }): ScalingResult {
  const row = (ratio: number) => ({ median_tps: 20 * ratio, ratio_to_single: ratio, processes: 2, threads: 2 });
  return {
    date: "2026-12-05T08:00:00.000Z",
    commit: "0123456789abcdef",
    dirty: false,
    machine: { cpu: "test cpu", cores: 2, memory_gib: 8 },
    settings: { threads_per_process: 1, rounds: 4, block_tokens: 16 },
    decode: {
      single: { median_tps: 20, ratio_to_single: 1, processes: 1, threads: 1, predicted: { decode_tps: 22, ttft_ms: 900, stages: "[0,16)×1" }, error: { decode_tps: 0.1, ttft_ms: -0.1 } },
      tp2: { ...row(loop.tp2), predicted: { decode_tps: 36, ttft_ms: 700, stages: "[0,16)×2" }, error: { decode_tps: 0.5, ttft_ms: 0.05 }, predicted_from_single: { decode_tps: 25, error: 0.04 } },
      pp2: row(loop.pp2),
    },
    all_reduce: { bytes: 8192, raw_rtt_busy_polled_us: { median: 25 }, busy_polled_us: { ranks_2: { median: 60 } }, ratio_to_raw_rtt: { ranks_2: 2.4 } },
    emulated: points.flatMap((p) => [
      { config: "tp2", target_one_way_us: p.us, effective_one_way_us: p.us, median_tps: 20 * p.tp2, ratio_to_single: p.tp2 },
      { config: "pp2", target_one_way_us: p.us, effective_one_way_us: p.us, median_tps: 20 * p.pp2, ratio_to_single: p.pp2 },
    ]),
    met: { tp2: false, tp4: "not measured", all_reduce: false },
  };
}

test("crossover interpolates in log latency between the last point TP leads and the next", () => {
  const r = result([
    { us: 100, tp2: 1.0, pp2: 0.95 },
    { us: 1000, tp2: 0.6, pp2: 0.94 },
  ]);
  // leads: loopback +0.25, 100 µs +0.05, 1000 µs −0.34 → t = 0.05 / 0.39 = 0.1282 of a decade above 100 µs:
  // 10^2.1282 = 134.3 µs
  const x = crossover(r, "tp2", "pp2");
  assert.equal(x.kind, "crossover");
  assert.equal(x.kind === "crossover" && x.us, 134);
  assert.deepEqual(x.kind === "crossover" && x.strayLeads, []);
  // the controls: TP never ahead, TP always ahead, no sweep
  assert.deepEqual(crossover(result([{ us: 100, tp2: 0.5, pp2: 0.9 }], { tp2: 0.9, pp2: 0.95 }), "tp2", "pp2"), { kind: "never-leads", strayLeads: [] });
  // behind on loopback, "ahead" at 100 µs, behind at 1000 µs: the lead at 100 µs is noise (latency
  // cannot speed TP up), so no crossover is made of it
  const noisy = result([{ us: 100, tp2: 1.1, pp2: 0.9 }, { us: 1000, tp2: 0.4, pp2: 0.9 }], { tp2: 0.6, pp2: 0.95 });
  assert.deepEqual(crossover(noisy, "tp2", "pp2"), { kind: "never-leads", strayLeads: [100] });
  assert.deepEqual(crossover(result([{ us: 100, tp2: 1.5, pp2: 0.9 }]), "tp2", "pp2"), { kind: "always-leads" });
  assert.deepEqual(crossover(result([]), "tp2", "pp2"), { kind: "not-measured" });
});

test("signChange finds where a lead turns negative; none when it never leads", () => {
  assert.equal(signChange((us) => 100 - us), 100);
  assert.equal(signChange((us) => 2500 - us), 2500);
  assert.equal(signChange(() => -1), undefined);
  assert.equal(signChange(() => 1), undefined, "still ahead at 100 ms: no crossover within range");
});

test("relativeError and bandwidthFrom", () => {
  assert.equal(relativeError(12, 10), 0.2);
  assert.equal(relativeError(8, 10), -0.2);
  assert.equal(relativeError(10, undefined), undefined);
  assert.equal(relativeError(10, 0), undefined);
  // 1 MiB more each way took 10 ms longer: 2 MiB / 0.01 s
  assert.equal(bandwidthFrom(100, 8192, 10100, 2 ** 20 + 8192), (2 * 2 ** 20) / 0.01);
});

test("planFor asks place() for exactly the measured shape; a slower link predicts slower TP and PP", () => {
  const model = placementModel(randomSource(tinyConfig("llama", { numLayers: 4 }), { linearType: "Q4_0" }), "tiny");
  const probe = { decodeBytesPerSec: 10e9, matmulGflops: 50, providers: ["cpu"] };
  const fast = { rttMs: 0.025, bandwidthBytesPerSec: 1e9 };
  const slow = { rttMs: 4, bandwidthBytesPerSec: 1e9 };
  const shape = (pp: number, tp: number) => planFor(model, probe, pp, tp, fast, 128, 32).stages.map((s) => [s.layers[1] - s.layers[0], s.nodes.length]);
  assert.deepEqual(shape(1, 1), [[4, 1]]);
  assert.deepEqual(shape(1, 2), [[4, 2]]);
  assert.deepEqual(shape(2, 1), [[2, 1], [2, 1]]);
  assert.deepEqual(shape(2, 2), [[2, 2], [2, 2]]);
  for (const [pp, tp] of [[1, 2], [2, 1]]) {
    const a = predict(model, probe, pp!, tp!, fast, 128, 32);
    const b = predict(model, probe, pp!, tp!, slow, 128, 32);
    assert.ok(b.decode_tps < a.decode_tps, `${pp}×${tp}: ${b.decode_tps} at 4 ms vs ${a.decode_tps} tok/s at 25 µs`);
    assert.ok(b.ttft_ms > a.ttft_ms);
  }
  // one process has no links: the same prediction over any link (the control)
  assert.deepEqual(predict(model, probe, 1, 1, fast, 128, 32), predict(model, probe, 1, 1, slow, 128, 32));
});

const REPORT = fileURLToPath(new URL("../../bench/report/report.js", import.meta.url));

test("report.js writes the tables, errors, crossover and plots between the markers, and refuses a doc without them", () => {
  const root = mkdtempSync(join(tmpdir(), "tessera-report-"));
  dirs.push(root);
  const [results, docs] = [join(root, "results"), join(root, "docs")];
  mkdirSync(results);
  mkdirSync(docs);
  const r = result([
    { us: 100, tp2: 1.0, pp2: 0.95 },
    { us: 1000, tp2: 0.6, pp2: 0.94 },
  ]);
  writeFileSync(join(results, "scaling-2026-12-05.json"), JSON.stringify(r));
  const doc = "# B\n\nhand-written\n\n<!-- generated:begin (bench/report/report.ts; do not edit by hand) -->\nold\n<!-- generated:end -->\n\ntail\n";
  writeFileSync(join(docs, "benchmarks.md"), doc);
  const run = spawnSync(process.execPath, [REPORT, "--results", results, "--docs", docs], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const out = readFileSync(join(docs, "benchmarks.md"), "utf8");
  assert.ok(out.startsWith("# B\n\nhand-written\n") && out.endsWith("\n\ntail\n"), "the hand-written parts stay");
  assert.ok(!out.includes("\nold\n"), "the old generated part is replaced");
  assert.match(out, /below about 134 µs one-way latency/);
  // TP 2's probe-fed decode prediction misses by +50 % (bold), its TTFT by +5 % (plain), from-single +4 %
  assert.match(out, /\| tp2 \| 2 \| 2 \| 24 \| 1\.2 \| — \| — \| 36 \(\*\*\+50 %\*\*\) \| 700 \(\+5 %\) \| 25 \(\+4 %\) \|/);
  assert.match(out, /Decode tok\/s predicted from the machine probe: 1 of 2 within ±20 %/);
  assert.match(out, /### 16 cores\n\nNot measured/);
  for (const f of ["scaling-2cores.svg", "latency-2cores.svg"]) {
    assert.ok(existsSync(join(docs, "benchmarks", f)));
    assert.match(readFileSync(join(docs, "benchmarks", f), "utf8"), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  }

  writeFileSync(join(docs, "benchmarks.md"), "# no markers\n");
  const bad = spawnSync(process.execPath, [REPORT, "--results", results, "--docs", docs], { encoding: "utf8" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /no generated section markers/);
});
