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
  start: "run a node: discovery, cluster, HTTP API and dashboard",
  status: "print the cluster a node sees",
  run: "generate text from a model on this machine (or sharded over local processes)",
  bench: "measure prompt-processing and generation speed",
  synth: "write a deterministic synthetic model (GGUF, safetensors, MLX)",
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
    console.error(`tessera: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  const verbose = rest.includes("--verbose");
  try {
    const mod = (await import(`./commands/${name}.js`)) as { command: Command };
    if (rest.includes("--help") || rest.includes("-h")) {
      console.log(`usage: ${mod.command.usage}\n\n${mod.command.summary}`);
      return 0;
    }
    return await mod.command.run(rest);
  } catch (e) {
    if (isTesseraError(e) && !verbose) {
      console.error(`tessera ${name}: ${e.message}`);
    } else if (!verbose && e instanceof Error && (e as NodeJS.ErrnoException).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      console.error(`tessera ${name}: ${e.message}`);
    } else {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    }
    return 1;
  }
}
