// Mutation check: applies known bugs to the built code (dist/), one at a time, runs the test files
// meant to catch each, restores the file, and prints which mutations the tests caught.
// Not part of `npm test`. Build first (`npm run build`); runs niced.
//
// Usage: node scripts/mutate.js [--only id,id] [--list] [--baseline] [--json out.json]
//   --baseline  first runs each mutation's tests on the unmutated code (a failure there is flakiness, not a catch)
//
// A mutation whose text is no longer in the built file is reported "stale": update its `find` after
// the code it targets changed. A missed mutation is a test to strengthen.
import { existsSync, readFileSync, renameSync, writeFileSync, copyFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { MUTATIONS } from "./mutations.js";

const BACKUP = ".mutate-orig";
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

function collect(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else out.push(p);
  }
  return out;
}

/** Puts back any file a killed earlier run left mutated. */
function restoreLeftovers() {
  for (const p of collect("dist")) {
    if (p.endsWith(BACKUP)) {
      renameSync(p, p.slice(0, -BACKUP.length));
      console.error(`restored ${p.slice(0, -BACKUP.length)} left mutated by an earlier run`);
    }
  }
}

function testFiles(patterns) {
  const all = collect("dist/test").filter((f) => f.endsWith(".test.js"));
  return all.filter((f) => patterns.some((s) => f.includes(s))).sort();
}

/** Runs node's test runner on `files` (niced); returns the exit status and the failing test names. */
function runTests(files, namePattern, timeoutS) {
  const nodeArgs = ["-n", "10", process.execPath, "--test", "--test-concurrency=1", "--test-reporter=tap"];
  if (namePattern) nodeArgs.push(`--test-name-pattern=${namePattern}`);
  const r = spawnSync("nice", [...nodeArgs, ...files], { encoding: "utf8", timeout: timeoutS * 1000, maxBuffer: 64 << 20 });
  const out = r.stdout ?? "";
  // "name: first line of its error" for each failing test (TAP puts the error in a YAML block after it).
  const failed = [...out.matchAll(/^\s*not ok \d+ - (.*)$\n(?:[\s\S]*?^\s*error: (?:\|-\n\s*)?(.*)$)?/gm)]
    .filter((m) => !/\.test\.js$/.test(m[1].trim()))
    .map((m) => `${m[1].trim()}${m[2] ? ` [${m[2].trim().replace(/^'|'$/g, "").slice(0, 160)}]` : ""}`);
  const counts = /^# pass (\d+)[\s\S]*?^# fail (\d+)/m.exec(out);
  return {
    status: r.error?.code === "ETIMEDOUT" ? "timeout" : r.status,
    failed,
    pass: counts ? Number(counts[1]) : undefined,
    fail: counts ? Number(counts[2]) : undefined,
  };
}

function apply(m) {
  const path = join("dist", m.file);
  if (!existsSync(path)) return { stale: `${path} does not exist` };
  const text = readFileSync(path, "utf8");
  const hits = text.split(m.find).length - 1;
  if (hits !== 1) return { stale: `'${m.find}' found ${hits} times in ${path}` };
  copyFileSync(path, path + BACKUP);
  writeFileSync(path, text.replace(m.find, m.replace));
  return { restore: () => renameSync(path + BACKUP, path) };
}

if (flag("--list")) {
  for (const m of MUTATIONS) console.log(`${m.id.padEnd(32)} ${m.what}`);
  process.exit(0);
}
if (!existsSync("dist/test")) {
  console.error("no dist/: run `npm run build` first");
  process.exit(1);
}
restoreLeftovers();
const only = value("--only")?.split(",");
const chosen = MUTATIONS.filter((m) => !only || only.includes(m.id));
let restoreCurrent;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    restoreCurrent?.();
    process.exit(130);
  });
}

const rows = [];
for (const m of chosen) {
  const files = testFiles(m.tests);
  const t0 = Date.now();
  const row = { id: m.id, finding: m.finding ?? "", what: m.what, tests: m.tests.join(" "), result: "", detail: "" };
  if (files.length === 0) {
    row.result = "stale";
    row.detail = `no test file matches ${m.tests.join(", ")}`;
  } else {
    let baselineOk = true;
    if (flag("--baseline")) {
      const b = runTests(files, m.namePattern, m.timeoutS ?? 600);
      baselineOk = b.status === 0;
      if (!baselineOk) {
        row.result = "baseline fails";
        row.detail = b.failed.join("; ") || `exit ${b.status}`;
      }
    }
    if (baselineOk) {
      const a = apply(m);
      if (a.stale) {
        row.result = "stale";
        row.detail = a.stale;
      } else {
        restoreCurrent = a.restore;
        let r;
        try {
          r = runTests(files, m.namePattern, m.timeoutS ?? 600);
        } finally {
          a.restore();
          restoreCurrent = undefined;
        }
        if (r.status === "timeout") {
          row.result = "caught (timeout)";
        } else if (r.status !== 0) {
          row.result = "caught";
          row.detail = r.failed.join("; ");
        } else {
          row.result = "MISSED";
          row.detail = `${r.pass ?? "?"} tests passed`;
        }
      }
    }
  }
  row.seconds = Math.round((Date.now() - t0) / 1000);
  rows.push(row);
  console.log(`${row.result.padEnd(16)} ${m.id} (${row.seconds} s)${row.detail ? `: ${row.detail}` : ""}`);
}

console.log("\n| mutation | finding | what it breaks | tests run | result | failing tests |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.id} | ${r.finding} | ${r.what} | ${r.tests} | ${r.result} | ${r.detail.replace(/\|/g, "\\|")} |`);
const caught = rows.filter((r) => r.result.startsWith("caught")).length;
console.log(`\n${caught} of ${rows.length} mutations caught`);
const out = value("--json");
if (out) writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2) + "\n");
process.exit(rows.every((r) => r.result.startsWith("caught")) ? 0 : 1);
