import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { TesseraError } from "../../errors.js";
import { describeModel, type DescribedModel } from "./describe.js";
import { readPullManifest, type PullManifest } from "./manifest.js";

/**
 * The models one node holds, found on disk:
 *   <data-dir>/models/          managed: pulls and the demo land here; DELETE removes their files
 *   --models-dir DIR (each)     scanned: listed, never deleted
 *   <data-dir>/models.json      added by path: { "version": 1, "added": [{ "path", "name"? }] }
 * Every GGUF file and every model folder (what openModel opens) in those folders is a model; names
 * starting with "." and unfinished downloads (a folder whose pull manifest is "downloading" or
 * "stopped", see manifest.ts) are not.
 * A folder whose manifest says "shard" holds only some byte ranges of its GGUF file: listed with
 * complete = false.
 * id = the name given when added, else the file or folder name without .gguf; a second model that
 * wants a taken id gets "-" and 8 digits of its digest appended. The same digest twice is one model
 * (the first path, by origin then path).
 */
export type ModelOrigin = "managed" | "scanned" | "added";

export interface LocalModel extends DescribedModel {
  id: string;
  origin: ModelOrigin;
  /** False when only some byte ranges are on disk (a shard fetched for one instance). */
  complete: boolean;
  /** Its pull manifest, when it was pulled (where from, the files' hashes, a shard's ranges). */
  pull?: PullManifest;
}

export interface ScanProblem {
  path: string;
  error: string;
}

interface AddedEntry {
  path: string;
  name?: string;
}

interface Candidate {
  path: string;
  origin: ModelOrigin;
  name?: string;
  manifest?: PullManifest;
}

export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function checkModelName(name: string): string {
  if (!MODEL_NAME.test(name)) throw new TesseraError(`a model name is 1–128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit; got '${name}'`);
  return name;
}

