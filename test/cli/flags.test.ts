import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagError, checkPath, flag, formatFlags, parseFlags } from "../../src/cli/flags.js";
import { progress, renderBar } from "../../src/cli/progress.js";
import { displayNames, nodeUrl } from "../../src/cli/commands/status.js";
import { DEFAULT_MAX_TOKENS, stopNote } from "../../src/cli/commands/run.js";
import { userMessage } from "../../src/cli/main.js";

const FLAGS = {
  count: flag.int({ min: 1, max: 10, default: 3, help: "how many" }),
  ratio: flag.number({ min: 0, above: true, max: 1, help: "a share" }),
  size: flag.size({ help: "memory" }),
  mode: flag.choice(["fast", "slow"], { default: "fast", help: "speed" }),
  name: flag.string({ help: "a name", emptyHint: "leave it out" }),
  port: flag.port({ help: "a port" }),
  json: flag.bool({ help: "JSON out" }),
  prompt: flag.int({ min: 0, default: 8, short: "p", help: "prompt tokens" }),
  pp: flag.renamed("pipeline stages are --stages"),
};

const fails = (argv: string[], pattern: RegExp, opts = {}) =>
  assert.throws(() => parseFlags(argv, FLAGS, opts), (e: unknown) => e instanceof FlagError && pattern.test(e.message) && !e.message.includes("\n"), argv.join(" "));

test("flags: values are parsed, typed and defaulted; -x aliases, --x=v and -- work", () => {
  const { values, positionals } = parseFlags(["a", "--count", "7", "--ratio=0.5", "--size", "8G", "--mode", "SLOW", "-p", "0", "--json", "--", "--count"], FLAGS, { positionals: { max: 2 } });
  assert.deepEqual(
    { ...values },
    { count: 7, ratio: 0.5, size: 8 * 1024 ** 3, mode: "slow", name: undefined, port: undefined, json: true, prompt: 0, pp: undefined, verbose: false },
  );
  assert.deepEqual(positionals, ["a", "--count"]);
  const d = parseFlags([], FLAGS).values;
  assert.equal(d.count, 3);
  assert.equal(d.json, false);
  assert.equal(d.ratio, undefined);
});

test("flags: every bad value is one FlagError line naming the flag", () => {
  fails(["--count", "-1"], /^--count must be a whole number from 1 to 10, got '-1'$/);
  fails(["--count", "0"], /--count must be a whole number from 1 to 10, got '0'/);
  fails(["--count", "11"], /--count .* got '11'/);
  fails(["--count", "2.5"], /--count .* got '2.5'/);
  fails(["--count", "3x"], /--count .* got '3x'/);
  fails(["--count", ""], /--count .* got ''/);
  fails(["--count"], /^--count needs a value \(N: how many\)$/);
  fails(["--count", "--json"], /--count needs a value/);
  fails(["--ratio", "0"], /--ratio must be a number > 0 and ≤ 1, got '0'/);
  fails(["--ratio", "NaN"], /--ratio must be a number/);
  fails(["--size", "-1G"], /--size must be a size like 8G/);
  fails(["--size", "0"], /--size must be more than 0 bytes/);
  fails(["--mode", "medium"], /--mode must be one of fast, slow, got 'medium'/);
  fails(["--name", ""], /^--name is empty; leave it out$/);
  fails(["--port", "65536"], /--port must be a whole number from 0 to 65535/);
  fails(["--json=yes"], /--json takes no value/);
  fails(["--pp", "2"], /^--pp is not an option here: pipeline stages are --stages$/);
  fails(["--cuont", "2"], /^unknown option '--cuont' \(did you mean --count\?\)$/);
  fails(["-x"], /^unknown option '-x'$/);
  fails(["extra"], /unexpected argument 'extra'/);
  fails(["a", "b"], /unexpected extra argument 'b'/, { positionals: { max: 1 } });
  fails([], /missing argument \(usage: cmd X\)/, { positionals: { min: 1, max: 1, usage: "cmd X" } });
});

test("flags: TESSERA_<NAME> fills flags missing from argv, checked the same way and named as the variable", () => {
  const env = { TESSERA_COUNT: "9", TESSERA_JSON: "true", TESSERA_MODE: "slow" };
  const { values } = parseFlags(["--mode", "fast"], FLAGS, { env });
  assert.equal(values.count, 9);
  assert.equal(values.json, true);
  assert.equal(values.mode, "fast", "argv wins over the environment");
  assert.equal(parseFlags([], FLAGS, { env: { TESSERA_JSON: "0" } }).values.json, false);
  fails([], /^TESSERA_COUNT must be a whole number from 1 to 10, got '99'$/, { env: { TESSERA_COUNT: "99" } });
  fails([], /TESSERA_JSON must be 1\/true or 0\/false/, { env: { TESSERA_JSON: "maybe" } });
  assert.equal(parseFlags([], FLAGS, {}).values.count, 3, "no env option: the environment is not read");
});

test("flags: help lists each visible flag with its phrase and default", () => {
  const help = formatFlags(FLAGS);
  assert.match(help, /--count N\s+how many \(default 3\)/);
  assert.match(help, /-p, --prompt N\s+prompt tokens \(default 8\)/);
  assert.match(help, /--mode fast\|slow\s+speed \(default fast\)/);
  assert.match(help, /--json\s+JSON out$/m);
  assert.doesNotMatch(help, /--pp/);
});

