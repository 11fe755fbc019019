import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { nodeModuleCommand } from "../../src/spawn.js";

interface Rank {
  child: ChildProcess;
  port: number;
  stderr: string;
  exited: Promise<{ code: number | null; at: number }>;
  /** Resolves with the first line the rank prints that matches the pattern. */
  waitFor(re: RegExp): Promise<string>;
}

async function startRanks(size: number, stepTimeoutMs?: number): Promise<Rank[]> {
  const { command, args } = nodeModuleCommand("./fixtures/rank-worker", import.meta.url);
  const groupId = `fail-${process.pid}-${Date.now()}`;
  const ranks = Array.from({ length: size }, (_, r): Rank => {
    const child = spawn(command, [...args, String(r), String(size), groupId, ...(stepTimeoutMs ? [String(stepTimeoutMs)] : [])], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const lines = createInterface({ input: child.stdout! });
    const seen: string[] = [];
    const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
    lines.on("line", (l) => {
      seen.push(l);
      for (const w of waiters.splice(0)) if (w.re.test(l)) w.resolve(l);
      else waiters.push(w);
    });
    const rank: Rank = {
      child,
      port: 0,
      stderr: "",
      exited: new Promise((resolve) => child.on("exit", (code) => resolve({ code, at: performance.now() }))),
      waitFor: (re) => {
        const old = seen.find((l) => re.test(l));
        return old !== undefined ? Promise.resolve(old) : new Promise((resolve) => waiters.push({ re, resolve }));
      },
    };
    child.stderr!.on("data", (d: Buffer) => (rank.stderr += d.toString()));
    return rank;
  });
  await Promise.all(
    ranks.map(async (r) => {
      r.port = Number((await r.waitFor(/^port \d+$/)).split(" ")[1]);
    }),
  );
  const peers = JSON.stringify(ranks.map((r) => ({ host: "127.0.0.1", port: r.port })));
  for (const r of ranks) r.child.stdin!.end(peers + "\n");
  await Promise.all(ranks.map((r) => r.waitFor(/^step 200$/)));
  return ranks;
}

function killAll(ranks: Rank[]): void {
  for (const r of ranks) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
}

async function expectOthersFail(ranks: Rank[], lost: number, since: number, pattern: RegExp, note: (s: string) => void): Promise<void> {
  for (const [r, rank] of ranks.entries()) {
    if (r === lost) continue;
    const { code, at } = await rank.exited;
    assert.equal(code, 3, `rank ${r} exit code (stderr: ${rank.stderr})`);
    assert.ok(at - since < 5000, `rank ${r} took ${Math.round(at - since)} ms to notice`);
    assert.match(rank.stderr, new RegExp(`rank ${lost} \\(127\\.0\\.0\\.1:${ranks[lost]!.port}\\)`));
    assert.match(rank.stderr, pattern);
    note(`rank ${r} after ${Math.round(at - since)} ms: ${rank.stderr.trim()}`);
  }
}

test("kill -9 of one rank mid-loop: every other rank fails within 5 s, naming it", async (t) => {
  const ranks = await startRanks(3);
  try {
    const t0 = performance.now();
    ranks[1]!.child.kill("SIGKILL");
    await expectOthersFail(ranks, 1, t0, /closed the connection|reset the connection/, (m) => t.diagnostic(m));
  } finally {
    killAll(ranks);
  }
});

test("a stalled rank (SIGSTOP) is detected by the default step timeout, within 5 s", async (t) => {
  const ranks = await startRanks(3);
  try {
    const t0 = performance.now();
    ranks[2]!.child.kill("SIGSTOP");
    await expectOthersFail(ranks, 2, t0, /sent nothing for \d+ ms/, (m) => t.diagnostic(m));
  } finally {
    killAll(ranks);
  }
});
