import { fileURLToPath } from "node:url";

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
