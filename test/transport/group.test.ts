import { test } from "node:test";
import assert from "node:assert/strict";
import { Group, GroupListener, QUANT_BLOCK } from "../../src/transport/index.js";
import { TesseraError } from "../../src/errors.js";
import { closeAll, formGroups, randomFloats } from "./helpers.js";

const F32_EPS = 2 ** -23;

/** Runs one allReduce on every rank with seeded data; returns the results and a float64 reference. */
async function reduceOnce(groups: Group[], n: number, seed: number, opts: Parameters<Group["allReduce"]>[1] = {}) {
  const inputs = groups.map((_, r) => randomFloats(n, seed * 31 + r + 1, 1 + r));
  const outs = inputs.map((x) => x.slice());
  await Promise.all(groups.map((g, r) => g.allReduce(outs[r]!, opts)));
  const ref = new Float64Array(n);
  const absSum = new Float64Array(n);
  for (const x of inputs) {
    for (let i = 0; i < n; i++) {
      ref[i] += x[i]!;
      absSum[i] += Math.abs(x[i]!);
    }
  }
  return { inputs, outs, ref, absSum };
}

function assertIdenticalAcrossRanks(outs: Float32Array[], what: string): void {
  const a = Buffer.from(outs[0]!.buffer, outs[0]!.byteOffset, outs[0]!.byteLength);
  for (let r = 1; r < outs.length; r++) {
    const b = Buffer.from(outs[r]!.buffer, outs[r]!.byteOffset, outs[r]!.byteLength);
    assert.ok(a.equals(b), `${what}: rank ${r} differs from rank 0`);
  }
}

const SIZES = [1, 2, 3, 63, 64, 65, 1000, 2048, 65_537];

for (const size of [2, 3, 4]) {
  test(`all-reduce, ${size} ranks: direct and ring match a float64 reference and agree bit for bit`, async () => {
    const groups = await formGroups(size);
    try {
      for (const n of [...SIZES, 1 << 20]) {
        const algorithms = n === 1 << 20 ? (["auto"] as const) : (["direct", "ring"] as const);
        for (const algorithm of algorithms) {
          const { outs, ref, absSum } = await reduceOnce(groups, n, n, { algorithm });
          const what = `${size} ranks, n=${n}, ${algorithm}`;
          assertIdenticalAcrossRanks(outs, what);
          for (let i = 0; i < n; i++) {
            // the ring adds in float32 at each of its size−1 hops; the direct path rounds once
            const bound = size * F32_EPS * absSum[i]!;
            if (!(Math.abs(outs[0]![i]! - ref[i]!) <= bound)) assert.fail(`${what} i=${i}: ${outs[0]![i]} vs ${ref[i]}`);
          }
        }
      }
    } finally {
      closeAll(groups);
    }
  });
}

test("all-reduce with 8-bit compression stays within its stated bound and agrees across ranks", async () => {
  for (const size of [2, 3]) {
    const groups = await formGroups(size);
    try {
      for (const algorithm of ["direct", "ring"] as const) {
        const n = 5000;
        const { inputs, outs, ref } = await reduceOnce(groups, n, 99, { algorithm, compress: true });
        assertIdenticalAcrossRanks(outs, `compressed ${algorithm}, ${size} ranks`);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          const b0 = Math.floor(i / QUANT_BLOCK) * QUANT_BLOCK;
          let blockMaxSum = 0;
          for (const x of inputs) {
            let m = 0;
            for (let j = b0; j < Math.min(n, b0 + QUANT_BLOCK); j++) m = Math.max(m, Math.abs(x[j]!));
            blockMaxSum += m;
          }
          // direct: one quantization of each partial; ring: size quantizations of partial sums
          const quantizations = algorithm === "direct" ? 1 : size;
          const bound = (quantizations * blockMaxSum) / 254 + 8 * F32_EPS * blockMaxSum;
          const err = Math.abs(outs[0]![i]! - ref[i]!);
          if (!(err <= bound)) assert.fail(`${algorithm} i=${i}: error ${err} > bound ${bound}`);
          worst = Math.max(worst, err);
        }
        assert.ok(worst > 0, "compression changed nothing: was it applied?");
      }
    } finally {
      closeAll(groups);
    }
  }
});

