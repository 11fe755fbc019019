import { test } from "node:test";
import assert from "node:assert/strict";
import { electMaster, keepConnection } from "../../src/cluster/election.js";
import { apply, emptyState, isControlEvent, isNoop, mayPropose, type ClusterEvent, type LogEntry, type NodeProfile, type NodeRecord } from "../../src/cluster/state.js";

const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";
const C = "cccccccccccccccc";

const record = (id: string, startedAt = 1): NodeRecord => ({ id, name: id.slice(0, 2), host: "10.0.0.1", httpPort: 52480, peerPort: 52481, startedAt, version: "0.1.0" });
const profile: NodeProfile = {
  memory: { totalBytes: 8e9, availableBytes: 6e9 },
  cpu: { model: "x", cores: 4 },
  providers: ["cpu"],
  device: "auto",
  threads: 4,
  worker: true,
  matmulGflops: 50,
  decodeBytesPerSec: 12e9,
  platform: "linux",
  arch: "x64",
};

function fold(events: ClusterEvent[]) {
  let s = emptyState();
  let term = 0;
  events.forEach((event, i) => {
    if (event.type === "master-elected") term = event.term;
    const entry: LogEntry = { index: i + 1, term, at: 1000 + i, event };
    s = apply(s, entry);
  });
  return s;
}

test("the reducer folds membership, profiles and links, and is pure", () => {
  const events: ClusterEvent[] = [
    { type: "master-elected", master: A, term: 1 },
    { type: "node-joined", node: record(A) },
    { type: "node-joined", node: record(B, 2) },
    { type: "node-profile", id: B, profile },
    { type: "link-measured", link: { from: A, to: B, rttMs: 0.2, bandwidthBytesPerSec: 1e8, measuredAt: 5 } },
    { type: "link-measured", link: { from: A, to: C, rttMs: 0.2, bandwidthBytesPerSec: 1e8, measuredAt: 5 } },
  ];
  const s = fold(events);
  assert.equal(s.index, 6);
  assert.equal(s.master, A);
  assert.deepEqual(Object.keys(s.nodes), [A, B]);
  assert.deepEqual(s.nodes[B]!.profile, profile);
  assert.deepEqual(Object.keys(s.links), [`${A}>${B}`], "a link to an unknown node is ignored");
  const before = JSON.stringify(s);
  const left = apply(s, { index: 7, term: 1, at: 0, event: { type: "node-left", id: B, reason: "lost" } });
  assert.equal(JSON.stringify(s), before, "apply does not mutate its input");
  assert.deepEqual(Object.keys(left.nodes), [A]);
  assert.deepEqual(left.links, {}, "links of a node that left go with it");
  assert.deepEqual(fold(events), s, "same log, same state");
});

test("a rejoin of the same process keeps its profile; a restart drops it until re-reported", () => {
  const s = fold([
    { type: "master-elected", master: A, term: 1 },
    { type: "node-joined", node: record(B, 2) },
    { type: "node-profile", id: B, profile },
  ]);
  const same = apply(s, { index: 4, term: 1, at: 0, event: { type: "node-joined", node: { ...record(B, 2), httpPort: 1 } } });
  assert.deepEqual(same.nodes[B]!.profile, profile);
  const restarted = apply(s, { index: 4, term: 1, at: 0, event: { type: "node-joined", node: record(B, 3) } });
  assert.equal(restarted.nodes[B]!.profile, undefined);
});

test("only well-formed control events pass the guard; token and bulk events are refused", () => {
  assert.ok(isControlEvent({ type: "node-profile", id: B, profile }));
  assert.ok(isControlEvent({ type: "master-elected", master: A, term: 3 }));
  assert.ok(!isControlEvent({ type: "token", id: B, token: 42 }));
  assert.ok(!isControlEvent({ type: "bulk", data: new Uint8Array(10) }));
  assert.ok(!isControlEvent({ type: "node-profile", id: "not-an-id", profile }));
  assert.ok(!isControlEvent({ type: "node-profile", id: B, profile: { ...profile, providers: "cpu" } }));
  assert.ok(!isControlEvent({ type: "link-measured", link: { from: A, to: A, rttMs: 1, bandwidthBytesPerSec: 1, measuredAt: 1 } }));
  assert.ok(!isControlEvent({ type: "node-joined", node: { ...record(A), name: "x".repeat(1000) } }));
  assert.ok(!isControlEvent(null));
});

test("peers may propose facts about themselves only", () => {
  assert.ok(mayPropose(B, { type: "node-profile", id: B, profile }, emptyState()));
  assert.ok(!mayPropose(B, { type: "node-profile", id: C, profile }, emptyState()));
  assert.ok(mayPropose(B, { type: "link-measured", link: { from: B, to: C, rttMs: 1, bandwidthBytesPerSec: 1, measuredAt: 1 } }, emptyState()));
  assert.ok(!mayPropose(B, { type: "link-measured", link: { from: C, to: B, rttMs: 1, bandwidthBytesPerSec: 1, measuredAt: 1 } }, emptyState()));
  assert.ok(!mayPropose(B, { type: "node-left", id: C, reason: "x" }, emptyState()));
  assert.ok(!mayPropose(B, { type: "node-joined", node: record(B) }, emptyState()));
  assert.ok(!mayPropose(B, { type: "master-elected", master: B, term: 9 }, emptyState()));
});

test("a repeated report is a no-op", () => {
  const s = fold([{ type: "master-elected", master: A, term: 1 }, { type: "node-joined", node: record(B) }, { type: "node-profile", id: B, profile }]);
  assert.ok(isNoop(s, { type: "node-profile", id: B, profile: { ...profile } }));
  assert.ok(!isNoop(s, { type: "node-profile", id: B, profile: { ...profile, threads: 1 } }));
});

test("election: the most senior live member, then the smaller id; the same answer in any order", () => {
  const members = [
    { id: C, startedAt: 5 },
    { id: B, startedAt: 3 },
    { id: A, startedAt: 3 },
  ];
  assert.equal(electMaster(members), A);
  assert.equal(electMaster([...members].reverse()), A);
  assert.equal(electMaster(members.filter((m) => m.id !== A)), B);
  assert.equal(electMaster([{ id: C, startedAt: 1 }, ...members]), C);
  assert.equal(electMaster([]), null);
  assert.equal(keepConnection({ initiator: B }, { initiator: A }), "b");
  assert.equal(keepConnection({ initiator: A }, { initiator: B }), "a");
});