export function defaultModelName(path: string): string {
  const base = basename(path).replace(/\.gguf$/i, "");
  const cleaned = base.replace(/[^A-Za-z0-9._:-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return cleaned.slice(0, 128) || "model";
}

export class ModelStore {
  readonly managedDir: string;
  private readonly addedFile: string;
  private readonly cache = new Map<string, { signature: string; described: DescribedModel }>();
  private current: LocalModel[] = [];
  problems: ScanProblem[] = [];

  constructor(
    readonly dataDir: string,
    readonly scannedDirs: string[] = [],
  ) {
    this.managedDir = join(dataDir, "models");
    this.addedFile = join(dataDir, "models.json");
  }

  /** The models found by the last scan. */
  get models(): LocalModel[] {
    return this.current;
  }

  /** Re-reads the folders; describes only what changed since the last scan. */
  async scan(): Promise<LocalModel[]> {
    const candidates: Candidate[] = [];
    await mkdir(this.managedDir, { recursive: true });
    candidates.push(...(await listFolder(this.managedDir, "managed")));
    for (const d of this.scannedDirs) candidates.push(...(await listFolder(d, "scanned")));
    for (const a of await this.readAdded()) candidates.push({ path: a.path, origin: "added", name: a.name, manifest: await readPullManifest(a.path) });
    const problems: ScanProblem[] = [];
    const found: LocalModel[] = [];
    const seenPaths = new Set<string>();
    for (const c of candidates) {
      if (seenPaths.has(c.path)) continue;
      seenPaths.add(c.path);
      if (c.manifest && (c.manifest.state === "downloading" || c.manifest.state === "stopped")) continue;
      try {
        const d = await this.describeCached(c.path);
        found.push({ ...d, id: c.name ?? c.manifest?.name ?? defaultModelName(c.path), origin: c.origin, complete: c.manifest?.state !== "shard", ...(c.manifest ? { pull: c.manifest } : {}) });
      } catch (e) {
        problems.push({ path: c.path, error: (e as Error).message });
      }
    }
    this.current = assignIds(found);
    this.problems = problems;
    return this.current;
  }

  /** A local model by id, digest or digest prefix (≥ 8 hex digits). */
  find(ref: string): LocalModel | undefined {
    return this.current.find((m) => m.id === ref) ?? (/^[0-9a-f]{8,64}$/.test(ref) ? this.current.find((m) => m.digest.startsWith(ref)) : undefined);
  }

  /** Registers a model by path (not copied). Re-adding a path renames it. */
  async add(path: string, name?: string): Promise<LocalModel> {
    const abs = resolve(path);
    if (name !== undefined) checkModelName(name);
    const described = await describeModel(abs);
    const id = name ?? defaultModelName(abs);
    await this.scan();
    const taken = this.current.find((m) => m.id === id && m.digest !== described.digest);
    if (taken) throw new TesseraError(`the name '${id}' is taken by ${taken.path}; pick another with --name`, abs);
    const added = (await this.readAdded()).filter((a) => a.path !== abs);
    added.push(name ? { path: abs, name } : { path: abs });
    await this.writeAdded(added);
    await this.scan();
    const m = this.current.find((x) => x.digest === described.digest);
    if (!m) throw new TesseraError("added, but the scan does not find it", abs);
    return m;
  }

  /** Removes a model from this node: the files of a managed one, the registration of an added one. */
  async remove(ref: string): Promise<LocalModel> {
    await this.scan();
    const m = this.find(ref);
    if (!m) throw new TesseraError(`no model '${ref}' on this node`);
    if (m.origin === "scanned") throw new TesseraError(`'${m.id}' is a file in a --models-dir folder (${m.path}); remove it there`);
    if (m.origin === "added") {
      await this.writeAdded((await this.readAdded()).filter((a) => a.path !== m.path));
    } else {
      // A pulled model is a folder of its own under models/; the demo is one file.
      const top = join(this.managedDir, relativeTop(this.managedDir, m.path));
      await rm(top, { recursive: true, force: true });
    }
    this.cache.delete(m.path);
    await this.scan();
    return m;
  }

  private async describeCached(path: string): Promise<DescribedModel> {
    const signature = await pathSignature(path);
    const hit = this.cache.get(path);
    if (hit && hit.signature === signature) return hit.described;
    const described = await describeModel(path);
    this.cache.set(path, { signature, described });
    return described;
  }

  private async readAdded(): Promise<AddedEntry[]> {
    let text: string;
    try {
      text = await readFile(this.addedFile, "utf8");
    } catch {
      return [];
    }
    try {
      const json = JSON.parse(text) as { added?: unknown };
      if (!Array.isArray(json.added)) return [];
      return json.added.filter((a): a is AddedEntry => typeof a?.path === "string" && (a.name === undefined || (typeof a.name === "string" && MODEL_NAME.test(a.name))));
    } catch {
      throw new TesseraError("is not valid JSON; fix or remove it", this.addedFile);
    }
  }

  private async writeAdded(added: AddedEntry[]): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    const tmp = `${this.addedFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ version: 1, added }, null, 2) + "\n");
    await rename(tmp, this.addedFile);
  }
}

/** The first path component of `path` below `root`. */
function relativeTop(root: string, path: string): string {
  const rest = path.slice(root.length).replace(/^[/\\]+/, "");
  const top = rest.split(/[/\\]/)[0];
  if (!top || !path.startsWith(root)) throw new Error(`${path} is not inside ${root}`);
  return top;
}

async function listFolder(dir: string, origin: ModelOrigin): Promise<Candidate[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: Candidate[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith(".")) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push({ path, origin, manifest: await readPullManifest(path) });
    else if (e.isFile() && e.name.toLowerCase().endsWith(".gguf")) out.push({ path, origin });
  }
  return out;
}

/** Changes whenever a file of the model changes (size or mtime), without reading any. */
async function pathSignature(path: string): Promise<string> {
  const s = await stat(path);
  if (!s.isDirectory()) return `${s.size}:${s.mtimeMs}`;
  const parts: string[] = [];
  for (const name of (await readdir(path)).sort()) {
    const f = await stat(join(path, name)).catch(() => undefined);
    if (f?.isFile()) parts.push(`${name}:${f.size}:${f.mtimeMs}`);
  }
  return parts.join("|");
}

const ORIGIN_ORDER: Record<ModelOrigin, number> = { managed: 0, added: 1, scanned: 2 };

/** One entry per digest, unique ids (see the layout comment above). */
export function assignIds(found: LocalModel[]): LocalModel[] {
  const sorted = [...found].sort((a, b) => ORIGIN_ORDER[a.origin] - ORIGIN_ORDER[b.origin] || a.path.localeCompare(b.path));
  const byDigest = new Map<string, LocalModel>();
  for (const m of sorted) {
    const prev = byDigest.get(m.digest);
    // A complete copy wins over a shard of the same model.
    if (!prev || (!prev.complete && m.complete)) byDigest.set(m.digest, m);
  }
  const ids = new Set<string>();
  const out: LocalModel[] = [];
  for (const m of sorted) {
    if (byDigest.get(m.digest) !== m) continue;
    let id = m.id;
    if (ids.has(id)) id = `${id}-${m.digest.slice(0, 8)}`;
    ids.add(id);
    out.push({ ...m, id });
  }
  return out;
}
