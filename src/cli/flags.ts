import { accessSync, constants, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { TesseraError } from "../errors.js";
import { byteSize } from "../units.js";

/**
 * Typed command-line flags. A command declares its flags once (kind, help phrase, default); the
 * same table parses argv, checks every value, falls back to TESSERA_<NAME> where the command allows
 * it, and writes the options list of `--help`. Every mistake is one FlagError line naming the flag.
 *
 *   const FLAGS = {
 *     "max-tokens": flag.int({ min: 1, default: 512, metavar: "N", help: "stop after N generated tokens" }),
 *     out: flag.path({ kind: "output", help: "file to write" }),
 *     json: flag.bool({ help: "print one JSON object" }),
 *   };
 *   const { values, positionals } = parseFlags(argv, FLAGS, { positionals: { max: 1 } });
 *   values["max-tokens"]  // number (has a default)    values.out  // string | undefined
 *
 * Argv grammar: `--name VALUE`, `--name=VALUE`, `-x VALUE` (flags with `short`), `--switch`, `--`
 * (everything after is positional), `-` alone is a positional (stdin). A value may start with a
 * dash (`--max-tokens -1` is a bad value, not a missing one) unless it is itself one of the flags.
 */

export class FlagError extends TesseraError {}

export interface Flag<T, HasDefault extends boolean = boolean> {
  /** Takes a value (`--name VALUE`) or is a switch (`--name`). */
  readonly takesValue: boolean;
  /** Placeholder in help: N, SIZE, PATH. */
  readonly metavar: string;
  /** What the flag does, as a phrase. */
  readonly help: string;
  readonly default?: T;
  /** Shown as the default in help when the value is computed (e.g. "all cores"). */
  readonly defaultText?: string;
  /** One-letter alias (`-p`). */
  readonly short?: string;
  /** Not listed in help: a flag kept only to explain that it was renamed. */
  readonly hidden?: boolean;
  /** May be given several times: the values join with commas (flag.list). */
  readonly repeatable?: boolean;
  /** Turns the raw text into the value or throws a FlagError; `where` is "--name" or "TESSERA_NAME". */
  parse(raw: string, where: string): T;
  /** Type tag only (whether the value is always present). */
  readonly _hasDefault?: HasDefault;
}

export type FlagSet = Record<string, Flag<unknown>>;

/** The parsed values: a flag with a default (and every switch) is always present. */
export type FlagValues<F extends FlagSet> = {
  [K in keyof F]: F[K] extends Flag<infer T, true> ? T : F[K] extends Flag<infer T, boolean> ? T | undefined : never;
};

interface Common<T> {
  help: string;
  metavar?: string;
  default?: T;
  defaultText?: string;
  short?: string;
}

type WithDefault<O, T> = O & { default: T };

function make<T>(o: Common<T>, metavar: string, parse: (raw: string, where: string) => T): Flag<T> {
  return { takesValue: true, metavar: o.metavar ?? metavar, help: o.help, default: o.default, defaultText: o.defaultText, short: o.short, parse };
}

const bad = (where: string, want: string, raw: string): FlagError => new FlagError(`${where} must be ${want}, got '${raw}'`);

interface IntOptions extends Common<number> {
  min?: number;
  max?: number;
}

function wantInt(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `a whole number from ${min} to ${max}`;
  if (min !== undefined) return `a whole number ≥ ${min}`;
  if (max !== undefined) return `a whole number ≤ ${max}`;
  return "a whole number";
}

function int(o: WithDefault<IntOptions, number>): Flag<number, true>;
function int(o: IntOptions): Flag<number, false>;
function int(o: IntOptions): Flag<number> {
  return make(o, "N", (raw, where) => {
    const n = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) throw bad(where, wantInt(o.min, o.max), raw);
    return n;
  });
}

interface NumberOptions extends Common<number> {
  min?: number;
  max?: number;
  /** Exclude the minimum itself (a temperature may be 0, a timeout may not). */
  above?: boolean;
}

