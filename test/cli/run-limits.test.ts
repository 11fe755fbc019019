import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { EngineWorker } from "../../src/inference/worker/engine-worker.js";
import { DEFAULT_MAX_TOKENS } from "../../src/cli/commands/run.js";

// Honest defaults, as a user meets them through the built CLI: a run without --max-tokens stops
// and says why; a --ctx the model was not trained for, or one this machine cannot hold, is refused
// before anything is allocated; a large model shows its loading progress.

const BIN = fileURLToPath(new URL("../../../bin/tessera.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tessera-limits-"));
const tiny = join(dir, "tiny.gguf");
/** 78 MB of float32 weights (Qwen3's vocabulary): above the 64 MiB from which progress lines are printed. */
const big = join(dir, "qwen3-f32");
/** The same weights with a config that claims a context of 2^30 tokens. */
const huge = join(dir, "qwen3-long");

before(async () => {
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: tiny, seed: 5 });
  await synthesize({ arch: "qwen3", preset: "tiny", format: "safetensors", quant: "f32", out: big, seed: 5 });
  mkdirSync(huge);
  for (const f of ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]) symlinkSync(join(big, f), join(huge, f));
  const config = JSON.parse(readFileSync(join(big, "config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(huge, "config.json"), JSON.stringify({ ...config, max_position_embeddings: 2 ** 30 }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function tessera(args: string[]): Promise<Ran> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

test(`run without --max-tokens stops at the default cap of ${DEFAULT_MAX_TOKENS} and says so`, async () => {
  const r = await tessera(["run", tiny, "Hello", "--raw", "--ignore-eos", "--threads", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { tokens: number[]; finishReason: string };
  assert.equal(out.tokens.length, DEFAULT_MAX_TOKENS);
  assert.equal(out.finishReason, "length");
  assert.match(r.stderr, new RegExp(`stopped at the default cap of ${DEFAULT_MAX_TOKENS} tokens \\(--max-tokens N to change it\\)`));

  // The user's own limit needs no note; a full context gets its own.
  const own = await tessera(["run", tiny, "Hello", "--raw", "--ignore-eos", "--threads", "1", "--max-tokens", "5"]);
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stderr, /generated: 5 tokens/);
  assert.doesNotMatch(own.stderr, /stopped/);
  const full = await tessera(["run", tiny, "Hello", "--raw", "--ignore-eos", "--threads", "1", "--ctx", "40"]);
  assert.equal(full.code, 0, full.stderr);
  const generated = Number(/generated: (\d+) tokens/.exec(full.stderr)?.[1]);
  assert.ok(generated > 0 && generated < 40, full.stderr);
  assert.match(full.stderr, new RegExp(`stopped: the context is full after ${generated} tokens \\(a larger --ctx holds more\\)`));
});

test("--ctx beyond the trained context is refused before anything is allocated", async (t) => {
  const r = await tessera(["run", tiny, "Hello", "--ctx", "99999999"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), `tessera run: ${tiny}: --ctx 99999999 is beyond the 4096 tokens this model was trained for (--ctx 4096 at most)`);
  t.diagnostic(`refused in ${r.ms.toFixed(0)} ms (process start included)`);

  // The engine refuses it too, for callers that skip the CLI's check: a KV cache and rope tables for
  // 10^8 positions would take ~6 GB and more; the process's peak RSS must not move by anything like it.
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  await assert.rejects(EngineWorker.start(tiny, { contextLength: 99_999_999, threads: 1 }), /--ctx 99999999 is beyond the 4096 tokens/);
  const grew = process.resourceUsage().maxRSS * 1024 - peakBefore;
  assert.ok(grew < 256 * 2 ** 20, `peak RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  // Control: a context the model supports loads.
  const ok = await EngineWorker.start(tiny, { contextLength: 4096, threads: 1 });
  assert.equal(ok.info.contextLength, 4096);
  await ok.close();
});

test("a --ctx the model allows but this machine cannot hold is refused with the need and what is free", async () => {
  const r = await tessera(["run", huge, "Hello", "--ctx", "500000000"]);
  assert.equal(r.code, 1, r.stderr);
  const line = r.stderr.trim();
  assert.equal(line.split("\n").length, 1, line);
  assert.match(line, /needs about [\d.]+ [GT]iB of memory \(weights [\d.]+ MiB, KV cache for 500000000 tokens [\d.]+ [GT]iB, working memory [\d.]+ [GT]iB\) but only [\d.]+ [MGT]iB is available; a smaller --ctx needs less/);
  // The same model with a context that fits runs.
  const ok = await tessera(["run", huge, "Hello", "--ctx", "256", "--max-tokens", "2", "--threads", "1"]);
  assert.equal(ok.code, 0, ok.stderr);
});

test("loading a large model prints progress lines when stderr is not a terminal; a small one stays quiet", async () => {
  const r = await tessera(["run", big, "Hello", "--max-tokens", "1", "--threads", "1"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("loading qwen3-f32:"));
  assert.match(lines[0]!, /^loading qwen3-f32: 0% \(0\.0 \/ 75 MiB\)$/);
  assert.ok(lines.some((l) => /^loading qwen3-f32: 100% \(75 \/ 75 MiB\) building the onnxruntime session$/.test(l)), lines.join("\n"));
  assert.match(lines[lines.length - 1]!, /^loading qwen3-f32: done in [\d.]+ s$/);
  assert.ok(!r.stderr.includes("\r"), "no terminal control characters in a log");
  const small = await tessera(["run", tiny, "Hello", "--max-tokens", "1", "--threads", "1"]);
  assert.equal(small.code, 0, small.stderr);
  assert.doesNotMatch(small.stderr, /loading/);
});
