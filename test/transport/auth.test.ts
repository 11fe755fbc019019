import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { Group, GroupListener } from "../../src/transport/index.js";
import { encodeFrame, FrameKind, DataOp } from "../../src/transport/frame.js";

// Every group link proves the instance key in its handshake; without it nothing is read.

const KEY = "11".repeat(32);
const OTHER = "22".repeat(32);

async function listeners(n: number): Promise<GroupListener[]> {
  return Promise.all(Array.from({ length: n }, () => GroupListener.open("127.0.0.1", 0)));
}

test("a rank with another key is refused before any data; the group of rightful ranks forms", async () => {
  const [l0, l1, lx] = await listeners(3);
  const peers = [l0!, l1!].map((l) => ({ host: "127.0.0.1", port: l.port }));
  const base = { size: 2, peers, groupId: "g-auth", timeoutMs: 5000 };
  const g0 = Group.join({ ...base, rank: 0, listener: l0, key: KEY });
  // an impostor claiming rank 1 with the wrong key dials rank 0 first
  const impostor = Group.join({ ...base, rank: 1, listener: lx, key: OTHER, timeoutMs: 3000 });
  await assert.rejects(impostor, /refused this rank: authentication failed: no proof of this instance's key/);
  const g1 = Group.join({ ...base, rank: 1, listener: l1, key: KEY });
  const [a, b] = await Promise.all([g0, g1]);
  try {
    const x = Float32Array.of(1, 2);
    const y = Float32Array.of(10, 20);
    await Promise.all([a.allReduce(x), b.allReduce(y)]);
    assert.deepEqual([...x], [11, 22]);
  } finally {
    a.close();
    b.close();
  }
});

test("a raw socket that sends data frames without the handshake is dropped unread", async () => {
  const [l0, l1] = await listeners(2);
  const peers = [l0!, l1!].map((l) => ({ host: "127.0.0.1", port: l.port }));
  const g0 = Group.join({ rank: 0, size: 2, peers, groupId: "g-raw", listener: l0, key: KEY, timeoutMs: 5000 });
  const raw = net.connect({ host: "127.0.0.1", port: l0!.port });
  await once(raw, "connect");
  raw.on("error", () => {});
  // the challenge arrives first; answer it with a tensor instead of a HELLO
  await once(raw, "data");
  raw.write(encodeFrame(FrameKind.DATA, new Uint8Array(64), DataOp.ALL_REDUCE, 0, 0, 16));
  await once(raw, "close");
  // negative control: the same listener still takes the rightful rank 1
  const g1 = Group.join({ rank: 1, size: 2, peers, groupId: "g-raw", listener: l1, key: KEY, timeoutMs: 5000 });
  const [a, b] = await Promise.all([g0, g1]);
  a.close();
  b.close();
});

test("a listener that cannot prove the key is not trusted by the dialer", async () => {
  // A fake rank 0: it challenges, takes the HELLO, and answers WELCOME with a proof it cannot make.
  const server = net.createServer((s) => {
    s.on("error", () => {});
    const challenge = new Uint8Array(4 + 32);
    challenge.set([0x54, 0x53, 0x52, 0x32]); // "TSR2"
    s.write(encodeFrame(FrameKind.CHALLENGE, challenge));
    s.once("data", () => {
      const welcome = new Uint8Array(12 + 32);
      welcome.set([0x54, 0x53, 0x52, 0x32, 0, 0, 0, 0, 2, 0, 0, 0]); // rank 0, size 2, zero proof
      s.write(encodeFrame(FrameKind.WELCOME, welcome));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const [l1] = await listeners(1);
  const peers = [{ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port }, { host: "127.0.0.1", port: l1!.port }];
  try {
    await assert.rejects(Group.join({ rank: 1, size: 2, peers, groupId: "g-mutual", listener: l1, key: KEY, timeoutMs: 3000 }), /answered without proof of this instance's key/);
  } finally {
    server.close();
  }
});
