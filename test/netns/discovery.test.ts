import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { removeDir, sameState, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "../cluster/node-process.js";
import { createNetLab, requireRoot, type NetLab } from "./netlab.js";

// Three nodes in three network namespaces on one bridge, with mDNS discovery only (no --peers).
// Node 3's link is capped with tc tbf in both directions. Needs root: CI runs it as root.

const CAP_RATE = "24mbit"; // 3 MB/s
const CAP_BYTES_PER_SEC = 3e6;
let lab: NetLab | null = null;
const nodes: NodeProcess[] = [];
const dirs: string[] = [];
let startedAt = 0;

before(async () => {
  requireRoot();
  lab = createNetLab(3);
  lab.capBandwidth(3, CAP_RATE);
  const cluster = `netns-${process.pid}`;
  const args = ["--host", "0.0.0.0", "--port", "52480", "--cluster", cluster, "--measure-every", "600"];
  const start = (i: number, dataDir: string) => startNode([...args, "--name", `ns${i}`], { dataDir, wrap: ["ip", "netns", "exec", lab!.ns(i)], host: lab!.ip(i) });
  for (let i = 0; i < 3; i++) dirs.push(tempDir());
  nodes.push(await start(1, dirs[0]!));
  // One machine probe; the other two start from its cache.
  await waitFor("node 1's machine probe", 30000, async () => (await nodes[0]!.view()).state.nodes[nodes[0]!.id]?.profile?.matmulGflops);
  for (const d of dirs.slice(1)) copyFileSync(join(dirs[0]!, "machine-profile.json"), join(d, "machine-profile.json"));
  nodes.push(...(await Promise.all([start(2, dirs[1]!), start(3, dirs[2]!)])));
  startedAt = Date.now();
});

after(async () => {
  try {
    await stopAll();
  } finally {
    lab?.destroy();
    for (const d of dirs) removeDir(d);
  }
});

/** On failure, the nodes' logs go to the test output: these runs are hard to reproduce. */
async function withLogs<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    for (const [i, n] of nodes.entries()) console.log(`--- node ${i + 1} (${n.id}) ---\n${n.output()}`);
    throw e;
  }
}

async function seeAll(live: NodeProcess[], count: number) {
  const s = await sameState(live);
  return s && Object.keys(s.nodes).length === count ? s : undefined;
}

test("nodes with discovery only find each other within 5 s", async (t) => {
  const s = await withLogs(waitFor("all three nodes in every state", 5000, () => seeAll(nodes, 3), 100));
  const took = Date.now() - startedAt;
  assert.ok(took <= 5000, `found each other after ${took} ms`);
  t.diagnostic(`same 3-node state everywhere ${took} ms after the last node started`);
  assert.deepEqual(Object.keys(s.nodes).sort(), nodes.map((n) => n.id).sort());
  for (const [i, n] of nodes.entries()) assert.equal(s.nodes[n.id]!.host, lab!.ip(i + 1), "address learnt from the namespace's interface");
});

test("measured RTT and bandwidth appear in /cluster, and the tbf cap shows on node 3's links", async (t) => {
  const s = await withLogs(
    waitFor("six measured links", 30000, async () => {
      const st = await seeAll(nodes, 3);
      return st && Object.keys(st.links).length === 6 ? st : undefined;
    }),
  );
  const n3 = nodes[2]!.id;
  const capped = Object.values(s.links).filter((l) => l.from === n3 || l.to === n3);
  const free = Object.values(s.links).filter((l) => l.from !== n3 && l.to !== n3);
  assert.equal(capped.length, 4);
  for (const l of Object.values(s.links)) assert.ok(l.rttMs > 0 && l.rttMs < 1000, `rtt ${l.rttMs} ms`);
  const mb = (x: number) => (x / 1e6).toFixed(1);
  t.diagnostic(`capped MB/s: ${capped.map((l) => mb(l.bandwidthBytesPerSec)).join(", ")}; uncapped MB/s: ${free.map((l) => mb(l.bandwidthBytesPerSec)).join(", ")}`);
  t.diagnostic(`RTT ms: ${Object.values(s.links).map((l) => l.rttMs.toFixed(2)).join(", ")}`);
  const maxCapped = Math.max(...capped.map((l) => l.bandwidthBytesPerSec));
  const minFree = Math.min(...free.map((l) => l.bandwidthBytesPerSec));
  assert.ok(maxCapped < CAP_BYTES_PER_SEC * 1.5, `capped links measured up to ${maxCapped} B/s (cap ${CAP_BYTES_PER_SEC})`);
  assert.ok(maxCapped > CAP_BYTES_PER_SEC * 0.3, `capped links measured ${maxCapped} B/s, far below the cap`);
  assert.ok(minFree > 2 * maxCapped, `uncapped links ${minFree} B/s vs capped ${maxCapped} B/s`);
});

test("a link taken down is detected within 5 s, and bringing it up re-admits the node", async (t) => {
  const gone = nodes[1]!;
  const others = [nodes[0]!, nodes[2]!];
  lab!.linkDown(2);
  const t0 = Date.now();
  await withLogs(
    waitFor("node 2 dropped by the others", 6000, async () => {
      const st = await seeAll(others, 2);
      return st && !(gone.id in st.nodes) ? st : undefined;
    }),
  );
  const took = Date.now() - t0;
  assert.ok(took <= 5000, `link loss detected after ${took} ms`);
  lab!.linkUp(2);
  const up = Date.now();
  const s = await withLogs(waitFor("node 2 re-admitted", 20000, () => seeAll(nodes, 3), 200));
  assert.ok(gone.id in s.nodes);
  t.diagnostic(`link loss seen after ${took} ms; re-admitted ${Date.now() - up} ms after the link came up`);
  assert.equal(s.master, nodes[0]!.id, "the senior node stays master");
});