test("many back-to-back all-reduces (ranks drift ahead of each other) stay correct", async () => {
  const groups = await formGroups(3);
  try {
    const bufs = groups.map(() => new Float32Array(2048));
    const loops = groups.map(async (g, r) => {
      for (let step = 0; step < 300; step++) {
        bufs[r]!.fill(r + step);
        if (step % 7 === r) await new Promise((res) => setImmediate(res));
        await g.allReduce(bufs[r]!);
        assert.equal(bufs[r]![2047], 3 + 3 * step, `rank ${r} step ${step}`);
      }
    });
    await Promise.all(loops);
  } finally {
    closeAll(groups);
  }
});

test("send/recv between two ranks, posted before or after the data arrives", async () => {
  const [a, b, c] = await formGroups(3);
  try {
    const x = randomFloats(3000, 5);
    const into = new Float32Array(4000);
    const early = b!.recv(0, into, 7);
    await a!.send(1, x, 7);
    assert.equal(await early, 3000 * 4);
    assert.deepEqual(into.subarray(0, 3000), x);
    // data first, receive later; several in order on one link
    await a!.send(2, new Int32Array([1, 2, 3]), 1);
    await a!.send(2, new Int32Array([4, 5]), 1);
    await new Promise((res) => setTimeout(res, 20));
    const got = new Int32Array(3);
    assert.equal(await c!.recv(0, got, 1), 12);
    assert.deepEqual(Array.from(got), [1, 2, 3]);
    assert.equal(await c!.recv(0, got, 1), 8);
    assert.deepEqual(Array.from(got.subarray(0, 2)), [4, 5]);
  } finally {
    closeAll([a!, b!, c!]);
  }
});

test("broadcast from any root and barrier", async () => {
  const groups = await formGroups(4);
  try {
    for (const root of [0, 3]) {
      const tokens = groups.map((_, r) => new Int32Array(r === root ? [42 + root, -1] : [0, 0]));
      await Promise.all(groups.map((g, r) => g.broadcast(root, tokens[r]!)));
      for (const t of tokens) assert.deepEqual(Array.from(t), [42 + root, -1]);
    }
    let arrived = 0;
    await Promise.all(
      groups.map(async (g, r) => {
        await new Promise((res) => setTimeout(res, r * 15));
        arrived++;
        await g.barrier();
        assert.equal(arrived, 4, "barrier returned before every rank arrived");
      }),
    );
  } finally {
    closeAll(groups);
  }
});

test("ranks that call different collectives fail with a message saying so", async () => {
  const [a, b] = await formGroups(2);
  try {
    const ra = a!.allReduce(new Float32Array(8));
    const rb = b!.broadcast(1, new Int32Array(1));
    await assert.rejects(ra, /rank 1 .*sent broadcast .* expected all-reduce.*different orders/);
    assert.equal(await rb, undefined);
    await assert.rejects(a!.barrier(), /different orders/);
  } finally {
    closeAll([a!, b!]);
  }
});

test("a size mismatch between ranks is reported, not summed", async () => {
  const [a, b] = await formGroups(2);
  try {
    const r = await Promise.allSettled([a!.allReduce(new Float32Array(10)), b!.allReduce(new Float32Array(12))]);
    assert.ok(r.every((x) => x.status === "rejected"));
    assert.match(String((r[0] as PromiseRejectedResult).reason), /sent 12 values where this rank has 10/);
  } finally {
    closeAll([a!, b!]);
  }
});

