import { execFileSync } from "node:child_process";
import os from "node:os";

/**
 * What every file in bench/results records about the run, so numbers can be compared only where
 * they are comparable: when, which commit (and whether the measured sources had local changes),
 * and on what machine under what load.
 */
export function provenance(benchmark: string, measuredPaths: string[]) {
  const status = git(["status", "--porcelain", "--", ...measuredPaths]);
  return {
    benchmark,
    date: new Date().toISOString(),
    // a copy of the tree without .git (the lent GPU machine) says its commit in TESSERA_BENCH_COMMIT/_DIRTY
    commit: git(["rev-parse", "HEAD"]) ?? process.env.TESSERA_BENCH_COMMIT ?? "unknown",
    dirty: status === undefined ? process.env.TESSERA_BENCH_DIRTY === "1" : status !== "",
    machine: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.cpus().length,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      load_average_1m: Math.round(os.loadavg()[0]! * 100) / 100,
      os: `${os.type()} ${os.release()}`,
      node: process.version,
    },
  };
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}
