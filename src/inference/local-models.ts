import { statSync } from "node:fs";
import { DEFAULT_PARALLEL } from "../parallel-defaults.js";
import { InferenceError, isInferenceError } from "./errors.js";
import type { PromptInput, ResolvedRequest } from "./request.js";
import type { GenerationResult } from "./result.js";
import { RequestQueue } from "./scheduler.js";
import type { CallOptions, GenerateOptions, KeepAlive, ModelBackends, ModelCard, ModelInfo, ModelState } from "./service.js";
import { EngineWorker, type EngineWorkerOptions } from "./worker/engine-worker.js";
import type { EngineInfo } from "./worker/protocol.js";

/** A model file this node serves (`tessera start --model PATH`): id = the file name without extension. */
export interface LocalModelSpec {
  id: string;
  path: string;
}

export interface LocalModelsOptions {
  /** This node's id (ModelCard.node). */
  node: string;
  engine?: EngineWorkerOptions;
  /** Requests that may wait per model before new ones are refused (429). */
  maxQueued?: number;
  /** Default keep-alive: negative = stay loaded (default), 0 = unload when idle, else idle ms. */
  keepAliveMs?: number;
  log?: (message: string) => void;
  /** Every finished generation of a model here (for metrics: they count where the model runs). */
  onResult?: (model: string, result: GenerationResult) => void;
}

interface Entry {
  spec: LocalModelSpec;
  /** From the node's model library (setLibrary), not --model: it goes when the library drops it. */
  library?: boolean;
  queue: RequestQueue;
  worker?: EngineWorker;
  loading?: Promise<EngineWorker>;
  error?: string;
  keepAliveMs: number;
  loadedAt?: number;
  expiresAt?: number;
  idleTimer?: NodeJS.Timeout;
  sizeBytes?: number;
}

export const DEFAULT_MAX_QUEUED = 32;
/**
 * Sequences one model decodes together unless `engine.slots` says otherwise (continuous
 * batching; the engine allocates fewer KV slots when memory is short and says how many it has).
 */

/**
 * The models of this node: each is loaded into its own engine worker (worker thread; ORT never on
 * the main loop) on its first request, placed on demand, and kept or unloaded by keep-alive. Each
 * has a bounded request queue (scheduler.ts) in front of its worker.
 */
export class LocalModels implements ModelBackends {
  readonly node: string;
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(
    specs: readonly LocalModelSpec[],
    private readonly opts: LocalModelsOptions,
  ) {
    this.node = opts.node;
    for (const spec of specs) {
      if (this.entries.has(spec.id)) throw new InferenceError("invalid_request", `two models are named '${spec.id}' (${this.entries.get(spec.id)!.spec.path} and ${spec.path})`);
      this.entries.set(spec.id, this.newEntry(spec));
    }
  }

  /**
   * The complete models of the node's library (its models dir, the demo model): served on demand
   * beside the --model files, which win a name they share. A model the library no longer has goes
   * once it is not loaded.
   */
  setLibrary(specs: readonly LocalModelSpec[]): void {
    const ids = new Set(specs.map((s) => s.id));
    for (const [id, e] of this.entries) {
      if (e.library && !ids.has(id) && !e.worker && !e.loading && e.queue.running + e.queue.queued === 0) this.entries.delete(id);
    }
    for (const spec of specs) {
      const e = this.entries.get(spec.id);
      if (!e) this.entries.set(spec.id, { ...this.newEntry(spec), library: true });
      else if (e.library && e.spec.path !== spec.path && !e.worker && !e.loading) e.spec = spec;
    }
  }

  private newEntry(spec: LocalModelSpec): Entry {
    let sizeBytes: number | undefined;
    try {
      const s = statSync(spec.path);
      if (s.isFile()) sizeBytes = s.size;
    } catch {
      // reported when it is loaded
    }
    return { spec, queue: new RequestQueue(1, this.opts.maxQueued ?? DEFAULT_MAX_QUEUED), keepAliveMs: this.opts.keepAliveMs ?? -1, sizeBytes };
  }

