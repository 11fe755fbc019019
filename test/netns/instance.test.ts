import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { isProcessAlive } from "../../src/process-alive.js";
import { removeDir, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { byId, CTX, del, GREEDY, post, ready, referenceTokens, smallModel, startCluster, twoNodeLimit } from "../instances/helpers.js";
import { createNetLab, requireRoot, type NetLab } from "./netlab.js";

// Two nodes in two network namespaces on one bridge (mDNS discovery only), each with a memory
// limit under which the model fits only across both: an instance spans the namespaces, its runners
// talk over the veths, and it generates one process's tokens. The test reaches the nodes from outside
// their namespaces, a non-loopback caller of a secret-mode node, so it sends the API key. Needs root:
// CI runs it as root.

let lab: NetLab | null = null;
const nodes: NodeProcess[] = [];
const dirs: string[] = [];
let modelDir = "";
let model = "";
let expected: number[] = [];

before(async () => {
  requireRoot();
  modelDir = tempDir("tessera-netns-model-");
  model = await smallModel(modelDir);
  expected = await referenceTokens(model);
  const { limit } = await twoNodeLimit(model);
  lab = createNetLab(2);
  const cluster = `netns-inst-${process.pid}`;
  for (let i = 0; i < 2; i++) dirs.push(tempDir());
  const args = (i: number) => ["--host", "0.0.0.0", "--port", "52480", "--cluster", cluster, "--secret", "netns-secret", "--measure-every", "600", "--threads", "1", "--memory-limit", String(limit), "--name", `ns${i + 1}`];
  nodes.push(...(await startCluster(2, args, dirs, (i) => ({ wrap: ["ip", "netns", "exec", lab!.ns(i + 1)], host: lab!.ip(i + 1), apiKey: "netns-key" }))));
});

after(async () => {
  try {
    await stopAll();
  } finally {
    lab?.destroy();
    for (const d of [...dirs, modelDir]) removeDir(d);
  }
});

test("an instance across two network namespaces generates the tokens of one process", async (t) => {
  await waitFor("both nodes with profiles in both states", 30000, async () => {
    const views = await Promise.all(nodes.map((n) => n.view()));
    return views.every((v) => Object.values(v.state.nodes).filter((n) => n.profile?.decodeBytesPerSec).length === 2);
  });
  const created = await post(nodes[1]!.url("/instances"), { model, ctx: CTX }, nodes[1]!.headers);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const i = await ready(nodes[0]!, created.body.id);
  assert.equal(new Set(i.ranks.map((r) => r.node)).size, 2, "both namespaces run a part");
  const home = byId(nodes, i.home);
  const out = await post(home.url(`/instances/${i.id}/generate`), GREEDY, home.headers);
  assert.equal(out.status, 200, JSON.stringify(out.body));
  assert.deepEqual(out.body.tokens, expected);
  t.diagnostic(`${i.strategy} over ${i.ranks.map((r) => r.name).join(", ")}: predicted ${i.predicted.decodeTps} tok/s, measured ${out.body.timings.decodeTps.toFixed(1)} tok/s`);
  const pids = i.ranks.filter((r) => r.role === "runner").map((r) => r.pid!);
  assert.equal((await del(nodes[0]!.url(`/instances/${i.id}`), nodes[0]!.headers)).status, 200);
  await waitFor("runners gone", 20000, () => pids.every((p) => !isProcessAlive(p)));
});
