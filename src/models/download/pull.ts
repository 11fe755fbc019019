import { mkdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { TesseraError } from "../../errors.js";
import { parsePullRef, pickGgufFile, type PullRef, type VariantChoice } from "../catalog/reference.js";
import { describeModel } from "../registry/describe.js";
import { readPullManifest, writePullManifest, type PullFile, type PullManifest, type PullSource } from "../registry/manifest.js";
import { checkModelName } from "../registry/store.js";
import { HubClient, type HubFile } from "./hub.js";
import { Progress, type ProgressSnapshot } from "./progress.js";
import { Interrupted } from "./http.js";
import { downloadFile, type ByteSource, type TransferOptions } from "./transfer.js";

/**
 * A pull: a reference (catalog name, hub repo, URL) → a plan (the model's id, its folder under the
 * data dir's models/, the exact files with sizes and hashes) → the files on disk, `parallel` at a
 * time, with the pull manifest (registry/manifest.ts) kept up to date so a restart resumes it.
 * Bytes may come from other sources first (`extraSources`: peers on the LAN); the hub (or the URL)
 * is the last source, and none at all when offline.
 */
export interface PullPlan {
  /** The model id it will have. */
  name: string;
  /** What was asked for. */
  model: string;
  dir: string;
  source: PullSource;
  files: PullFile[];
}

export interface PullOptions extends TransferOptions {
  /** Sources to try before the hub for one file (peers). */
  extraSources?: (file: PullFile) => ByteSource[];
  /** Files fetched at once (default 4). */
  parallel?: number;
  onProgress?(p: ProgressSnapshot, from: string): void;
  onNote?(message: string): void;
}

/** Files that make up a safetensors / MLX model folder (weights, config, tokenizer, chat template). */
const FOLDER_FILES = /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map)\.json$|^(tokenizer\.model|chat_template\.jinja|chat_template\.json)$|^[^/]*\.safetensors(\.index\.json)?$/;

export function folderName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "-");
}

/** Works out what a reference means, asking the hub for the file list (sizes, sha256, commit). */
export async function planPull(ref: string, modelsDir: string, hub: HubClient, o: VariantChoice & { name?: string; signal?: AbortSignal } = {}): Promise<PullPlan> {
  const parsed = parsePullRef(ref, o);
  if (o.name !== undefined) checkModelName(o.name);
  if (parsed.kind === "url") {
    const file = basename(new URL(parsed.url).pathname);
    if (!/\.gguf$/i.test(file)) throw new TesseraError("a URL pull takes a single .gguf file; for a folder model use hf.co/ORG/REPO", parsed.url);
    const name = o.name ?? defaultName(file);
    return { name, model: ref, dir: join(modelsDir, folderName(name)), source: { kind: "url", url: parsed.url }, files: [{ name: file, size: -1 }] };
  }
  const info = await hub.repoInfo(parsed.repo, parsed.revision, o.signal);
  const files = pickFiles(parsed, info.files);
  const name = o.name ?? parsed.name ?? (files.length === 1 && files[0]!.name.endsWith(".gguf") ? defaultName(files[0]!.name) : defaultName(parsed.repo.split("/")[1]!));
  return {
    name,
    model: ref,
    dir: join(modelsDir, folderName(name)),
    source: { kind: "hf", endpoint: hub.opts.endpoint, repo: parsed.repo, revision: info.commit },
    files: files.map((f) => ({ name: f.name, size: f.size, ...(f.sha256 ? { sha256: f.sha256 } : f.gitSha1 ? { gitSha1: f.gitSha1 } : {}) })),
  };
}

