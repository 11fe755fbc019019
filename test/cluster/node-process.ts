import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliCommand } from "../../src/spawn.js";
import type { ClusterView } from "../../src/api/cluster-view.js";

/**
 * Test helper: a `tessera start` child process. Waits for its "ready {json}" line, keeps its
 * output for assertions, and is killed by stopAll() even when a test fails.
 */
export interface NodeProcess {
  id: string;
  http: number;
  peer: number;
  dataDir: string;
  /** Host the test reaches its HTTP API at. */
  host: string;
  proc: ChildProcess;
  output(): string;
  url(path: string): string;
  /** What every request to this node carries: the API key, when it was started with one. */
  headers: Record<string, string>;
  view(): Promise<ClusterView>;
  /** SIGTERM, then SIGKILL after 3 s; resolves with the exit code (null if killed). */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

const running = new Set<NodeProcess>();

export function tempDir(prefix = "tessera-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface StartOptions {
  dataDir?: string;
  /** Command words put before node (e.g. ["ip", "netns", "exec", ns]). */
  wrap?: string[];
  host?: string;
  env?: NodeJS.ProcessEnv;
  /** Let the node write the demo model (a few seconds of CPU); off unless a test is about models. */
  demo?: boolean;
  /** Started with --api-key: the tests' requests carry it (non-loopback callers of a secret-mode node need one). */
  apiKey?: string;
}

export async function startNode(args: string[], opts: StartOptions = {}): Promise<NodeProcess> {
  const dataDir = opts.dataDir ?? tempDir();
  const { command, args: base } = cliCommand();
  const full = [...base, "start", "--data-dir", dataDir, ...(opts.demo ? [] : ["--no-demo"]), ...(opts.apiKey ? ["--api-key", opts.apiKey] : []), ...args];
  const [cmd, ...rest] = opts.wrap?.length ? [...opts.wrap, command, ...full] : [command, ...full];
  const proc = spawn(cmd!, rest, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const host = opts.host ?? "127.0.0.1";
  const node: NodeProcess = {
    id: "",
    http: 0,
    peer: 0,
    dataDir,
    host,
    proc,
    output: () => out,
    url: (path) => `http://${host}:${node.http}${path}`,
    headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {},
    view: async () => (await getJson(node.url("/cluster"), node.headers)) as ClusterView,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
      const code = await exited;
      clearTimeout(timer);
      running.delete(node);
      return code;
    },
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
      running.delete(node);
    },
  };
  running.add(node);
  const deadline = Date.now() + 30000;
  while (true) {
    const m = /^ready (\{.*\})$/m.exec(out);
    if (m) {
      const r = JSON.parse(m[1]!) as { id: string; http: number; peer: number };
      node.id = r.id;
      node.http = r.http;
      node.peer = r.peer;
      return node;
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await node.kill();
      throw new Error(`node did not start (exit ${proc.exitCode}):\n${out}`);
    }
    await sleep(50);
  }
}

/** Stops every node still running (use in after()/finally). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((n) => n.stop()));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<unknown> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Polls `check` until it returns a value other than undefined/null/false; throws with `what` on timeout. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | null | false> | T | undefined | null | false, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const v = await check();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

/** The states of all nodes if they are identical (same JSON), else undefined. */
export async function sameState(nodes: NodeProcess[]): Promise<ClusterView["state"] | undefined> {
  const views = await Promise.all(nodes.map((n) => n.view()));
  const first = JSON.stringify(views[0]!.state);
  return views.every((v) => JSON.stringify(v.state) === first) ? views[0]!.state : undefined;
}
