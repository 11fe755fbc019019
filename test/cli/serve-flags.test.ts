import { test } from "node:test";
import assert from "node:assert/strict";
import { serveFlags } from "../../src/cli/commands/serve-flags.js";
import { parseFlags } from "../../src/cli/flags.js";
import { SERVE_FLAGS } from "../../src/cli/commands/serve-flags.js";
import { TesseraError } from "../../src/errors.js";

const here = new URL(import.meta.url).pathname;

function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return serveFlags(parseFlags(argv, SERVE_FLAGS, { env }).values);
}

test("serving flags: repeatable models and aliases, env lists, keep-alive durations, defaults", () => {
  const d = parse([]);
  assert.deepEqual(d, { modelPaths: [], contextLength: undefined, apiKey: undefined, defaultModel: undefined, aliases: {}, autoLaunch: true, maxQueued: 32, keepAliveMs: -1 });
  const f = parse(["--model", here, "--model", here, "--alias", "fast=tiny", "--alias", "big=qwen", "--keep-alive", "5m", "--no-auto-launch", "--max-queue", "0", "--ctx", "2048", "--default-model", "tiny"]);
  assert.deepEqual(f.modelPaths, [here, here]);
  assert.deepEqual(f.aliases, { fast: "tiny", big: "qwen" });
  assert.deepEqual([f.keepAliveMs, f.autoLaunch, f.maxQueued, f.contextLength, f.defaultModel], [300_000, false, 0, 2048, "tiny"]);
  const e = parse([], { TESSERA_MODEL: `${here},${here}`, TESSERA_API_KEY: "k", TESSERA_ALIAS: "a=b" });
  assert.deepEqual([e.modelPaths.length, e.apiKey, e.aliases], [2, "k", { a: "b" }]);
  assert.throws(() => parse(["--api-key", ""]), /--api-key is empty/, "an empty key is a mistake, not no key");
});

test("bad serving flags fail with one clear error", () => {
  const cases: [string[], RegExp][] = [
    [["--model", "/no/such/model.gguf"], /--model must be an existing file or folder, got '\/no\/such\/model.gguf'/],
    [["--alias", "nope"], /--alias must be NAME=ID, got 'nope'/],
    [["--keep-alive", "soon"], /--keep-alive must be a duration/],
    [["--max-queue=-1"], /--max-queue must be a whole number ≥ 0, got .-1./],
    [["--ctx", "8"], /--ctx must be .*16/],
  ];
  for (const [argv, message] of cases) assert.throws(() => parse(argv), (e: unknown) => e instanceof TesseraError && message.test(e.message), argv.join(" "));
});
