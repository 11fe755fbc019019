import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { classifyDialFailure, peerPortFromHttp, StaticPeers, type FailedLink } from "../../src/cluster/static-peers.js";
import type { PeerLink } from "../../src/cluster/peer-link.js";

const link = (o: Partial<FailedLink>): FailedLink => ({ reason: "connection closed", gotData: false, answeredHttp: false, peerId: null, ...o });

test("a failed dial is classified in the user's terms", () => {
  const c = (o: Partial<FailedLink>) => classifyDialFailure(link(o), "box", 7);
  assert.deepEqual(c({ errorCode: "ENOTFOUND", reason: "socket error: getaddrinfo ENOTFOUND box" }), { state: "unresolvable", reason: "cannot resolve host 'box' (ENOTFOUND)" });
  assert.deepEqual(c({ errorCode: "EAI_AGAIN" }).state, "unresolvable");
  assert.deepEqual(c({ errorCode: "ECONNREFUSED" }), { state: "unreachable", reason: "connection refused: nothing listens on port 7" });
  assert.deepEqual(c({ reason: "socket error: connect timed out" }), { state: "unreachable", reason: "connect timed out" });
  assert.deepEqual(c({ errorCode: "EHOSTUNREACH", reason: "socket error: connect EHOSTUNREACH" }).state, "unreachable");
  assert.equal(c({ gotData: true, answeredHttp: true, reason: "it answers HTTP" }).state, "not-tessera");
  assert.match(c({ gotData: true, reason: "frame of 1 bytes exceeds the limit" }).reason, /does not speak the Tessera peer protocol/);
  assert.equal(c({ reason: "handshake timed out" }).state, "not-tessera");
  assert.equal(c({}).state, "not-tessera");
  assert.deepEqual(c({ gotData: true, peerId: "0123456789abcdef" }), { state: "refused", reason: "the node there refused us (a different --secret or --cluster?)" });
  assert.match(c({ gotData: true, peerId: "0123456789abcdef", reason: "authentication failed: wrong cluster secret or cluster name" }).reason, /different --secret or --cluster/);
  assert.equal(c({ gotData: true, reason: "handshake refused: connected to itself" }).state, "self");
});

function fakeLink(o: Partial<FailedLink>): PeerLink {
  const l = link(o);
  return { errorCode: l.errorCode, gotData: l.gotData, answeredHttp: l.answeredHttp, peerId: l.peerId } as PeerLink;
}

test("static peers: failures are logged on change and at most once a minute while unchanged", () => {
  let now = 0;
  const logs: string[] = [];
  const s = new StaticPeers({ log: (m) => logs.push(m), redirect: () => {}, now: () => now });
  s.add("box:7", { host: "box", port: 7, text: "box:7" });
  assert.equal(s.allFailed, false, "not tried yet");
  const refused = () => s.onDial({ key: "box:7", host: "box", port: 7, up: false, link: fakeLink({ errorCode: "ECONNREFUSED" }), reason: "socket error: connect ECONNREFUSED" });
  refused();
  for (let i = 0; i < 20; i++) {
    now += 2000;
    refused();
  }
  assert.equal(logs.length, 1, logs.join("\n"));
  assert.match(logs[0]!, /^--peers box:7: unreachable — connection refused: nothing listens on port 7 \(retrying\)$/);
  now += 60_000;
  refused();
  assert.equal(logs.length, 2);
  assert.match(logs[1]!, /still unreachable/);
  assert.equal(s.allFailed, true);
  s.onDial({ key: "box:7", host: "box", port: 7, up: false, link: fakeLink({ errorCode: "ENOTFOUND" }), reason: "x" });
  assert.equal(logs.length, 3, "a new reason is logged at once");
  s.onDial({ key: "box:7", host: "box", port: 7, up: true, id: "0123456789abcdef" });
  const [st] = s.list();
  assert.deepEqual([st!.state, st!.nodeId, st!.reason], ["connected", "0123456789abcdef", null]);
  assert.equal(s.allFailed, false);
  assert.equal(logs.length, 3);
});

test("static peers: an HTTP port is resolved to the node's peer port through GET /cluster", async () => {
  const tessera = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(req.url === "/cluster" ? JSON.stringify({ self: { id: "0123456789abcdef", peerPort: 4242 }, state: {} }) : "{}");
  });
  const other = createServer((_req, res) => res.end("<html>hello</html>"));
  await Promise.all([tessera, other].map((srv) => new Promise<void>((r) => srv.listen(0, "127.0.0.1", r))));
  const port = (srv: typeof tessera) => (srv.address() as { port: number }).port;
  try {
    assert.deepEqual(await peerPortFromHttp("127.0.0.1", port(tessera)), { id: "0123456789abcdef", peerPort: 4242 });
    await assert.rejects(peerPortFromHttp("127.0.0.1", port(other)), /GET \/cluster/);

    const logs: string[] = [];
    const redirects: [string, number][] = [];
    const s = new StaticPeers({ log: (m) => logs.push(m), redirect: (k, p) => redirects.push([k, p]), peerPortFromHttp });
    const http = (key: string, p: number) =>
      s.onDial({ key, host: "127.0.0.1", port: p, up: false, link: fakeLink({ gotData: true, answeredHttp: true }), reason: "it answers HTTP, not the peer protocol" });
    const a = `127.0.0.1:${port(tessera)}`;
    const b = `127.0.0.1:${port(other)}`;
    s.add(a, { host: "127.0.0.1", port: port(tessera), text: a });
    s.add(b, { host: "127.0.0.1", port: port(other), text: b });
    http(a, port(tessera));
    http(b, port(other));
    const deadline = Date.now() + 5000;
    while (s.list().some((p) => p.state === "connecting" && p.address === b) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    while (redirects.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(redirects, [[a, 4242]]);
    const [pa, pb] = s.list();
    assert.deepEqual([pa!.state, pa!.dialing, pa!.nodeId], ["connecting", "127.0.0.1:4242", "0123456789abcdef"]);
    assert.equal(pb!.state, "not-tessera");
    assert.match(pb!.reason!, /answers HTTP but is not a Tessera node/);
    assert.ok(logs.some((l) => l.includes(`--peers ${a} is the HTTP port of node 0123456789abcdef: dialling its peer port 4242`)), logs.join("\n"));
  } finally {
    tessera.close();
    other.close();
  }
});
