import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { removeDir, startNode, stopAll, tempDir, type NodeProcess } from "../cluster/node-process.js";
import { tinyModel, type TinyModel } from "../api/serving/fixtures.js";
import { baseUrl, quantile } from "../../src/cli/http-bench.js";

// `tessera bench --url` against a real `tessera start` node serving a tiny synthetic model on
// 127.0.0.1, through the built CLI in a child process, as a user runs it. Token counts are checked
// against what this test sent and against a non-streamed request to the same node.

const BIN = fileURLToPath(new URL("../../../bin/tessera.js", import.meta.url));
let model: TinyModel;
let node: NodeProcess;
const dirs: string[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOME: dirs[0], XDG_CONFIG_HOME: dirs[0], XDG_DATA_HOME: dirs[0] } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

interface BenchJson {
  url: string;
  model: string;
  concurrency: number;
  aggregateTps: number;
  decodeTps: number;
  ttftMsP50: number;
  ttftMsP95: number;
  servedPromptTokens: number;
  servedCompletionTokens: number;
  runs: { wallMs: number; aggregateTps: number; requests: { ttftMs: number; decodeTps: number; promptTokens: number; completionTokens: number; totalMs: number }[] }[];
}

const ok = (r: Run): BenchJson => {
  assert.equal(r.code, 0, `bench failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as BenchJson;
};

/** A port nothing listens on: one the kernel just gave out and took back. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The single line a failing command must print. */
function oneErrorLine(r: Run, mustContain: string): void {
  assert.notEqual(r.code, 0, `expected a failure, got exit 0:\n${r.stdout}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one error line, got:\n${r.stderr}`);
  assert.ok(lines[0]!.includes(mustContain), `'${lines[0]}' should mention '${mustContain}'`);
  assert.ok(!/\bat .*\.js:\d+/.test(r.stderr), "no stack trace");
}

before(async () => {
  dirs.push(tempDir("tessera-bench-home-"));
  model = await tinyModel("bench-tiny");
  const dataDir = tempDir();
  dirs.push(dataDir);
  node = await startNode(["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--model", model.path, "--ctx", "256", "--threads", "1"], { dataDir });
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
  await model?.remove();
});

test("bench --url times streamed completions and counts what the server served", async () => {
  const r = ok(await cli("bench", "--url", node.url(""), "--model", model.id, "-p", "12", "-n", "6", "-r", "2", "--json"));
  assert.equal(r.model, model.id);
  assert.equal(r.runs.length, 2);
  for (const run of r.runs) {
    assert.equal(run.requests.length, 1);
    const q = run.requests[0]!;
    // 12 token ids were sent: the server must count exactly those
    assert.equal(q.promptTokens, 12);
    assert.ok(q.completionTokens >= 1 && q.completionTokens <= 6, `completion tokens ${q.completionTokens}`);
    assert.ok(q.ttftMs > 0 && q.ttftMs < q.totalMs, `TTFT ${q.ttftMs} within the request's ${q.totalMs} ms`);
    // one request per run: the aggregate is its tokens over the run's wall time (recomputed here)
    assert.ok(Math.abs(run.aggregateTps - (q.completionTokens * 1000) / run.wallMs) < 1e-6 * run.aggregateTps);
  }
  assert.ok(r.ttftMsP95 >= r.ttftMsP50 && r.ttftMsP50 > 0);
  if (r.servedCompletionTokens > 1) assert.ok(Number.isFinite(r.decodeTps) && r.decodeTps > 0);

  // the streamed count matches the same greedy request without streaming (the server's own usage)
  const plain = await fetch(node.url("/v1/completions"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: model.id, prompt: Array.from({ length: 12 }, (_, i) => 100 + ((i * 7919 + 1 * 104729) % 900)), max_tokens: 6, temperature: 0 }),
  });
  const usage = ((await plain.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  assert.equal(usage.prompt_tokens, 12);
  assert.equal(r.runs[0]!.requests[0]!.completionTokens, usage.completion_tokens);
});

