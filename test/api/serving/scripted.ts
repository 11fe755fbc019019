import { startApiServer, type ApiServer } from "../../../src/api/server.js";
import { servingRoutes } from "../../../src/api/serving-routes.js";
import { ServingMetrics } from "../../../src/api/serving-metrics.js";
import { RunningRequests } from "../../../src/api/requests.js";
import type { AuthOptions } from "../../../src/api/http/auth.js";
import type { PromptInput, ResolvedRequest } from "../../../src/inference/request.js";
import type { GenerationResult } from "../../../src/inference/result.js";
import type { CallOptions, GenerateOptions, ModelCard, ModelDirectory, ModelInfo } from "../../../src/inference/service.js";

/**
 * The API routes in this process over a ModelDirectory whose answers each test scripts: what the
 * adapters send down (the resolved requests, keep-alives, loads) and how they turn every kind of
 * answer (tokens, failures mid-stream, queue full, loading) into each API's shapes. The real
 * model path is covered by clients.test.ts.
 */
export type Script = (req: ResolvedRequest, opts: GenerateOptions) => Promise<GenerationResult>;

export const INFO: ModelInfo = { architecture: "qwen3", contextLength: 64, vocabSize: 1000, chatTemplate: "{{ messages }}", parameterCount: 1234567, format: "gguf" };

export function result(text: string, extra: Partial<GenerationResult> = {}): GenerationResult {
  const tokens = [...text].map((_, i) => i);
  return {
    tokens,
    text,
    finishReason: "length",
    seed: 1,
    timings: { promptTokens: 7, cachedTokens: 0, prefillMs: 1, prefillTps: 7000, firstTokenMs: 2, generatedTokens: tokens.length, decodeMs: 3, decodeTps: 100 },
    ...extra,
  };
}

/** Streams `text` one character per token event, then returns it. */
export function speak(text: string, extra: Partial<GenerationResult> = {}): Script {
  return async (_req, opts) => {
    opts.onPrompt?.({ promptTokens: 7, cachedTokens: 0 });
    for (const [i, ch] of [...text].entries()) opts.onToken?.({ token: i, text: ch });
    return result(text, extra);
  };
}

export class ScriptedDirectory implements ModelDirectory {
  readonly node = "n1";
  script: Script = speak("hello");
  readonly requests: ResolvedRequest[] = [];
  readonly options: GenerateOptions[] = [];
  readonly loads: { model: string; opts: CallOptions }[] = [];
  readonly unloads: string[] = [];
  cards: ModelCard[] = [
    { id: "m", node: "n1", state: "ready", queued: 0, running: 0, info: INFO, sizeBytes: 4096, loadedAt: 1_700_000_000_000 },
    { id: "org/slashed", node: "n1", state: "unloaded", queued: 0, running: 0 },
  ];

  models(): ModelCard[] {
    return this.cards;
  }
  uniqueModels(): ModelCard[] {
    return this.cards;
  }
  resolveName(name: string): string | undefined {
    if (this.cards.some((c) => c.id === name)) return name;
    if (name.endsWith(":latest") && this.cards.some((c) => c.id === name.slice(0, -7))) return name.slice(0, -7);
    return /^(claude|gpt)-/.test(name) ? "m" : undefined;
  }
  generate(req: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    this.requests.push(req);
    this.options.push(opts);
    return this.script(req, opts);
  }
  async countTokens(_model: string, input: PromptInput): Promise<number> {
    return input.kind === "chat" ? input.messages.reduce((n, m) => n + m.content.length, 0) : 0;
  }
  async load(model: string, opts: CallOptions = {}): Promise<ModelInfo> {
    this.loads.push({ model, opts });
    return INFO;
  }
  async unload(model: string): Promise<boolean> {
    this.unloads.push(model);
    return true;
  }
  last(): ResolvedRequest {
    return this.requests.at(-1)!;
  }
}

export async function scriptedServer(dir: ScriptedDirectory, opts: { auth?: AuthOptions; bodyLimit?: number } = {}): Promise<ApiServer & { url(path: string): string; metrics: ServingMetrics }> {
  const metrics = new ServingMetrics();
  const serving = { models: dir, metrics, requests: new RunningRequests(), version: "test", log: () => undefined };
  const server = await startApiServer({ host: "127.0.0.1", port: 0, routes: servingRoutes(serving), onResponse: (r, m, s) => metrics.countRequest(r, m, s), ...opts });
  return { ...server, metrics, url: (path: string) => `http://127.0.0.1:${server.port}${path}` };
}
