import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { cliCommand } from "../../src/spawn.js";
import { isProcessAlive } from "../../src/process-alive.js";
import { Group, GroupListener } from "../../src/transport/index.js";
import type { InstanceView } from "../../src/instances/views.js";
import { removeDir, startNode, stopAll, tempDir, waitFor, getJson, type NodeProcess } from "../cluster/node-process.js";
import { byId, CTX, del, GREEDY, instancesOf, post, ready, referenceTokens, smallModel, startCluster, twoNodeLimit } from "./helpers.js";

// Three node processes on 127.0.0.1 with a cluster secret; each reports a memory limit under which
// the small synthetic model fits on no single node but across two. One scenario, in order.

const SECRET = "instances-test-secret";
const nodes: NodeProcess[] = [];
const dirs: string[] = [];
let modelDir = "";
let model = "";
let expected: number[] = [];
let limit = 0;

const args = (i: number, extra: string[] = []): string[] => [
  "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--secret", SECRET, "--cluster", "inst", "--measure-every", "600",
  "--threads", "1", "--memory-limit", String(limit), "--name", `n${i}`, ...extra,
];

before(async () => {
  modelDir = tempDir("tessera-instances-");
  model = await smallModel(modelDir);
  expected = await referenceTokens(model);
  ({ limit } = await twoNodeLimit(model));
  for (let i = 0; i < 3; i++) dirs.push(tempDir());
  nodes.push(...(await startCluster(3, (i, first) => (first ? args(i, ["--peers", `127.0.0.1:${first.peer}`]) : args(i)), dirs)));
});

after(async () => {
  await stopAll();
  for (const d of [...dirs, modelDir]) removeDir(d);
});

/** Waits until every node sees all three with their profiles (probes, memory limits). */
async function converged(live: NodeProcess[]) {
  return waitFor(`${live.length} nodes agreeing`, 30000, async () => {
    const views = await Promise.all(live.map((n) => n.view()));
    const s = views[0]!.state;
    const same = views.every((v) => JSON.stringify(v.state.nodes) === JSON.stringify(s.nodes));
    return same && Object.keys(s.nodes).length === live.length && Object.values(s.nodes).every((n) => n.profile?.decodeBytesPerSec) ? s : undefined;
  });
}

async function master(): Promise<NodeProcess> {
  const s = (await nodes[0]!.view()).state;
  return byId(nodes, s.master!);
}

async function notMaster(): Promise<NodeProcess> {
  const m = await master();
  return nodes.find((n) => n !== m)!;
}

