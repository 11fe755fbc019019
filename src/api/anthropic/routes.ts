import type { FastifyInstance } from "fastify";
import { objectId } from "../ids.js";
import { resolveRequest, type InferenceRequest } from "../../inference/request.js";
import type { GenerationResult } from "../../inference/result.js";
import type { ChatMessage } from "../../models/types.js";
import { generateOnce, modelId, streamGeneration, type Serving, type StreamWriter } from "../generation.js";
import { acceptJsonBodies } from "../http/body.js";
import { bad, isObject, objectBody, optBoolean, optCount, optNumber, optStringList, reqString, type Json } from "../http/fields.js";
import { SSE_CONTENT_TYPE, sseEvent } from "../http/stream.js";
import { useErrorStyle } from "../errors.js";

import { anthropicErrorBody } from "./errors.js";

/**
 * The Anthropic Messages API as Claude Code uses it: POST /v1/messages (also with ?beta=true) and
 * /v1/messages/count_tokens. `system` as a string or text blocks; a `system` message in the middle
 * of `messages` is accepted; unknown fields and anthropic-beta values are ignored. Tool use and
 * tool results are shown to the model as text; images and documents are refused (text models).
 */

const SKIPPED_BLOCKS = new Set(["thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload", "search_result"]);
const MEDIA_BLOCKS = new Set(["image", "document"]);

function blockText(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw bad(param, "must be a string or an array of content blocks");
  const out: string[] = [];
  content.forEach((b, j) => {
    const p = `${param}[${j}]`;
    if (!isObject(b) || typeof b.type !== "string") throw bad(p, "must be a content block with a type");
    switch (b.type) {
      case "text":
        if (typeof b.text !== "string") throw bad(`${p}.text`, "must be a string");
        out.push(b.text);
        return;
      case "tool_use":
        out.push(JSON.stringify({ tool_use: b.name, id: b.id, input: b.input ?? {} }));
        return;
      case "tool_result":
        out.push(JSON.stringify({ tool_result: b.tool_use_id, content: typeof b.content === "string" ? b.content : blockText(b.content ?? [], `${p}.content`), ...(b.is_error ? { is_error: true } : {}) }));
        return;
      default:
        if (MEDIA_BLOCKS.has(b.type)) throw bad(p, `${b.type} blocks are not supported: this node serves text-only models`);
        if (!SKIPPED_BLOCKS.has(b.type)) throw bad(`${p}.type`, `unknown content block type '${b.type}'`);
    }
  });
  return out.join("\n");
}

function messagesOf(body: Json): ChatMessage[] {
  const out: ChatMessage[] = [];
  const system = body.system;
  if (system !== undefined && system !== null) out.push({ role: "system", content: blockText(system, "system") });
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw bad("messages", "must be a non-empty array of messages");
  messages.forEach((m, i) => {
    const p = `messages[${i}]`;
    if (!isObject(m)) throw bad(p, "must be an object with a role and content");
    if (m.role !== "user" && m.role !== "assistant" && m.role !== "system") throw bad(`${p}.role`, `must be user or assistant, got ${JSON.stringify(m.role) ?? "nothing"}`);
    out.push({ role: m.role, content: blockText(m.content, `${p}.content`) });
  });
  return out;
}

function requestOf(body: Json, model: string, needMaxTokens: boolean): InferenceRequest {
  const maxTokens = optCount(body, "max_tokens");
  if (needMaxTokens && maxTokens === undefined) throw bad("max_tokens", "is required");
  const topP = optNumber(body, "top_p", { min: 0, max: 1 });
  return {
    model,
    input: { kind: "chat", messages: messagesOf(body) },
    maxTokens,
    stop: optStringList(body, "stop_sequences"),
    temperature: optNumber(body, "temperature", { min: 0, max: 1 }),
    topP: topP === undefined ? undefined : Math.max(topP, Number.MIN_VALUE),
    topK: optNumber(body, "top_k", { integer: true, min: 0, max: 1_000_000 }),
  };
}

function stopReason(r: GenerationResult): { stop_reason: string; stop_sequence: string | null } {
  if (r.finishReason === "length") return { stop_reason: "max_tokens", stop_sequence: null };
  if (r.stoppedBy && "string" in r.stoppedBy) return { stop_reason: "stop_sequence", stop_sequence: r.stoppedBy.string };
  return { stop_reason: "end_turn", stop_sequence: null };
}

export function anthropicRoutes(serving: Serving) {
  return async (app: FastifyInstance) => {
    acceptJsonBodies(app);
    useErrorStyle(app, "anthropic", serving.log);

    app.post("/v1/messages/count_tokens", async (req) => {
      const body = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      const r = resolveRequest(requestOf(body, model, false));
      return { input_tokens: await serving.models.countTokens(model, r.input) };
    });

    app.post("/v1/messages", async (req, reply) => {
      const body = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      const request = resolveRequest(requestOf(body, model, true));
      const id = objectId("msg_", request.id);
      reply.header("request-id", objectId("req_", request.id));
      const usage = (r: GenerationResult) => ({ input_tokens: r.timings.promptTokens, output_tokens: r.timings.generatedTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
      if (optBoolean(body, "stream") === true) {
        const ev = (type: string, data: object) => sseEvent({ type, ...data }, type);
        const writer: StreamWriter = {
          format: { contentType: SSE_CONTENT_TYPE, keepAlive: () => ev("ping", {}) },
          start: (p) => {
            const message = { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null };
            return (
              ev("message_start", { message: { ...message, usage: { input_tokens: p.promptTokens, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } } }) +
              ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
              ev("ping", {})
            );
          },
          token: (e) => (e.text ? ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: e.text } }) : ""),
          end: (r) =>
            ev("content_block_stop", { index: 0 }) +
            ev("message_delta", { delta: stopReason(r), usage: { input_tokens: r.timings.promptTokens, output_tokens: r.timings.generatedTokens } }) +
            ev("message_stop", {}),
          error: (e) => sseEvent(anthropicErrorBody(e), "error"),
        };
        return streamGeneration(serving, reply, request, writer);
      }
      const r = await generateOnce(serving, reply, request);
      return { id, type: "message", role: "assistant", model, content: [{ type: "text", text: r.text }], ...stopReason(r), usage: usage(r) };
    });
  };
}
