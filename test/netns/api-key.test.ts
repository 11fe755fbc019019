import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { removeDir, startNode, stopAll, tempDir, type NodeProcess } from "../cluster/node-process.js";
import { createNetLab, requireRoot, type NetLab } from "./netlab.js";

// Secret mode without --api-key: the node generates a key on its first start, keeps it in the
// config dir and prints it once; callers from another address (the root namespace, over the
// bridge) need it, callers on the node's own loopback do not. Needs root (network namespaces).

const run = promisify(execFile);
let lab: NetLab | null = null;
const dirs: string[] = [];
let configDir = "";
let node: NodeProcess;

function start(dataDir: string): Promise<NodeProcess> {
  return startNode(["--host", "0.0.0.0", "--port", "52480", "--no-discovery", "--secret", "netns-secret", "--cluster", `k${process.pid}`], {
    dataDir,
    wrap: ["ip", "netns", "exec", lab!.ns(1)],
    host: lab!.ip(1),
    env: { TESSERA_CONFIG_DIR: configDir },
  });
}

before(async () => {
  requireRoot();
  lab = createNetLab(1);
  configDir = tempDir();
  dirs.push(configDir, tempDir());
  node = await start(dirs[1]!);
});

after(async () => {
  try {
    await stopAll();
  } finally {
    lab?.destroy();
    for (const d of dirs) removeDir(d);
  }
});

/** Status of a GET made from inside the node's namespace, to its loopback address. */
async function fromLoopback(path: string): Promise<number> {
  const code = `fetch("http://127.0.0.1:52480${path}").then((r) => console.log(r.status), (e) => { console.error(e); process.exit(1); })`;
  const { stdout } = await run("ip", ["netns", "exec", lab!.ns(1), process.execPath, "-e", code]);
  return Number(stdout.trim());
}

test("a generated key guards non-loopback callers; loopback is open; the key is printed once", async () => {
  const key = readFileSync(join(configDir, "api-key"), "utf8").trim();
  assert.match(key, /^tsk-[A-Za-z0-9_-]{32}$/);
  assert.ok(node.output().includes(key), "the first start prints the key");
  const remote = (path: string, headers: Record<string, string> = {}) => fetch(node.url(path), { headers }).then((r) => r.status);
  assert.equal(await remote("/v1/models"), 401);
  assert.equal(await remote("/api/tags"), 401);
  assert.equal(await remote("/v1/models", { authorization: `Bearer ${key}` }), 200);
  assert.equal(await remote("/api/tags", { "x-api-key": key }), 200);
  assert.equal(await remote("/v1/models", { authorization: "Bearer tsk-wrong" }), 401);
  assert.equal(await remote("/healthz"), 200);
  assert.equal(await fromLoopback("/v1/models"), 200);
  assert.equal(await fromLoopback("/api/tags"), 200);

  // a restart keeps the key and does not print it again
  await node.stop();
  node = await start(dirs[1]!);
  assert.equal(readFileSync(join(configDir, "api-key"), "utf8").trim(), key);
  assert.ok(!node.output().includes(key), "printed once, on the first start only");
  assert.match(node.output(), /API key kept in/);
  assert.equal(await remote("/v1/models"), 401);
  assert.equal(await remote("/v1/models", { authorization: `Bearer ${key}` }), 200);
});