test("paths: inputs must exist, outputs need an existing writable folder, dirs an existing ancestor", () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-flags-"));
  try {
    const file = join(dir, "f");
    writeFileSync(file, "x");
    checkPath(file, "input", "MODEL");
    checkPath(dir, "input", "MODEL");
    checkPath(file, "file", "--secret-file");
    checkPath(join(dir, "new.gguf"), "output", "--out");
    checkPath(dir, "output-folder", "--out");
    checkPath(join(dir, "a", "b", "c"), "dir", "--data-dir");
    const bad = (p: string, kind: Parameters<typeof checkPath>[1], pattern: RegExp) =>
      assert.throws(() => checkPath(p, kind, "--x"), (e: unknown) => e instanceof FlagError && pattern.test(e.message), `${kind} ${p}`);
    bad(join(dir, "nope"), "input", /--x .*nope: no such file or folder/);
    bad(dir, "file", /not a file/);
    bad(join(dir, "missing", "m.gguf"), "output", /folder .*missing does not exist/);
    bad(join(file, "m.gguf"), "output", /is not a folder/);
    bad(dir, "output", /is a folder \(give a file name\)/);
    bad(file, "output-folder", /is a file \(give a folder name\)/);
    bad(file, "dir", /not a folder/);
    bad(join(file, "sub"), "dir", /is not a folder/);
    if (process.getuid?.() !== 0) {
      // Root writes anywhere; as anyone else a read-only folder is refused up front.
      const ro = join(dir, "ro");
      mkdirSync(ro);
      chmodSync(ro, 0o500);
      bad(join(ro, "m.gguf"), "output", /permission denied/);
      chmodSync(ro, 0o700);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("errors a user can fix are one line; bugs are not recognised as such", () => {
  const enoent = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT", syscall: "open", path: "/x/y" });
  assert.equal(userMessage(enoent), "open /x/y: no such file or folder (ENOENT)");
  assert.equal(userMessage(new FlagError("a\nb")), "a b");
  assert.equal(userMessage(new TypeError("x is undefined")), undefined);
  assert.equal(userMessage(Object.assign(new Error("boom"), { code: "ERR_SOMETHING" })), undefined);
});

test("progress: a bar redrawn in place on a terminal, lines every 10 % otherwise (large work only)", () => {
  // 80 columns: 80 − label − 40 = 36 cells.
  assert.equal(renderBar("load", 50, 100, 80), `load [${"#".repeat(18)}${".".repeat(18)}]  50%  0.0 / 0.0 MiB`);
  assert.match(renderBar("load", 300 * 2 ** 20, 600 * 2 ** 20, 60), /^load \[#{8}\.{8}\] {2}50% {2}300 \/ 600 MiB$/); // 60 − 4 − 40 = 16 cells

  let clock = 0;
  const tty: string[] = [];
  const bar = progress("load", { isTTY: true, columns: 80, write: (s) => tty.push(s) }, { now: () => clock });
  bar.update({ done: 0, total: 100, phase: "weights" });
  bar.update({ done: 10, total: 100, phase: "weights" }); // within 100 ms: not redrawn
  clock = 200;
  bar.update({ done: 60, total: 100, phase: "weights" });
  bar.update({ done: 100, total: 100, phase: "session" });
  bar.done();
  assert.equal(tty.length, 4);
  assert.ok(tty.slice(0, 3).every((s) => s.startsWith("\r\x1b[K")));
  assert.match(tty[1]!, /60%/);
  assert.match(tty[2]!, /100%.*building the onnxruntime session/);
  assert.equal(tty[3], "\r\x1b[K", "done() clears the bar");

  const lines: string[] = [];
  const big = 200 * 2 ** 20;
  const plain = progress("load", { write: (s) => lines.push(s) }, { now: () => clock });
  for (let d = 0; d <= big; d += big / 40) plain.update({ done: d, total: big, phase: "weights" });
  plain.update({ done: big, total: big, phase: "session" });
  clock = 1700;
  plain.done();
  assert.equal(lines.length, 13, lines.join("")); // 0..100 % in steps of 10, the session line, done
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.equal(lines[3], "load: 30% (60 / 200 MiB)\n");
  assert.equal(lines[12], "load: done in 1.5 s\n");

  const quiet: string[] = [];
  const small = progress("load", { write: (s) => quiet.push(s) });
  small.update({ done: 1, total: 2 ** 20 });
  small.done();
  assert.deepEqual(quiet, [], "small work prints nothing when not on a terminal");
});

test("status: --url accepts host:port with or without a scheme, a bare host or port; duplicate names get a short id", () => {
  assert.equal(nodeUrl("127.0.0.1:52480"), "http://127.0.0.1:52480");
  assert.equal(nodeUrl("http://box:8080/"), "http://box:8080");
  assert.equal(nodeUrl("box"), "http://box:52480");
  assert.equal(nodeUrl("9000"), "http://127.0.0.1:9000");
  assert.equal(nodeUrl("[::1]:7"), "http://[::1]:7");
  assert.throws(() => nodeUrl("ftp://box"), /--url must be an http/);
  assert.throws(() => nodeUrl("::::"), /--url must be host:port/);
  const names = displayNames([
    { id: "aaaa111122223333", name: "host" },
    { id: "bbbb111122223333", name: "host" },
    { id: "cccc111122223333", name: "other" },
  ]);
  assert.deepEqual([...names.values()], ["host~aaaa", "host~bbbb", "other"]);
});

test("run: the stop note says whether the default cap or a full context ended a run", () => {
  assert.match(stopNote("length", DEFAULT_MAX_TOKENS, false, 4000)!, new RegExp(`default cap of ${DEFAULT_MAX_TOKENS} tokens \\(--max-tokens N`));
  assert.match(stopNote("length", 30, false, 30)!, /context is full after 30 tokens/);
  assert.match(stopNote("length", 30, true, 30)!, /context is full/);
  assert.equal(stopNote("length", 20, true, 4000), undefined, "the user's own --max-tokens needs no note");
  assert.equal(stopNote("stop", 20, false, 4000), undefined);
});
