import { fromWire, InferenceError, type ErrorWire } from "../inference/errors.js";
import type { PromptInput, ResolvedRequest } from "../inference/request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "../inference/result.js";
import type { CallOptions, GenerateOptions, ModelBackends, ModelCard, ModelInfo } from "../inference/service.js";
import { INTERNAL_PREFIX } from "./internal-routes.js";

/** How to reach another node's HTTP API. */
export interface RemoteNodeAddress {
  id: string;
  /** http://host:port */
  baseUrl: string;
  /** Credentials for its routes (the node token in secret mode, this node's API key). */
  headers: Record<string, string>;
}

const LIST_TIMEOUT_MS = 3000;

type Line = { t: "loading" } | { t: "prompt"; info: PromptInfo } | { t: "token"; event: TokenEvent } | { t: "result"; result: GenerationResult } | { t: "error"; error: ErrorWire };

/**
 * Another node's models, reached over its internal HTTP routes (internal-routes.ts): the request
 * travels as the resolved value, tokens stream straight back over that connection. The card list
 * is what the node said at the last refresh.
 */
export class RemoteNode implements ModelBackends {
  private cards: ModelCard[] = [];

  constructor(readonly address: RemoteNodeAddress) {}

  get node(): string {
    return this.address.id;
  }

  models(): ModelCard[] {
    return this.cards;
  }

  /** Asks the node for its models; on failure it has none until the next refresh. */
  async refresh(): Promise<void> {
    try {
      const res = await fetch(this.url("/models"), { headers: this.address.headers, signal: AbortSignal.timeout(LIST_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const cards = (await res.json()) as ModelCard[];
      this.cards = Array.isArray(cards) ? cards.filter((c) => c && typeof c.id === "string").map((c) => ({ ...c, node: this.node })) : [];
    } catch {
      this.cards = [];
    }
  }

  async generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const res = await this.post("/generate", { request: req, keepAliveMs: opts.keepAliveMs }, opts.signal);
    if (!res.body) throw this.unreachable("no response body");
    const decoder = new TextDecoder();
    let buffer = "";
    let loading = false;
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const text = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!text) continue;
          const line = JSON.parse(text) as Line;
          switch (line.t) {
            case "loading":
              if (!loading) opts.onLoading?.();
              loading = true;
              break;
            case "prompt":
              opts.onPrompt?.(line.info);
              break;
            case "token":
              opts.onToken?.(line.event);
              break;
            case "result":
              return line.result;
            case "error":
              throw fromWire(line.error);
          }
        }
      }
    } catch (e) {
      if (opts.signal?.aborted) throw new InferenceError("cancelled", "the request was cancelled");
      if (e instanceof InferenceError) throw e;
      throw this.unreachable((e as Error).message);
    }
    throw this.unreachable("the stream ended without a result");
  }

  async countTokens(model: string, input: PromptInput, opts: CallOptions = {}): Promise<number> {
    return ((await (await this.post("/count", { model, input, keepAliveMs: opts.keepAliveMs }, opts.signal)).json()) as { tokens: number }).tokens;
  }

  async load(model: string, opts: CallOptions = {}): Promise<ModelInfo> {
    return ((await (await this.post("/load", { model, keepAliveMs: opts.keepAliveMs }, opts.signal)).json()) as { info: ModelInfo }).info;
  }

  async unload(model: string): Promise<boolean> {
    return ((await (await this.post("/unload", { model })).json()) as { unloaded: boolean }).unloaded;
  }

  private url(path: string): string {
    return `${this.address.baseUrl}${INTERNAL_PREFIX}${path}`;
  }

  private unreachable(why: string): InferenceError {
    return new InferenceError("unavailable", `node ${this.node} did not answer: ${why}`, { retryAfterS: 5 });
  }

  /** POSTs JSON; a non-2xx answer becomes the error it carries. */
  private async post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url(path), { method: "POST", headers: { "content-type": "application/json", ...this.address.headers }, body: JSON.stringify(body), signal });
    } catch (e) {
      if (signal?.aborted) throw new InferenceError("cancelled", "the request was cancelled");
      throw this.unreachable((e as Error).message);
    }
    if (res.ok) return res;
    let wire: ErrorWire | undefined;
    try {
      wire = ((await res.json()) as { error?: ErrorWire }).error;
    } catch {
      // not one of ours
    }
    if (wire && typeof wire.kind === "string") throw fromWire(wire);
    throw this.unreachable(`HTTP ${res.status}`);
  }
}
