import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** Physical cores (Linux: distinct (physical id, core id) pairs in /proc/cpuinfo); else logical CPUs. */
export function physicalCores(): number {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const cores = new Set<string>();
    let phys = "0";
    for (const line of info.split("\n")) {
      const [k, v] = line.split(":").map((s) => s?.trim());
      if (k === "physical id") phys = v;
      else if (k === "core id") cores.add(`${phys}/${v}`);
    }
    if (cores.size > 0) return Math.min(cores.size, availableParallelism());
  } catch {
    // not Linux
  }
  return availableParallelism();
}
