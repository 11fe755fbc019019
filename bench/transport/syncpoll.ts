// Scratch experiment (brief H8): round trip of a symmetric 8 KiB exchange between two processes,
// async socket events vs a synchronous busy-poll on the socket's fd (fs.writeSync / fs.readSync).
// Usage: npx tsx bench/transport/syncpoll.ts parent [iters] [bytes]
// Measured 2026-11-26 (2 shared cores, 8 KiB): async median 82–122 µs (CPU 70–118 µs per exchange),
// busy-poll median 13–15 µs (CPU 44–60 µs). That led to Group.allReduce({ poll }) (src/transport/busy-poll.ts).
import { fork } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

const ITERS = Number(process.argv[3] ?? 3000);
const BYTES = Number(process.argv[4] ?? 8192);
const mode = process.argv[2] ?? "parent";

function fdOf(s: net.Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

async function asyncRounds(s: net.Socket, n: number): Promise<number[]> {
  const out = Buffer.alloc(BYTES, 1);
  const us: number[] = [];
  let have = 0;
  let wake: (() => void) | undefined;
  s.on("data", (c: Buffer) => {
    have += c.length;
    if (have >= BYTES && wake) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    s.write(out);
    if (have < BYTES) await new Promise<void>((r) => (wake = r));
    have -= BYTES;
    us.push((performance.now() - t0) * 1000);
  }
  s.removeAllListeners("data");
  s.on("data", (c: Buffer) => (carried += c.length));
  return us;
}

/** Bytes libuv read (and the event loop delivered) before a sync round started. */
let carried = 0;

function syncRounds(s: net.Socket, n: number): { us: number[]; eagain: number } {
  const fd = fdOf(s);
  const out = Buffer.alloc(BYTES, 2);
  const inb = Buffer.alloc(BYTES * 2);
  const us: number[] = [];
  let eagain = 0;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    let off = 0;
    while (off < BYTES) {
      try {
        off += fs.writeSync(fd, out, off, BYTES - off);
      } catch {
        eagain++;
      }
    }
    let got = Math.min(carried, BYTES);
    carried -= got;
    while (got < BYTES) {
      try {
        const k = fs.readSync(fd, inb, got, BYTES - got, null);
        if (k === 0) throw new Error("closed");
        got += k;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
        eagain++;
      }
    }
    us.push((performance.now() - t0) * 1000);
  }
  Error.stackTraceLimit = limit;
  return { us, eagain };
}

const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const p90 = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.9)]!;

/** Answers the parent's "run async|sync" messages with the timings of ITERS exchanges on `s`. */
function serveRuns(s: net.Socket): void {
  process.on("message", async (m: { kind: string }) => {
    const c0 = process.cpuUsage();
    let us: number[];
    if (m.kind === "async") us = await asyncRounds(s, ITERS);
    else us = syncRounds(s, ITERS).us;
    const c = process.cpuUsage(c0);
    process.send!({ med: med(us), p90: p90(us), cpu: (c.user + c.system) / ITERS });
  });
  process.send!({ ready: true });
}

async function child(): Promise<void> {
  const port = Number(process.argv[5]);
  const s = net.connect(port, "127.0.0.1");
  s.setNoDelay(true);
  await new Promise((r) => s.once("connect", r));
  serveRuns(s);
}

async function parent(): Promise<void> {
  // child B connects straight to child A's server
  const a = fork(new URL(import.meta.url).pathname, ["childServer", String(ITERS), String(BYTES)], { execArgv: process.execArgv });
  const aPort = await new Promise<number>((r) => a.once("message", (m: { port: number }) => r(m.port)));
  const b = fork(new URL(import.meta.url).pathname, ["child", String(ITERS), String(BYTES), String(aPort)], { execArgv: process.execArgv });
  await new Promise((r) => b.once("message", r));
  await new Promise((r) => a.once("message", r));
  const run = async (kind: string): Promise<unknown> => {
    const ra = new Promise((r) => a.once("message", r));
    const rb = new Promise((r) => b.once("message", r));
    a.send({ kind });
    b.send({ kind });
    return [await ra, await rb];
  };
  for (let round = 0; round < 2; round++) {
    console.log("async      ", JSON.stringify(await run("async")));
    console.log("sync spin  ", JSON.stringify(await run("sync")));
  }
  a.kill();
  b.kill();
}

async function childServer(): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  process.send!({ port: (server.address() as net.AddressInfo).port });
  const s = await new Promise<net.Socket>((r) => server.once("connection", r));
  s.setNoDelay(true);
  server.close();
  serveRuns(s);
}

if (mode === "parent") await parent();
else if (mode === "child") await child();
else await childServer();
