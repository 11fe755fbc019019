import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The pull manifest: `<models>/<id>/.tessera-pull.json`, written by the downloader next to the files
 * of a model it fetches, so a restarted node knows what is unfinished and where it came from.
 *   name     the model's id on this node
 *   state    "downloading" (the registry does not list it yet; a restarted node resumes it),
 *            "stopped" (cancelled or failed: partial files kept, a new pull resumes them),
 *            "complete", or "shard" (only `ranges` of the files are on disk: a node's part of a
 *            sharded GGUF)
 *   source   where the bytes come from: a hub repo at a fixed commit, or a plain URL
 *   model    what was asked for (catalog name, hf.co/..., URL), for progress and resuming
 *   files    every file with its size and, where the hub gave one, its sha256 (LFS) or git blob sha1
 *   ranges   state "shard": per file, the [start, end) byte ranges held
 *   digest   the model digest (registry/describe.ts), once known
 */
export const PULL_MANIFEST = ".tessera-pull.json";

export type PullSource =
  | { kind: "hf"; endpoint: string; repo: string; revision: string }
  | { kind: "url"; url: string }
  | { kind: "peer"; node: string; digest: string };

export interface PullFile {
  name: string;
  size: number;
  sha256?: string;
  gitSha1?: string;
}

export interface PullManifest {
  version: 1;
  name: string;
  state: "downloading" | "stopped" | "complete" | "shard";
  model: string;
  source: PullSource;
  files: PullFile[];
  ranges?: Record<string, [number, number][]>;
  digest?: string;
}

function isManifest(x: unknown): x is PullManifest {
  const m = x as PullManifest;
  return (
    typeof m === "object" && m !== null && m.version === 1 && typeof m.name === "string" &&
    (m.state === "downloading" || m.state === "stopped" || m.state === "complete" || m.state === "shard") &&
    typeof m.model === "string" &&
    typeof m.source === "object" && m.source !== null && Array.isArray(m.files) &&
    m.files.every((f) => typeof f?.name === "string" && Number.isSafeInteger(f.size) && (f.sha256 === undefined || typeof f.sha256 === "string"))
  );
}

/** The manifest of a model folder, or undefined when there is none (or it is unreadable). */
export async function readPullManifest(dir: string): Promise<PullManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, PULL_MANIFEST), "utf8");
  } catch {
    return undefined;
  }
  try {
    const json = JSON.parse(text) as unknown;
    return isManifest(json) ? json : undefined;
  } catch {
    return undefined;
  }
}

let writes = 0;

export async function writePullManifest(dir: string, m: PullManifest): Promise<void> {
  const path = join(dir, PULL_MANIFEST);
  const tmp = `${path}.${process.pid}.${++writes}.tmp`;
  await writeFile(tmp, JSON.stringify(m, null, 2) + "\n");
  await rename(tmp, path);
}
