import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { DownloadStatus } from "../cluster/model-events.js";
import type { ClusterState } from "../cluster/state.js";
import { TesseraError } from "../errors.js";
import { parsePullRef, type VariantChoice } from "../models/catalog/reference.js";
import type { HubClient } from "../models/download/hub.js";
import { folderName, planPull, runPull, type PullPlan } from "../models/download/pull.js";
import { AbortedError, Interrupted } from "../models/download/http.js";
import { readPullManifest, type PullManifest } from "../models/registry/manifest.js";
import { checkModelName } from "../models/registry/store.js";
import { resolveModel, type ClusterModel } from "./cluster-models.js";
import { peerSources } from "./peer-files.js";

/**
 * The pulls one node runs. A pull asks, in order:
 *   1. the cluster: a model some other node holds completely under that name (its id, any holder's
 *      name, its digest, or the catalog variant's name) is copied from the peers, LAN first; the
 *      hub stays a fallback when the holder knows which repo it came from;
 *   2. the hub (or the URL), with peers that hold the same file (name, size, sha256) tried first.
 * Each pull's status (DownloadStatus) is kept in `statuses`, which the library publishes into the
 * cluster state; a restarted node resumes every pull whose manifest still says "downloading".
 */
export interface PullRequest extends VariantChoice {
  model: string;
  name?: string;
}

export interface DownloadContext {
  modelsDir: string;
  self: string;
  key: Buffer;
  state(): ClusterState | null;
  statuses: Map<string, DownloadStatus>;
  /** After a pull finishes: rescan, publish. */
  changed(): Promise<unknown>;
  log(message: string): void;
}

interface Running {
  ac: AbortController;
  done: Promise<PullManifest>;
  discard: boolean;
}

const KEEP_DONE_MS = 30_000;
const KEEP_FAILED_MS = 600_000;

