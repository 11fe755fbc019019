import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { synthesize } from "../../src/models/synth/synthesize.js";

// Every user mistake, as a user makes it: the real built CLI (bin/tessera.js) in a child process.
// Each must exit non-zero with exactly one line on stderr that names the flag, value or path at
// fault, and no stack trace. Flag errors come before any model is loaded, so this stays quick.

const BIN = fileURLToPath(new URL("../../../bin/tessera.js", import.meta.url));

// Paths are known when the table below is built; the files are written before the tests run.
const dir = mkdtempSync(join(tmpdir(), "tessera-bad-"));
const model = join(dir, "tiny.gguf");
const file = join(dir, "plain.txt");
const home = join(dir, "home");

before(async () => {
  await synthesize({ arch: "llama", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "spm", out: model, seed: 1 });
  writeFileSync(file, "not a model\n");
  writeFileSync(join(dir, "empty-secret"), "\n", { mode: 0o600 });
  mkdirSync(home);
});

after(() => rmSync(dir, { recursive: true, force: true }));

interface Case {
  args: () => string[];
  /** Text the one error line must contain: the flag, the value or the path. */
  names: () => string;
  env?: Record<string, string>;
}

const c = (args: () => string[], names: () => string, env?: Record<string, string>): Case => ({ args, names, env });
const run = (...a: string[]) => () => ["run", model, "hi", ...a];
const bench = (...a: string[]) => () => ["bench", model, ...a];
const synth = (...a: string[]) => () => ["synth", "--arch", "llama", "--preset", "tiny", "--format", "gguf", "--out", join(dir, "out.gguf"), ...a];
const start = (...a: string[]) => () => ["start", "--data-dir", join(dir, "node"), "--port", "0", "--no-discovery", ...a];
const is = (s: string) => () => s;

const CASES: Case[] = [
  // run
  c(() => ["run"], is("missing MODEL")),
  c(() => ["run", join(dir, "nope.gguf"), "hi"], () => join(dir, "nope.gguf")),
  c(run("--max-tokens", "-1"), is("--max-tokens")),
  c(run("--max-tokens", "0"), is("--max-tokens")),
  c(run("--max-tokens", "1.5"), is("--max-tokens")),
  c(run("--max-tokens"), is("--max-tokens")),
  c(run("--ctx", "0"), is("--ctx")),
  c(run("--ctx", "abc"), is("--ctx")),
  c(run("--ctx", "99999999"), is("--ctx 99999999")),
  c(run("--ctx", "100000"), is("--ctx 100000")),
  c(run("--threads", "0"), is("--threads")),
  c(run("--threads", "100000"), is("--threads")),
  c(run("--device", "tpu"), is("--device")),
  c(run("--tp", "0"), is("--tp")),
  c(run("--tp", "3"), is("--tp 3")),
  c(run("--stages", "-2"), is("--stages")),
  c(run("--stages", "99"), is("--stages 99")),
  c(run("--pp", "2"), is("--pp")),
  c(run("--temperature", "-1"), is("--temperature")),
  c(run("--top-p", "1.5"), is("--top-p")),
  c(run("--top-p", "0"), is("--top-p")),
  c(run("--min-p", "2"), is("--min-p")),
  c(run("--top-k", "-3"), is("--top-k")),
  c(run("--repeat-penalty", "0"), is("--repeat-penalty")),
  c(run("--seed", "-1"), is("--seed")),
  c(run("--seed", "99999999999"), is("--seed")),
  c(run("--compress-activations"), is("--compress-activations")),
  c(run("--max-token", "3"), is("--max-token")),
  c(run("extra words"), is("extra words")),
  c(run("--system", ""), is("--system")),
  c(run("--json=1"), is("--json")),
  c(run("--threads", "2", "--threads"), is("--threads")),
  // bench
  c(() => ["bench"], is("missing MODEL")),
  c(() => ["bench", join(dir, "nope")], () => join(dir, "nope")),
  c(bench("--prompt-tokens", "-5"), is("--prompt-tokens")),
  c(bench("-p", "x"), is("--prompt-tokens")),
  c(bench("--gen-tokens", "-1"), is("--gen-tokens")),
  c(bench("--repeat", "0"), is("--repeat")),
  c(bench("--pp", "256"), is("--pp")),
  c(bench("--tg", "64"), is("--tg")),
  c(bench("-p", "0", "-n", "0"), is("--prompt-tokens")),
  c(bench("--ctx", "10", "-p", "20"), is("--ctx 10")),
  c(bench("-p", "99999"), is("--prompt-tokens")),
  c(bench("--stages", "0"), is("--stages")),
  // synth
  c(() => ["synth"], is("--arch")),
  c(synth("--arch", "gpt2"), is("--arch")),
  c(synth("--preset", "huge"), is("--preset")),
  c(synth("--format", "onnx"), is("--format")),
  c(synth("--quant", "q3"), is("--quant")),
  c(synth("--quant", "mlx4"), is("--quant")),
  c(synth("--seed", "-3"), is("--seed")),
  c(synth("--vocab", "klingon"), is("--vocab")),
  c(synth("--out", join(dir, "no-such-folder", "m.gguf")), () => join(dir, "no-such-folder")),
  c(synth("--out", join(dir, "plain.txt", "m.gguf")), () => join(dir, "plain.txt")),
  c(synth("--out", dir), () => dir),
  c(synth("--out", "/proc/tessera-cannot-write.gguf"), is("/proc/tessera-cannot-write.gguf")),
  c(synth("extra"), is("extra")),
  // inspect
  c(() => ["inspect"], is("MODEL")),
  c(() => ["inspect", join(dir, "nope")], () => join(dir, "nope")),
  c(() => ["inspect", file], () => file),
  c(() => ["inspect", model, "second"], is("second")),
  // status
  c(() => ["status", "--url", "ftp://box"], is("--url")),
  c(() => ["status", "--url", "::::"], is("--url")),
  c(() => ["status", "--url", "127.0.0.1:1"], is("127.0.0.1:1")),
  c(() => ["status", "extra"], is("extra")),
  c(() => ["status"], is("TESSERA_URL"), { TESSERA_URL: "ftp://box" }),
  // start
  c(start("--port", "-1"), is("--port")),
  c(start("--port", "70000"), is("--port")),
  c(start("--port", "abc"), is("--port")),
  c(start("--peer-port", "99999"), is("--peer-port")),
  c(start("--memory-limit", "-1G"), is("--memory-limit")),
  c(start("--memory-limit", "0"), is("--memory-limit")),
  c(start("--memory-limit", "lots"), is("--memory-limit")),
  c(start("--threads", "0"), is("--threads")),
  c(start("--device", "tpu"), is("--device")),
  c(start("--cluster", "a b"), is("--cluster")),
  c(start("--secret", ""), is("--secret")),
  c(start("--secret-file", join(dir, "nope")), () => join(dir, "nope")),
  c(start("--secret-file", join(dir, "empty-secret")), () => join(dir, "empty-secret")),
  c(start("--secret", "x", "--secret-file", join(dir, "plain.txt")), is("--secret-file")),
  c(start("--peers", "a:70000"), is("--peers")),
  c(start("--peers", ""), is("--peers")),
  c(start("--measure-every", "0"), is("--measure-every")),
  c(start("--data-dir", join(dir, "plain.txt", "sub")), () => join(dir, "plain.txt")),
  c(start("--data-dir", join(dir, "plain.txt")), () => join(dir, "plain.txt")),
  c(start("--name", ""), is("--name")),
  c(start("--host", "999.1.1.1"), is("999.1.1.1")),
  c(start("stray"), is("stray")),
  c(() => ["start", "--data-dir", join(dir, "node"), "--no-discovery"], is("TESSERA_PORT"), { TESSERA_PORT: "abc" }),
  c(() => ["start", "--data-dir", join(dir, "node"), "--port", "0", "--no-discovery"], is("TESSERA_SECRET"), { TESSERA_SECRET: "" }),
  // secret, unknown commands
  c(() => ["secret", "extra"], is("extra")),
  c(() => ["secret", "--force=1"], is("--force")),
  c(() => ["frobnicate"], is("frobnicate")),
];

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function tessera(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  // A fresh home: nothing a mistake might create lands in the user's.
  const childEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_DATA_HOME: join(home, ".local", "share"), ...env };
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: childEnv });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function inParallel<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

