import type { FastifyInstance } from "fastify";
import { objectId, unixSeconds } from "../ids.js";
import { resolveRequest } from "../../inference/request.js";
import type { GenerationResult } from "../../inference/result.js";
import { generateOnce, modelId, streamGeneration, type Serving, type StreamWriter } from "../generation.js";
import { objectBody, optBoolean, optNumber, optObject, reqString } from "../http/fields.js";
import { SSE_CONTENT_TYPE, sseEvent } from "../http/stream.js";
import { openaiErrorBody } from "./errors.js";
import { chatMessages } from "./messages.js";
import { chatLogprob, finishReason, maxTokensField, refuseJsonFormat, refuseN, samplingFields, stopField, streamOptions, usage } from "./request.js";

/**
 * POST /v1/chat/completions. Streamed: a role chunk, content chunks (with logprobs when asked), a
 * chunk with finish_reason, with stream_options.include_usage one more chunk with `choices: []` and
 * usage (every chunk before it has `usage: null`), then `data: [DONE]`. A failure after the stream
 * started is sent as `data: {"error": {...}}`.
 */
export function chatCompletions(serving: Serving) {
  return (app: FastifyInstance) => {
    app.post("/v1/chat/completions", async (req, reply) => {
      const body = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      refuseN(body);
      refuseJsonFormat(optObject(body, "response_format"), "response_format");
      const wantLogprobs = optBoolean(body, "logprobs") === true;
      const top = optNumber(body, "top_logprobs", { integer: true, min: 0, max: 20 });
      const request = resolveRequest({
        model,
        input: { kind: "chat", messages: chatMessages(body.messages) },
        maxTokens: maxTokensField(body),
        stop: stopField(body),
        logprobs: wantLogprobs ? (top ?? 0) : undefined,
        ...samplingFields(body),
      });
      const id = objectId("chatcmpl-", request.id);
      const created = unixSeconds();
      const base = { id, object: "chat.completion.chunk", created, model, system_fingerprint: null };
      if (optBoolean(body, "stream") === true) {
        const { includeUsage } = streamOptions(body);
        const extra = includeUsage ? { usage: null } : {};
        const chunk = (delta: object, fin: string | null, logprobs: object | null = null) =>
          sseEvent({ ...base, choices: [{ index: 0, delta, logprobs, finish_reason: fin }], ...extra });
        const writer: StreamWriter = {
          format: { contentType: SSE_CONTENT_TYPE, keepAlive: () => ": loading model\n\n" },
          start: () => chunk({ role: "assistant", content: "" }, null),
          token: (e) => (e.text || e.logprobs ? chunk({ content: e.text }, null, e.logprobs ? { content: [chatLogprob(e.logprobs)], refusal: null } : null) : ""),
          end: (r) => chunk({}, finishReason(r)) + (includeUsage ? sseEvent({ ...base, choices: [], usage: usage(r) }) : "") + sseEvent("[DONE]"),
          error: (e) => sseEvent(openaiErrorBody(e)),
        };
        return streamGeneration(serving, reply, request, writer);
      }
      const r = await generateOnce(serving, reply, request);
      return completion(id, created, model, r, wantLogprobs);
    });
  };
}

function completion(id: string, created: number, model: string, r: GenerationResult, logprobs: boolean) {
  return {
    id,
    object: "chat.completion",
    created,
    model,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: r.text, refusal: null },
        logprobs: logprobs ? { content: (r.logprobs ?? []).map(chatLogprob), refusal: null } : null,
        finish_reason: finishReason(r),
      },
    ],
    usage: usage(r),
  };
}
