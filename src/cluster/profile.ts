import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, hostname, totalmem } from "node:os";
import { join } from "node:path";
import { nodeModuleCommand } from "../spawn.js";
import { memoryInfo } from "../system-memory.js";
import type { NodeProfile } from "./state.js";

/**
 * What a node reports about its machine. Memory is read each time; the measured part (MatMul
 * throughput, usable execution providers) comes from a child-process probe and is cached per
 * machine in <data-dir>/machine-profile.json (layout: { key: string, at: ms, result: ProbeResult }),
 * where key hashes everything the result depends on; it is re-measured after PROBE_MAX_AGE_MS so
 * one probe taken while the machine was busy does not stay forever.
 */
export interface ProbeResult {
  matmulGflops: number;
  /** MatMulNBits 4-bit GEMV: packed weight bytes streamed per second (probe-main.ts). */
  decodeBytesPerSec: number;
  providers: string[];
}

export { memoryInfo };

export interface ProfileOptions {
  memoryLimit?: number;
  threads: number;
  device: string;
  worker: boolean;
}

export function baseProfile(opts: ProfileOptions, probe: ProbeResult | null): NodeProfile {
  return {
    memory: memoryInfo(opts.memoryLimit),
    cpu: { model: (cpus()[0]?.model ?? "unknown").trim(), cores: availableParallelism() },
    providers: probe?.providers ?? ["cpu"],
    device: opts.device,
    threads: opts.threads,
    worker: opts.worker,
    matmulGflops: probe ? Math.round(probe.matmulGflops * 10) / 10 : null,
    decodeBytesPerSec: probe ? Math.round(probe.decodeBytesPerSec / 1e6) * 1e6 : null,
    platform: process.platform,
    arch: process.arch,
  };
}

const PROBE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

function machineKey(threads: number): string {
  const parts = [hostname(), cpus()[0]?.model ?? "", availableParallelism(), totalmem(), process.platform, process.arch, process.versions.node, threads, "ort-1.30", "decode-probe-1"];
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 24);
}

function isProbeResult(x: unknown): x is ProbeResult {
  const r = x as ProbeResult;
  return typeof x === "object" && x !== null && typeof r.matmulGflops === "number" && r.matmulGflops > 0 && typeof r.decodeBytesPerSec === "number" && r.decodeBytesPerSec > 0 && Array.isArray(r.providers) && r.providers.every((p) => typeof p === "string");
}

/** The cached probe for this machine, or a fresh one (≈2 s in a child process). Null if the probe fails. */
export async function probeMachine(dir: string, threads: number, timeoutMs = 30000): Promise<ProbeResult | null> {
  const file = join(dir, "machine-profile.json");
  const key = machineKey(threads);
  try {
    const cached = JSON.parse(readFileSync(file, "utf8")) as { key?: unknown; at?: unknown; result?: unknown };
    const fresh = typeof cached.at === "number" && Date.now() - cached.at < PROBE_MAX_AGE_MS;
    if (cached.key === key && fresh && isProbeResult(cached.result)) return cached.result;
  } catch {
    /* no cache yet */
  }
  const result = await runProbe(threads, timeoutMs);
  if (result) writeFileSync(file, JSON.stringify({ key, at: Date.now(), result }) + "\n");
  return result;
}

function runProbe(threads: number, timeoutMs: number): Promise<ProbeResult | null> {
  const { command, args } = nodeModuleCommand("./probe-main", import.meta.url);
  return new Promise((resolve) => {
    const child = spawn(command, [...args, String(threads)], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", () => resolve(null));
    child.on("close", () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(out.trim().split("\n").pop() ?? "") as unknown;
        resolve(isProbeResult(r) ? r : null);
      } catch {
        resolve(null);
      }
    });
  });
}
