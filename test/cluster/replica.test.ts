import { test } from "node:test";
import assert from "node:assert/strict";
import { bandwidthFrom, LinkProber, median } from "../../src/cluster/link-probe.js";
import type { PeerMessage } from "../../src/cluster/messages.js";
import { Replica } from "../../src/cluster/replica.js";
import type { ClusterEvent } from "../../src/cluster/state.js";

const M = "aaaaaaaaaaaaaaaa";
const F = "bbbbbbbbbbbbbbbb";
const joined = (id: string, startedAt: number): ClusterEvent => ({
  type: "node-joined",
  node: { id, name: id.slice(0, 1), host: "h", httpPort: 1, peerPort: 2, startedAt, version: "v" },
});

function master(): Replica {
  const r = new Replica();
  r.append({ type: "master-elected", master: M, term: 1 }, 1);
  r.append(joined(M, 1), 2);
  r.append(joined(F, 2), 3);
  return r;
}

test("a follower applies entries in order, ignores repeats and reports gaps", () => {
  const m = master();
  const f = new Replica();
  const applied: number[] = [];
  f.onEntry((e) => applied.push(e.index));
  // A fresh follower has another history (term 0): its first sync gets a snapshot.
  const [snap] = m.answerSync(M, f.state.term, f.state.master, f.state.index);
  assert.equal(snap!.t, "snapshot");
  f.reset((snap as Extract<PeerMessage, { t: "snapshot" }>).state, (snap as Extract<PeerMessage, { t: "snapshot" }>).log);
  assert.deepEqual(f.state, m.state);
  const e4 = m.append({ type: "node-left", id: F, reason: "x" }, 4);
  const e5 = m.append(joined(F, 5), 5);
  assert.equal(f.receive(e5), "gap");
  assert.equal(f.receive(e4), "applied");
  assert.equal(f.receive(e4), "duplicate");
  assert.equal(f.receive(e5), "applied");
  assert.deepEqual(applied, [4, 5]);
  assert.deepEqual(f.state, m.state);
  assert.deepEqual(f.since(3).entries.map((e) => e.index), [4, 5]);
});

test("the master answers a follower of its own term with the missing entries, anyone else with a snapshot", () => {
  const m = master();
  for (let i = 0; i < 10; i++) m.append(joined(F, 10 + i), 10 + i);
  const entries = m.answerSync(M, 1, M, 5);
  assert.deepEqual(entries.map((x) => x.t), ["entries"]);
  assert.deepEqual((entries[0] as Extract<PeerMessage, { t: "entries" }>).entries.map((e) => e.index), [6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(m.answerSync(M, 0, null, 5)[0]!.t, "snapshot", "other term");
  assert.equal(m.answerSync(M, 1, F, 5)[0]!.t, "snapshot", "same term number from another master");
  assert.equal(m.answerSync(M, 1, M, 99)[0]!.t, "snapshot", "ahead of the master");
});

test("link probe: median RTT, bandwidth net of one RTT, measured between two probers", async () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(bandwidthFrom(1e6, 11, 1), 1e8);
  let bytes = 0;
  const probers: LinkProber[] = [];
  // Asynchronous delivery, like a socket.
  const deliver = (to: number) => (m: PeerMessage) => {
    if (m.t === "bulk") bytes += m.data.length;
    setImmediate(() => probers[to]!.handle(m));
    return true;
  };
  const a = new LinkProber(deliver(1));
  probers.push(a, new LinkProber(deliver(0)));
  const s = await a.measure();
  assert.ok(s.rttMs > 0 && s.rttMs < 1000);
  assert.ok(s.bandwidthBytesPerSec > 0);
  assert.equal(bytes, 4 * 1024 * 1024);
  a.beat();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(a.handle({ t: "ev" } as unknown as PeerMessage), false, "other messages are not the prober's");
});

test("link probe: pings queued behind bulk data do not inflate the bandwidth", async () => {
  // 10 of 15 heartbeat pings answered after 300 ms (queued behind a transfer), 5 after ~0 ms; the
  // bulk transfer is acked 200 ms after it starts: 4 MiB in 200 ms, ≈ 21 MB/s.
  const probers: LinkProber[] = [];
  let pongDelay = 300;
  let t0 = 0;
  const a = new LinkProber((m) => {
    if (m.t === "bulk" && t0 === 0) t0 = performance.now();
    if (m.t === "bulk-end") {
      const ack = () => a.handle({ t: "bulk-ack", n: m.n, bytes: m.bytes });
      setTimeout(ack, Math.max(0, 200 - (performance.now() - t0)));
    } else if (m.t === "ping") {
      setTimeout(() => a.handle({ t: "pong", n: m.n }), pongDelay);
    }
    return true;
  });
  probers.push(a);
  for (let i = 0; i < 10; i++) a.beat();
  await new Promise((r) => setTimeout(r, 350));
  pongDelay = 0;
  for (let i = 0; i < 5; i++) a.beat();
  await new Promise((r) => setTimeout(r, 50));
  const s = await a.measure();
  assert.ok(s.rttMs >= 300, `the reported RTT is the window's median (${s.rttMs} ms)`);
  const MiB4 = 4 * 1024 * 1024;
  // acked at ≥ 200 ms; the least RTT is under 50 ms: at most 4 MiB / 150 ms; control: taking off the median gives ≥ 4 MiB / 0.05 ms
  assert.ok(s.bandwidthBytesPerSec <= MiB4 / 0.15, `bandwidth ${s.bandwidthBytesPerSec} B/s`);
  assert.ok(s.bandwidthBytesPerSec >= MiB4 / 0.5, `bandwidth ${s.bandwidthBytesPerSec} B/s`);
});