  models(): ModelCard[] {
    return [...this.entries.values()].map((e) => ({
      id: e.spec.id,
      node: this.node,
      state: stateOf(e),
      ...(e.worker ? { info: infoOf(e.worker.info) } : {}),
      queued: e.queue.queued,
      running: e.queue.running,
      slots: e.queue.slots,
      ...(e.sizeBytes !== undefined ? { sizeBytes: e.sizeBytes } : {}),
      ...(e.loadedAt !== undefined ? { loadedAt: e.loadedAt } : {}),
      ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}),
      ...(e.error !== undefined ? { error: e.error } : {}),
    }));
  }

  async generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const e = this.entry(req.model);
    const release = await e.queue.acquire(opts.signal);
    try {
      const worker = await this.ensure(e, opts);
      const result = await worker.generate(req, { onPrompt: opts.onPrompt, onToken: opts.onToken, signal: opts.signal });
      this.opts.onResult?.(req.model, result);
      return result;
    } finally {
      release();
      this.touch(e, opts.keepAliveMs);
    }
  }

  async countTokens(model: string, input: PromptInput, opts: CallOptions = {}): Promise<number> {
    const e = this.entry(model);
    const worker = await this.ensure(e, opts);
    try {
      return await worker.countTokens(input);
    } finally {
      this.touch(e, opts.keepAliveMs);
    }
  }

  async load(model: string, opts: CallOptions = {}): Promise<ModelInfo> {
    const e = this.entry(model);
    const worker = await this.ensure(e, opts);
    this.touch(e, opts.keepAliveMs);
    return infoOf(worker.info);
  }

  async unload(model: string): Promise<boolean> {
    const e = this.entry(model);
    clearTimeout(e.idleTimer);
    e.expiresAt = undefined;
    const worker = e.worker ?? (await e.loading?.catch(() => undefined));
    if (!worker) return false;
    if (e.worker === worker) {
      e.worker = undefined;
      e.loadedAt = undefined;
    }
    await worker.close();
    this.opts.log?.(`model ${model} unloaded`);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.keys()].map((id) => this.unload(id).catch(() => false)));
  }

  private entry(model: string): Entry {
    const e = this.entries.get(model);
    if (!e) throw new InferenceError("not_found", `model '${model}' is not served by node ${this.node}`, { param: "model" });
    return e;
  }

  /** The model's worker, loading it first if needed (one load at a time per model). */
  private async ensure(e: Entry, opts: CallOptions): Promise<EngineWorker> {
    if (this.closed) throw new InferenceError("unavailable", "the node is shutting down");
    if (e.worker?.failure) {
      // the worker died (a crash in the engine): place the model again
      this.opts.log?.(`model ${e.spec.id}: ${e.worker.failure.message}; loading it again`);
      e.worker = undefined;
      e.loadedAt = undefined;
    }
    if (e.worker) return e.worker;
    opts.onLoading?.();
    e.loading ??= this.startWorker(e);
    return await abortable(e.loading, opts.signal);
  }

  private async startWorker(e: Entry): Promise<EngineWorker> {
    const { id, path } = e.spec;
    this.opts.log?.(`model ${id}: loading ${path}`);
    const t0 = performance.now();
    try {
      const worker = await EngineWorker.start(path, { ...this.opts.engine, slots: this.opts.engine?.slots ?? DEFAULT_PARALLEL });
      if (this.closed) {
        await worker.close();
        throw new InferenceError("unavailable", "the node is shutting down");
      }
      e.worker = worker;
      e.error = undefined;
      e.loadedAt = Date.now();
      // until loaded one request goes through at a time; now as many as the engine decodes together
      e.queue.setSlots(worker.info.slots ?? 1);
      this.opts.log?.(`model ${id}: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (context ${worker.info.contextLength} tokens)`);
      return worker;
    } catch (err) {
      e.error = (err as Error).message;
      this.opts.log?.(`model ${id}: load failed: ${e.error}`);
      if (isInferenceError(err) && err.kind !== "internal") throw err;
      throw new InferenceError("unavailable", `model '${id}' failed to load: ${e.error}`, { cause: err });
    } finally {
      e.loading = undefined;
    }
  }

  /** After a request: apply its keep-alive, and start the idle timer when nothing else is waiting. */
  private touch(e: Entry, keepAliveMs: KeepAlive): void {
    if (keepAliveMs !== undefined) e.keepAliveMs = keepAliveMs;
    clearTimeout(e.idleTimer);
    e.idleTimer = undefined;
    e.expiresAt = undefined;
    if (e.keepAliveMs < 0 || !e.worker) return;
    if (e.queue.running + e.queue.queued > 0) return;
    const unload = () => void this.unload(e.spec.id).catch(() => undefined);
    if (e.keepAliveMs === 0) return unload();
    e.expiresAt = Date.now() + e.keepAliveMs;
    e.idleTimer = setTimeout(() => {
      if (e.queue.running + e.queue.queued === 0) unload();
    }, e.keepAliveMs);
    e.idleTimer.unref();
  }
}

function stateOf(e: Entry): ModelState {
  if (e.worker) return "ready";
  if (e.loading) return "loading";
  return e.error !== undefined ? "failed" : "unloaded";
}

export function infoOf(i: EngineInfo): ModelInfo {
  return {
    ...(i.architecture !== undefined ? { architecture: i.architecture } : {}),
    contextLength: i.contextLength,
    vocabSize: i.vocabSize,
    ...(i.chatTemplate !== undefined ? { chatTemplate: i.chatTemplate } : {}),
    ...(i.parameterCount !== undefined ? { parameterCount: i.parameterCount } : {}),
    ...(i.weightBytes !== undefined ? { weightBytes: i.weightBytes } : {}),
    ...(i.format !== undefined ? { format: i.format } : {}),
  };
}

/** The promise, or a cancelled InferenceError as soon as the signal aborts (the work itself goes on). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new InferenceError("cancelled", "the request was cancelled"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new InferenceError("cancelled", "the request was cancelled"));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** `--model PATH` → spec: the id is the file (or folder) name without its extension. */
export function modelSpecFromPath(path: string): LocalModelSpec {
  const base = path.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? path;
  const id = base.replace(/\.(gguf|safetensors|bin)$/i, "");
  if (!id) throw new InferenceError("invalid_request", `cannot name a model after '${path}'`);
  return { id, path };
}