test(`${CASES.length} bad invocations: each exits non-zero with one line naming the mistake, never a stack trace`, async () => {
  assert.ok(CASES.length >= 40);
  const results = await inParallel(CASES, 4, (k) => tessera(k.args(), k.env));
  const problems: string[] = [];
  CASES.forEach((k, i) => {
    const r = results[i]!;
    const args = k.args().join(" ");
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    const why: string[] = [];
    if (r.signal !== null || r.code === 0 || r.code === null) why.push(`exit ${r.code ?? r.signal}`);
    if (lines.length !== 1) why.push(`${lines.length} stderr lines`);
    if (/^\s+at /m.test(r.stderr) || /\b(TypeError|RangeError|ReferenceError)\b/.test(r.stderr)) why.push("stack trace");
    if (!lines[0]?.startsWith("tessera")) why.push("does not start with 'tessera'");
    if (!lines[0]?.includes(k.names())) why.push(`does not name '${k.names()}'`);
    if (r.stdout.trim() !== "") why.push("wrote to stdout");
    if (why.length) problems.push(`tessera ${args}\n  ${why.join(", ")}\n  stderr: ${r.stderr.trim().split("\n").join("\n          ")}`);
  });
  assert.equal(problems.length, 0, `\n${problems.join("\n")}`);
});

test("the checks above can fail: a good invocation exits 0, and a programming error keeps its stack trace", async () => {
  const ok = await tessera(["inspect", model]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /llama/);
  // --verbose asks for the stack trace of a user error, which the one-line rule would catch.
  const verbose = await tessera(["run", model, "hi", "--max-tokens", "-1", "--verbose"]);
  assert.notEqual(verbose.code, 0);
  assert.ok(verbose.stderr.trim().split("\n").length > 1 && /^\s+at /m.test(verbose.stderr), verbose.stderr);
});