function number(o: WithDefault<NumberOptions, number>): Flag<number, true>;
function number(o: NumberOptions): Flag<number, false>;
function number(o: NumberOptions): Flag<number> {
  return make(o, "X", (raw, where) => {
    const n = raw.trim() === "" ? NaN : Number(raw);
    const low = o.min === undefined ? "" : o.above ? `> ${o.min}` : `≥ ${o.min}`;
    const want = o.max !== undefined ? `a number${low ? ` ${low} and` : ""} ≤ ${o.max}` : `a number${low ? ` ${low}` : ""}`;
    if (!Number.isFinite(n)) throw bad(where, want, raw);
    if (o.min !== undefined && (o.above ? n <= o.min : n < o.min)) throw bad(where, want, raw);
    if (o.max !== undefined && n > o.max) throw bad(where, want, raw);
    return n;
  });
}

function port(o: WithDefault<Common<number>, number>): Flag<number, true>;
function port(o: Common<number>): Flag<number, false>;
function port(o: Common<number>): Flag<number> {
  return int({ ...o, min: 0, max: 65535, metavar: o.metavar ?? "PORT" });
}

function size(o: Common<number>): Flag<number, false> {
  const f: Flag<number> = make(o, "SIZE", (raw, where) => {
    const n = byteSize(raw);
    if (n === null) throw bad(where, "a size like 8G, 512MiB or a number of bytes", raw);
    if (n <= 0) throw bad(where, "more than 0 bytes", raw);
    return n;
  });
  return f as Flag<number, false>;
}

function choice<const V extends string>(values: readonly V[], o: WithDefault<Common<V>, V>): Flag<V, true>;
function choice<const V extends string>(values: readonly V[], o: Common<V>): Flag<V, false>;
function choice<const V extends string>(values: readonly V[], o: Common<V>): Flag<V> {
  return make(o, values.join("|"), (raw, where) => {
    const v = raw.trim().toLowerCase() as V;
    if (!values.includes(v)) throw bad(where, `one of ${values.join(", ")}`, raw);
    return v;
  });
}

interface StringOptions extends Common<string> {
  /** Accept "" (default: an empty value is a mistake). */
  allowEmpty?: boolean;
  /** Said after "--x is empty": what to do instead. */
  emptyHint?: string;
  /** Further check; return an error phrase ("1–64 letters ...") or null. */
  check?: (value: string) => string | null;
  /** Turns the text into the value kept (a normalized URL); throws a FlagError naming `where`. */
  convert?: (value: string, where: string) => string;
}

function string(o: WithDefault<StringOptions, string>): Flag<string, true>;
function string(o: StringOptions): Flag<string, false>;
function string(o: StringOptions): Flag<string> {
  return make(o, "TEXT", (raw, where) => {
    if (!o.allowEmpty && raw.trim() === "") throw new FlagError(`${where} is empty${o.emptyHint ? `; ${o.emptyHint}` : ""}`);
    const err = o.check?.(raw);
    if (err) throw bad(where, err, raw);
    return o.convert ? o.convert(raw, where) : raw;
  });
}

/**
 * input: an existing file or folder (a model); file: an existing regular file; output: a file to
 * write (its folder must exist and be writable); output-folder: a folder to write (the same, but
 * it may exist as a folder); dir: a folder, created if missing (the nearest existing ancestor must
 * be a writable folder).
 */
export type PathKind = "input" | "file" | "output" | "output-folder" | "dir";

interface PathOptions extends Common<string> {
  kind: PathKind;
}

function path(o: WithDefault<PathOptions, string>): Flag<string, true>;
function path(o: PathOptions): Flag<string, false>;
function path(o: PathOptions): Flag<string> {
  return make(o, o.kind === "dir" ? "DIR" : "PATH", (raw, where) => {
    if (raw === "") throw new FlagError(`${where} is empty`);
    checkPath(raw, o.kind, where);
    return raw;
  });
}

