import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cliCommand } from "../../src/spawn.js";
import { ModelFiles } from "./models.js";
import { waitGone } from "./processes.js";

// `tessera run/bench --stages/--tp` as a user runs them: the CLI in a child process, the engine worker
// driving local runner processes through the sharded backend.

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): ChildProcess {
  const { command, args: base } = cliCommand();
  return spawn(command, [...base, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

function tessera(args: string[]): Promise<Ran> {
  const child = start(args);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const models = new ModelFiles();
let model: string;
before(async () => {
  await models.open();
  model = await models.path({ arch: "llama", preset: "tiny", quant: "q8_0" });
});
after(() => models.close());

test("run --stages 2 --tp 2 --json gives the single process's greedy answer, in the same format; so does --compress-activations", async () => {
  const args = ["run", model, "Hello world", "--raw", "--json", "--temperature", "0", "--max-tokens", "24", "--ignore-eos"];
  const [one, sharded] = [await tessera([...args, "--threads", "1"]), await tessera([...args, "--stages", "2", "--tp", "2"])];
  const compressed = await tessera([...args, "--tp", "2", "--compress-activations"]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(sharded.code, 0, sharded.stderr);
  const a = JSON.parse(one.stdout) as { promptTokens: number[]; tokens: number[]; text: string; decodeTps: number };
  const b = JSON.parse(sharded.stdout) as typeof a;
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  assert.deepEqual(b.promptTokens, a.promptTokens);
  assert.equal(b.tokens.length, 24);
  assert.deepEqual(b.tokens, a.tokens);
  assert.equal(b.text, a.text);
  assert.ok(b.decodeTps > 0);
  // 8-bit partial sums change the logits by < 1e-2 relative (sharded.test.ts): the greedy answer holds here
  assert.equal(compressed.code, 0, compressed.stderr);
  assert.deepEqual((JSON.parse(compressed.stdout) as typeof a).tokens, a.tokens);
});

test("bench --stages 2 --tp 2 measures a pipeline of tensor groups, with each runner's peak RSS; bad shapes are one-line errors", async () => {
  const r = await tessera(["bench", model, "--stages", "2", "--tp", "2", "--prompt-tokens", "16", "--gen-tokens", "8", "--repeat", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ppTps: number; tgTps: number; threads: number; peakRssBytes: number; runnerPeakRssBytes: number[] };
  assert.ok(out.ppTps > 0 && out.tgTps > 0);
  // four runner processes, each with a runtime and ORT loaded (well over 20 MiB), none the CLI's own
  assert.equal(out.runnerPeakRssBytes.length, 4);
  for (const rss of out.runnerPeakRssBytes) assert.ok(rss > 20 * 2 ** 20 && rss < 4 * 2 ** 30, `runner peak RSS ${rss}`);
  assert.ok(out.peakRssBytes > 0);
  const single = await tessera(["bench", model, "-p", "16", "-n", "8", "--repeat", "1", "--json"]);
  assert.deepEqual((JSON.parse(single.stdout) as typeof out).runnerPeakRssBytes, []);
  const noTp = await tessera(["bench", model, "--stages", "2", "--compress-activations"]);
  assert.equal(noTp.code, 1);
  assert.match(noTp.stderr, /^tessera bench: --compress-activations needs --tp 2 or more/);
  const bad = await tessera(["run", model, "hi", "--tp", "3"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^tessera run: --stages 1 --tp 3: stage 0: a tensor-parallel group of 3 cannot share the model's 2 KV heads/);
  assert.ok(!/^\s+at /m.test(bad.stderr), bad.stderr);
});

test("runner processes do not outlive a killed CLI", async () => {
  const child = start(["run", model, "Once upon a time", "--raw", "--stages", "2", "--ctx", "4096", "--max-tokens", "4000", "--ignore-eos", "--temperature", "0"]);
  // streaming text means the runners are up and generating
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`the CLI exited early (${code})`)));
  });
  const runners = childrenOf(child.pid!);
  assert.equal(runners.length, 2, "expected two runner processes under the CLI");
  child.kill("SIGKILL");
  assert.deepEqual(await waitGone(runners, 5000), [], "runners still alive 5 s after their parent died");
});
