import type { FastifyReply } from "fastify";
import { InferenceError } from "../inference/errors.js";
import type { ResolvedRequest } from "../inference/request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "../inference/result.js";
import type { KeepAlive, ModelCard, ModelDirectory } from "../inference/service.js";
import { asInferenceError } from "./errors.js";
import { disconnectSignal, ResponseStream, type ResponseStreamOptions } from "./http/stream.js";
import type { RunningRequests } from "./requests.js";
import type { ServingMetrics } from "./serving-metrics.js";

/** What the model API routes need from the node. */
export interface Serving {
  models: ModelDirectory;
  metrics: ServingMetrics;
  /** What is running, for cancel by id. */
  requests: RunningRequests;
  /** The version string clients are told (Ollama's /api/version answers its own compatible one). */
  version: string;
  log(message: string): void;
}

/** The model id for a client's model name, or not_found naming the models there are. */
export function modelId(serving: Serving, name: string, param = "model"): string {
  const id = serving.models.resolveName(name);
  if (id !== undefined) return id;
  const known = serving.models.uniqueModels().map((c) => c.id);
  const list = known.length ? `models here: ${known.join(", ")}` : "this cluster serves no models yet (give a node one: tessera pull, tessera models add, or --model PATH)";
  throw new InferenceError("not_found", `model '${name}' not found (${list})`, { param });
}

/** The card of a model id (the place a request would go to now). */
export function modelCard(serving: Serving, id: string): ModelCard | undefined {
  return serving.models.uniqueModels().find((c) => c.id === id);
}

/** One generation answered as a whole; a client that disconnects (or a cancel by id) cancels it. */
export async function generateOnce(serving: Serving, reply: FastifyReply, req: ResolvedRequest, keepAliveMs?: KeepAlive): Promise<GenerationResult> {
  const run = serving.requests.start(req.id, req.model, disconnectSignal(reply));
  try {
    return await serving.models.generate(req, { signal: run.signal, keepAliveMs });
  } finally {
    run.done();
  }
}

/** The pieces of one API's stream: each returns the text to write (SSE events or NDJSON lines). */
export interface StreamWriter {
  format: ResponseStreamOptions;
  /** The request is valid and the model runs it: opening events. */
  start(info: PromptInfo): string;
  token(event: TokenEvent): string;
  end(result: GenerationResult): string;
  /** A failure after the stream started, in the API's in-stream error shape. */
  error(e: InferenceError): string;
}

/**
 * One generation streamed. The response starts when the prompt is accepted (so a bad request still
 * gets its status), or earlier with keep-alives when the model first has to be loaded. A client that
 * disconnects cancels the generation within one step.
 */
export async function streamGeneration(serving: Serving, reply: FastifyReply, req: ResolvedRequest, w: StreamWriter, keepAliveMs?: KeepAlive): Promise<FastifyReply> {
  const stream = new ResponseStream(reply, w.format);
  const run = serving.requests.start(req.id, req.model, stream.signal);
  let started = false;
  const start = (info: PromptInfo) => {
    stream.stopKeepAlive();
    started = true;
    stream.write(w.start(info));
  };
  try {
    const result = await serving.models.generate(req, {
      signal: run.signal,
      keepAliveMs,
      onLoading: () => stream.keepAliveWhileLoading(),
      onPrompt: start,
      onToken: (e) => stream.write(w.token(e)),
    });
    if (!started) start({ promptTokens: result.timings.promptTokens, cachedTokens: result.timings.cachedTokens });
    stream.end(w.end(result));
  } catch (err) {
    if (!stream.committed) throw err;
    const e = asInferenceError(err);
    if (e.kind === "internal") serving.log(`stream failed: ${(err as Error)?.stack ?? String(err)}`);
    stream.end(w.error(e));
  } finally {
    run.done();
  }
  return reply;
}
