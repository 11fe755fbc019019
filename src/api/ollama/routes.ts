import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply } from "fastify";
import { resolveRequest, type PromptInput } from "../../inference/request.js";
import type { GenerationResult } from "../../inference/result.js";
import type { ModelCard, ModelInfo } from "../../inference/service.js";
import type { ChatMessage } from "../../models/types.js";
import { disconnectSignal, NDJSON_CONTENT_TYPE } from "../http/stream.js";
import { acceptJsonBodies } from "../http/body.js";
import { bad, objectBody, optBoolean, optString, type Json } from "../http/fields.js";
import { useErrorStyle } from "../errors.js";
import { generateOnce, modelCard, modelId, streamGeneration, type Serving, type StreamWriter } from "../generation.js";
import { ollamaErrorBody } from "./errors.js";
import { chatMessages, keepAliveField, optionFields, refuseFormat, refuseImages } from "./fields.js";

/**
 * The Ollama API, so the `ollama` CLI (OLLAMA_HOST=node:port), Open WebUI and Continue work against
 * any node: HEAD/GET /, /api/version, /api/tags, /api/show, /api/ps, /api/chat, /api/generate
 * (NDJSON streams by default; a request without messages/prompt loads the model and answers
 * done_reason "load", with keep_alive 0 it unloads and answers "unload"), /api/pull.
 */

/** The Ollama release whose API this matches; clients compare versions, not features. */
export const OLLAMA_COMPAT_VERSION = "0.12.0";

/** Ollama shows "forever" as a far-future expiry. */
const FOREVER = "2318-11-05T00:00:00Z";

const ns = (ms: number) => Math.round(ms * 1e6);
const now = () => new Date().toISOString();
const tagged = (id: string) => (id.includes(":") ? id : `${id}:latest`);

function digest(c: ModelCard): string {
  return createHash("sha256").update(`${c.id}\0${c.sizeBytes ?? 0}`).digest("hex");
}

