import { resolveRequest, type InferenceRequest } from "../../src/inference/request.js";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { EngineWorker } from "../../src/inference/worker/engine-worker.js";
import { synthesize } from "../../src/models/synth/synthesize.js";
import { openModel } from "../../src/models/open.js";
import { place, placementModel, type PlacementModel } from "../../src/placement/index.js";
import type { InstanceView } from "../../src/instances/views.js";
import { getJson, startNode, waitFor, type NodeProcess, type StartOptions } from "../cluster/node-process.js";

/**
 * Shared by the instance tests: a small synthetic model (4 layers, hidden 256, 2 KV heads, Q8_0),
 * its single-process greedy tokens, and node processes whose --memory-limit lets the model fit only
 * across two of them.
 */
export const PROMPT = [1, 300, 301, 302, 700, 1200, 33, 34];
export const MAX_TOKENS = 16;
export const CTX = 256;
export const GREEDY: InferenceRequest = { input: { kind: "tokens", tokens: PROMPT }, maxTokens: MAX_TOKENS, temperature: 0, seed: 1 };

export async function smallModel(dir: string): Promise<string> {
  const out = join(dir, "small-q8_0.gguf");
  await synthesize({ arch: "llama", preset: "small", format: "gguf", quant: "q8_0", vocab: "spm", out, seed: 11 });
  return out;
}

/** The tokens one process generates (no cluster, no sharding): the reference. */
export async function referenceTokens(path: string): Promise<number[]> {
  const e = await EngineWorker.start(path, { threads: 1, contextLength: CTX });
  try {
    return (await e.generate(resolveRequest(GREEDY))).tokens;
  } finally {
    await e.close();
  }
}

async function summaryOf(path: string): Promise<PlacementModel> {
  const s = await openModel(path);
  try {
    return placementModel(s, path);
  } finally {
    await s.close();
  }
}

/**
 * A memory limit under which the model fits on no single node but across two, by pipeline or by
 * tensor parallelism: the most that either 2-node plan needs on a node, plus 1 MiB, when that is
 * still less than one node alone needs. Worked out with placement on an unconstrained cluster.
 */
export async function twoNodeLimit(path: string): Promise<{ limit: number; single: number; two: number }> {
  const m = await summaryOf(path);
  const node = (id: string) => ({ id, name: id, freeBytes: 2 ** 40, decodeBytesPerSec: 1e10, matmulGflops: 50 });
  const plans = place(m, { nodes: [node("a"), node("b")], links: [] }, { ctx: CTX });
  const single = Math.max(...Object.values(plans.find((p) => p.strategy === "single")!.memoryBytes));
  const two = Math.max(
    ...plans.filter((p) => p.nodes.length === 2 && (p.strategy === "pipeline" || p.strategy === "tensor")).map((p) => Math.max(...Object.values(p.memoryBytes))),
  );
  const limit = two + 2 ** 20;
  if (limit >= single) throw new Error(`no memory limit separates one node (${single} B) from two (${two} B)`);
  return { limit, single, two };
}

/** Starts node 0, waits for its machine probe, then the others from its cached probe. */
export async function startCluster(count: number, args: (i: number, first?: NodeProcess) => string[], dirs: string[], opts: (i: number) => StartOptions = () => ({})): Promise<NodeProcess[]> {
  const first = await startNode(args(0), { dataDir: dirs[0], ...opts(0) });
  await waitFor("node 0's machine probe", 60000, async () => (await first.view()).state.nodes[first.id]?.profile?.decodeBytesPerSec);
  const rest = [];
  for (let i = 1; i < count; i++) {
    copyFileSync(join(dirs[0]!, "machine-profile.json"), join(dirs[i]!, "machine-profile.json"));
    rest.push(startNode(args(i, first), { dataDir: dirs[i], ...opts(i) }));
  }
  return [first, ...(await Promise.all(rest))];
}

export async function instancesOf(n: NodeProcess): Promise<InstanceView[]> {
  return (await getJson(n.url("/instances"), n.headers)) as InstanceView[];
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(60000) });
  return { status: res.status, body: await res.json() };
}

export async function del(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: "DELETE", headers, signal: AbortSignal.timeout(60000) });
  return { status: res.status, body: await res.json() };
}

/** Waits until instance `id` is ready (on `n`'s view) at a generation ≥ `minGeneration`; fails early when it fails for good. */
export async function ready(n: NodeProcess, id: string, minGeneration = 1, timeoutMs = 90000): Promise<InstanceView> {
  return waitFor(`instance ${id} ready (generation ≥ ${minGeneration})`, timeoutMs, async () => {
    const i = (await instancesOf(n)).find((x) => x.id === id);
    if (i?.status === "failed" && i.retryAt === null) throw new Error(`instance ${id} failed for good: ${i.reason}`);
    return i && i.status === "ready" && i.generation >= minGeneration ? i : undefined;
  }, 200);
}

/** The node process whose id is `id`. */
export function byId(nodes: NodeProcess[], id: string): NodeProcess {
  const n = nodes.find((x) => x.id === id);
  if (!n) throw new Error(`no node process ${id}`);
  return n;
}
