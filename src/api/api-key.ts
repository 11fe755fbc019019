import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "../errors.js";

export const API_KEY_FILE = "api-key";

/**
 * The key a secret-mode node generates for non-loopback callers when it has no --api-key: made once,
 * kept in the config dir (mode 0600), the same on every later start.
 */
export function loadOrCreateApiKey(configDir: string): { key: string; path: string; created: boolean } {
  const path = join(configDir, API_KEY_FILE);
  try {
    const key = readFileSync(path, "utf8").trim();
    if (key) return { key, path, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new TesseraError(`cannot read the API key: ${(e as Error).message}`, path);
  }
  const key = `tsk-${randomBytes(24).toString("base64url")}`;
  try {
    mkdirSync(configDir, { recursive: true, mode: 0o700 });
    writeFileSync(path, key + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateApiKey(configDir);
    throw new TesseraError(`cannot store the API key: ${(e as Error).message}`, path);
  }
  return { key, path, created: true };
}
