import { InferenceError } from "../inference/errors.js";
import { infoOf, modelSpecFromPath } from "../inference/local-models.js";
import type { PromptInput, ResolvedRequest } from "../inference/request.js";
import type { GenerationResult } from "../inference/result.js";
import { RequestQueue } from "../inference/scheduler.js";
import type { CallOptions, GenerateOptions, ModelBackends, ModelCard, ModelInfo } from "../inference/service.js";
import type { EngineWorker } from "../inference/worker/engine-worker.js";
import type { InstanceManager } from "./manager.js";
import { RequestError } from "./requests.js";
import type { InstanceView } from "./views.js";

export interface HomeInstancesOptions {
  /** This node's id. */
  node: string;
  /** Requests that may wait per instance before new ones are refused (429). */
  maxQueued: number;
  /** Every finished generation (metrics count where the model runs). */
  onResult?: (model: string, result: GenerationResult) => void;
}

/** How often a request that arrived while its instance starts looks again. */
const WAIT_POLL_MS = 100;

/**
 * The model name an instance serves under: the id it was launched with (a registry name), or for
 * an instance launched from a file path, the file name without its extension (as `--model PATH`).
 */
export function servedModelName(view: Pick<InstanceView, "model">): string {
  return /[/\\]/.test(view.model) ? modelSpecFromPath(view.model).id : view.model;
}

/**
 * The instances this node is home to, as a place where models run (ModelBackends): the serving
 * stack's router sends a request for an instance's model here, and other nodes forward theirs
 * (internal-routes.ts). A starting instance is "loading": a request waits for it. Unloading an
 * instance deletes it (it was launched on purpose, so keep-alive does not apply).
 */
export class HomeInstances implements ModelBackends {
  readonly node: string;
  private readonly queues = new Map<string, RequestQueue>();

  constructor(
    private readonly manager: InstanceManager,
    private readonly opts: HomeInstancesOptions,
  ) {
    this.node = opts.node;
  }

  models(): ModelCard[] {
    const cards = new Map<string, ModelCard>();
    for (const i of this.home()) {
      const id = servedModelName(i);
      const engine = this.manager.engine(i.id);
      const q = this.queue(i.id);
      const card: ModelCard = {
        id,
        node: this.node,
        state: engine ? "ready" : "loading",
        ...(engine ? { info: infoOf(engine.info) } : {}),
        queued: q.queued,
        running: q.running,
        loadedAt: i.placedAt,
      };
      // two instances of one model here: the ready one speaks for it
      const seen = cards.get(id);
      if (!seen || (seen.state !== "ready" && card.state === "ready")) cards.set(id, card);
    }
    return [...cards.values()];
  }

  async generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const i = this.pick(req.model);
    const release = await this.queue(i.id).acquire(opts.signal);
    try {
      await this.ready(i.id, opts);
      const result = await this.manager.generate(i.id, req, { onPrompt: opts.onPrompt, onToken: opts.onToken, signal: opts.signal }).catch(asInferenceError);
      this.opts.onResult?.(req.model, result);
      return result;
    } finally {
      release();
    }
  }

  async countTokens(model: string, input: PromptInput, opts: CallOptions = {}): Promise<number> {
    const engine = await this.ready(this.pick(model).id, opts);
    return engine.countTokens(input);
  }

  async load(model: string, opts: CallOptions = {}): Promise<ModelInfo> {
    return infoOf((await this.ready(this.pick(model).id, opts)).info);
  }

  async unload(model: string): Promise<boolean> {
    const mine = this.home().filter((i) => servedModelName(i) === model);
    const answers = await Promise.all(mine.map((i) => this.manager.delete(i.id)));
    return answers.some((a) => a.status === 200);
  }

  private home(): InstanceView[] {
    const live = this.manager.list().filter((i) => i.home === this.node && (i.status === "starting" || i.status === "ready"));
    for (const id of this.queues.keys()) if (!live.some((i) => i.id === id)) this.queues.delete(id);
    return live;
  }

  private pick(model: string): InstanceView {
    const mine = this.home().filter((i) => servedModelName(i) === model);
    const i = mine.find((x) => x.status === "ready") ?? mine[0];
    if (!i) throw new InferenceError("not_found", `no instance of '${model}' has its driver on node ${this.node}`, { param: "model" });
    return i;
  }

  /** The instance's queue: one request at a time while it starts, then as many as its engine batches. */
  private queue(id: string): RequestQueue {
    let q = this.queues.get(id);
    if (!q) this.queues.set(id, (q = new RequestQueue(1, this.opts.maxQueued)));
    const slots = this.manager.engine(id)?.info.slots;
    if (slots !== undefined && slots !== q.slots) q.setSlots(slots);
    return q;
  }

  /** The instance's engine once it is ready; fails when it fails or goes, or the caller gives up. */
  private async ready(id: string, opts: CallOptions): Promise<EngineWorker> {
    let told = false;
    while (true) {
      const engine = this.manager.engine(id);
      if (engine) {
        this.queue(id); // waiters get the slots the engine has
        return engine;
      }
      const i = this.manager.get(id);
      if (!i || (i.status !== "starting" && i.status !== "ready")) {
        throw new InferenceError("unavailable", `instance ${id} is ${i ? i.status : "gone"}${i?.reason ? `: ${i.reason}` : ""}`, { retryAfterS: 5 });
      }
      if (opts.signal?.aborted) throw new InferenceError("cancelled", "the request was cancelled");
      if (!told) opts.onLoading?.();
      told = true;
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
    }
  }
}

function asInferenceError(e: unknown): never {
  if (e instanceof RequestError) throw new InferenceError(e.status === 404 ? "not_found" : "unavailable", e.message, e.status === 404 ? {} : { retryAfterS: 5 });
  throw e;
}
