import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { startNode, waitFor, type NodeProcess } from "../cluster/node-process.js";

/**
 * The dashboard tests' cluster: two node processes on 127.0.0.1 with a secret and an API key
 * (so the page has to ask for it), node 0 serving the synthetic model with --model.
 */
export const KEY = "dashboard-test-key";
export const SECRET = "dashboard-test-secret";

export async function keyed(url: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; body: any }> {
  const { json, ...rest } = init;
  const headers: Record<string, string> = { authorization: `Bearer ${KEY}`, ...(json !== undefined ? { "content-type": "application/json" } : {}) };
  const res = await fetch(url, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body, signal: AbortSignal.timeout(60000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text answers stay text
  }
  return { status: res.status, body };
}

const args = (i: number, model: string, extra: string[] = []) => [
  "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--secret", SECRET, "--api-key", KEY, "--cluster", "dash",
  "--measure-every", "600", "--threads", "1", "--offline", "--name", `n${i}`, ...(i === 0 ? ["--model", model] : []), ...extra,
];

/** Node 0 first (its machine probe is then copied to node 1), then node 1 joining it; resolves once both see each other's profile and link. */
export async function startDashboardCluster(model: string, dirs: string[]): Promise<NodeProcess[]> {
  const first = await startNode(args(0, model), { dataDir: dirs[0] });
  await waitFor("node 0's machine probe", 60000, async () => (await keyed(first.url("/cluster"))).body.state?.nodes[first.id]?.profile?.decodeBytesPerSec);
  copyFileSync(join(dirs[0]!, "machine-profile.json"), join(dirs[1]!, "machine-profile.json"));
  const second = await startNode(args(1, model, ["--peers", `127.0.0.1:${first.peer}`]), { dataDir: dirs[1] });
  await waitFor("both nodes with profiles and a measured link", 60000, async () => {
    const s = (await keyed(first.url("/cluster"))).body.state;
    const nodes = Object.values(s.nodes) as { profile?: unknown }[];
    return nodes.length === 2 && nodes.every((n) => n.profile) && Object.keys(s.links).length >= 1;
  }, 200);
  return [first, second];
}