function defaultName(file: string): string {
  return checkModelName(basename(file).replace(/\.gguf$/i, "").replace(/[^A-Za-z0-9._:-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 128) || "model");
}

function pickFiles(ref: Extract<PullRef, { kind: "hf" }>, files: HubFile[]): HubFile[] {
  const names = files.map((f) => f.name);
  if (ref.format !== "mlx") {
    const gguf = pickGgufFile(names, ref.tag, ref.repo);
    if (gguf) return [files.find((f) => f.name === gguf)!];
    if (ref.tag) throw new TesseraError(`${ref.repo} has no GGUF files, so '${ref.tag}' names nothing; pull it without a tag to get its safetensors/MLX folder`);
  }
  const folder = files.filter((f) => FOLDER_FILES.test(f.name));
  if (!folder.some((f) => f.name === "config.json") || !folder.some((f) => f.name.endsWith(".safetensors"))) {
    throw new TesseraError(`${ref.repo} has neither a GGUF file nor config.json with .safetensors: not a model Tessera can pull`);
  }
  return folder;
}

/** Downloads a plan's files; returns the finished manifest. Resumes whatever an earlier run left. */
export async function runPull(plan: PullPlan, hub: HubClient, o: PullOptions = {}): Promise<PullManifest> {
  await mkdir(plan.dir, { recursive: true });
  const previous = await readPullManifest(plan.dir);
  if (previous?.state === "complete" && sameFiles(previous.files, plan.files)) {
    const total = plan.files.reduce((s, f) => s + Math.max(0, f.size), 0);
    o.onProgress?.({ bytesDone: total, bytesTotal: total, bytesPerSec: 0, etaSec: 0 }, "disk");
    return previous;
  }
  if (previous?.state === "shard") {
    // a shard's file has the full size but holes: nothing in it counts as downloaded
    o.onNote?.("replacing the shard held here with the whole model");
    await rm(plan.dir, { recursive: true, force: true });
    await mkdir(plan.dir, { recursive: true });
  } else if (previous && previous.state !== "complete" && !sameFiles(previous.files, plan.files)) {
    // an unfinished pull of other files (a newer commit, another quantization): start clean
    o.onNote?.("the unfinished download there is of other files; starting over");
    await rm(plan.dir, { recursive: true, force: true });
    await mkdir(plan.dir, { recursive: true });
  }
  const manifest: PullManifest = { version: 1, name: plan.name, state: "downloading", model: plan.model, source: plan.source, files: plan.files };
  await writePullManifest(plan.dir, manifest);
  const progress = new Progress(plan.files.reduce((s, f) => s + Math.max(0, f.size), 0));
  let from = "";
  const report = () => o.onProgress?.(progress.snapshot(), from);
  const timer = setInterval(report, 500);
  try {
    const queue = [...plan.files];
    const worker = async () => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        const file = f;
        const sources = [...(o.extraSources?.(file) ?? []), ...ownSources(plan, file, hub)];
        await downloadFile(
          { dest: join(plan.dir, file.name), size: file.size, sha256: file.sha256, gitSha1: file.gitSha1, sources },
          {
            resumed: (n) => progress.resumed(n),
            received: (n, label) => {
              from = label;
              progress.add(n);
            },
            discarded: (n, why) => {
              progress.discard(n);
              o.onNote?.(`${file.name}: ${why}`);
            },
            switched: (a, b, why) => o.onNote?.(`${file.name}: ${a} failed (${why}); trying ${b}`),
          },
          o,
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.parallel ?? 4, plan.files.length) }, worker));
  } catch (e) {
    if (!(e instanceof Interrupted)) await writePullManifest(plan.dir, { ...manifest, state: "stopped" }).catch(() => {});
    throw e;
  } finally {
    clearInterval(timer);
  }
  report();
  const described = await describeModel(plan.dir).catch((e: Error) => {
    throw new TesseraError(`downloaded, but it is not a model Tessera can read: ${e.message}`, plan.dir);
  });
  const done: PullManifest = { ...manifest, state: "complete", digest: described.digest };
  await writePullManifest(plan.dir, done);
  return done;
}

function sameFiles(a: PullFile[], b: PullFile[]): boolean {
  if (a.length !== b.length) return false;
  const key = (f: PullFile) => `${f.name}|${f.size}|${f.sha256 ?? f.gitSha1 ?? ""}`;
  const set = new Set(a.map(key));
  return b.every((f) => set.has(key(f)));
}

/** The hub (or the plain URL) as the last source of a file; none when offline. */
export function ownSources(plan: { source: PullSource }, file: PullFile, hub: HubClient): ByteSource[] {
  if (hub.opts.offline) return [];
  const s = plan.source;
  if (s.kind === "hf") {
    return [{ label: "hub", url: hub.resolveUrl(s.repo, s.revision, file.name), auth: hub.auth, explain: (status, h) => (status >= 400 && status < 500 && status !== 416 && status !== 429 ? hub.error(s.repo, status, h["x-error-code"], h["x-error-message"]) : undefined) }];
  }
  if (s.kind === "url") return [{ label: "url", url: s.url }];
  return [];
}