export class DownloadManager {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly ctx: DownloadContext,
    readonly hub: HubClient,
  ) {}

  /** Plans a pull (errors for bad references come back at once) and runs it in the background. */
  async pull(req: PullRequest): Promise<{ id: string; done: Promise<PullManifest> }> {
    if (req.name !== undefined) checkModelName(req.name);
    const plan = await this.plan(req);
    const existing = this.running.get(plan.name);
    if (existing) return { id: plan.name, done: existing.done };
    return { id: plan.name, done: this.run(plan) };
  }

  /** Stops a running pull; its partial files stay for a later pull unless `discard`. */
  async cancel(id: string, discard = false): Promise<boolean> {
    const r = this.running.get(id);
    if (r) {
      r.discard = discard;
      r.ac.abort(new AbortedError("cancelled"));
      await r.done.catch(() => {});
      return true;
    }
    const status = this.ctx.statuses.get(id);
    if (status && discard) await rm(join(this.ctx.modelsDir, folderName(id)), { recursive: true, force: true });
    if (status) this.ctx.statuses.delete(id);
    return !!status;
  }

  /** Restarts the pulls a previous run of this node left unfinished. */
  async resumeAll(): Promise<void> {
    let entries: string[] = [];
    try {
      entries = await readdir(this.ctx.modelsDir);
    } catch {
      return;
    }
    for (const e of entries) {
      const dir = join(this.ctx.modelsDir, e);
      const m = await readPullManifest(dir);
      if (m?.state !== "downloading" || this.running.has(m.name)) continue;
      this.ctx.log(`resuming the download of ${m.name} (${m.model})`);
      this.run({ name: m.name, model: m.model, dir, source: m.source, files: m.files }).catch(() => {});
    }
  }

  async stop(): Promise<void> {
    for (const r of this.running.values()) r.ac.abort(new Interrupted("node stopping"));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private async plan(req: PullRequest): Promise<PullPlan> {
    const state = this.ctx.state();
    const held = state ? this.heldElsewhere(state, req) : undefined;
    if (held) return this.planFromCluster(held, req);
    try {
      return await planPull(req.model, this.ctx.modelsDir, this.hub, { name: req.name, quant: req.quant, format: req.format });
    } catch (e) {
      if (e instanceof TesseraError && (this.hub.opts.offline || /cannot reach the hub/.test(e.message))) {
        throw new TesseraError(`${e.message}; and no other node holds '${req.model}'`);
      }
      throw e;
    }
  }

  /** A complete copy on another node that the request names. */
  private heldElsewhere(state: ClusterState, req: PullRequest): ClusterModel | undefined {
    const names = [req.model];
    try {
      const ref = parsePullRef(req.model, req);
      if (ref.kind === "hf" && ref.name) names.push(ref.name);
    } catch {
      /* not a pull reference: maybe a cluster model's id */
    }
    for (const n of names) {
      const m = resolveModel(state, n);
      if (m && m.holders.some((h) => h.complete && h.node !== this.ctx.self)) return m;
    }
    return undefined;
  }

  private planFromCluster(m: ClusterModel, req: PullRequest): PullPlan {
    const name = req.name ?? m.id;
    const holder = this.ctx.state()!.models[m.holders.find((h) => h.complete && h.node !== this.ctx.self)!.node]![m.digest]!;
    return {
      name,
      model: req.model,
      dir: join(this.ctx.modelsDir, folderName(name)),
      source: holder.origin ? { kind: "hf", endpoint: this.hub.opts.endpoint, ...holder.origin } : { kind: "peer", node: m.holders[0]!.node, digest: m.digest },
      files: m.files.map((f) => ({ name: f.name, size: f.bytes, ...(f.sha256 ? { sha256: f.sha256 } : {}) })),
    };
  }

  private run(plan: PullPlan): Promise<PullManifest> {
    const ac = new AbortController();
    const status: DownloadStatus = { id: plan.name, model: plan.model, state: "queued", bytesDone: 0, bytesTotal: plan.files.reduce((s, f) => s + Math.max(0, f.size), 0), bytesPerSec: 0, etaSec: null, from: "" };
    this.ctx.statuses.set(plan.name, status);
    const digest = plan.source.kind === "peer" ? plan.source.digest : undefined;
    const update = (patch: Partial<DownloadStatus>) => {
      const next = { ...this.ctx.statuses.get(plan.name)!, ...patch };
      if (next.error === undefined) delete next.error;
      this.ctx.statuses.set(plan.name, next);
    };
    const done = runPull(plan, this.hub, {
      signal: ac.signal,
      extraSources: (file) => {
        const state = this.ctx.state();
        return state ? peerSources(state, this.ctx.self, { name: file.name, size: file.size, sha256: file.sha256, digest }, this.ctx.key) : [];
      },
      onProgress: (p, from) => update({ state: "downloading", ...p, from: from.slice(0, 64) }),
      onNote: (m) => this.ctx.log(`pull ${plan.name}: ${m}`),
    });
    const entry: Running = { ac, done, discard: false };
    this.running.set(plan.name, entry);
    done.then(
      async () => {
        update({ state: "done", bytesPerSec: 0, etaSec: 0 });
        this.ctx.log(`pulled ${plan.name} into ${plan.dir}`);
        await this.ctx.changed();
        this.forgetLater(plan.name, KEEP_DONE_MS);
      },
      async (e: Error) => {
        const cancelled = e instanceof AbortedError;
        if (cancelled && entry.discard) await rm(plan.dir, { recursive: true, force: true });
        update({ state: cancelled ? "cancelled" : "failed", bytesPerSec: 0, etaSec: null, ...(cancelled ? {} : { error: e.message.slice(0, 1000) }) });
        if (!cancelled) this.ctx.log(`pull ${plan.name} failed: ${e.message}`);
        this.forgetLater(plan.name, KEEP_FAILED_MS);
      },
    ).finally(() => {
      if (this.running.get(plan.name) === entry) this.running.delete(plan.name);
    });
    return done;
  }

  private forgetLater(id: string, ms: number): void {
    const t = setTimeout(() => {
      const s = this.ctx.statuses.get(id);
      if (s && !this.running.has(id) && s.state !== "downloading" && s.state !== "queued") this.ctx.statuses.delete(id);
    }, ms);
    t.unref();
  }
}
