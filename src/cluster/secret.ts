import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TesseraError } from "../errors.js";
import { configDir } from "../paths.js";

/**
 * The cluster secret file: one line, 32 random bytes in base64url, in <config dir>/secret with
 * owner-only permissions (0600, folder 0700). `tessera secret` writes it; `tessera start
 * --secret-file` reads it. Every machine of a cluster needs the same one.
 */
export function defaultSecretFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "secret");
}

/** Writes a new secret unless one is there (or `force`). Says whether it wrote one. */
export function createSecretFile(file: string, force = false): { created: boolean } {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString("base64url");
  try {
    writeFileSync(file, `${secret}\n`, { flag: force ? "w" : "wx", mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return { created: false };
    throw e;
  }
  // An existing file keeps its mode on "w": make sure it is owner-only.
  chmodSync(file, 0o600);
  return { created: true };
}

/** The secret in a file (surrounding whitespace dropped); `warning` when others may read it. */
export function readSecretFile(file: string): { secret: string; warning?: string } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TesseraError(code === "ENOENT" ? "no such file (create one with `tessera secret`)" : `cannot read it (${code ?? (e as Error).message})`, `--secret-file ${file}`);
  }
  const secret = text.trim();
  if (!secret) throw new TesseraError("the file is empty (create a secret with `tessera secret`)", `--secret-file ${file}`);
  const mode = statSync(file).mode & 0o777;
  const warning = process.platform !== "win32" && mode & 0o077 ? `${file} can be read by other users (mode ${mode.toString(8)}); chmod 600 it` : undefined;
  return { secret, warning };
}
