import { test } from "node:test";
import assert from "node:assert/strict";
import { dataDir, configDir } from "../../src/paths.js";
import { parseCommandArgs, intOption } from "../../src/cli/args.js";
import { main } from "../../src/cli/main.js";

test("data dir: flag beats TESSERA_HOME beats XDG", () => {
  assert.equal(dataDir("/x", { TESSERA_HOME: "/y" }), "/x");
  assert.equal(dataDir(undefined, { TESSERA_HOME: "/y", XDG_DATA_HOME: "/z" }), "/y");
  assert.equal(dataDir(undefined, { XDG_DATA_HOME: "/z" }), "/z/tessera");
  assert.equal(configDir({ XDG_CONFIG_HOME: "/c" }), "/c/tessera");
});

test("options fall back to TESSERA_* environment variables", () => {
  const { values } = parseCommandArgs(["--port", "1"], { port: { type: "string" }, "data-dir": { type: "string" }, "no-worker": { type: "boolean" } }, {
    env: { TESSERA_PORT: "9", TESSERA_DATA_DIR: "/d", TESSERA_NO_WORKER: "1" },
  });
  assert.equal(values.port, "1");
  assert.equal(values["data-dir"], "/d");
  assert.equal(values["no-worker"], true);
});

test("intOption rejects non-integers with a clear message", () => {
  assert.equal(intOption("threads", "4", 1), 4);
  assert.throws(() => intOption("threads", "four", 1), /--threads must be an integer/);
});

test("unknown command exits 2", async () => {
  const err = console.error;
  console.error = () => {};
  try {
    assert.equal(await main(["frobnicate"]), 2);
  } finally {
    console.error = err;
  }
});
