import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where a node keeps its identity, caches and models. Precedence: --data-dir, TESSERA_HOME,
 * $XDG_DATA_HOME/tessera, ~/.local/share/tessera.
 */
export function dataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.TESSERA_HOME) return env.TESSERA_HOME;
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "tessera");
}

/** User configuration: TESSERA_CONFIG_DIR, $XDG_CONFIG_HOME/tessera, ~/.config/tessera. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TESSERA_CONFIG_DIR) return env.TESSERA_CONFIG_DIR;
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "tessera");
}
