/**
 * Placement's predicted decode speed against the measured one, plan by plan, on a cluster of node
 * processes on this machine (127.0.0.1): for each model and each plan (single node, pipeline over
 * 2, tensor parallel over 2), launch the instance, generate TOKENS greedy tokens on its home node
 * (after one untimed request), and record both numbers and the error.
 *
 *   node dist/bench/placement/predicted-vs-measured.js --models /path/a.gguf,/path/b.gguf [--tokens 64] [--out FILE]
 *
 * Each node runs its runners with --threads 1. All nodes share this machine's cores and memory
 * bandwidth, which a real cluster does not: the measured tensor/pipeline speeds here are a floor.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cliCommand } from "../../src/spawn.js";
import { provenance } from "../provenance.js";

interface Node {
  id: string;
  http: number;
  peer: number;
  proc: ChildProcess;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startNode(dir: string, name: string, peers?: number): Promise<Node> {
  const { command, args } = cliCommand();
  const extra = peers ? ["--peers", `127.0.0.1:${peers}`] : [];
  const proc = spawn(command, [...args, "start", "--data-dir", dir, "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--threads", "1", "--name", name, "--measure-every", "20", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", () => {});
  for (let i = 0; i < 600; i++) {
    const m = /^ready (\{.*\})$/m.exec(out);
    if (m) return { ...(JSON.parse(m[1]!) as { id: string; http: number; peer: number }), proc };
    await sleep(100);
  }
  throw new Error(`node ${name} did not start`);
}

async function api(n: Node, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${n.http}${path}`, { method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${JSON.stringify(json).slice(0, 300)}`);
  return json;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { models: { type: "string" }, tokens: { type: "string" }, out: { type: "string" } } });
  const models = (values.models ?? "").split(",").filter(Boolean);
  if (!models.length) throw new Error("--models PATH[,PATH] is required");
  const tokens = Number(values.tokens ?? 64);
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), "tessera-pvm-")));
  const nodes: Node[] = [];
  const rows: unknown[] = [];
  try {
    nodes.push(await startNode(dirs[0]!, "a"));
    // one machine, one probe: b starts from a's (as the tests do)
    while (!existsSync(join(dirs[0]!, "machine-profile.json"))) await sleep(200);
    copyFileSync(join(dirs[0]!, "machine-profile.json"), join(dirs[1]!, "machine-profile.json"));
    nodes.push(await startNode(dirs[1]!, "b", nodes[0]!.peer));
    // both profiles (probes) and both links measured
    for (;;) {
      const s = (await api(nodes[0]!, "GET", "/cluster")).state;
      if (Object.values(s.nodes).filter((n: any) => n.profile?.decodeBytesPerSec).length === 2 && Object.keys(s.links).length === 2) break;
      await sleep(500);
    }
    for (const model of models) {
      for (const [strategy, names] of [["single", ["a"]], ["pipeline", ["a", "b"]], ["tensor", ["a", "b"]]] as const) {
        const created = await api(nodes[0]!, "POST", "/instances", { model, strategy, nodes: names, ctx: 512 });
        let i: any = created;
        while (i.status !== "ready") {
          if (i.status === "failed") throw new Error(`${strategy}: ${i.reason}`);
          await sleep(500);
          i = await api(nodes[0]!, "GET", `/instances/${created.id}`);
        }
        const home = nodes.find((n) => n.id === i.home)!;
        const req = { promptTokens: [1, 300, 301, 302, 700, 1200, 33, 34], maxTokens: tokens, temperature: 0 };
        await api(home, "POST", `/instances/${i.id}/generate`, { ...req, maxTokens: 8 });
        const runs = [];
        for (let k = 0; k < 3; k++) runs.push((await api(home, "POST", `/instances/${i.id}/generate`, req)).timings.decodeTps as number);
        const measured = runs.sort((x, y) => x - y)[1]!;
        const s = (await api(nodes[0]!, "GET", "/cluster")).state;
        const row = {
          model: model.split("/").pop(),
          strategy,
          nodes: names,
          predictedTps: i.predicted.decodeTps,
          measuredTps: Math.round(measured * 10) / 10,
          errorPct: Math.round(((i.predicted.decodeTps - measured) / measured) * 1000) / 10,
          measuredRuns: runs.map((x) => Math.round(x * 10) / 10),
          linksRttMs: Object.values(s.links).map((l: any) => l.rttMs),
          decodeBytesPerSec: Object.values(s.nodes).map((n: any) => n.profile.decodeBytesPerSec),
        };
        console.log(JSON.stringify(row));
        rows.push(row);
        await api(nodes[0]!, "DELETE", `/instances/${i.id}`);
        await sleep(1500);
      }
    }
  } finally {
    for (const n of nodes) n.proc.kill("SIGTERM");
    await sleep(1000);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  const out = values.out ?? join("bench", "results", `placement-predicted-vs-measured-${new Date().toISOString().slice(0, 10)}.json`);
  const result = {
    ...provenance("placement: predicted vs measured decode tok/s, 2 node processes on 127.0.0.1", ["src/placement", "src/instances", "src/runner", "src/engine"]),
    settings: { tokens, ctx: 512, threadsPerRunner: 1, measured: "median of 3 greedy generations on the home node, after one untimed" },
    rows,
  };
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${out}`);
}

await main();
