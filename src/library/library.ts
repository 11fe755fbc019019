import type { ClusterNode } from "../cluster/node.js";
import { isModelHolding, isPeerFileName, MAX_DESCRIPTION, modelEventsFor, type DownloadStatus, type ModelHolding } from "../cluster/model-events.js";
import { HubClient, type HubOptions } from "../models/download/hub.js";
import { ModelStore, type LocalModel } from "../models/registry/store.js";
import { resolveModel } from "./cluster-models.js";
import { ensureDemoModel } from "./demo.js";
import { DownloadManager } from "./downloads.js";
import { peerFileRoutes, type PeerServeStats } from "./peer-files.js";
import { fetchShard, type ShardRequest, type ShardResult } from "./shard.js";
import type { ModelRef } from "../cluster/instance-state.js";
import { dirname } from "node:path";
import { readPullManifest } from "../models/registry/manifest.js";
import { samePathHere, type ModelFiles } from "../instances/model-source.js";

/**
 * A node's model library: its ModelStore (what is on its disks), rescanned every few seconds, and
 * published into the replicated state (model-events.ts) through the cluster node's reporter hook,
 * so every node lists every model with the nodes that hold it. Writes the demo model on first start,
 * runs pulls (downloads.ts), serves model bytes to peers (peer-files.ts) and fetches shards
 * (shard.ts).
 */
export interface LibraryOptions {
  dataDir: string;
  /** Extra folders to scan (--models-dir). */
  modelsDirs: string[];
  /** Write tessera-demo on start when missing (default true). */
  demo: boolean;
  /** Seconds between rescans of the folders. */
  rescanMs?: number;
  /** Hugging Face hub settings (HF_ENDPOINT, HF_TOKEN, --offline). */
  hub: HubOptions;
  /** The cluster key (cluster/handshake.ts clusterKey): signs and checks peer byte requests. */
  key: Buffer;
  log(message: string): void;
  /** After every scan: the models on this node's disks (the serving stack serves the complete ones). */
  onScan?: (models: LocalModel[]) => void;
}

const RESCAN_MS = 5000;

export class ModelLibrary implements ModelFiles {
  readonly store: ModelStore;
  private offReporter: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Downloads this node runs, by id (filled by the download manager). */
  readonly downloads = new Map<string, DownloadStatus>();
  /** Resolves once the demo model is written (or found, or failed). */
  demoReady: Promise<void> = Promise.resolve();

  readonly hub: HubClient;
  readonly pulls: DownloadManager;
  /** What this node served to peers. */
  readonly served: PeerServeStats = { bytes: new Map(), requests: 0 };

  constructor(
    private readonly opts: LibraryOptions,
    private readonly node: ClusterNode,
  ) {
    this.store = new ModelStore(opts.dataDir, opts.modelsDirs);
    this.hub = new HubClient(opts.hub);
    this.pulls = new DownloadManager(
      {
        modelsDir: this.store.managedDir,
        self: node.id,
        key: opts.key,
        state: () => node.replica.state,
        statuses: this.downloads,
        changed: () => this.rescan(),
        log: opts.log,
      },
      this.hub,
    );
  }

  /**
   * The path a runner opens for a model this node holds whole, by its id here, any holder's name,
   * or digest (prefix); undefined when this node has no complete copy (then fetchShard or a pull).
   */
  localPath(ref: string): string | undefined {
    const own = this.store.find(ref);
    if (own?.complete) return own.path;
    const m = resolveModel(this.node.replica.state, ref);
    return m ? this.store.models.find((x) => x.digest === m.digest && x.complete)?.path : undefined;
  }

  /** ModelFiles: a complete copy here, else the header fetched from a holder (placement, a driver's tokenizer). */
  async headerPath(ref: string): Promise<string | undefined> {
    const local = this.localPath(ref);
    if (local) return local;
    if (!resolveModel(this.node.replica.state, ref)) return undefined;
    return (await this.fetchShard({ model: ref, layers: [0, 0] })).path;
  }

  /** ModelFiles: a complete copy here, the placing node's path when the same file is here, else the rank's shard fetched. */
  async rankPath(source: ModelRef, part: { layers: [number, number]; tp?: { rank: number; size: number } }): Promise<string> {
    const local = this.localPath(source.digest) ?? (await wholeFileHere(source));
    if (local) return local;
    return (await this.fetchShard({ model: source.digest, layers: part.layers, tp: part.tp })).path;
  }

  /** GET /peer/models/... (the bytes of the models this node holds, for its peers). */
  peerRoutes() {
    return peerFileRoutes(this.store, this.opts.key, () => this.node.replica.state, this.served);
  }

