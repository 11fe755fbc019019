// Child processes the parallel benchmark starts (bench/transport workers, tp-compute ranks): line
// reading, pinning to a core, and killing whatever is left when this process exits.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { nodeModuleCommand } from "../../src/spawn.js";

export interface LineChild {
  child: ChildProcess;
  /** The next line the child prints on stdout. */
  line: () => Promise<string>;
  send: (line: string) => void;
}

const children = new Set<ChildProcess>();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

/** Starts one of our modules (`moduleUrl` relative to `base`, no extension) with these arguments. */
export function startChild(moduleUrl: string, base: string, args: string[]): LineChild {
  const cmd = nodeModuleCommand(moduleUrl, base);
  const child = spawn(cmd.command, [...cmd.args, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  let ended = false;
  const rl = createInterface({ input: child.stdout! });
  rl.on("line", (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
  rl.on("close", () => {
    ended = true;
    // a child that died answers "" to whoever waits: the caller's JSON.parse then fails loudly
    while (waiting.length) waiting.shift()!("");
  });
  return {
    child,
    line: () => (queue.length ? Promise.resolve(queue.shift()!) : ended ? Promise.resolve("") : new Promise((r) => waiting.push(r))),
    send: (l) => child.stdin!.write(l + "\n"),
  };
}

let tasksetPresent: boolean | undefined;
/** Whether `taskset` (util-linux) can pin processes here. */
export function hasTaskset(): boolean {
  if (tasksetPresent === undefined) {
    try {
      execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
      tasksetPresent = true;
    } catch {
      tasksetPresent = false;
    }
  }
  return tasksetPresent;
}

/** Pins every thread of a process to one core (threads it starts later inherit it). */
export function pin(pid: number, core: number): void {
  execFileSync("taskset", ["-a", "-p", "-c", String(core), String(pid)], { stdio: "ignore" });
}

/** CPU seconds (user + system, all threads) of a process, from /proc (Linux; 10 ms resolution). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** CPU seconds all cores spent busy (not idle or waiting on I/O) since boot, from /proc/stat; undefined off Linux. */
export function systemBusySeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const t = line.trim().split(/\s+/).slice(1).map(Number); // user nice system idle iowait irq softirq steal ...
    const total = t.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - t[3]! - t[4]!) / 100;
  } catch {
    return undefined;
  }
}
