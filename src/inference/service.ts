import type { PromptInput, ResolvedRequest } from "./request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "./result.js";

/**
 * The seam between the HTTP APIs and wherever models run. The API calls an InferenceService and
 * nothing below it; a ModelBackends is one place models run (this node's engine workers, another
 * node over HTTP, later cluster instances); the router (router.ts) merges them and picks one per
 * request.
 */

/** What the API tells clients about a loaded model. */
export interface ModelInfo {
  architecture?: string;
  /** Tokens the model's KV cache holds (prompt + output). */
  contextLength: number;
  vocabSize: number;
  /** Jinja source of the chat template, when the model has one. */
  chatTemplate?: string;
  parameterCount?: number;
  weightBytes?: number;
  /** File format (gguf, safetensors, mlx). */
  format?: string;
}

/**
 * unloaded: known here and can be placed on demand; loading; ready; failed: the last load failed
 * (a new request tries again).
 */
export type ModelState = "unloaded" | "loading" | "ready" | "failed";

/** One model in one place, as a list entry (plain data: it crosses nodes as JSON). */
export interface ModelCard {
  id: string;
  /** The node that runs it. */
  node: string;
  state: ModelState;
  /** Known once the model has been loaded. */
  info?: ModelInfo;
  /** Requests waiting for a slot, and running. */
  queued: number;
  running: number;
  /** Requests the model runs at once (its engine's batch slots), when the place knows. */
  slots?: number;
  /** Size of the model's files in bytes, when known without loading. */
  sizeBytes?: number;
  /** Wall-clock ms: when it was loaded, and when keep-alive will unload it (absent: never). */
  loadedAt?: number;
  expiresAt?: number;
  /** Why the last load failed. */
  error?: string;
}

/**
 * How long a model stays loaded after a request (Ollama's keep_alive): undefined = unchanged;
 * a negative number = forever; 0 = unload as soon as it is idle; otherwise milliseconds of idleness.
 */
export type KeepAlive = number | undefined;

export interface CallOptions {
  /** Aborting cancels the request: dequeued, or stopped within one step and its slot freed. */
  signal?: AbortSignal;
  /** Called once if the model has to be loaded first (callers send keep-alives while it loads). */
  onLoading?: () => void;
  keepAliveMs?: KeepAlive;
}

export interface GenerateOptions extends CallOptions {
  /** The prompt is tokenized and fits: after this the request produces output (or fails mid-way). */
  onPrompt?: (info: PromptInfo) => void;
  onToken?: (event: TokenEvent) => void;
}

export interface InferenceService {
  /** Generates for a resolved request whose `model` is a model id. */
  generate(req: ResolvedRequest, opts?: GenerateOptions): Promise<GenerationResult>;
  /** Prompt tokens the input makes for the model (after its chat template). */
  countTokens(model: string, input: PromptInput, opts?: CallOptions): Promise<number>;
  /** Loads the model if needed and describes it. */
  load(model: string, opts?: CallOptions): Promise<ModelInfo>;
  /** Unloads the model; false when it was not loaded. */
  unload(model: string): Promise<boolean>;
}

/** A place where models run: this node's workers, or another node. */
export interface ModelBackends extends InferenceService {
  /** Node id of the place. */
  readonly node: string;
  /** The models it can serve, now. */
  models(): ModelCard[];
}

/**
 * What the HTTP APIs use: every model wherever it runs, the client-name → id mapping, and the
 * InferenceService that sends each call to the right place. router.ts's ModelRouter is the one
 * implementation; cluster instances and the model registry plug in as ModelBackends there.
 */
export interface ModelDirectory extends InferenceService {
  /** Every model in every place (one card per place). */
  models(): ModelCard[];
  /** One card per model id: the place a request would go to now. */
  uniqueModels(): ModelCard[];
  /** The model id a client's name means, or undefined. */
  resolveName(name: string): string | undefined;
}
