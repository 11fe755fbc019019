import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { cliCommand } from "../../src/spawn.js";
import type { ClusterView } from "../../src/api/cluster-view.js";
import { removeDir, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "./node-process.js";

// Static peers and the cluster secret as a user meets them: `tessera secret`, then the README's
// recipe (--secret-file, --cluster); --peers naming a node's HTTP port; --peers that cannot work,
// reported in the log and by `tessera status`. Nodes run on 127.0.0.1 without mDNS, so every link
// here comes from --peers.

const dirs: string[] = [];
function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
});

const LOCAL = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--measure-every", "600"];

function tessera(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { command, args: base } = cliCommand();
  const child = spawn(command, [...base, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function statusJson(n: NodeProcess): Promise<ClusterView> {
  // host:port without a scheme, as a user types it.
  const r = await tessera(["status", "--json", "--url", `127.0.0.1:${n.http}`]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ClusterView;
}

async function closedPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test("tessera secret writes an owner-only secret once; the README recipe with it forms a cluster, and --peers may name the HTTP port", async () => {
  const config = dir();
  const env = { XDG_CONFIG_HOME: config };
  const made = await tessera(["secret"], env);
  assert.equal(made.code, 0, made.stderr);
  const file = join(config, "tessera", "secret");
  assert.match(made.stdout, /^created .*tessera\/secret \(readable by you only\)$/m);
  assert.match(made.stdout, /tessera start --secret-file .*tessera\/secret --cluster home/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(config, "tessera")).mode & 0o777, 0o700);
  const secret = readFileSync(file, "utf8");
  assert.match(secret, /^[A-Za-z0-9_-]{43}\n$/);
  const again = await tessera(["secret"], env);
  assert.match(again.stdout, /already exists: keeping it/);
  assert.equal(readFileSync(file, "utf8"), secret, "a second run keeps the secret");
  const shown = await tessera(["secret", "--show"], env);
  assert.equal(shown.stdout, secret);

  // The recipe: the same file and cluster name on every node.
  const recipe = ["--secret-file", file, "--cluster", "home"];
  const a = await startNode([...LOCAL, ...recipe, "--name", "a"], { dataDir: dir() });
  const b = await startNode([...LOCAL, ...recipe, "--name", "b", "--peers", `127.0.0.1:${a.http}`], { dataDir: dir() });
  const view = await waitFor("a two-node cluster", 20000, async () => {
    const v = await statusJson(b);
    return Object.keys(v.state.nodes).length === 2 && v.self.peers.length === 1 ? v : undefined;
  });
  assert.equal(view.self.mode, "secret");
  assert.deepEqual(view.self.peers, [a.id]);
  const [sp] = view.self.staticPeers!;
  assert.deepEqual(
    { address: sp!.address, dialing: sp!.dialing, state: sp!.state, nodeId: sp!.nodeId },
    { address: `127.0.0.1:${a.http}`, dialing: `127.0.0.1:${a.peer}`, state: "connected", nodeId: a.id },
  );
  assert.equal(view.self.alone, false);
  assert.match(b.output(), new RegExp(`--peers 127.0.0.1:${a.http} is the HTTP port of node ${a.id}: dialling its peer port ${a.peer}`));

  // Control: a node with another secret (a second `tessera secret`) is refused and says so.
  const otherConfig = dir();
  assert.equal((await tessera(["secret"], { XDG_CONFIG_HOME: otherConfig })).code, 0);
  const other = join(otherConfig, "tessera", "secret");
  assert.notEqual(readFileSync(other, "utf8"), secret);
  const c = await startNode([...LOCAL, "--secret-file", other, "--cluster", "home", "--name", "c", "--peers", `127.0.0.1:${a.peer}`], { dataDir: dir() });
  const refused = await waitFor("c's peer refused", 20000, async () => {
    const v = await statusJson(c);
    return v.self.staticPeers?.[0]?.state === "refused" ? v : undefined;
  });
  assert.deepEqual(Object.keys(refused.state.nodes), [c.id]);
  assert.equal(refused.self.alone, true);
  assert.match(c.output(), /--peers 127\.0\.0\.1:\d+: refused — the node there/);
  assert.ok(!(c.id in (await statusJson(a)).state.nodes));
  await Promise.all([a.stop(), b.stop(), c.stop()]);
});

test("--peers that cannot work are logged with the reason and shown by tessera status; with only those, the node says it is alone", async () => {
  const web = createHttpServer((_req, res) => res.end("<html>not tessera</html>"));
  await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
  const webPort = (web.address() as { port: number }).port;
  const dead = await closedPort();
  try {
    const n = await startNode([...LOCAL, "--peers", `127.0.0.1:${dead},no-such-host.invalid,127.0.0.1:${webPort}`], { dataDir: dir() });
    const view = await waitFor("every static peer to fail", 30000, async () => {
      const v = await statusJson(n);
      return v.self.staticPeers?.every((p) => p.state !== "connecting") ? v : undefined;
    });
    const states = Object.fromEntries(view.self.staticPeers!.map((p) => [p.address, [p.state, p.reason]]));
    assert.deepEqual(states[`127.0.0.1:${dead}`], ["unreachable", `connection refused: nothing listens on port ${dead}`]);
    assert.equal(states["no-such-host.invalid"]![0], "unresolvable");
    assert.equal(states[`127.0.0.1:${webPort}`]![0], "not-tessera");
    assert.match(states[`127.0.0.1:${webPort}`]![1]!, /answers HTTP but is not a Tessera node/);
    assert.equal(view.self.alone, true);

    await waitFor("the log lines", 10000, () => /this node is alone: none of its --peers is reachable/.test(n.output()));
    const log = n.output();
    assert.match(log, new RegExp(`--peers 127\\.0\\.0\\.1:${dead}: unreachable — connection refused`));
    assert.match(log, /--peers no-such-host\.invalid \(no-such-host\.invalid:52481\): unresolvable — cannot resolve host 'no-such-host\.invalid'/);
    assert.match(log, new RegExp(`--peers 127\\.0\\.0\\.1:${webPort}: not-tessera — it answers HTTP but is not a Tessera node`));
    // Retries every few seconds are not logged again and again.
    assert.equal(log.match(new RegExp(`--peers 127\\.0\\.0\\.1:${dead}:`, "g"))!.length, 1, log);

    const table = await tessera(["status", "--url", `127.0.0.1:${n.http}`]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`127\\.0\\.0\\.1:${dead}\\s+unreachable\\s+.*connection refused`));
    assert.match(table.stdout, /no-such-host\.invalid\s+unresolvable/);
    assert.match(table.stdout, /this node is alone: none of its --peers is reachable and discovery is off/);

    // Control: once a real node is up at the dead address's place, it joins and the node is no longer alone.
    const m = await startNode([...LOCAL], { dataDir: dir() });
    const n2 = await startNode([...LOCAL, "--peers", `127.0.0.1:${m.peer}`], { dataDir: dir() });
    const joined = await waitFor("n2 joined m", 20000, async () => {
      const v = await statusJson(n2);
      return v.self.peers.length === 1 ? v : undefined;
    });
    assert.equal(joined.self.alone, false);
    assert.equal(joined.self.staticPeers![0]!.state, "connected");
    assert.doesNotMatch(n2.output(), /alone/);
    await Promise.all([n.stop(), m.stop(), n2.stop()]);
  } finally {
    web.close();
  }
});
