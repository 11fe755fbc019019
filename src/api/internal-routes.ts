import { createHmac } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { InferenceError, toWire } from "../inference/errors.js";
import { resolveRequest, type PromptInput, type ResolvedRequest } from "../inference/request.js";
import type { ModelBackends } from "../inference/service.js";
import { acceptJsonBodies } from "./http/body.js";
import { isObject, objectBody, optNumber, reqString } from "./http/fields.js";
import { disconnectSignal, NDJSON_CONTENT_TYPE, ResponseStream } from "./http/stream.js";
import { useErrorStyle } from "./errors.js";
import type { RunningRequests } from "./requests.js";

/**
 * Node-to-node serving: another node forwards a request for a model that runs here. These routes
 * reach this node's own models only (never the router, so a request cannot bounce between nodes).
 *
 *   GET  /internal/v1/models    → ModelCard[] of this node's models
 *   POST /internal/v1/generate  {request: ResolvedRequest, keepAliveMs?} → NDJSON lines, one event each:
 *          {t:"loading"} · {t:"prompt", info} · {t:"token", event} · then {t:"result", result} or {t:"error", error: ErrorWire}
 *   POST /internal/v1/count     {model, input, keepAliveMs?} → {tokens}
 *   POST /internal/v1/load      {model, keepAliveMs?} → {info}
 *   POST /internal/v1/unload    {model} → {unloaded}
 * Errors outside a stream: {error: ErrorWire} with the kind's status.
 *
 * Auth: the node's API key like every route, or, in secret mode, the `x-tessera-node` token every
 * node of the cluster derives from the cluster secret (nodeToken).
 */
export const INTERNAL_PREFIX = "/internal/v1";
export const NODE_TOKEN_HEADER = "x-tessera-node";

/** The token nodes of one secret cluster show each other over HTTP (never sent in open mode). */
export function nodeToken(clusterKey: Buffer): string {
  return createHmac("sha256", clusterKey).update("tessera http forwarding").digest("base64url");
}

function keepAlive(body: Record<string, unknown>): number | undefined {
  return optNumber(body, "keepAliveMs", { integer: true, min: -1 });
}

/** A ResolvedRequest from another node, checked and frozen again (it crossed the network). */
function forwardedRequest(v: unknown): ResolvedRequest {
  if (!isObject(v) || !isObject(v.sampling)) throw new InferenceError("invalid_request", "request must be a resolved request");
  const r = v as unknown as ResolvedRequest;
  return resolveRequest(
    {
      model: r.model,
      input: r.input as PromptInput,
      maxTokens: r.maxTokens ?? undefined,
      stop: [...(r.stop ?? [])],
      stopTokenIds: r.stopTokenIds === null ? undefined : [...(r.stopTokenIds ?? [])],
      logprobs: r.logprobs ?? undefined,
      ...r.sampling,
    },
    { id: typeof r.id === "string" ? r.id : undefined },
  );
}

export function internalRoutes(local: ModelBackends, requests: RunningRequests, log: (m: string) => void) {
  return async (app: FastifyInstance) => {
    acceptJsonBodies(app);
    useErrorStyle(app, "tessera", log);

    app.get(`${INTERNAL_PREFIX}/models`, async () => local.models());

    app.post(`${INTERNAL_PREFIX}/generate`, async (req, reply) => {
      const body = objectBody(req.body);
      const request = forwardedRequest(body.request);
      const stream = new ResponseStream(reply, { contentType: NDJSON_CONTENT_TYPE, keepAlive: () => JSON.stringify({ t: "loading" }) + "\n" });
      const line = (v: object) => stream.write(JSON.stringify(v) + "\n");
      stream.commit();
      const run = requests.start(request.id, request.model, stream.signal);
      try {
        const result = await local.generate(request, {
          signal: run.signal,
          keepAliveMs: keepAlive(body),
          onLoading: () => stream.keepAliveWhileLoading(),
          onPrompt: (info) => {
            stream.stopKeepAlive();
            line({ t: "prompt", info });
          },
          onToken: (event) => line({ t: "token", event }),
        });
        stream.end(JSON.stringify({ t: "result", result }) + "\n");
      } catch (e) {
        stream.end(JSON.stringify({ t: "error", error: toWire(e) }) + "\n");
      } finally {
        run.done();
      }
      return reply;
    });

    app.post(`${INTERNAL_PREFIX}/count`, async (req, reply) => {
      const body = objectBody(req.body);
      if (!isObject(body.input)) throw new InferenceError("invalid_request", "input must be an object");
      const model = reqString(body, "model");
      const checked = resolveRequest({ model, input: body.input as unknown as PromptInput });
      return { tokens: await local.countTokens(model, checked.input, { signal: disconnectSignal(reply), keepAliveMs: keepAlive(body) }) };
    });

    app.post(`${INTERNAL_PREFIX}/load`, async (req, reply) => {
      const body = objectBody(req.body);
      return { info: await local.load(reqString(body, "model"), { signal: disconnectSignal(reply), keepAliveMs: keepAlive(body) }) };
    });

    app.post(`${INTERNAL_PREFIX}/unload`, async (req) => {
      const body = objectBody(req.body);
      return { unloaded: await local.unload(reqString(body, "model")) };
    });
  };
}
