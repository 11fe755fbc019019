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

// The synthetic model's next-token distribution is so peaked that sampling at an ordinary temperature
// (0.9, even 1.5) draws the greedy tokens whatever the seed; at 10 seeds 11, 12 and 13 gave three
// different 12-token answers, none the greedy one.
const HOT = "10";

test("run streams the chat-templated answer to stdout, stats to stderr; same seed, same answer; another seed or greedy, another (prompt from stdin)", async () => {
  const args = ["run", model, "-", "--max-tokens", "12", "--ignore-eos", "--threads", "1"];
  const prompt = "Tell me a story.";
  const a = await tessera([...args, "--temperature", HOT, "--seed", "11"], prompt);
  assert.equal(a.code, 0, a.stderr);
  const json = async (...more: string[]): Promise<{ promptTokens: number[]; tokens: number[]; text: string }> => {
    const r = await tessera([...args, ...more, "--json"], prompt);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { promptTokens: number[]; tokens: number[]; text: string };
  };
  const b = await json("--temperature", HOT, "--seed", "11");
  assert.equal(a.stdout, b.text + "\n");
  assert.match(a.stderr, /prompt: \d+ tokens, prefill [\d.]+ tok\/s \| generated: 12 tokens, decode [\d.]+ tok\/s \| finish: length \| seed 11/);
  const templated = tokenizer.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true });
  assert.deepEqual(b.promptTokens, tokenizer.encode(templated));
  // Controls: the same sampling with another seed, and greedy decoding, give other tokens, so the
  // equality above is the seed's doing and not a distribution that leaves no choice.
  const other = await json("--temperature", HOT, "--seed", "12");
  const greedy = await json("--temperature", "0");
  assert.notDeepEqual(other.tokens, b.tokens, "seeds 11 and 12 drew the same tokens");
  assert.notDeepEqual(greedy.tokens, b.tokens, "sampling at temperature 10 drew the greedy tokens");
});

test("bench --json reports median pp/tg speeds and peak RSS", async () => {
  const r = await tessera(["bench", model, "--prompt-tokens", "32", "-n", "8", "--repeat", "2", "--threads", "1", "--json"]);
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
  assert.match(badFlag.stderr, /--top-p must be a number > 0 and ≤ 1, got .2./);
  const overflow = await tessera(["run", model, "one two three four five six seven eight nine ten", "--raw", "--ctx", "8"]);
  assert.equal(overflow.code, 1);
  noStack(overflow.stderr);
  assert.match(overflow.stderr, /^tessera run: the prompt has \d+ tokens, the context holds 8: nothing left to generate\n$/);
});