function statOf(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

function writable(p: string): boolean {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a path argument before any work starts; throws a FlagError naming it (after `where`, the
 * flag it came with; "" for a positional argument).
 */
export function checkPath(p: string, kind: PathKind, where: string): void {
  const st = statOf(p);
  const say = (msg: string) => new FlagError(`${where ? `${where} ` : ""}${p}: ${msg}`);
  switch (kind) {
    case "input":
      if (!st) throw say("no such file or folder");
      return;
    case "file":
      if (!st) throw say("no such file");
      if (!st.isFile()) throw say("not a file");
      return;
    case "output":
    case "output-folder": {
      if (kind === "output" && st?.isDirectory()) throw say("is a folder (give a file name)");
      if (kind === "output-folder" && st && !st.isDirectory()) throw say("is a file (give a folder name)");
      const parent = dirname(resolve(p));
      const ps = statOf(parent);
      if (!ps) throw say(`folder ${parent} does not exist`);
      if (!ps.isDirectory()) throw say(`${parent} is not a folder`);
      if (!writable(st ? p : parent)) throw say(`cannot write ${st ? "it" : `in ${parent}`} (permission denied)`);
      return;
    }
    case "dir": {
      if (st) {
        if (!st.isDirectory()) throw say("not a folder");
        if (!writable(p)) throw say("cannot write in it (permission denied)");
        return;
      }
      let up = dirname(resolve(p));
      for (let s = statOf(up); !s; s = statOf(up)) up = dirname(up);
      if (!statOf(up)!.isDirectory()) throw say(`${up} is not a folder`);
      if (!writable(up)) throw say(`cannot create it in ${up} (permission denied)`);
      return;
    }
  }
}

function bool(o: { help: string; short?: string }): Flag<boolean, true> {
  return {
    takesValue: false,
    metavar: "",
    help: o.help,
    default: false,
    short: o.short,
    parse: (raw, where) => {
      const v = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off", ""].includes(v)) return false;
      throw bad(where, "1/true or 0/false", raw);
    },
  };
}

/** Several values: `--x a --x b` or `--x a,b` (TESSERA_X=a,b); each item checked by `check` (a problem, or undefined). */
function list(o: { help: string; metavar?: string; check?: (item: string) => string | undefined }): Flag<string[], true> {
  return {
    takesValue: true,
    metavar: o.metavar ?? "A,B",
    help: `${o.help} (repeatable, or comma-separated)`,
    default: [],
    repeatable: true,
    parse: (raw, where) => {
      const items = raw.split(",").map((x) => x.trim()).filter(Boolean);
      for (const item of items) {
        const err = o.check?.(item);
        if (err) throw bad(where, err, item);
      }
      return items;
    },
  };
}

/** A flag that no longer exists (or means something else here): using it explains what to use. */
function renamed(hint: string, takesValue = true): Flag<never, false> {
  return {
    takesValue,
    metavar: "",
    help: hint,
    hidden: true,
    parse: (_raw, where) => {
      throw new FlagError(`${where} is not an option here: ${hint}`);
    },
  };
}

export const flag = { int, number, port, size, choice, string, path, bool, list, renamed };

export interface ParseOptions {
  /** Positional arguments allowed (default none). `usage` goes into the error for too few/many. */
  positionals?: { min?: number; max?: number; usage?: string };
  /** Read TESSERA_<NAME> for flags not on the command line (`tessera start`, `tessera status`). */
  env?: NodeJS.ProcessEnv;
}

/** Every command also accepts --verbose (main.ts: stack traces on errors). */
const VERBOSE = bool({ help: "print stack traces with errors" });

export function envName(name: string): string {
  return `TESSERA_${name.toUpperCase().replace(/-/g, "_")}`;
}

/** Parses argv against a flag table: values checked and typed, defaults filled in. Throws FlagError. */
export function parseFlags<F extends FlagSet>(argv: readonly string[], flags: F, opts: ParseOptions = {}): { values: FlagValues<F>; positionals: string[] } {
  const table: FlagSet = { ...flags, verbose: VERBOSE };
  const shorts = new Map<string, string>();
  for (const [name, f] of Object.entries(table)) if (f.short) shorts.set(f.short, name);
  const isFlag = (tok: string): boolean => {
    if (tok.startsWith("--")) return tok.slice(2).split("=")[0]! in table;
    return tok.length >= 2 && tok.startsWith("-") && shorts.has(tok.slice(1).split("=")[0]!);
  };

  const raw = new Map<string, { text: string; where: string }>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (tok === "-" || !tok.startsWith("-")) {
      positionals.push(tok);
      continue;
    }
    const long = tok.startsWith("--");
    const body = tok.slice(long ? 2 : 1);
    const eq = body.indexOf("=");
    const key = eq >= 0 ? body.slice(0, eq) : body;
    const name = long ? key : shorts.get(key);
    if (name === undefined || !(name in table) || key === "") throw unknownFlag(tok, key, table);
    const f = table[name]!;
    const where = `--${name}`;
    let text: string;
    if (!f.takesValue) {
      if (eq >= 0) throw new FlagError(`${where} takes no value, got '${tok}'`);
      text = "1";
    } else if (eq >= 0) {
      text = body.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next === "--" || isFlag(next)) throw new FlagError(`${where} needs a value (${f.metavar}: ${f.help})`);
      text = next;
      i++;
    }
    const prev = raw.get(name);
    raw.set(name, f.repeatable && prev ? { text: `${prev.text},${text}`, where } : { text, where });
  }
  if (opts.env) {
    for (const name of Object.keys(flags)) {
      const v = opts.env[envName(name)];
      if (!raw.has(name) && v !== undefined) raw.set(name, { text: v, where: envName(name) });
    }
  }

  const values: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(table)) {
    const r = raw.get(name);
    values[name] = r ? f.parse(r.text, r.where) : f.default;
  }

  const { min = 0, max = 0, usage } = opts.positionals ?? {};
  const hint = usage ? ` (usage: ${usage})` : "";
  if (positionals.length > max) {
    const extra = positionals[max]!;
    throw new FlagError(max === 0 ? `unexpected argument '${extra}'${hint}` : `unexpected extra argument '${extra}' (quote text that has spaces)${hint}`);
  }
  if (positionals.length < min) throw new FlagError(`missing argument${hint}`);
  return { values: values as FlagValues<F>, positionals };
}