async function generate(i: InstanceView): Promise<{ tokens: number[]; timings: { decodeTps: number } }> {
  const home = byId(nodes, i.home);
  const r = await post(home.url(`/instances/${i.id}/generate`), GREEDY);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** The decode speed the home node measured once the instance was ready. */
async function measured(n: NodeProcess, id: string): Promise<{ decodeTps: number }> {
  return waitFor(`instance ${id}'s measured speed`, 20000, async () => (await instancesOf(n)).find((x) => x.id === id)?.measured);
}

function runnerPids(i: InstanceView): number[] {
  return i.ranks.filter((r) => r.role === "runner").map((r) => r.pid!).filter(Boolean);
}

const report: string[] = [];

test("previews: one node cannot hold the model, two can; every rejected plan says why", async (t) => {
  await converged(nodes);
  const r = (await getJson(nodes[1]!.url(`/instances/previews?model=${encodeURIComponent(model)}&ctx=${CTX}`))) as { plans: { strategy: string; feasible: boolean; reason?: string; nodes: string[] }[] };
  const single = r.plans.filter((p) => p.strategy === "single");
  assert.equal(single.length, 3);
  for (const p of single) assert.match(p.reason!, /^needs \d+\.\d MiB on n\d \(layers \[0, 4\), the driver\) but it has \d+\.\d MiB free$/);
  assert.ok(r.plans.some((p) => p.feasible && p.strategy === "pipeline" && p.nodes.length === 2));
  assert.ok(r.plans.some((p) => p.feasible && p.strategy === "tensor" && p.nodes.length === 2));
  assert.match(r.plans.find((p) => p.strategy === "tensor" && p.nodes.length === 3)!.reason!, /cannot share the model's 2 KV heads/);
  t.diagnostic(`memory limit ${(limit / 2 ** 20).toFixed(1)} MiB per node`);
});

test("POST /instances on a node that is not the master: a pipeline over two nodes, the tokens of one process; DELETE frees everything", async (t) => {
  const entry = await notMaster();
  // two nodes named: the pipeline is then over exactly those (the third could hold a stage too)
  const names = nodes.map((n, k) => (n === entry ? "" : `n${k}`)).filter(Boolean);
  const created = await post(entry.url("/instances"), { model, strategy: "pipeline", nodes: names, ctx: CTX });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.strategy, "pipeline");
  assert.match(created.body.id, /^[0-9a-f]{12}$/);
  const i = await ready(entry, created.body.id);
  assert.equal(i.plan.stages.length, 2);
  assert.equal(new Set(i.ranks.filter((r) => r.role === "runner").map((r) => r.node)).size, 2, "two nodes run its ranks");
  const out = await generate(i);
  assert.deepEqual(out.tokens, expected);
  report.push(`pipeline 2: predicted ${i.predicted.decodeTps} tok/s, measured ${out.timings.decodeTps.toFixed(1)} tok/s (right after ready: ${(await measured(entry, i.id)).decodeTps})`);
  t.diagnostic(report[report.length - 1]!);
  const pids = runnerPids(i);
  assert.equal(pids.length, 2);
  assert.ok(pids.every(isProcessAlive));
  const gone = await del(nodes[2]!.url(`/instances/${i.id}`));
  assert.equal(gone.status, 200);
  await waitFor("no instance anywhere, no runner left", 20000, async () => {
    const all = await Promise.all(nodes.map((n) => n.view()));
    return all.every((v) => Object.keys(v.state.instances).length === 0) && pids.every((p) => !isProcessAlive(p));
  });
  const again = await del(nodes[0]!.url(`/instances/${i.id}`));
  assert.equal(again.status, 404, "a deleted instance is gone");
});

/** A rank of group `group` that does not hold the instance key, dialling `port` as rank 1 of 2. */
async function impostor(group: string, port: number): Promise<string> {
  const listener = await GroupListener.open("127.0.0.1", 0);
  try {
    await Group.join({ rank: 1, size: 2, peers: [{ host: "127.0.0.1", port }, { host: "127.0.0.1", port: listener.port }], groupId: group, key: "ab".repeat(32), listener, timeoutMs: 1500 });
    return "joined";
  } catch (e) {
    return (e as Error).message;
  }
}

/** Writes `bytes` to `port` and reports what came back before the connection closed. */
function raw(port: number, bytes: Buffer): Promise<{ closed: boolean; got: number }> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    let got = 0;
    const done = (closed: boolean) => resolve({ closed, got });
    const timer = setTimeout(() => {
      s.destroy();
      done(false);
    }, 3000);
    s.on("data", (d: Buffer) => (got += d.length));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      done(true);
    });
    s.on("connect", () => s.write(bytes));
  });
}