function parameterSize(n: number | undefined): string {
  if (n === undefined) return "";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

function details(info: ModelInfo | undefined) {
  const family = info?.architecture ?? "";
  return { parent_model: "", format: info?.format ?? "gguf", family, families: family ? [family] : null, parameter_size: parameterSize(info?.parameterCount), quantization_level: "" };
}

function modelName(body: Json): string {
  // both are read, so a wrong type is refused even where the other wins
  const model = optString(body, "model");
  const older = optString(body, "name");
  const name = model ?? older;
  if (!name) throw bad("model", "is required");
  return name;
}

interface Timing {
  start: number;
  loadMs: number;
}

function stats(r: GenerationResult, t: Timing) {
  return {
    done_reason: r.finishReason === "length" ? "length" : "stop",
    total_duration: ns(performance.now() - t.start),
    load_duration: ns(t.loadMs),
    prompt_eval_count: r.timings.promptTokens,
    prompt_eval_duration: ns(r.timings.prefillMs),
    eval_count: r.timings.generatedTokens,
    eval_duration: ns(Math.max(0, r.timings.firstTokenMs - r.timings.prefillMs) + r.timings.decodeMs),
  };
}

export function ollamaRoutes(serving: Serving) {
  return async (app: FastifyInstance) => {
    acceptJsonBodies(app);
    useErrorStyle(app, "ollama", serving.log);

    app.get("/", async (_req, reply) => reply.type("text/plain; charset=utf-8").send("Ollama is running"));

    app.get("/api/version", async () => ({ version: OLLAMA_COMPAT_VERSION, tessera: serving.version }));

    app.get("/api/tags", async () => ({
      models: serving.models.uniqueModels().map((c) => ({
        name: tagged(c.id),
        model: tagged(c.id),
        modified_at: new Date(c.loadedAt ?? Date.now()).toISOString(),
        size: c.sizeBytes ?? c.info?.weightBytes ?? 0,
        digest: digest(c),
        details: details(c.info),
      })),
    }));

    app.get("/api/ps", async () => ({
      models: serving.models
        .uniqueModels()
        .filter((c) => c.state === "ready")
        .map((c) => ({
          name: tagged(c.id),
          model: tagged(c.id),
          size: c.info?.weightBytes ?? c.sizeBytes ?? 0,
          digest: digest(c),
          details: details(c.info),
          expires_at: c.expiresAt !== undefined ? new Date(c.expiresAt).toISOString() : FOREVER,
          size_vram: 0,
          context_length: c.info?.contextLength ?? 0,
        })),
    }));

    app.post("/api/show", async (req, reply) => {
      const body = objectBody(req.body);
      const id = modelId(serving, modelName(body));
      const info = await serving.models.load(id, { signal: disconnectSignal(reply) });
      const arch = info.architecture ?? "unknown";
      return {
        license: "",
        modelfile: `FROM ${id}\n`,
        parameters: "",
        template: info.chatTemplate ?? "",
        details: details(info),
        model_info: {
          "general.architecture": arch,
          ...(info.parameterCount !== undefined ? { "general.parameter_count": info.parameterCount } : {}),
          [`${arch}.context_length`]: info.contextLength,
          [`${arch}.vocab_size`]: info.vocabSize,
        },
        capabilities: ["completion"],
        modified_at: new Date(modelCard(serving, id)?.loadedAt ?? Date.now()).toISOString(),
      };
    });

    app.post("/api/pull", async (req, reply) => {
      const body = objectBody(req.body);
      // A model the cluster serves is there already; downloads arrive with the model registry.
      modelId(serving, modelName(body));
      const lines = [{ status: "pulling manifest" }, { status: "verifying sha256 digest" }, { status: "success" }];
      if (optBoolean(body, "stream") === false) return { status: "success" };
      return reply.type(NDJSON_CONTENT_TYPE).send(lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    });

    app.post("/api/chat", async (req, reply) => {
      const body = objectBody(req.body);
      const id = modelId(serving, modelName(body));
      refuseFormat(body);
      const keepAliveMs = keepAliveField(body);
      const messages = chatMessages(body);
      const shape = (extra: object) => ({ model: id, created_at: now(), message: { role: "assistant", content: "" }, ...extra });
      if (messages.length === 0) return loadOrUnload(serving, reply, id, keepAliveMs, shape);
      return generate(serving, reply, body, id, { kind: "chat", messages }, keepAliveMs, (text, extra = {}) => ({
        model: id,
        created_at: now(),
        message: { role: "assistant", content: text },
        ...extra,
      }));
    });

    app.post("/api/generate", async (req, reply) => {
      const body = objectBody(req.body);
      const id = modelId(serving, modelName(body));
      refuseFormat(body);
      refuseImages(body.images, "images");
      if (optString(body, "suffix")) throw bad("suffix", "fill-in-the-middle is not supported");
      if (optString(body, "template")) throw bad("template", "a per-request template is not supported; use raw: true with your own prompt");
      const keepAliveMs = keepAliveField(body);
      const prompt = optString(body, "prompt") ?? "";
      const shape = (extra: object) => ({ model: id, created_at: now(), response: "", ...extra });
      if (prompt === "") return loadOrUnload(serving, reply, id, keepAliveMs, shape);
      let input: PromptInput;
      if (optBoolean(body, "raw") === true) input = { kind: "text", text: prompt };
      else {
        const system = optString(body, "system");
        const messages: ChatMessage[] = system ? [{ role: "system", content: system }] : [];
        messages.push({ role: "user", content: prompt });
        input = { kind: "chat", messages };
      }
      return generate(serving, reply, body, id, input, keepAliveMs, (text, extra = {}) => ({ model: id, created_at: now(), response: text, ...extra }));
    });
  };
}

async function loadOrUnload(serving: Serving, reply: FastifyReply, id: string, keepAliveMs: number | undefined, shape: (extra: object) => object) {
  if (keepAliveMs === 0) {
    await serving.models.unload(id);
    return shape({ done_reason: "unload", done: true });
  }
  await serving.models.load(id, { signal: disconnectSignal(reply), keepAliveMs });
  return shape({ done_reason: "load", done: true });
}

async function generate(
  serving: Serving,
  reply: FastifyReply,
  body: Json,
  id: string,
  input: PromptInput,
  keepAliveMs: number | undefined,
  line: (text: string, extra?: object) => object,
) {
  const request = resolveRequest({ model: id, input, ...optionFields(body) });
  const timing: Timing = { start: performance.now(), loadMs: 0 };
  // Ollama's HTTP API streams unless told not to.
  if (optBoolean(body, "stream") !== false) {
    let loadingSince: number | undefined;
    const writer: StreamWriter = {
      format: {
        contentType: NDJSON_CONTENT_TYPE,
        keepAlive: () => {
          loadingSince ??= performance.now();
          // a line every client accepts: an empty piece of the answer
          return JSON.stringify(line("", { done: false })) + "\n";
        },
      },
      start: () => {
        if (loadingSince !== undefined) timing.loadMs = performance.now() - loadingSince;
        return "";
      },
      token: (e) => (e.text ? JSON.stringify(line(e.text, { done: false })) + "\n" : ""),
      end: (r) => JSON.stringify(line("", { done: true, ...stats(r, timing) })) + "\n",
      error: (e) => JSON.stringify(ollamaErrorBody(e)) + "\n",
    };
    return streamGeneration(serving, reply, request, writer, keepAliveMs);
  }
  const r = await generateOnce(serving, reply, request, keepAliveMs);
  return line(r.text, { done: true, ...stats(r, timing) });
}
