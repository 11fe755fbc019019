import { InferenceError } from "./errors.js";
import type { PromptInput, ResolvedRequest } from "./request.js";
import type { GenerationResult } from "./result.js";
import type { CallOptions, GenerateOptions, ModelBackends, ModelCard, ModelDirectory, ModelInfo } from "./service.js";

export interface RouterOptions {
  /** This node's id: its own backends win ties. */
  node: string;
  /** Extra names for model ids (`--alias name=id`). */
  aliases?: Record<string, string>;
  /** The model that `claude-*`, `gpt-*`, `o1`… names map to (clients with a fixed model list); unset: the only model, if there is one. */
  defaultModel?: string;
  /** false (`--no-auto-launch`): a request never loads a model; one that is not running gets `unavailable`. */
  autoLaunch?: boolean;
}

/** Names that clients with a fixed list of vendor models send (Claude Code, Codex CLI, OpenAI apps). */
const VENDOR_NAME = /^(claude|gpt|chatgpt|codex|o\d)([-.:]|$)/i;

/** Seconds a client should wait before retrying a model that is not running. */
const RETRY_AFTER_S = 5;

/**
 * Any node accepts any request: the router finds where its model runs among the backends it knows
 * (this node's workers, other nodes) and sends the request there. Among several places it picks a
 * ready one with the fewest requests queued and running (this node first on a tie); with none
 * ready, one that can place the model on demand (unless auto-launch is off).
 *
 * Backends come and go (peers join and leave): `setBackends` replaces the remote ones.
 */
export class ModelRouter implements ModelDirectory, ModelBackends {
  /** This node: a router over one node's places is itself a place (what other nodes forward to). */
  readonly node: string;
  private backends: ModelBackends[];
  private readonly aliases: Map<string, string>;

  constructor(
    backends: ModelBackends[],
    private readonly opts: RouterOptions,
  ) {
    this.node = opts.node;
    this.backends = [...backends];
    this.aliases = new Map(Object.entries(opts.aliases ?? {}));
  }

  setBackends(backends: ModelBackends[]): void {
    this.backends = [...backends];
  }

  /** Every model in every place (one card per place). */
  models(): ModelCard[] {
    return this.backends.flatMap((b) => b.models());
  }

  /** One card per model id: the place a request would go to now. */
  uniqueModels(): ModelCard[] {
    const ids = [...new Set(this.models().map((c) => c.id))].sort();
    return ids.map((id) => this.rank(id)[0]!.card);
  }

  /**
   * The model id a client's name means: an id, `id:latest` (Ollama), an alias, or a vendor model
   * name (`claude-*`, `gpt-*`) mapped to the default model. undefined: no such model.
   */
  resolveName(name: string): string | undefined {
    if (typeof name !== "string" || name === "") return undefined;
    const ids = new Set(this.models().map((c) => c.id));
    if (ids.has(name)) return name;
    const untagged = name.endsWith(":latest") ? name.slice(0, -":latest".length) : undefined;
    if (untagged !== undefined && ids.has(untagged)) return untagged;
    const alias = this.aliases.get(name) ?? (untagged !== undefined ? this.aliases.get(untagged) : undefined);
    if (alias !== undefined && ids.has(alias)) return alias;
    // no --default-model: a cluster with one model (a fresh node's demo) answers vendor names with it
    const fallback = this.opts.defaultModel ?? (ids.size === 1 ? [...ids][0] : undefined);
    if (fallback !== undefined && VENDOR_NAME.test(name) && ids.has(fallback)) return fallback;
    return undefined;
  }

  generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    return this.pick(req.model, false).generate(req, opts);
  }

  countTokens(model: string, input: PromptInput, opts: CallOptions = {}): Promise<number> {
    return this.pick(model, false).countTokens(model, input, opts);
  }

  /** Explicit loads (Ollama's load request) place the model even with auto-launch off. */
  load(model: string, opts: CallOptions = {}): Promise<ModelInfo> {
    return this.pick(model, true).load(model, opts);
  }

  /** Unloads the model everywhere it is loaded. */
  async unload(model: string): Promise<boolean> {
    const holders = this.backends.filter((b) => b.models().some((c) => c.id === model && (c.state === "ready" || c.state === "loading")));
    const done = await Promise.all(holders.map((b) => b.unload(model)));
    return done.some(Boolean);
  }

  /** Where a request for the model goes now. Throws not_found or unavailable. */
  pick(model: string, explicitLoad: boolean): ModelBackends {
    const ranked = this.rank(model);
    if (ranked.length === 0) throw new InferenceError("not_found", `model '${model}' not found`, { param: "model" });
    const best = ranked[0]!;
    const running = best.card.state === "ready" || best.card.state === "loading";
    if (!running && !explicitLoad && this.opts.autoLaunch === false) {
      throw new InferenceError("unavailable", `model '${model}' is not running and this node does not start models on demand (--no-auto-launch)`, {
        retryAfterS: RETRY_AFTER_S,
      });
    }
    return best.backend;
  }

  private rank(model: string): { backend: ModelBackends; card: ModelCard }[] {
    const places: { backend: ModelBackends; card: ModelCard }[] = [];
    for (const backend of this.backends) {
      for (const card of backend.models()) if (card.id === model) places.push({ backend, card });
    }
    const readiness = (c: ModelCard) => (c.state === "ready" ? 0 : c.state === "loading" ? 1 : c.state === "unloaded" ? 2 : 3);
    return places.sort(
      (a, b) =>
        readiness(a.card) - readiness(b.card) ||
        a.card.queued + a.card.running - (b.card.queued + b.card.running) ||
        Number(b.card.node === this.opts.node) - Number(a.card.node === this.opts.node) ||
        a.card.node.localeCompare(b.card.node),
    );
  }
}
