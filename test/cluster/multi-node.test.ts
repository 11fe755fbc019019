import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { connect, type Socket } from "node:net";
import { promisify } from "node:util";
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";
import { clusterKey, PROTOCOL_VERSION } from "../../src/cluster/handshake.js";
import { cliCommand } from "../../src/spawn.js";
import { ephemeralIdentity } from "../../src/cluster/identity.js";
import type { PeerMessage } from "../../src/cluster/messages.js";
import { PeerLink } from "../../src/cluster/peer-link.js";
import { getJson, removeDir, sameState, startNode, stopAll, tempDir, waitFor, type NodeProcess } from "./node-process.js";
import { parsePrometheus } from "./prometheus-parser.js";

// Four node processes on 127.0.0.1 with a cluster secret and static peers (node 0 only; the rest
// is gossip). One scenario, in order: same state everywhere, strangers refused, garbage survived,
// master killed, node restarted.

const SECRET = "multi-node-test-secret";
const COMMON = ["--host", "127.0.0.1", "--port", "0", "--no-discovery", "--secret", SECRET, "--cluster", "t", "--measure-every", "600"];
const nodes: NodeProcess[] = [];
const dirs: string[] = [];

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

before(async () => {
  const first = await startNode([...COMMON, "--name", "n0", "--memory-limit", "1G"], { dataDir: dir() });
  nodes.push(first);
  // The machine probe runs once; the others start from its cache (as on a machine that ran it before).
  await waitFor("node 0's machine probe", 30000, async () => (await first.view()).state.nodes[first.id]?.profile?.matmulGflops);
  const rest = [1, 2, 3].map((i) => {
    const d = dir();
    copyFileSync(join(first.dataDir, "machine-profile.json"), join(d, "machine-profile.json"));
    return startNode([...COMMON, "--name", `n${i}`, "--peers", `127.0.0.1:${first.peer}`], { dataDir: d });
  });
  // Started together; sorted by start time so nodes[1] is the most senior after node 0.
  const started = await Promise.all(rest);
  const views = await Promise.all(started.map((n) => n.view()));
  const since = new Map(views.map((v, i) => [started[i]!, v.self.startedAt]));
  nodes.push(...started.sort((a, b) => since.get(a)! - since.get(b)! || (a.id < b.id ? -1 : 1)));
});

after(async () => {
  await stopAll();
  for (const d of dirs) removeDir(d);
});

async function converged(live: NodeProcess[], expectLinks: boolean) {
  return waitFor(`the same state on ${live.length} nodes`, 20000, async () => {
    const s = await sameState(live);
    if (!s || Object.keys(s.nodes).length !== live.length) return undefined;
    if (!Object.values(s.nodes).every((n) => n.profile?.matmulGflops)) return undefined;
    if (expectLinks && Object.keys(s.links).length !== live.length * (live.length - 1)) return undefined;
    return s;
  });
}

test("all nodes see the same state: members, master, profiles and measured links", async () => {
  const s = await converged(nodes, true);
  assert.deepEqual(Object.keys(s.nodes).sort(), nodes.map((n) => n.id).sort());
  assert.equal(s.master, nodes[0]!.id, "the most senior node is master");
  const n0 = s.nodes[nodes[0]!.id]!;
  assert.equal(n0.profile!.memory.totalBytes, 1024 ** 3, "--memory-limit caps the reported memory");
  assert.ok(n0.profile!.providers.includes("cpu"));
  for (const n of nodes.slice(1)) assert.equal(s.nodes[n.id]!.profile!.matmulGflops, n0.profile!.matmulGflops, "cached probe reused");
  for (const l of Object.values(s.links)) {
    assert.ok(l.rttMs > 0 && l.rttMs < 1000, `rtt ${l.rttMs}`);
    // Loopback on a busy 2-core machine: anything from ~10 MB/s to ~1 GB/s; only sanity here.
    assert.ok(l.bandwidthBytesPerSec > 1e6, `bandwidth ${l.bandwidthBytesPerSec}`);
  }
  const nodeList = (await getJson(nodes[2]!.url("/cluster/nodes"))) as { id: string; master: boolean }[];
  assert.equal(nodeList.length, 4);
  assert.deepEqual(nodeList.filter((n) => n.master).map((n) => n.id), [nodes[0]!.id]);
  const events = (await getJson(nodes[3]!.url("/cluster/events?since=0"))) as { index: number; entries: { index: number }[] };
  assert.equal(events.index, s.index);
  assert.deepEqual(events.entries.map((e) => e.index), Array.from({ length: events.entries.length }, (_, i) => s.index - events.entries.length + 1 + i));
});

