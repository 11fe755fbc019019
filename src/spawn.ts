import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";
import { disableOrtTelemetry } from "./ort-telemetry.js";

/**
 * The node command line that runs one of our own modules in a child process. Works both from the
 * compiled tree (dist/**.js) and from sources under tsx (the parent's execArgv carries the loader).
 * `moduleUrl` is relative to `base` and written without extension, e.g. ("./cli/bin", import.meta.url).
 */
export function nodeModuleCommand(moduleUrl: string, base: string): { command: string; args: string[] } {
  const ext = base.endsWith(".ts") ? ".ts" : ".js";
  const file = fileURLToPath(new URL(moduleUrl + ext, base));
  return { command: process.execPath, args: [...process.execArgv, file] };
}

/** The command line for the tessera CLI itself, from any module of ours. */
export function cliCommand(): { command: string; args: string[] } {
  return nodeModuleCommand("./cli/bin", import.meta.url);
}

/**
 * A worker thread running one of our own modules, from dist or from sources under tsx (Node 20 does
 * not pass tsx's loader on to workers, so the worker registers it before importing the module).
 */
export function startModuleWorker(moduleUrl: string, base: string, options: WorkerOptions = {}): Worker {
  // A worker cannot turn it off for the process (its env is a copy): the thread that starts it does.
  disableOrtTelemetry();
  const ext = base.endsWith(".ts") ? ".ts" : ".js";
  const entry = new URL(moduleUrl + ext, base).href;
  if (ext === ".js") return new Worker(new URL(entry), options);
  const api = import.meta.resolve("tsx/esm/api");
  const boot = `(async () => { const { register } = await import(${JSON.stringify(api)}); register(); await import(${JSON.stringify(entry)}); })();`;
  return new Worker(boot, { ...options, eval: true });
}