  /**
   * Makes sure this node has the bytes one rank of an instance reads, before its runner starts:
   * the whole model when it holds it, else that rank's byte ranges fetched from peers (or the hub).
   * Resolves with the path the runner opens. See shard.ts.
   */
  fetchShard(req: ShardRequest, signal?: AbortSignal): Promise<ShardResult> {
    return fetchShard(
      {
        modelsDir: this.store.managedDir,
        self: this.node.id,
        key: this.opts.key,
        hub: this.hub,
        state: () => this.node.replica.state,
        localPath: (digest) => this.store.models.find((m) => m.digest === digest && m.complete)?.path,
        changed: () => this.rescan(),
        signal,
      },
      req,
    );
  }

  /** Scans once, starts rescanning, publishes into the cluster state, resumes pulls, writes the demo if asked. */
  async start(): Promise<void> {
    const node = this.node;
    await this.rescan();
    this.logProblems();
    this.offReporter = node.addReporter((state, self) => modelEventsFor(state, self, this.holdings(), [...this.downloads.values()]));
    await this.pulls.resumeAll();
    this.timer = setInterval(() => void this.rescan(), this.opts.rescanMs ?? RESCAN_MS);
    this.timer.unref();
    if (this.opts.demo) {
      this.demoReady = ensureDemoModel(this.store.managedDir).then(
        async ({ path, written }) => {
          if (written) this.opts.log(`wrote the demo model to ${path}`);
          await this.rescan();
        },
        (e: Error) => this.opts.log(`could not write the demo model: ${e.message}`),
      );
    }
  }

  async stop(): Promise<void> {
    await this.pulls.stop();
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.offReporter?.();
  }

  /** Rescans now (after an add, a delete or a finished download); scans never overlap. */
  rescan(): Promise<LocalModel[]> {
    const next = this.scanning.then(
      () => this.store.scan(),
      () => this.store.scan(),
    );
    this.scanning = next.catch(() => {});
    return next.then((models) => {
      if (!this.stopped) {
        this.node.report();
        this.opts.onScan?.(models);
      }
      return models;
    });
  }

  /** Registers a model file or folder on this node (ModelStore.add) and publishes it. */
  async add(path: string, name?: string): Promise<LocalModel> {
    const m = await this.store.add(path, name);
    await this.rescan();
    return m;
  }

  /** Removes this node's copy (ModelStore.remove) and publishes that. */
  async remove(ref: string): Promise<LocalModel> {
    const m = await this.store.remove(ref);
    await this.rescan();
    return m;
  }

  /** This node's holdings as the cluster state carries them. */
  holdings(): ModelHolding[] {
    // A holding the master would refuse (odd file names, say) would be proposed again every beat.
    return this.store.models.map(toHolding).filter(isModelHolding);
  }

  private logProblems(): void {
    for (const p of this.store.problems) this.opts.log(`not a usable model, skipped: ${p.error}`);
  }
}

/** The placing node's path, when the same model is there and is not a shard (a shard has the model's header, not all its bytes). */
async function wholeFileHere(source: ModelRef): Promise<string | undefined> {
  const path = await samePathHere(source);
  return path && (await readPullManifest(dirname(path)))?.state !== "shard" ? path : undefined;
}

/** The models a node serves from its library: whole copies the engine can run, by their ids. */
export function servableModels(models: readonly LocalModel[]): { id: string; path: string }[] {
  return models.filter((m) => m.complete && !m.meta.unsupported).map((m) => ({ id: m.id, path: m.path }));
}

export function toHolding(m: LocalModel): ModelHolding {
  const meta = { ...m.meta };
  if (meta.description && meta.description.length > MAX_DESCRIPTION) meta.description = meta.description.slice(0, MAX_DESCRIPTION - 1) + "…";
  if (meta.unsupported && meta.unsupported.length > 512) meta.unsupported = meta.unsupported.slice(0, 511) + "…";
  if (meta.architecture.length > 64) meta.architecture = meta.architecture.slice(0, 64);
  // Files with names peers cannot ask for are left out: the model is listed, not served.
  const hashes = new Map((m.pull?.files ?? []).map((f) => [f.name, f.sha256]));
  const files = m.files.filter((f) => isPeerFileName(f.name)).slice(0, 64).map((f) => (hashes.get(f.name) ? { ...f, sha256: hashes.get(f.name)! } : f));
  const src = m.pull?.source;
  return { digest: m.digest, name: m.id, meta, complete: m.complete, files, ...(src?.kind === "hf" ? { origin: { repo: src.repo, revision: src.revision } } : {}) };
}