test("/metrics parses as Prometheus text and reports nodes, memory, links, master and index", async () => {
  const res = await fetch(nodes[1]!.url("/metrics"));
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const m = parsePrometheus(await res.text());
  assert.equal(m.get("tessera_cluster_nodes")!.samples[0]!.value, 4);
  assert.equal(m.get("tessera_node_memory_total_bytes")!.samples.length, 4);
  assert.equal(m.get("tessera_link_rtt_seconds")!.samples.length, 12);
  assert.equal(m.get("tessera_link_bandwidth_bytes_per_second")!.samples.length, 12);
  const masters = m.get("tessera_node_is_master")!.samples.filter((s) => s.value === 1);
  assert.deepEqual(masters.map((s) => s.labels.node), [nodes[0]!.id]);
  assert.ok(m.get("tessera_event_index")!.samples[0]!.value > 0);
});

test("/cluster/stream sends the state, then events as they are applied", async () => {
  const ac = new AbortController();
  const res = await fetch(nodes[2]!.url("/cluster/stream"), { signal: ac.signal });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body!.getReader();
  let text = "";
  const until = async (re: RegExp) => {
    while (!re.test(text)) text += new TextDecoder().decode((await reader.read()).value);
  };
  await until(/\n\n/);
  assert.match(text, /^event: state\ndata: \{"self":/);
  // A peer joining is an event every node applies, so the stream of node 2 must carry it.
  const guest = await dialAs(nodes[0]!.peer, SECRET);
  assert.equal(await guest.up, true);
  guest.link.send({ t: "info", name: "stream-guest", startedAt: Date.now(), httpPort: 1, peerPort: 1, version: "x" });
  await until(/event: entry\ndata: \{[^\n]*"type":"node-joined"[^\n]*"name":"stream-guest"/);
  guest.link.close("done");
  await until(/event: entry\ndata: \{[^\n]*"type":"node-left"/);
  ac.abort();
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args: base } = cliCommand();
  try {
    const r = await promisify(execFile)(command, [...base, ...args], { timeout: 20000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test("tessera status prints the cluster a node sees, as a table or JSON", async () => {
  const url = `http://127.0.0.1:${nodes[3]!.http}`;
  const [text, json] = await Promise.all([cli("status", "--url", url), cli("status", "--json", "--url", url)]);
  assert.equal(text.code, 0, text.stderr);
  for (const n of nodes) assert.match(text.stdout, new RegExp(`n\\d \\*?\\s*${n.id}`));
  assert.match(text.stdout, /n0\s+\S+\s+master/);
  assert.match(text.stdout, /FROM\s+TO\s+RTT\s+BANDWIDTH/);
  const view = JSON.parse(json.stdout) as { self: { id: string }; state: { nodes: object } };
  assert.equal(view.self.id, nodes[3]!.id);
  assert.equal(Object.keys(view.state.nodes).length, 4);
  const down = await cli("status", "--url", "http://127.0.0.1:1");
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^tessera status: http:\/\/127\.0\.0\.1:1: no tessera node answers/);
});

test("a second node on the same data dir is refused by the pidfile lock", async () => {
  const r = await cli("start", "--data-dir", nodes[2]!.dataDir, "--port", "0", "--host", "127.0.0.1", "--no-discovery");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /another node \(pid \d+\) is running with this data dir/);
});

/** An in-process peer that runs the real handshake with the given secret. */
async function dialAs(port: number, secret: string): Promise<{ id: string; link: PeerLink; received: PeerMessage[]; closed: Promise<string>; up: Promise<boolean> }> {
  const socket = connect({ host: "127.0.0.1", port });
  const identity = ephemeralIdentity();
  const link = new PeerLink({ socket, role: "initiator", identity, cluster: "t", key: clusterKey("t", secret), silenceMs: 5000 });
  const received: PeerMessage[] = [];
  link.on("message", (m) => received.push(m));
  const closed = new Promise<string>((r) => link.once("closed", r));
  const up = Promise.race([new Promise<boolean>((r) => link.once("up", () => r(true))), closed.then(() => false)]);
  return { id: identity.id, link, received, closed, up };
}

test("a node with the wrong secret is refused, learns nothing and changes nothing", async () => {
  const before = await sameState(nodes);
  const intruder = await startNode([...COMMON.map((a) => (a === SECRET ? "wrong-secret" : a)), "--name", "intruder", "--peers", `127.0.0.1:${nodes[0]!.peer}`], {
    dataDir: dir(),
  });
  const own = await intruder.view();
  // Give it several dial attempts.
  await waitFor("refusals in node 0's log", 8000, () => (nodes[0]!.output().match(/authentication failed: wrong cluster secret/g)?.length ?? 0) >= 2);
  const seen = await intruder.view();
  assert.deepEqual(Object.keys(seen.state.nodes), [intruder.id], "the intruder sees only itself");
  assert.deepEqual(seen.self.peers, []);
  assert.equal(own.state.master, intruder.id);
  const after = await converged(nodes, true);
  assert.ok(!(intruder.id in after.nodes));
  assert.equal(after.term, before!.term);
  await intruder.stop();

  // The same with our own client: the handshake fails before any state message arrives.
  const c = await dialAs(nodes[1]!.peer, "wrong-secret");
  assert.equal(await c.up, false);
  assert.match(await c.closed, /connection closed|authentication/);
  assert.deepEqual(c.received, []);
});

test("an authenticated peer cannot append events about others, and is dropped when it floods", async () => {
  const c = await dialAs(nodes[0]!.peer, SECRET);
  assert.equal(await c.up, true);
  const before = await sameState(nodes);
  const victim = nodes[3]!.id;
  c.link.send({ t: "info", name: "rogue", startedAt: Date.now(), httpPort: 1, peerPort: 1, version: "x" });
  c.link.send({ t: "propose", event: { type: "node-left", id: victim, reason: "forged" } });
  c.link.send({ t: "propose", event: { type: "node-profile", id: victim, profile: { ...before!.nodes[victim]!.profile!, threads: 999 } } });
  await waitFor("the rogue peer in the state", 5000, async () => Object.values((await nodes[0]!.view()).state.nodes).some((n) => n.name === "rogue"));
  const s = await nodes[0]!.view();
  assert.ok(victim in s.state.nodes, "forged node-left ignored");
  assert.notEqual(s.state.nodes[victim]!.profile!.threads, 999, "forged profile ignored");
  // Heartbeats need no answer, so only the node can be the one that hangs up.
  for (let i = 0; i < 40000; i++) c.link.send({ t: "hb", term: 0, index: 0, master: null });
  const reason = await c.closed;
  const log = () => nodes[0]!.output().split("\n").filter((l) => l.includes(c.id)).join("\n");
  await waitFor(`flood logged (client saw '${reason}'; node 0 says: ${log()})`, 5000, () => /rogue\) disconnected: flooding/.test(log()));
  await converged(nodes, true);
});

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.on("error", reject);
  });
}

function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.on("close", () => {
      clearTimeout(t);
      resolve(true);
    });
    s.on("error", () => {});
    s.resume();
  });
}

