// Transport benchmark: all-reduce of a decode-sized message (2048 floats = 8 KiB) between 2 ranks in
// separate processes vs a raw TCP round trip of 8 KiB between 2 processes, measured in the same run;
// then both again through the delay proxy (a third process) at 5, 50 and 300 µs one-way.
// Also: a prefill-sized all-reduce (2 MiB) direct vs ring, and how precisely the proxy keeps its latency.
// Usage: node dist/bench/transport/allreduce.js [--iters N] [--out FILE]   (or npx tsx bench/transport/allreduce.ts)
// Writes bench/results/transport-<date>.json. Target: all-reduce ≤ 1.3× the raw round trip.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import net from "node:net";
import { nodeModuleCommand } from "../../src/spawn.js";
import { DelayProxy } from "../../src/transport/index.js";
import type { Timings } from "./worker.js";
import { provenance } from "../provenance.js";

const { values } = parseArgs({ options: { iters: { type: "string" }, out: { type: "string" }, floats: { type: "string" } } });
const ITERS = Number(values.iters ?? 2000);
const WARMUP = Math.ceil(ITERS / 5);
const FLOATS = Number(values.floats ?? 2048);
const LATENCIES_US = [0, 5, 50, 300];

const children = new Set<ChildProcess>();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

function start(moduleUrl: string, args: string[]): { child: ChildProcess; line: () => Promise<string> } {
  const cmd = nodeModuleCommand(moduleUrl, import.meta.url);
  const child = spawn(cmd.command, [...cmd.args, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const line = (): Promise<string> => {
    const l = queue.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiting.push(resolve));
  };
  return { child, line };
}

const portOf = async (line: () => Promise<string>): Promise<number> => Number((await line()).replace(/^port /, ""));

/** A delay proxy process in front of `targetPort`; returns its port (or the target itself at 0 µs). */
async function proxyFor(targetPort: number, latencyUs: number): Promise<{ port: number; stop: () => void }> {
  if (latencyUs === 0) return { port: targetPort, stop: () => {} };
  const p = start("./delay-proxy-cli", ["--listen", "127.0.0.1:0", "--target", `127.0.0.1:${targetPort}`, "--latency-us", String(latencyUs)]);
  const port = Number((await p.line()).split(":").pop());
  return { port, stop: () => p.child.kill("SIGTERM") };
}

async function rawRoundTrip(latencyUs: number): Promise<Timings> {
  const echo = start("./worker", ["echo"]);
  const proxy = await proxyFor(await portOf(echo.line), latencyUs);
  const ping = start("./worker", ["ping", String(proxy.port), String(ITERS), String(WARMUP), String(FLOATS * 4)]);
  const t = JSON.parse(await ping.line()) as Timings;
  proxy.stop();
  echo.child.kill("SIGTERM");
  return t;
}

async function allReduce(latencyUs: number, floats = FLOATS, algorithm = "auto", iters = ITERS): Promise<Timings> {
  const groupId = `bench-${process.pid}-${latencyUs}-${floats}-${algorithm}`;
  const warm = Math.ceil(iters / 5);
  const ranks = [0, 1].map((r) => start("./worker", ["rank", String(r), "2", groupId, String(iters), String(warm), String(floats), algorithm]));
  const ports = await Promise.all(ranks.map((r) => portOf(r.line)));
  const proxy = await proxyFor(ports[0]!, latencyUs);
  // rank 1 dials rank 0 through the proxy, so both directions of the one link are delayed
  ranks[0]!.child.stdin!.end(JSON.stringify({ peers: ports.map((port) => ({ host: "127.0.0.1", port })) }) + "\n");
  ranks[1]!.child.stdin!.end(JSON.stringify({ peers: [{ host: "127.0.0.1", port: proxy.port }, { host: "127.0.0.1", port: ports[1] }] }) + "\n");
  const [t0] = await Promise.all(ranks.map(async (r) => JSON.parse(await r.line()) as Timings));
  proxy.stop();
  return t0!;
}

// The machine is shared and its load drifts: alternate the two measurements in ROUNDS rounds and
// report the median of the per-round ratios.
const ROUNDS = 3;
const rows = [];
for (const latencyUs of LATENCIES_US) {
  const rounds: { raw_tcp_round_trip_us: Timings; all_reduce_us: Timings; ratio: number }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const raw = await rawRoundTrip(latencyUs);
    const ar = await allReduce(latencyUs);
    rounds.push({ raw_tcp_round_trip_us: raw, all_reduce_us: ar, ratio: Math.round((ar.median / raw.median) * 100) / 100 });
  }
  const ratio = [...rounds].sort((a, b) => a.ratio - b.ratio)[ROUNDS >> 1]!.ratio;
  rows.push({ one_way_latency_us: latencyUs, median_ratio_all_reduce_to_raw_rtt: ratio, rounds });
  const med = (f: (r: (typeof rounds)[number]) => number): number => [...rounds.map(f)].sort((a, b) => a - b)[ROUNDS >> 1]!;
  console.log(
    `one-way ${String(latencyUs).padStart(3)} µs: raw 8 KiB RTT median ${med((r) => r.raw_tcp_round_trip_us.median)} µs ` +
      `(CPU ${med((r) => r.raw_tcp_round_trip_us.cpu_per_op)} µs/op), all-reduce median ${med((r) => r.all_reduce_us.median)} µs ` +
      `(CPU ${med((r) => r.all_reduce_us.cpu_per_op)} µs/op); ratios ${rounds.map((r) => r.ratio).join(", ")} → ${ratio}`,
  );
}

