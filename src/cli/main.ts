// First: no onnxruntime telemetry in this process or the threads and processes it starts.
import "../ort-telemetry.js";
import { isTesseraError } from "../errors.js";

/**
 * One file per command in ./commands/<name>.ts, each exporting `command: Command`.
 * The table below is the help text and the list of what may be loaded.
 */
export interface Command {
  summary: string;
  usage: string;
  /** Returns the process exit code. Throw TesseraError for user-facing failures. */
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, string> = {
  start: "run a node: discovery, cluster membership, link measurements, HTTP API",
  status: "print the cluster a node sees",
  secret: "create a cluster secret (owner-only file) and print how to use it",
  launch: "place a model on the cluster and start it",
  ps: "list the cluster's instances",
  stop: "stop an instance",
  run: "generate text from a model on this machine (or sharded over local processes)",
  bench: "measure prompt-processing and generation speed",
  synth: "write a synthetic model (random weights, real formats) for tests and benchmarks",
  inspect: "describe a model file or folder",
  models: "list the cluster's models, register a model file, remove one",
  pull: "download a model (catalog name, Hugging Face repo, URL), from LAN peers first",
};

function help(): string {
  const lines = ["usage: tessera <command> [options]", "", "commands:"];
  for (const [name, summary] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${summary}`);
  lines.push("", "tessera <command> --help shows a command's options.");
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return name ? 0 : 1;
  }
  if (name === "--version" || name === "-v") {
    const { version } = await import("../version.js");
    console.log(version);
    return 0;
  }
  if (!(name in COMMANDS)) {
    console.error(`tessera: unknown command '${name}' (${Object.keys(COMMANDS).join(", ")}; tessera --help says more)`);
    return 2;
  }
  const verbose = rest.includes("--verbose");
  try {
    const mod = (await import(`./commands/${name}.js`)) as { command: Command };
    const dashDash = rest.indexOf("--");
    const flags = dashDash >= 0 ? rest.slice(0, dashDash) : rest;
    if (flags.includes("--help") || flags.includes("-h")) {
      console.log(`usage: ${mod.command.usage}\n\n${mod.command.summary}`);
      return 0;
    }
    return await mod.command.run(rest);
  } catch (e) {
    const line = verbose ? undefined : userMessage(e);
    if (line !== undefined) console.error(`tessera ${name}: ${line}`);
    else console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    return 1;
  }
}

/** Errnos a user's environment causes (a path, a permission, a full disk), not a bug of ours. */
const USER_ERRNOS: Record<string, string> = {
  ENOENT: "no such file or folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EISDIR: "is a folder",
  ENOTDIR: "a part of the path is not a folder",
  EEXIST: "already exists",
  EADDRINUSE: "address in use",
  EADDRNOTAVAIL: "address not available on this machine",
};

/**
 * The one line to print for an error a user can fix (TesseraError, a bad option to node's
 * parseArgs in commands that still use args.ts, an errno about a path); undefined for a bug, which
 * keeps its stack trace.
 */
export function userMessage(e: unknown): string | undefined {
  if (isTesseraError(e)) return e.message.replace(/\n+/g, " ");
  if (!(e instanceof Error)) return undefined;
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS_")) return err.message.replace(/\n+/g, " ");
  if (typeof err.code === "string" && err.code in USER_ERRNOS) {
    const what = err.path ? `${err.syscall ? `${err.syscall} ` : ""}${err.path}` : (err.syscall ?? "");
    return `${what ? `${what}: ` : ""}${USER_ERRNOS[err.code]} (${err.code})`;
  }
  return undefined;
}