test("garbage, truncated, oversized and unexpected frames from a raw socket do not hurt a node", async () => {
  const target = nodes[1]!;
  const frame = (body: Uint8Array) => {
    const b = Buffer.alloc(4 + body.length);
    b.writeUInt32BE(body.length, 0);
    b.set(body, 4);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [
    ["random bytes", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), /exceeds the limit|malformed/],
    ["oversized length", Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]), /exceeds the limit/],
    ["not msgpack", frame(Buffer.from([0xd9, 0x40, 0x41])), /malformed msgpack/],
    ["wrong first message", frame(encode({ t: "ev", entry: {} })), /expected hello/],
    ["forged hello", frame(encode({ t: "hello", v: PROTOCOL_VERSION, id: "0123456789abcdef", pub: new Uint8Array(32), nonce: new Uint8Array(32) })), /does not match its public key/],
  ];
  for (const [what, bytes, logged] of cases) {
    const s = await rawSocket(target.peer);
    s.write(bytes);
    assert.equal(await closedWithin(s, 3000), true, `${what}: disconnected`);
    await waitFor(`${what} logged`, 3000, () => logged.test(target.output()));
  }
  // A frame cut short and left hanging is dropped by the handshake timeout, not waited on forever.
  const s = await rawSocket(target.peer);
  s.write(frame(encode({ t: "hello" })).subarray(0, 6));
  assert.equal(await closedWithin(s, 8000), true, "truncated frame: disconnected after the handshake timeout");
  const h = (await getJson(target.url("/healthz"))) as { ok: boolean };
  assert.equal(h.ok, true);
  await converged(nodes, true);
});

test("killing the master elects a new one within 3 s, with the same state everywhere", async (t) => {
  const old = nodes[0]!;
  const rest = nodes.slice(1);
  const t0 = Date.now();
  await old.kill();
  const s = await waitFor("a new master on all nodes", 3000, async () => {
    const st = await sameState(rest);
    return st && st.master && st.master !== old.id && !(old.id in st.nodes) ? st : undefined;
  }, 50);
  const took = Date.now() - t0;
  assert.ok(took < 3000, `new master after ${took} ms`);
  t.diagnostic(`new master agreed on by all nodes ${took} ms after the kill`);
  assert.equal(s.master, rest[0]!.id, "the next senior node (n1) took over");
  assert.ok(s.term > 1);
  const full = await converged(rest, true);
  assert.equal(Object.keys(full.links).length, 6);
});

test("a restarted node keeps its id and is re-admitted", async () => {
  const old = nodes[0]!;
  const again = await startNode([...COMMON, "--name", "n0", "--peer-port", String(old.peer)], { dataDir: old.dataDir });
  assert.equal(again.id, old.id);
  nodes[0] = again;
  const s = await converged(nodes, false);
  assert.ok(again.id in s.nodes);
  assert.equal(s.master, nodes[1]!.id, "a restarted node is junior and does not take the master role back");
  assert.equal(await again.stop(), 0, "SIGTERM shuts down cleanly");
  assert.match(again.output(), /SIGTERM: shutting down/);
});