test("bench --url --concurrency keeps N requests in flight at once", async () => {
  const one = ok(await cli("bench", "--url", node.url(""), "--model", model.id, "-p", "8", "-n", "8", "-r", "1", "-c", "1", "--json"));
  const three = ok(await cli("bench", "--url", node.url(""), "--model", model.id, "-p", "8", "-n", "8", "-r", "1", "-c", "3", "--json"));
  assert.equal(three.runs[0]!.requests.length, 3);
  assert.equal(three.concurrency, 3);
  const sumMs = (r: BenchJson): number => r.runs[0]!.requests.reduce((a, q) => a + q.totalMs, 0);
  // overlapping requests: the run took less than its requests one after another would have ...
  assert.ok(three.runs[0]!.wallMs < sumMs(three), `wall ${three.runs[0]!.wallMs} ms vs Σ ${sumMs(three)} ms`);
  // ... while a lone request's run is at least as long as that request (the control)
  assert.ok(one.runs[0]!.wallMs >= sumMs(one));
  const tokens = three.runs[0]!.requests.reduce((a, q) => a + q.completionTokens, 0);
  assert.ok(Math.abs(three.aggregateTps - (tokens * 1000) / three.runs[0]!.wallMs) < 1e-6 * three.aggregateTps);
});

test("bench --url --text sends words and prints the readable summary", async () => {
  const r = await cli("bench", "--url", node.url(""), "--model", model.id, "-p", "10", "-n", "4", "-r", "1", "--text");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^decode +[\d.—]+ tok\/s per request$/m);
  assert.match(r.stdout, /^TTFT +[\d.]+ ms p50, [\d.]+ ms p95$/m);
  const counted = Number(/server counted (\d+)/.exec(r.stdout)?.[1]);
  // ten words tokenize to at least ten tokens with this tokenizer (each word is one or more)
  const words = Number(/prompt (\d+) words/.exec(r.stdout)?.[1]);
  assert.equal(words, 10);
  assert.ok(counted >= 10, `server counted ${counted} prompt tokens`);
});

test("bench --url mistakes are one clear line", async () => {
  oneErrorLine(await cli("bench", "--url", "not a url", "--model", model.id), "--url");
  oneErrorLine(await cli("bench", "--url", "ftp://127.0.0.1:1", "--model", model.id), "--url");
  const port = await closedPort();
  oneErrorLine(await cli("bench", "--url", `http://127.0.0.1:${port}`, "--model", model.id, "-p", "4", "-n", "2"), `cannot reach http://127.0.0.1:${port}/v1/completions`);
  oneErrorLine(await cli("bench", "--url", node.url(""), "--model", "no-such-model", "-p", "4", "-n", "2"), "no-such-model");
  oneErrorLine(await cli("bench", "--url", node.url("")), "--model");
  oneErrorLine(await cli("bench", model.path, "--url", node.url(""), "--model", model.id), "not both");
  oneErrorLine(await cli("bench", "--url", node.url(""), "--model", model.id, "-n", "0"), "--gen-tokens");
  oneErrorLine(await cli("bench", model.path, "--concurrency", "2"), "--concurrency needs --url");
});

test("quantile interpolates between order statistics; baseUrl keeps only http(s)", () => {
  // by hand: p95 of 1..5 sits at index 3.8 → 4 + 0.8 × (5 − 4)
  assert.equal(quantile([5, 1, 4, 2, 3], 0.95), 4.8);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
  assert.equal(quantile([2, 4], 0.5), 3);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.ok(Number.isNaN(quantile([NaN], 0.5)), "NaN samples (a one-token request's decode rate) are left out");
  assert.equal(quantile([NaN, 7], 0.5), 7);
  assert.equal(baseUrl("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
  assert.throws(() => baseUrl("127.0.0.1:8080"), /--url/);
  assert.throws(() => baseUrl("file:///etc/passwd"), /--url/);
});
