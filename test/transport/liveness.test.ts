import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { Liveness } from "../../src/transport/index.js";
import { OPEN_KEY, livenessProof } from "../../src/transport/auth.js";
import type { TesseraError } from "../../src/errors.js";

const label = (id: number): string => `rank ${id}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function lossesOf(live: Liveness): { e: TesseraError; id: number; at: number }[] {
  const out: { e: TesseraError; id: number; at: number }[] = [];
  live.onLost((e, id) => out.push({ e, id, at: performance.now() }));
  return out;
}

/** A peer speaking the liveness protocol by hand: the challenge in, HELLO as `id` out, then beats only when told. */
async function fakePeer(port: number, id: number, groupId: string, key: Buffer = OPEN_KEY): Promise<net.Socket> {
  const s = net.connect({ host: "127.0.0.1", port });
  await once(s, "connect");
  const [line] = (await once(s, "data")) as [Buffer];
  const challenge = /^TSL2 ([0-9a-f]{64})\n$/.exec(line.toString())?.[1];
  assert.ok(challenge, `challenge line: ${JSON.stringify(line.toString())}`);
  s.write(`TSL2 ${id} ${livenessProof(key, groupId, id, challenge)} ${groupId}\n`);
  return s;
}

/** Endpoints 0 and 1 of one group, watching each other, with their losses recorded from the start. */
async function pair(groupId: string, lostAfterMs: number) {
  const opts = { host: "127.0.0.1", count: 2, groupId, periodMs: 50, lostAfterMs };
  const [a, b] = await Promise.all([Liveness.start({ ...opts, self: 0 }), Liveness.start({ ...opts, self: 1 })]);
  const lostA = lossesOf(a);
  const lostB = lossesOf(b);
  const addrs = [{ host: "127.0.0.1", port: a.port }, { host: "127.0.0.1", port: b.port }];
  a.watch(addrs, label);
  b.watch(addrs, label);
  return { a, b, lostA, lostB };
}

// Timing on a loaded 2-core CI: waits are generous and open-ended (poll until the event, then check
// when it happened), lower bounds stay exact, and "beats keep arriving" is judged on the best of many
// samples, never on one.

/** Polls `done` every 10 ms until it is true or `capMs` passed. */
async function until(done: () => boolean, capMs: number): Promise<void> {
  const t0 = performance.now();
  while (!done() && performance.now() - t0 < capMs) await sleep(10);
}

/** The least silence seen when sampling `silentMs(id)` every 20 ms for `forMs`. */
async function leastSilence(live: Liveness, id: number, forMs: number): Promise<number> {
  let least = Infinity;
  const t0 = performance.now();
  while (performance.now() - t0 < forMs) {
    least = Math.min(least, live.silentMs(id));
    await sleep(20);
  }
  return least;
}

test("two endpoints keep hearing each other; one that says BYE is no loss", async () => {
  const lostAfterMs = 1500;
  const { a, b, lostA, lostB } = await pair("live-a", lostAfterMs);
  try {
    await sleep(300);
    // Beats every 50 ms: some sample lands soon after one. Without beats the least silence would be ≥ 300 ms.
    const ab = await leastSilence(a, 1, 600);
    const ba = await leastSilence(b, 0, 300);
    assert.ok(ab < 200, `a never heard b in the last 200 ms (least silence ${ab} ms)`);
    assert.ok(ba < 200, `b never heard a in the last 200 ms (least silence ${ba} ms)`);
    b.close();
    await sleep(lostAfterMs + 500);
    assert.deepEqual(lostA, []);
    // Control: b really went quiet for longer than a loss takes, so no loss is the BYE's doing.
    assert.ok(a.silentMs(1) >= lostAfterMs, "b still beats after close()");
  } finally {
    a.close();
    b.close();
  }
  assert.deepEqual(lostB, []);
});

test("a peer that gives up after an error says why: a loss naming its cause", async () => {
  const { a, b, lostA } = await pair("live-d", 5000);
  try {
    await sleep(300);
    b.close("rank 7: sent nothing\nfor 3000 ms");
    await until(() => lostA.length > 0, 10_000);
    assert.equal(lostA.length, 1, "no loss reported");
    assert.equal(lostA[0]!.e.message, "rank 1: failed: rank 7: sent nothing for 3000 ms");
  } finally {
    a.close();
  }
});

test("a peer that stops beating is lost after lostAfterMs; one whose link closes, at once", async () => {
  const groupId = "live-b";
  const lostAfterMs = 2000;
  const live = await Liveness.start({ host: "127.0.0.1", self: 0, count: 3, groupId, periodMs: 50, lostAfterMs });
  const lost = lossesOf(live);
  live.watch([undefined, { host: "127.0.0.1", port: 1 }, { host: "127.0.0.1", port: 1 }], label);
  const quiet = await fakePeer(live.port, 1, groupId);
  const closing = await fakePeer(live.port, 2, groupId);
  const t0 = performance.now();
  const beats = setInterval(() => closing.write(Buffer.of(1)), 50);
  try {
    await sleep(200);
    closing.destroy();
    const closedAt = performance.now();
    await until(() => lost.length >= 2, 20_000);
    assert.deepEqual(lost.map((l) => l.id).sort(), [1, 2]);
    const byId = new Map(lost.map((l) => [l.id, l]));
    assert.match(byId.get(1)!.e.message, /^rank 1: sent no heartbeat for \d+ ms \(the process is stopped/);
    const silentFor = byId.get(1)!.at - t0;
    assert.ok(silentFor >= lostAfterMs - 100, `the quiet peer was lost after only ${silentFor} ms`);
    // The closed link is its own cause, found before its silence could have counted.
    assert.match(byId.get(2)!.e.message, /^rank 2: closed its heartbeat link/);
    const closedFor = byId.get(2)!.at - closedAt;
    assert.ok(closedFor < lostAfterMs, `a closed link was noticed only after ${closedFor} ms, as late as silence`);
  } finally {
    clearInterval(beats);
    quiet.destroy();
    live.close();
  }
});

test("a HELLO from another group is refused", async () => {
  const live = await Liveness.start({ host: "127.0.0.1", self: 0, count: 2, groupId: "live-c", periodMs: 50, lostAfterMs: 5000 });
  live.watch([undefined, { host: "127.0.0.1", port: 1 }], label);
  try {
    const stranger = await fakePeer(live.port, 1, "other-group");
    let got = 0;
    stranger.on("data", (d: Buffer) => (got += d.length));
    await once(stranger, "close");
    assert.equal(got, 0, "a stranger was sent heartbeats");
  } finally {
    live.close();
  }
});

test("a HELLO without the instance key is refused; with it, heartbeats flow", async () => {
  const key = Buffer.alloc(32, 7);
  const live = await Liveness.start({ host: "127.0.0.1", self: 0, count: 2, groupId: "live-k", periodMs: 50, lostAfterMs: 5000, key });
  live.watch([undefined, { host: "127.0.0.1", port: 1 }], label);
  try {
    const wrong = await fakePeer(live.port, 1, "live-k", Buffer.alloc(32, 8));
    let got = 0;
    wrong.on("data", (d: Buffer) => (got += d.length));
    await once(wrong, "close");
    assert.equal(got, 0, "a peer with the wrong key was sent heartbeats");
    assert.ok(live.silentMs(1) >= 0);
    const right = await fakePeer(live.port, 1, "live-k", key);
    const [beat] = (await once(right, "data")) as [Buffer];
    assert.equal(beat[0], 0x01, "heartbeats to the peer that proved the key");
    right.destroy();
  } finally {
    live.close();
  }
});