test("a rank without the instance key, or a raw socket, at a runner's data-plane ports is refused; the instance is unaffected", async (t) => {
  const entry = nodes[0]!;
  const created = await post(entry.url("/instances"), { model, strategy: "pipeline", ctx: CTX });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;
  const group = `${id}.1`;
  // While the ranks load, their world listeners are open: attack each as soon as it is reported.
  const attacked = new Set<number>();
  const outcomes: string[] = [];
  while (true) {
    const i = (await entry.view()).state.instances[id];
    if (!i || i.status !== "starting") break;
    for (const r of i.ranks) {
      if (!r.ports || attacked.has(r.ports.world)) continue;
      attacked.add(r.ports.world);
      outcomes.push(await impostor(`${group}/world`, r.ports.world));
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  t.diagnostic(`world ports attacked while loading: ${outcomes.length} (${outcomes.join(" | ")})`);
  // refused on its proof; or the listener was gone; or it held the connection unanswered (a rank's
  // listener answers only once its group forms) until the impostor gave up
  for (const o of outcomes) assert.match(o, /refused this rank: authentication failed: no proof of this instance's key|could not connect|timed out after 1500 ms waiting for rank 0/);
  const i = await ready(entry, id);
  // Liveness listeners stay open: a wrong proof gets no heartbeat, garbage is dropped.
  const state = (await entry.view()).state.instances[id]!;
  for (const r of state.ranks) {
    const live = r.ports!.live;
    const forged = await raw(live, Buffer.from(`TSL2 1 ${"00".repeat(32)} ${group}/live\n`));
    assert.deepEqual(forged, { closed: true, got: 64 + 6 }, "only the challenge line came back");
    const junk = await raw(live, Buffer.from("GET / HTTP/1.1\r\n\r\n".repeat(40)));
    assert.equal(junk.closed, true);
  }
  const after = await ready(entry, id);
  assert.equal(after.generation, i.generation, "not re-placed: nothing failed");
  assert.deepEqual((await generate(after)).tokens, expected);
  assert.equal((await del(entry.url(`/instances/${id}`))).status, 200);
  await waitFor("the instance gone", 20000, async () => (await Promise.all(nodes.map((n) => n.view()))).every((v) => Object.keys(v.state.instances).length === 0));
});

let tensor: InstanceView;

test("a tensor-parallel instance over two nodes gives the tokens of one process", async (t) => {
  const entry = await notMaster();
  const created = await post(entry.url("/instances"), { model, strategy: "tensor", ctx: CTX });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  tensor = await ready(entry, created.body.id);
  assert.deepEqual(tensor.plan.stages.map((s) => s.nodes.length), [2]);
  const out = await generate(tensor);
  assert.deepEqual(out.tokens, expected);
  report.push(`tensor 2: predicted ${tensor.predicted.decodeTps} tok/s, measured ${out.timings.decodeTps.toFixed(1)} tok/s (right after ready: ${(await measured(entry, tensor.id)).decodeTps})`);
  t.diagnostic(report[report.length - 1]!);
  // a request that does not fit is refused with the reason
  const big = await post(entry.url("/instances"), { model, strategy: "single", ctx: CTX });
  assert.equal(big.status, 409);
  assert.match(big.body.error.message, /^cannot place .*: no plan fits \(best: single on 1 node: needs .* free\)$/);
});

test("killing one runner process re-places the instance, which generates again", async () => {
  const victim = tensor.ranks.find((r) => r.rank === 2)!;
  process.kill(victim.pid!, "SIGKILL");
  const again = await ready(nodes[0]!, tensor.id, tensor.generation + 1);
  assert.ok(!isProcessAlive(victim.pid!));
  assert.ok(again.failures === 0 && again.generation === tensor.generation + 1);
  assert.deepEqual((await generate(again)).tokens, expected);
  tensor = again;
});

test("a runner that hangs (SIGSTOP) is detected, ended, and its instance re-placed", async () => {
  const victim = tensor.ranks.find((r) => r.rank === 1)!;
  process.kill(victim.pid!, "SIGSTOP");
  try {
    const again = await ready(nodes[0]!, tensor.id, tensor.generation + 1);
    assert.deepEqual((await generate(again)).tokens, expected);
    await waitFor("the stopped runner ended by its node", 20000, () => !isProcessAlive(victim.pid!));
    tensor = again;
  } finally {
    if (isProcessAlive(victim.pid!)) process.kill(victim.pid!, "SIGKILL");
  }
});

test("killing a node that holds part of an instance re-places it on the others", async () => {
  const m = await master();
  const holder = byId(nodes, tensor.ranks.find((r) => r.role === "runner" && r.node !== m.id)!.node);
  const others = nodes.filter((n) => n !== holder);
  const before = runnerPids(tensor).filter((p) => p !== undefined);
  await holder.kill();
  const i = await ready(others[0]!, tensor.id, tensor.generation + 1);
  assert.ok(i.ranks.every((r) => r.node !== holder.id), "nothing placed on the node that left");
  const out = await generate(i);
  assert.deepEqual(out.tokens, expected);
  // DELETE: nothing left on the living nodes, and the state holds no instance
  const gone = await del(others[1]!.url(`/instances/${i.id}`));
  assert.equal(gone.status, 200);
  const pids = [...before, ...runnerPids(i)];
  await waitFor("no instance and no runner left", 20000, async () => {
    const all = await Promise.all(others.map((n) => n.view()));
    return all.every((v) => Object.keys(v.state.instances).length === 0) && pids.every((p) => !isProcessAlive(p));
  });
  // bring the node back for what follows
  const k = nodes.indexOf(holder);
  nodes[k] = await startNode(args(k, k === 0 ? ["--peer-port", String(holder.peer)] : ["--peers", `127.0.0.1:${nodes[0]!.peer}`]), { dataDir: holder.dataDir });
  await converged(nodes);
});

async function cli(...words: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args: base } = cliCommand();
  try {
    const r = await promisify(execFile)(command, [...base, ...words], { timeout: 120000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test("tessera launch waits until ready; ps and status show the instance; stop ends it", async () => {
  const url = nodes[2]!.url("");
  const launched = await cli("launch", model, "--strategy", "pipeline", "--nodes", "n0,n1", "--ctx", String(CTX), "--url", url);
  assert.equal(launched.code, 0, launched.stderr);
  const id = launched.stdout.trim();
  assert.match(id, /^[0-9a-f]{12}$/);
  assert.match(launched.stderr, new RegExp(`instance ${id}: pipeline over n[01] \\[0, \\d\\) → n[01] \\[\\d, 4\\); predicted [\\d.]+ tok/s decode`));
  assert.match(launched.stderr, new RegExp(`instance ${id} ready`));
  const ps = await cli("ps", "--url", url);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /ID\s+MODEL\s+STRATEGY\s+STATUS\s+PLACEMENT\s+MEMORY\s+CTX × SEQS\s+PREDICTED\s+MEASURED\s+KEEP/);
  const view = (await getJson(nodes[2]!.url(`/instances/${id}`))) as { parallel: number };
  assert.match(ps.stdout, new RegExp(`${id}\\s+\\S+\\s+pipeline\\s+ready\\s+n[01] \\[0, \\d\\) → n[01] \\[\\d, 4\\)\\s+[\\d.]+ MiB\\s+${CTX} × ${view.parallel}\\s+[\\d.]+ tok/s\\s+[\\d.]+ tok/s`));
  const status = await cli("status", "--url", url);
  assert.match(status.stdout, new RegExp(`${id}\\s+\\S+\\s+pipeline\\s+ready`));
  const stopped = await cli("stop", id, "--url", url);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(stopped.stdout.trim(), `stopped ${id}`);
  const empty = await cli("ps", "--url", url);
  assert.equal(empty.stdout.trim(), "no instances");
  // user errors: one line each, exit 1
  const missing = await cli("launch", join(modelDir, "nope.gguf"), "--url", url);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^tessera launch: .*nope\.gguf: no such file or folder \(neither a model in the cluster's registry, see GET \/models, nor a model file on this node\)\n$/);
  const tooBig = await cli("launch", model, "--strategy", "single", "--url", url);
  assert.equal(tooBig.code, 1);
  assert.match(tooBig.stderr, /^tessera launch: cannot place .*: no plan fits \(best: single on 1 node: needs .* free\)\s+single on n\d: needs/);
  const unknown = await cli("stop", "000000000000", "--url", url);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^tessera stop: 000000000000: no instance 000000000000\n$/);
});

test("a kept instance comes back after every node restarted", async (t) => {
  const created = await post(nodes[1]!.url("/instances"), { model, strategy: "pipeline", ctx: CTX, keep: true });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const first = await ready(nodes[1]!, created.body.id);
  const pids = runnerPids(first);
  const peer0 = nodes[0]!.peer;
  await Promise.all(nodes.map((n) => n.stop()));
  assert.ok(pids.every((p) => !isProcessAlive(p)), "runners end with their nodes");
  const restarted: NodeProcess[] = [];
  for (const [k, d] of dirs.entries()) {
    restarted.push(await startNode(args(k, k === 0 ? ["--peer-port", String(peer0)] : ["--peers", `127.0.0.1:${peer0}`]), { dataDir: d }));
  }
  nodes.splice(0, nodes.length, ...restarted);
  const back = await ready(nodes[2]!, first.id);
  assert.equal(back.keep, true);
  const out = await generate(back);
  assert.deepEqual(out.tokens, expected);
  t.diagnostic(`kept instance ${back.id} back as ${back.strategy} over ${back.ranks.map((r) => r.name).join(", ")}`);
  const gone = await del(nodes[0]!.url(`/instances/${back.id}`));
  assert.equal(gone.status, 200);
  await waitFor("kept set empty", 20000, async () => (await Promise.all(nodes.map((n) => n.view()))).every((v) => Object.keys(v.state.kept).length === 0 && Object.keys(v.state.instances).length === 0));
  for (const line of report) t.diagnostic(line);
});
