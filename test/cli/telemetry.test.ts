import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { synthesize } from "../../src/models/synth/synthesize.js";

// onnxruntime-node 1.30's telemetry (facts.md) writes TMPDIR/mat-debug-<pid>.log and
// ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ in every process that creates a session. Tessera
// turns it off in every such process: the CLI's engine worker thread, runner processes and their
// driver thread, and a node's machine probe. Each run here gets a fresh HOME and TMPDIR and an
// environment without ORT_DISABLE_TELEMETRY, and must leave both clean.

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = join(ROOT, "bin", "tessera.js");
const dir = mkdtempSync(join(tmpdir(), "tessera-telemetry-"));
const model = join(dir, "tiny.gguf");

before(() => synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: model, seed: 2 }));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Sandbox {
  home: string;
  tmp: string;
  env: NodeJS.ProcessEnv;
}

/** The variables libonnxruntime 1.30 reads to tell it runs under CI (from its strings). */
const CI_MARKERS = ["CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL", "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER"];

let boxes = 0;
function sandbox(): Sandbox {
  const home = join(dir, `home-${boxes}`);
  const tmp = join(dir, `tmp-${boxes++}`);
  mkdirSync(home);
  mkdirSync(tmp);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmp, XDG_CACHE_HOME: join(home, ".cache"), XDG_CONFIG_HOME: join(home, ".config"), XDG_DATA_HOME: join(home, ".local", "share") };
  // This test process loaded onnxruntime itself (and so set the variable): the children must not inherit it.
  delete env.ORT_DISABLE_TELEMETRY;
  // onnxruntime's telemetry stays off where a CI marker is set (CI=true in our CI run): the children
  // must see a user's machine, or the control below has nothing to find.
  for (const v of CI_MARKERS) delete env[v];
  return { home, tmp, env };
}

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

/**
 * What onnxruntime's telemetry left in a sandbox, and in /tmp for the given pids in case TMPDIR is
 * not used (only files written since `since`: /tmp keeps files of older processes with the same pid).
 */
function telemetryTraces(box: Sandbox, pids: number[] = [], since = 0): string[] {
  const inTmp = files(box.tmp).filter((f) => /mat-debug/.test(f)).map((f) => `TMPDIR/${f}`);
  const inHome = files(box.home).filter((f) => /Microsoft|onnxruntime/i.test(f)).map((f) => `HOME/${f}`);
  const inSlashTmp = pids.map((p) => `/tmp/mat-debug-${p}.log`).filter((f) => existsSync(f) && statSync(f).mtimeMs >= since);
  return [...inTmp, ...inHome, ...inSlashTmp];
}

interface Started {
  pid: number;
  output(): string;
  stop(): void;
  done: Promise<{ code: number | null; out: string; pid: number }>;
}

function startNode(args: string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const done = new Promise<{ code: number | null; out: string; pid: number }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, pid: child.pid! });
    });
  });
  return { pid: child.pid!, output: () => out, stop: () => child.kill("SIGTERM"), done };
}

const runNode = (args: string[], env: NodeJS.ProcessEnv) => startNode(args, env).done;

test("control: onnxruntime without the switch does leave telemetry files (so the checks below can fail)", async () => {
  const box = sandbox();
  const script = `
    import { createRequire } from "node:module";
    const require = createRequire(${JSON.stringify(join(ROOT, "package.json"))});
    const ort = require("onnxruntime-node");
    const { matmulModel } = await import(${JSON.stringify(new URL("../../src/cluster/matmul-model.js", import.meta.url).href)});
    const s = await ort.InferenceSession.create(matmulModel(2, 2, 2));
    await s.run({ a: new ort.Tensor("float32", new Float32Array(4), [2, 2]), b: new ort.Tensor("float32", new Float32Array(4), [2, 2]) });
  `;
  const r = await runNode(["--input-type=module", "-e", script], box.env);
  assert.equal(r.code, 0, r.out);
  const traces = telemetryTraces(box, [r.pid]);
  assert.ok(traces.some((t) => t.startsWith("TMPDIR/mat-debug-")), traces.join(", "));
  assert.ok(traces.some((t) => t.startsWith("HOME/")), traces.join(", "));
});

test("tessera run, run --stages 2 and bench leave no telemetry in TMPDIR or HOME", async () => {
  const box = sandbox();
  const since = Date.now() - 1000;
  const runs = [
    [BIN, "run", model, "Hello", "--max-tokens", "4", "--threads", "1"],
    [BIN, "run", model, "Hello", "--max-tokens", "4", "--stages", "2"],
    [BIN, "bench", model, "-p", "8", "-n", "2", "--repeat", "1", "--threads", "1"],
  ];
  const pids: number[] = [];
  for (const args of runs) {
    const r = await runNode(args, box.env);
    assert.equal(r.code, 0, `${args.slice(1).join(" ")}\n${r.out}`);
    pids.push(r.pid);
  }
  assert.deepEqual(telemetryTraces(box, pids, since), []);
});

test("a node's machine probe leaves no telemetry either", async () => {
  const box = sandbox();
  const since = Date.now() - 1000;
  const data = join(box.home, "node");
  const node = startNode([BIN, "start", "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--data-dir", data], box.env);
  // The probe runs in a child process soon after start and caches its result; then the node may go.
  const deadline = Date.now() + 90_000;
  while (!existsSync(join(data, "machine-profile.json")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  node.stop();
  const r = await node.done;
  assert.ok(existsSync(join(data, "machine-profile.json")), `the node never cached its probe:\n${r.out}`);
  assert.match(r.out, /SIGTERM: shutting down/);
  assert.deepEqual(telemetryTraces(box, [r.pid], since), []);
});
