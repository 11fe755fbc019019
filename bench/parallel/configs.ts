// The decode configurations the parallel benchmark alternates: each is loaded once and then asked
// for timed blocks, so every round compares all of them within the same minute of a drifting machine.
import { openModel } from "../../src/models/open.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { argmax } from "../../src/engine/sampling/select.js";
import { resolveSamplingParams } from "../../src/inference/sampling.js";
import { DelayProxy } from "../../src/transport/index.js";
import type { LaunchOptions } from "../../src/runner/launcher.js";
import type { Device } from "../../src/engine/types.js";
import { ShardedDriver } from "../../src/runner/driver.js";
import type { ShardPlan } from "../../src/placement/shard-plan.js";
import { cpuSeconds, pin } from "./children.js";
import type { ComputeRanks } from "./compute-ranks.js";

/** A block's numbers, per token. */
export interface Block {
  msPerToken: number;
  /** CPU ms per token of each computing process (the single process, the runners or the compute ranks). */
  cpuMs: number[];
  /** CPU ms per token of this (driver) process, sharded configurations only. */
  driverCpuMs?: number;
  /** lm_head share of each compute rank's ms per token (compute configurations only). */
  headMs?: number[];
  /** Cores' worth of CPU that processes other than this benchmark's used during the block (set by the caller). */
  otherCores?: number;
}

export interface Config {
  name: string;
  /** Its processes other than this one (runners, compute ranks). */
  pids: number[];
  /** Resident memory of each runner after loading, MiB (sharded configurations). */
  rssMiB?: number[];
  block(tokens: number): Promise<Block>;
  /** Time to first token, ms: `prompt` from an empty cache up to the first sampled token (decode configurations). */
  ttft?(prompt: Int32Array): Promise<number>;
  close(): Promise<void>;
}

export const PROMPT = Int32Array.from({ length: 16 }, (_, i) => 300 + 37 * i);
const UNTIMED_STEPS = 2;

/**
 * A decode loop as generation runs it: one process samples its own logits (greedy here); a sharded
 * model samples on its last stage, so only the token comes back (ShardedDriver.forwardSample).
 */
interface Model {
  /** Starts a sequence from an empty cache with `prompt`; returns the first token. */
  start: (prompt: Int32Array) => Promise<number> | number;
  next: (token: number) => Promise<number> | number;
}

/** From an empty cache: the prompt, 2 untimed greedy steps, then `tokens` timed ones. */
async function decodeBlock(m: Model, tokens: number, pids: number[], driver: boolean): Promise<Block> {
  let token = await m.start(PROMPT);
  for (let i = 0; i < UNTIMED_STEPS; i++) token = await m.next(token);
  const c0 = pids.map(cpuSeconds);
  const d0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < tokens; i++) token = await m.next(token);
  const ms = performance.now() - t0;
  const d = process.cpuUsage(d0);
  const block: Block = { msPerToken: ms / tokens, cpuMs: pids.map((p, i) => ((cpuSeconds(p) - c0[i]!) * 1000) / tokens) };
  if (driver) block.driverCpuMs = (d.user + d.system) / 1000 / tokens;
  return block;
}

async function timeToFirstToken(m: Model, prompt: Int32Array): Promise<number> {
  const t0 = performance.now();
  await m.start(prompt);
  return performance.now() - t0;
}

const GREEDY = resolveSamplingParams({ temperature: 0 }, 0);

/** One process (default one thread), in this process (its CPU time is this process's). */
export async function singleConfig(path: string, contextLength: number, threads = 1, device: Device = "cpu"): Promise<Config> {
  const src = await openModel(path);
  const s = await createStepper(src, { threads, contextLength, device });
  const m: Model = {
    start: (prompt) => {
      s.truncate(0);
      return argmax(s.forward(prompt), s.vocabSize);
    },
    next: (token) => argmax(s.forward(Int32Array.of(token)), s.vocabSize),
  };
  return {
    name: "single",
    pids: [],
    async block(tokens) {
      // this process is the one computing: its CPU time over the timed steps
      const b = await decodeBlock(m, tokens, [], true);
      return { msPerToken: b.msPerToken, cpuMs: [b.driverCpuMs!] };
    },
    ttft: (prompt) => timeToFirstToken(m, prompt),
    async close() {
      await s.dispose();
      await src.close();
    },
  };
}

export interface ShardedOptions {
  name: string;
  path: string;
  plan: ShardPlan;
  contextLength: number;
  /** Intra-op threads per runner (default 1). */
  threads?: number;
  /** One-way latency of a delay proxy put on every tensor-group link (0: direct). */
  latencyUs?: number;
  /** Or any routing of the links (bench/scaling: emulated links between nodes); wins over latencyUs. */
  routeLink?: LaunchOptions["routeLink"];
  /** Runner i pinned to core i (caller checks hasTaskset()). */
  pinned?: boolean;
  /** false: decode all-reduces wait on the runners' event loops (TESSERA_BUSY_POLL=0). */
  busyPoll?: boolean;
}

/** Runner processes over loopback TCP, driven from this process. */
export async function shardedConfig(o: ShardedOptions): Promise<Config> {
  const proxies: DelayProxy[] = [];
  const latencyUs = o.latencyUs ?? 0;
  const tensorLinks: LaunchOptions["routeLink"] = async (link, target) => {
    if (link.group !== "tp") return target;
    const p = await DelayProxy.start({ target, forward: { latencyUs } });
    proxies.push(p);
    return { host: "127.0.0.1", port: p.port };
  };
  // the launcher hands this process's environment to the runners it spawns
  const before = process.env.TESSERA_BUSY_POLL;
  process.env.TESSERA_BUSY_POLL = o.busyPoll === false ? "0" : "1";
  let d: ShardedDriver;
  try {
    d = await ShardedDriver.start({
      plan: o.plan,
      modelPath: o.path,
      contextLength: o.contextLength,
      threads: o.threads ?? 1,
      routeLink: o.routeLink ?? (latencyUs > 0 ? tensorLinks : undefined),
    });
  } finally {
    if (before === undefined) delete process.env.TESSERA_BUSY_POLL;
    else process.env.TESSERA_BUSY_POLL = before;
  }
  const pids = d.runners.pids;
  if (o.pinned) pids.forEach((pid, i) => pin(pid, i));
  const m: Model = {
    start: async (prompt) => {
      d.truncate(0);
      await d.beginSampling(GREEDY, {}, [...prompt]);
      return (await d.forwardSample(prompt)).token;
    },
    next: async (token) => (await d.forwardSample(Int32Array.of(token))).token,
  };
  return {
    name: o.name,
    pids,
    rssMiB: d.runners.rssBytes.map((b) => Math.round(b / 2 ** 20)),
    block: (tokens) => decodeBlock(m, tokens, pids, true),
    ttft: (prompt) => timeToFirstToken(m, prompt),
    async close() {
      await d.close();
      for (const p of proxies) await p.close();
    },
  };
}

/** Compute-only TP 2 (no network): `ranks` of the ComputeRanks at once; ms per token is the slowest rank's. */
export function computeConfig(name: string, cr: ComputeRanks, ranks: number[]): Config {
  return {
    name,
    pids: cr.pids,
    async block(tokens) {
      const b = await cr.block(ranks, tokens);
      return { msPerToken: Math.max(...b.map((x) => x.wallMs)), cpuMs: b.map((x) => x.cpuMs), headMs: b.map((x) => x.headMs) };
    },
    close: () => cr.close(),
  };
}