test("join refuses a peer of another group, and times out naming the missing rank", async () => {
  const l0 = await GroupListener.open("127.0.0.1", 0);
  const l1 = await GroupListener.open("127.0.0.1", 0);
  const peers = [
    { host: "127.0.0.1", port: l0.port },
    { host: "127.0.0.1", port: l1.port },
  ];
  const g0 = Group.join({ rank: 0, size: 2, peers, groupId: "alpha", listener: l0, timeoutMs: 800 });
  const g1 = Group.join({ rank: 1, size: 2, peers, groupId: "beta", listener: l1, timeoutMs: 800 });
  await assert.rejects(g1, (e: unknown) => e instanceof TesseraError && /rank 0 \(127\.0\.0\.1:\d+\): refused this rank: group 'beta' ≠ this rank's group 'alpha'/.test(e.message));
  await assert.rejects(g0, /timed out after 800 ms waiting for rank 1 \(127\.0\.0\.1:\d+\) to join group 'alpha'/);
  await assert.rejects(Group.join({ rank: 2, size: 2, peers, groupId: "x" }), /rank must be in \[0, 2\)/);
});

test("a group of one reduces to itself; closed groups reject", async () => {
  const [g] = await formGroups(1);
  const x = new Float32Array([1, 2]);
  await g!.allReduce(x);
  assert.deepEqual(Array.from(x), [1, 2]);
  g!.close();
  await assert.rejects(g!.allReduce(x), /the group was closed/);
});

test("a rank that leaves fails its peers' pending collective, naming it", async () => {
  const [a, b, c] = await formGroups(3);
  const failures: string[] = [];
  a!.onFailure((e) => failures.push(e.message));
  const pending = a!.allReduce(new Float32Array(16));
  b!.close();
  await assert.rejects(pending, /rank 1 \(127\.0\.0\.1:\d+\): (left the group|closed the connection)/);
  await assert.rejects(c!.allReduce(new Float32Array(16)), /rank 1 \(127\.0\.0\.1:\d+\)/);
  assert.equal(failures.length, 1);
  closeAll([a!, c!]);
});

test("a rank that leaves while its peers wait on nothing fails nothing; their next collective is refused, naming it", async () => {
  const [a, b, c] = await formGroups(3);
  const failures: string[] = [];
  for (const g of [a!, c!]) g.onFailure((e) => failures.push(e.message));
  b!.close();
  await new Promise((r) => setTimeout(r, 300));
  // instances close this way: ranks hear CLOSE at different times, and the first to go is no loss
  assert.deepEqual(failures, []);
  assert.equal(c!.failure, undefined);
  await assert.rejects(c!.allReduce(new Float32Array(16)), /rank 1 \(127\.0\.0\.1:\d+\): left the group/);
  closeAll([a!, c!]);
});

test("a sender far ahead of its receiver is held back by backpressure, and nothing is lost", async () => {
  const [a, b] = await formGroups(2);
  try {
    const count = 80;
    const msg = new Float32Array(256 * 1024); // 1 MiB: 80 MiB in all, more than the link buffers unread
    let completed = 0;
    const sender = (async () => {
      for (let i = 0; i < count; i++) {
        msg.fill(i);
        await a!.send(1, msg, 3);
        completed++;
      }
    })();
    // Without backpressure every send would have resolved long before the receiver starts reading.
    await new Promise((res) => setTimeout(res, 300));
    const completedBeforeReading = completed;
    const into = new Float32Array(msg.length);
    for (let i = 0; i < count; i++) {
      assert.equal(await b!.recv(0, into, 3), msg.byteLength);
      if (into[0] !== i || into[into.length - 1] !== i) assert.fail(`message ${i} holds ${into[0]}`);
    }
    await sender;
    assert.ok(completedBeforeReading < count, `all ${count} sends finished with nobody reading: no backpressure`);
  } finally {
    closeAll([a!, b!]);
  }
});

test("a second allReduce while one is in flight is refused (they would share buffers)", async () => {
  const [a, b] = await formGroups(2);
  try {
    const x = new Float32Array([1]);
    const first = a!.allReduce(x);
    await assert.rejects(a!.allReduce(new Float32Array([5])), /another allReduce of this group is in flight/);
    await b!.allReduce(new Float32Array([2]));
    await first;
    assert.equal(x[0], 3);
  } finally {
    closeAll([a!, b!]);
  }
});

test("ranks may start in any order: a dialer retries until its peer listens", async () => {
  const probe = await GroupListener.open("127.0.0.1", 0);
  const port0 = probe.port;
  probe.close();
  const l1 = await GroupListener.open("127.0.0.1", 0);
  const peers = [
    { host: "127.0.0.1", port: port0 },
    { host: "127.0.0.1", port: l1.port },
  ];
  const g1 = Group.join({ rank: 1, size: 2, peers, groupId: "late", listener: l1, timeoutMs: 5000 });
  await new Promise((res) => setTimeout(res, 250));
  const g0 = Group.join({ rank: 0, size: 2, peers, groupId: "late", timeoutMs: 5000 });
  const [a, b] = await Promise.all([g0, g1]);
  const x = new Float32Array([1]);
  await Promise.all([a.allReduce(x), b.allReduce(new Float32Array([2]))]);
  assert.equal(x[0], 3);
  closeAll([a, b]);
});
