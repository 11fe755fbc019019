import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { encodeBulkFrame, encodeFrame, FrameDecoder } from "../../src/cluster/frames.js";
import { checkAuth, checkHello, clusterKey, makeAuth, makeHello, PROTOCOL_VERSION } from "../../src/cluster/handshake.js";
import { ephemeralIdentity } from "../../src/cluster/identity.js";
import { isPeerMessage } from "../../src/cluster/messages.js";
import { TokenBucket } from "../../src/cluster/rate-limit.js";

test("frames survive any split into chunks", () => {
  const msgs = [{ t: "hb", term: 1, index: 2, master: null }, { t: "peers", peers: [] }, { t: "bye", reason: "x".repeat(5000) }];
  const bytes = Buffer.concat([...msgs.map(encodeFrame), ...encodeBulkFrame(7, new Uint8Array([1, 2, 3]))]);
  for (const step of [1, 3, 7, 1000, bytes.length]) {
    const d = new FrameDecoder(1 << 20);
    const out: unknown[] = [];
    for (let i = 0; i < bytes.length; i += step) out.push(...d.push(bytes.subarray(i, i + step)));
    assert.deepEqual(out.slice(0, 3), msgs);
    const bulk = out[3] as { t: string; n: number; data: Uint8Array };
    assert.deepEqual([bulk.t, bulk.n, [...bulk.data]], ["bulk", 7, [1, 2, 3]]);
    assert.equal(d.pendingBytes, 0);
  }
});

test("oversized, empty and malformed frames throw", () => {
  assert.throws(() => new FrameDecoder(100).push(encodeFrame({ t: "bye", reason: "x".repeat(200) })), /exceeds the limit of 100/);
  assert.throws(() => new FrameDecoder(100).push(Buffer.from([0, 0, 0, 0])), /empty frame/);
  assert.throws(() => new FrameDecoder(100).push(Buffer.from([0, 0, 0, 2, 0xd9, 0x40])), /malformed msgpack/);
  const partial = new FrameDecoder(100);
  assert.deepEqual(partial.push(Buffer.from([0, 0, 0, 50, 1, 2])), [], "an incomplete frame waits");
  assert.equal(partial.pendingBytes, 2);
});

test("the message gate refuses unknown kinds and bad shapes", () => {
  assert.ok(isPeerMessage({ t: "hb", term: 1, index: 0, master: null }));
  assert.ok(!isPeerMessage({ t: "hb", term: -1, index: 0, master: null }));
  assert.ok(!isPeerMessage({ t: "token", token: 5 }));
  assert.ok(!isPeerMessage({ t: "propose", event: { type: "bulk", data: new Uint8Array(4) } }));
  assert.ok(!isPeerMessage({ t: "peers", peers: new Array(300).fill({ id: "aaaaaaaaaaaaaaaa", host: "h", port: 1 }) }));
  assert.ok(!isPeerMessage([1, 2]));
});

function handshake(secretA: string | undefined, secretB: string | undefined, clusterB = "c") {
  const a = ephemeralIdentity();
  const b = ephemeralIdentity();
  const ha = makeHello(a);
  const hb = makeHello(b);
  assert.equal(checkHello(ha, b.id), null);
  assert.equal(checkHello(hb, a.id), null);
  const authA = makeAuth(clusterKey("c", secretA), "c", "initiator", a, ha, hb);
  const atB = checkAuth(authA, clusterKey(clusterB, secretB), clusterB, "initiator", hb, ha);
  const authB = makeAuth(clusterKey(clusterB, secretB), clusterB, "responder", b, hb, ha);
  const atA = checkAuth(authB, clusterKey("c", secretA), "c", "responder", ha, hb);
  return { atB, atA, a, b, ha, hb, authA };
}

test("handshake: same secret passes both ways; wrong secret, other cluster or open vs secret fail", () => {
  assert.deepEqual([handshake("s", "s").atB, handshake("s", "s").atA], [null, null]);
  assert.deepEqual([handshake(undefined, undefined).atB], [null], "open LAN mode");
  assert.match(handshake("s", "t").atB!, /wrong cluster secret/);
  assert.match(handshake(undefined, "s").atB!, /wrong cluster secret/);
  assert.match(handshake("s", "s", "other").atB!, /wrong cluster secret or cluster name/);
});

test("handshake: a proof does not replay on another connection, and ids cannot be spoofed", () => {
  const { b, ha, hb, authA } = handshake("s", "s");
  const key = clusterKey("c", "s");
  const fresh = makeHello(b);
  assert.match(checkAuth(authA, key, "c", "initiator", fresh, ha)!, /wrong cluster secret/, "new nonce, old proof");
  assert.match(checkAuth(authA, key, "c", "responder", hb, ha)!, /wrong cluster secret/, "role is bound");
  const stranger = ephemeralIdentity();
  assert.match(checkHello({ ...ha, id: stranger.id }, b.id)!, /does not match its public key/);
  // A node that knows the secret but signs with another key than the id it claims:
  const forged = { ...makeAuth(key, "c", "initiator", stranger, ha, hb) };
  const proofOk = makeAuth(key, "c", "initiator", { ...stranger, id: ha.id }, ha, hb);
  assert.match(checkAuth({ ...proofOk, sig: forged.sig }, key, "c", "initiator", hb, ha)!, /bad signature/);
  assert.match(checkHello({ t: "hello", v: PROTOCOL_VERSION + 1, id: ha.id, pub: ha.pub, nonce: ha.nonce }, b.id)!, /protocol version/);
  assert.match(checkHello(ha, ha.id)!, /itself/);
  assert.match(checkAuth(encode({}), key, "c", "initiator", hb, ha)!, /expected auth|not an object/);
});

test("token bucket: a burst, then the refill rate", () => {
  let now = 0;
  const b = new TokenBucket(10, 20, () => now);
  let ok = 0;
  for (let i = 0; i < 30; i++) if (b.take()) ok++;
  assert.equal(ok, 20);
  now += 500;
  ok = 0;
  for (let i = 0; i < 30; i++) if (b.take()) ok++;
  assert.equal(ok, 5);
});
