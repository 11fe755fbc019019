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
  return (await generateChoices(serving, reply, [req], keepAliveMs))[0]!;
}

/**
 * Most choices one request may ask for (OpenAI's `n`): each is its own sequence, decoded together
 * where the model batches, so a request of n holds n of its slots or queue places.
 */
export const MAX_CHOICES = 16;

/**
 * A request's `n` choices: the same request, choice i drawing with seed + i (so a seeded request is
 * reproducible and its choices differ).
 */
export function choices(req: ResolvedRequest, n: number): ResolvedRequest[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? req : { ...req, sampling: { ...req.sampling, seed: (req.sampling.seed + i) >>> 0 } }));
}

/**
 * Several generations of one request (its choices), answered together under the first one's id: a
 * client that disconnects or a cancel by id cancels all, and one that fails cancels the others.
 */
export async function generateChoices(serving: Serving, reply: FastifyReply, reqs: ResolvedRequest[], keepAliveMs?: KeepAlive): Promise<GenerationResult[]> {
  const run = startChoices(serving, reqs, disconnectSignal(reply));
  try {
    return await Promise.all(
      reqs.map((r) =>
        serving.models.generate(r, { signal: run.signal, keepAliveMs }).catch((e: unknown) => {
          run.siblingFailed();
          throw e;
        }),
      ),
    );
  } finally {
    run.done();
  }
}

/**
 * A request's choices registered under the first one's id: `signal` aborts on a cancel by id, when
 * `also` aborts, or once a choice failed (siblingFailed), which cancels the others.
 */
function startChoices(serving: Serving, reqs: ResolvedRequest[], also: AbortSignal) {
  const run = serving.requests.start(reqs[0]!.id, reqs[0]!.model, also);
  const siblings = new AbortController();
  return {
    signal: AbortSignal.any([run.signal, siblings.signal]),
    siblingFailed: () => siblings.abort(),
    failed: () => siblings.signal.aborted,
    done: run.done,
  };
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

/** A StreamWriter for several choices of one request, each event naming its choice. */
export interface ChoicesWriter {
  format: ResponseStreamOptions;
  /** The first choice's prompt is accepted: opening events (for every choice). */
  start(info: PromptInfo): string;
  token(event: TokenEvent, choice: number): string;
  /** One choice ended. */
  finish(result: GenerationResult, choice: number): string;
  /** Every choice ended: closing events. */
  end(results: GenerationResult[]): string;
  error(e: InferenceError): string;
}

/**
 * One generation streamed. The response starts when the prompt is accepted (so a bad request still
 * gets its status), or earlier with keep-alives when the model first has to be loaded. A client that
 * disconnects cancels the generation within one step.
 */
export function streamGeneration(serving: Serving, reply: FastifyReply, req: ResolvedRequest, w: StreamWriter, keepAliveMs?: KeepAlive): Promise<FastifyReply> {
  const one: ChoicesWriter = { format: w.format, start: w.start, token: (e) => w.token(e), finish: () => "", end: (rs) => w.end(rs[0]!), error: w.error };
  return streamChoices(serving, reply, [req], one, keepAliveMs);
}

/** A request's choices streamed together, as streamGeneration streams one; one that fails cancels the others. */
export async function streamChoices(serving: Serving, reply: FastifyReply, reqs: ResolvedRequest[], w: ChoicesWriter, keepAliveMs?: KeepAlive): Promise<FastifyReply> {
  const stream = new ResponseStream(reply, w.format);
  const run = startChoices(serving, reqs, stream.signal);
  let started = false;
  const start = (info: PromptInfo) => {
    if (started) return;
    stream.stopKeepAlive();
    started = true;
    stream.write(w.start(info));
  };
  try {
    const results = await Promise.all(
      reqs.map(async (req, i) => {
        try {
          const result = await serving.models.generate(req, {
            signal: run.signal,
            keepAliveMs,
            onLoading: () => stream.keepAliveWhileLoading(),
            onPrompt: start,
            onToken: (e) => stream.write(w.token(e, i)),
          });
          start({ promptTokens: result.timings.promptTokens, cachedTokens: result.timings.cachedTokens });
          // a choice cancelled because another failed ends with that failure, not on its own
          if (!run.failed()) stream.write(w.finish(result, i));
          return result;
        } catch (e) {
          run.siblingFailed();
          throw e;
        }
      }),
    );
    stream.end(w.end(results));
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
