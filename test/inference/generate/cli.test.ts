import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliCommand } from "../../../src/spawn.js";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import type { Tokenizer } from "../../../src/models/types.js";

// `tessera run` and `tessera bench` as a user runs them: a child process, the real engine, a tiny
// synthetic llama model with a small SentencePiece vocabulary (quick to write and to load).

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tessera(args: string[], stdin?: string): Promise<Ran> {
  const { command, args: base } = cliCommand();
  const child = spawn(command, [...base, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdin.end(stdin ?? "");
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
let model: string;
let tokenizer: Tokenizer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-cli-"));
  model = join(dir, "tiny.gguf");
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: model, seed: 3 });
  tokenizer = await loadTokenizer(model);
});

after(() => rm(dir, { recursive: true, force: true }));

function noStack(stderr: string): void {
  assert.ok(!/^\s+at /m.test(stderr), `stack trace in:\n${stderr}`);
}

test("run --json prints one object with the prompt tokens, tokens, text and speeds", async () => {
  const r = await tessera(["run", model, "Hello world", "--raw", "--json", "--temperature", "0", "--max-tokens", "8", "--ignore-eos", "--threads", "1"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1);
  const out = JSON.parse(lines[0]!) as { promptTokens: number[]; tokens: number[]; text: string; prefillTps: number; decodeTps: number };
  assert.deepEqual(out.promptTokens, tokenizer.encode("Hello world", { addSpecial: true }));
  assert.equal(out.tokens.length, 8);
  assert.equal(out.text, tokenizer.decode(out.tokens, { skipSpecial: true }));
  assert.ok(out.prefillTps > 0 && out.decodeTps > 0);
  assert.ok(new Set(out.tokens).size > 1, "greedy output collapsed to one token");
});

test("run streams the chat-templated answer to stdout, stats to stderr; same seed, same answer (prompt from stdin)", async () => {
  const args = ["run", model, "-", "--temperature", "0.9", "--seed", "11", "--max-tokens", "12", "--ignore-eos", "--threads", "1"];
  const [a, b] = [await tessera(args, "Tell me a story."), await tessera([...args, "--json"], "Tell me a story.")];
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const json = JSON.parse(b.stdout) as { promptTokens: number[]; tokens: number[]; text: string };
  assert.equal(a.stdout, json.text + "\n");
  assert.match(a.stderr, /prompt: \d+ tokens, prefill [\d.]+ tok\/s \| generated: 12 tokens, decode [\d.]+ tok\/s \| finish: length \| seed 11/);
  const templated = tokenizer.applyChatTemplate([{ role: "user", content: "Tell me a story." }], { addGenerationPrompt: true });
  assert.deepEqual(json.promptTokens, tokenizer.encode(templated));
});

test("bench --json reports median pp/tg speeds and peak RSS", async () => {
  const r = await tessera(["bench", model, "--pp", "32", "--tg", "8", "--repeat", "2", "--threads", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ppTps: number; tgTps: number; peakRssBytes: number; ppRuns: number[]; tgRuns: number[] };
  assert.equal(out.ppRuns.length, 2);
  assert.equal(out.tgRuns.length, 2);
  assert.ok(out.ppTps > 0 && out.tgTps > 0);
  assert.ok(out.ppTps >= Math.min(...out.ppRuns) && out.ppTps <= Math.max(...out.ppRuns));
  assert.ok(out.peakRssBytes > 10 * 2 ** 20);
});

test("bad input: a clear one-line error, exit code 1, no stack trace", async () => {
  const missing = await tessera(["run", join(dir, "nope.gguf"), "hi"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^tessera run: .*nope\.gguf: no such file or folder\n$/);
  const empty = join(dir, "empty");
  await mkdir(empty);
  const notModel = await tessera(["bench", empty]);
  assert.equal(notModel.code, 1);
  noStack(notModel.stderr);
  assert.match(notModel.stderr, /^tessera bench: /);
  const badFlag = await tessera(["run", model, "hi", "--top-p", "2"]);
  assert.equal(badFlag.code, 1);
  noStack(badFlag.stderr);
  assert.match(badFlag.stderr, /topP must be in \(0, 1\]/);
  const overflow = await tessera(["run", model, "one two three four five six seven eight nine ten", "--raw", "--ctx", "8"]);
  assert.equal(overflow.code, 1);
  noStack(overflow.stderr);
  assert.match(overflow.stderr, /^tessera run: the prompt has \d+ tokens, the context holds 8: nothing left to generate\n$/);
});