const PREFILL_FLOATS = 512 * 1024;
const prefillIters = Math.max(20, Math.round(ITERS / 20));
const prefill: Record<string, Timings> = {};
for (const algorithm of ["direct", "ring"]) {
  prefill[algorithm] = await allReduce(0, PREFILL_FLOATS, algorithm, prefillIters);
  console.log(`2 MiB all-reduce, ${algorithm}: median ${prefill[algorithm]!.median} µs (CPU ${prefill[algorithm]!.cpu_per_op} µs/op per rank)`);
}

/**
 * The proxy's timing precision, in process: for 64-byte ping-pongs through a proxy at L µs, how late
 * each chunk left relative to its due time (the proxy records it), and the round trip vs 2L.
 */
async function proxyPrecision(latencyUs: number, rounds: number) {
  const echo = net.createServer({ noDelay: true }, (s) => s.on("data", (d) => s.write(d)));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  const target = { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port };
  const proxy = await DelayProxy.start({ target, forward: { latencyUs } });
  const s = await new Promise<net.Socket>((resolve) => {
    const c = net.connect({ host: "127.0.0.1", port: proxy.port, noDelay: true }, () => resolve(c));
  });
  const us: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      s.once("data", () => resolve());
      s.write("ping");
    });
    us.push((performance.now() - t0) * 1000);
  }
  s.destroy();
  const lateness = proxy.lateness();
  await proxy.close();
  echo.close();
  us.sort((a, b) => a - b);
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { one_way_latency_us: latencyUs, lateness_us: lateness, round_trip_us: { min: r(us[0]!), median: r(us[us.length >> 1]!) } };
}

const proxyRows = [];
for (const latencyUs of [5, 50, 300, 1000, 3000]) {
  const p = await proxyPrecision(latencyUs, 300);
  proxyRows.push(p);
  const l = p.lateness_us;
  console.log(`proxy at ${latencyUs} µs: chunks late by median ${l.medianUs} µs, p90 ${l.p90Us} µs, max ${l.maxUs} µs; RTT min ${p.round_trip_us.min} µs`);
}

const result = {
  ...provenance("transport all-reduce vs raw TCP round trip", ["src/transport", "bench/transport"]),
  setup: { rounds: ROUNDS, ranks: 2, floats: FLOATS, bytes: FLOATS * 4, iterations: ITERS, warmup: WARMUP, transport: "loopback TCP, one process per rank, proxy in its own process" },
  target: "all-reduce median ≤ 1.3 × raw TCP round trip median",
  results: rows,
  prefill_all_reduce_2MiB_us: prefill,
  delay_proxy_precision: proxyRows,
};
const out = values.out ?? `bench/results/transport-${result.date.slice(0, 10)}.json`;
mkdirSync("bench/results", { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`wrote ${out}`);
