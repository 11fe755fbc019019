import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { nodeModuleCommand } from "../../src/spawn.js";
import { sumInRankOrder } from "../../src/transport/reduce.js";
import { closeAll, formGroups, randomFloats } from "./helpers.js";

// Busy-polling needs each rank in its own process (a spinning rank starves any rank sharing its thread).
interface Rank {
  child: ChildProcess;
  stderr: string;
  exited: Promise<{ code: number | null; at: number }>;
  line(re: RegExp): Promise<string>;
}

async function startRanks(size: number, mode: string, steps: number, stepTimeoutMs?: number): Promise<Rank[]> {
  const { command, args } = nodeModuleCommand("./fixtures/reduce-worker", import.meta.url);
  const groupId = `poll-${process.pid}-${Date.now()}`;
  const ranks = Array.from({ length: size }, (_, r): Rank => {
    const extra = stepTimeoutMs ? [String(stepTimeoutMs)] : [];
    const child = spawn(command, [...args, String(r), String(size), groupId, mode, String(steps), ...extra], { stdio: ["pipe", "pipe", "pipe"] });
    const seen: string[] = [];
    const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
    createInterface({ input: child.stdout! }).on("line", (l) => {
      seen.push(l);
      for (const w of waiters.splice(0)) if (w.re.test(l)) w.resolve(l);
      else waiters.push(w);
    });
    const rank: Rank = {
      child,
      stderr: "",
      exited: new Promise((resolve) => child.on("exit", (code) => resolve({ code, at: performance.now() }))),
      line: (re) => {
        const old = seen.find((l) => re.test(l));
        return old !== undefined ? Promise.resolve(old) : new Promise((resolve) => waiters.push({ re, resolve }));
      },
    };
    child.stderr!.on("data", (d: Buffer) => (rank.stderr += d.toString()));
    return rank;
  });
  const ports = await Promise.all(ranks.map(async (r) => Number((await r.line(/^port \d+$/)).split(" ")[1])));
  const peers = JSON.stringify(ports.map((port) => ({ host: "127.0.0.1", port })));
  for (const r of ranks) r.child.stdin!.end(peers + "\n");
  return ranks;
}

function killAll(ranks: Rank[]): void {
  for (const r of ranks) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
}

/** What reduce-worker hashes: every step's sum of the ranks' partials, in rank order. */
function expectedHash(size: number, steps: number): number {
  const SIZES = [2048, 1, 4097, 2048, 16384];
  let hash = 0x811c9dc5;
  for (let step = 0; step < steps; step++) {
    const parts = Array.from({ length: size }, (_, r) => randomFloats(SIZES[step % SIZES.length]!, 1 + step * 31 + r * 7919));
    const out = new Float32Array(parts[0]!.length);
    sumInRankOrder(parts, out, new Float64Array(out.length));
    for (const b of new Uint8Array(out.buffer)) hash = Math.imul(hash ^ b, 0x01000193) >>> 0;
  }
  return hash;
}

for (const [size, mode] of [
  [2, "poll"],
  [3, "mixed"],
  [4, "poll"],
] as const) {
  test(`busy-polled all-reduce (${mode}), ${size} ranks in separate processes: same bits as the event-loop sum`, async (t) => {
    const steps = 150;
    const ranks = await startRanks(size, mode, steps);
    try {
      const results = await Promise.all(ranks.map(async (r) => JSON.parse(await r.line(/^\{/)) as { hash: number; stats: { synchronous: number; waited: number; skipped: number } }));
      const want = expectedHash(size, steps);
      for (const [r, res] of results.entries()) {
        assert.equal(res.hash, want, `rank ${r} result bits`);
        const polled = mode === "poll" ? steps : steps / 2;
        assert.equal(res.stats.synchronous + res.stats.waited + res.stats.skipped, polled, `rank ${r} polled all-reduces`);
      }
      const sync = results.reduce((a, r) => a + r.stats.synchronous, 0);
      assert.ok(sync > 0, "some all-reduces finished inside the spin");
      t.diagnostic(`finished while spinning / then waited / skipped: ${results.map((r) => `${r.stats.synchronous}/${r.stats.waited}/${r.stats.skipped}`).join(", ")}`);
      for (const r of ranks) assert.equal((await r.exited).code, 0, r.stderr);
    } finally {
      killAll(ranks);
    }
  });
}

test("a rank that stops answering a busy-polled all-reduce is named within 5 s, even with a 30 s step timeout", async (t) => {
  const ranks = await startRanks(2, "poll", 0, 30_000);
  try {
    await Promise.all(ranks.map((r) => r.line(/^step 200$/)));
    const t0 = performance.now();
    ranks[1]!.child.kill("SIGSTOP");
    const { code, at } = await ranks[0]!.exited;
    assert.equal(code, 3, ranks[0]!.stderr);
    assert.ok(at - t0 < 5000, `took ${Math.round(at - t0)} ms to notice`);
    assert.match(ranks[0]!.stderr, /rank 1 \(127\.0\.0\.1:\d+\)/);
    assert.match(ranks[0]!.stderr, /sent nothing for \d+ ms/);
    t.diagnostic(`after ${Math.round(at - t0)} ms: ${ranks[0]!.stderr.trim()}`);
  } finally {
    killAll(ranks);
  }
});

test("in one process, a polled all-reduce whose peer has not sent yet falls back to the event loop", async () => {
  const groups = await formGroups(2);
  try {
    const a = randomFloats(2048, 1);
    const b = randomFloats(2048, 2);
    const want = new Float32Array(2048);
    sumInRankOrder([a, b], want, new Float64Array(2048));
    // rank 0 spins out its budget (rank 1 shares this thread), rank 1 then finds rank 0's partial on its fd
    const p0 = groups[0]!.allReduce(a, { poll: true });
    const p1 = groups[1]!.allReduce(b, { poll: true });
    await Promise.all([p0, p1]);
    assert.deepEqual(a, want);
    assert.deepEqual(b, want);
    assert.deepEqual(groups[0]!.pollStats, { synchronous: 0, waited: 1, skipped: 0 });
    assert.deepEqual(groups[1]!.pollStats, { synchronous: 1, waited: 0, skipped: 0 });
  } finally {
    closeAll(groups);
  }
});

test("when most spins of a window run out of budget, the group stops spinning for a while", async () => {
  const groups = await formGroups(2);
  try {
    // in one process rank 0 always spins in vain: after 32 such all-reduces it stops spinning
    for (let i = 0; i < 40; i++) {
      const a = Float32Array.of(i);
      const b = Float32Array.of(1);
      await Promise.all([groups[0]!.allReduce(a, { poll: true }), groups[1]!.allReduce(b, { poll: true })]);
      assert.equal(a[0], i + 1);
      assert.equal(b[0], i + 1);
    }
    assert.deepEqual(groups[0]!.pollStats, { synchronous: 0, waited: 32, skipped: 8 });
    assert.equal(groups[1]!.pollStats.synchronous, 40, "rank 1 always found rank 0's partial waiting");
  } finally {
    closeAll(groups);
  }
});
