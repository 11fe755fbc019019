// One process of the transport benchmark. Modes (argv[2]):
//   rank <rank> <size> <groupId> <iters> <warmup> <floats> [auto|direct|ring|poll]
//       prints "port N", reads {"peers": [...]} as one JSON line on stdin, joins, then times `iters`
//       all-reduces of `floats` floats after `warmup` untimed ones; prints one JSON line of µs timings.
//   echo      prints "port N"; echoes every byte back on every connection.
//   ping <port> <iters> <warmup> <bytes>
//       sends `bytes` bytes, waits for them to come back, repeats; prints one JSON line of µs timings.
//   echo-poll, ping-poll <port> <iters> <warmup> <bytes>
//       the same, both ends spinning on non-blocking reads of the socket's fd (no event loop), as a
//       busy-polled decode all-reduce does: the raw TCP floor to compare that all-reduce with.
import net from "node:net";
import { createInterface } from "node:readline";
import fs from "node:fs";
import { Group, GroupListener, type PeerAddress } from "../../src/transport/index.js";
import { readNow, socketFd } from "../../src/transport/busy-poll.js";

export interface Timings {
  median: number;
  p10: number;
  p90: number;
  mean: number;
  n: number;
  /** CPU time (user + system) this process spent per operation, µs: less noisy than wall time on a shared machine. */
  cpu_per_op: number;
}

function summarize(us: number[], cpu: NodeJS.CpuUsage): Timings {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { median: r(at(0.5)), p10: r(at(0.1)), p90: r(at(0.9)), mean: r(s.reduce((a, b) => a + b, 0) / s.length), n: s.length, cpu_per_op: r((cpu.user + cpu.system) / s.length) };
}

async function rank(argv: string[]): Promise<void> {
  const [r, size, groupId, iters, warmup, floats] = [Number(argv[0]), Number(argv[1]), argv[2]!, Number(argv[3]), Number(argv[4]), Number(argv[5])];
  // "poll": the direct all-reduce, busy-polled (transport/busy-poll.ts)
  const mode = argv[6] ?? "auto";
  const poll = mode === "poll";
  const algorithm = (poll ? "direct" : mode) as "auto" | "direct" | "ring";
  const listener = await GroupListener.open("127.0.0.1", 0);
  console.log(`port ${listener.port}`);
  const lines = createInterface({ input: process.stdin });
  const { peers } = await new Promise<{ peers: PeerAddress[] }>((resolve) => lines.once("line", (l) => resolve(JSON.parse(l))));
  lines.close();
  const group = await Group.join({ rank: r, size, peers, groupId, listener });
  const x = new Float32Array(floats);
  const us: number[] = [];
  await group.barrier();
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < warmup + iters; i++) {
    if (i === warmup) cpu0 = process.cpuUsage();
    x.fill(1);
    const t0 = performance.now();
    await group.allReduce(x, { algorithm, poll });
    const t1 = performance.now();
    if (i >= warmup) us.push((t1 - t0) * 1000);
    if (x[floats - 1] !== size) throw new Error(`wrong sum ${x[floats - 1]}`);
  }
  const cpu = process.cpuUsage(cpu0);
  await group.barrier();
  group.close();
  console.log(JSON.stringify({ ...summarize(us, cpu), ...(poll ? { poll_stats: group.pollStats } : {}) }));
}

async function echo(): Promise<void> {
  const server = net.createServer({ noDelay: true }, (s) => {
    s.on("error", () => {});
    s.on("data", (d) => s.write(d));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  console.log(`port ${(server.address() as net.AddressInfo).port}`);
  process.once("SIGTERM", () => process.exit(0));
}

async function ping(argv: string[]): Promise<void> {
  const [port, iters, warmup, bytes] = argv.map(Number) as [number, number, number, number];
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(c));
    c.once("error", reject);
  });
  const msg = Buffer.alloc(bytes, 1);
  const us: number[] = [];
  let got = 0;
  let wake: () => void = () => {};
  s.on("data", (d: Buffer) => {
    got += d.length;
    if (got >= bytes) {
      got -= bytes;
      wake();
    }
  });
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < warmup + iters; i++) {
    if (i === warmup) cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      wake = resolve;
      s.write(msg);
    });
    if (i >= warmup) us.push((performance.now() - t0) * 1000);
  }
  const cpu = process.cpuUsage(cpu0);
  s.destroy();
  console.log(JSON.stringify(summarize(us, cpu)));
}

function fdOf(s: net.Socket): number {
  s.pause(); // libuv must not read behind the spin (it cannot anyway: the loop below never yields)
  const fd = socketFd(s);
  if (fd === undefined) throw new Error("no file descriptor for the socket");
  return fd;
}

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.length; ) {
    try {
      off += fs.writeSync(fd, b, off, b.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
  }
}

async function echoPoll(): Promise<void> {
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (s) => {
    const fd = fdOf(s);
    const buf = new Uint8Array(1 << 20);
    Error.stackTraceLimit = 0; // EAGAIN is thrown on every empty poll
    for (;;) {
      const r = readNow(fd, buf);
      if (r === "eof") process.exit(0);
      if (r !== "again") writeAll(fd, buf.subarray(0, r));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  console.log(`port ${(server.address() as net.AddressInfo).port}`);
}

async function pingPoll(argv: string[]): Promise<void> {
  const [port, iters, warmup, bytes] = argv.map(Number) as [number, number, number, number];
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(c));
    c.once("error", reject);
  });
  const fd = fdOf(s);
  const msg = new Uint8Array(bytes).fill(1);
  const buf = new Uint8Array(1 << 20);
  const us: number[] = [];
  Error.stackTraceLimit = 0;
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < warmup + iters; i++) {
    if (i === warmup) cpu0 = process.cpuUsage();
    const t0 = performance.now();
    writeAll(fd, msg);
    for (let got = 0; got < bytes; ) {
      const r = readNow(fd, buf);
      if (r === "eof") throw new Error("the echo process closed the connection");
      if (r !== "again") got += r;
    }
    if (i >= warmup) us.push((performance.now() - t0) * 1000);
  }
  const cpu = process.cpuUsage(cpu0);
  s.destroy();
  console.log(JSON.stringify(summarize(us, cpu)));
}

const mode = process.argv[2];
if (mode === "rank") await rank(process.argv.slice(3));
else if (mode === "echo") await echo();
else if (mode === "ping") await ping(process.argv.slice(3));
else if (mode === "echo-poll") await echoPoll();
else if (mode === "ping-poll") await pingPoll(process.argv.slice(3));
else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