function unknownFlag(tok: string, key: string, table: FlagSet): FlagError {
  const names = Object.entries(table).filter(([, f]) => !f.hidden).map(([n]) => n);
  const close = names.filter((n) => editDistance(n, key) <= (key.length <= 4 ? 1 : 2) || (key.length >= 3 && n.startsWith(key)));
  const suggestion = close.length ? ` (did you mean ${close.slice(0, 3).map((n) => `--${n}`).join(" or ")}?)` : "";
  return new FlagError(`unknown option '${tok.split("=")[0]}'${suggestion}`);
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The options list of `--help`: one line per flag, its phrase and its default. */
export function formatFlags(flags: FlagSet): string {
  const rows: [string, string][] = [];
  for (const [name, f] of Object.entries(flags)) {
    if (f.hidden) continue;
    const left = `${f.short ? `-${f.short}, ` : ""}--${name}${f.takesValue ? ` ${f.metavar}` : ""}`;
    const def = f.defaultText ?? (f.takesValue && f.default !== undefined ? String(f.default) : undefined);
    rows.push([left, f.help + (def !== undefined ? ` (default ${def})` : "")]);
  }
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join("\n");
}

/** A command's usage text: the synopsis, then the options list. */
export function usageText(synopsis: string, flags: FlagSet, notes: string[] = []): string {
  return [synopsis, "", "options:", formatFlags(flags), ...(notes.length ? ["", ...notes] : [])].join("\n");
}
