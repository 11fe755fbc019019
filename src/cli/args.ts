import { parseArgs, type ParseArgsConfig } from "node:util";
import { TesseraError } from "../errors.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

// The tessera commands declare their flags with flags.ts (typed values, checked, help text from the
// same table). This older helper stays for small tools (transport/delay-proxy-cli.ts) and for
// commands not yet moved; main.ts turns node's parseArgs errors into one line either way.

/**
 * parseArgs with two additions every command wants: `--verbose` is always accepted, and an option
 * missing from argv falls back to the environment variable TESSERA_<NAME> (dashes → underscores).
 */
export function parseCommandArgs<O extends Options>(
  argv: string[],
  options: O,
  { env = process.env, allowPositionals = true, envFallback = true } = {},
) {
  const all = { ...options, verbose: { type: "boolean" as const } };
  const parsed = parseArgs({ args: argv, options: all, allowPositionals, strict: true });
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (envFallback) {
    for (const [name, spec] of Object.entries(options)) {
      if (values[name] !== undefined) continue;
      const v = env[`TESSERA_${name.toUpperCase().replace(/-/g, "_")}`];
      if (v === undefined) continue;
      values[name] = spec.type === "boolean" ? v === "1" || v.toLowerCase() === "true" : v;
    }
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

/** Reads an integer option, with a clear error for anything else. */
export function intOption(name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new TesseraError(`--${name} must be an integer ≥ ${min}, got '${String(value)}'`);
  return n;
}

/** Reads a number option, with a clear error for anything else. */
export function numberOption(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new TesseraError(`--${name} must be a number, got '${String(value)}'`);
  return n;
}
