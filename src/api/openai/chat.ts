import type { FastifyInstance } from "fastify";
import { objectId, unixSeconds } from "../ids.js";
import { resolveRequest } from "../../inference/request.js";
import type { GenerationResult } from "../../inference/result.js";
import { choices, generateChoices, modelId, streamChoices, type ChoicesWriter, type Serving } from "../generation.js";
import { objectBody, optBoolean, optNumber, optObject, reqString } from "../http/fields.js";
import { SSE_CONTENT_TYPE, sseEvent } from "../http/stream.js";
import { openaiErrorBody } from "./errors.js";
import { chatMessages } from "./messages.js";
import { chatLogprob, choiceCount, finishReason, maxTokensField, refuseJsonFormat, samplingFields, stopField, streamOptions, usageOf } from "./request.js";

/**
 * POST /v1/chat/completions, with `n` choices (each its own sequence, choice i seeded seed + i).
 * Streamed: a role chunk per choice, content chunks (with logprobs when asked), a chunk with
 * finish_reason as each choice ends (every chunk names its choice's index), with
 * stream_options.include_usage one more chunk with `choices: []` and usage (every chunk before it
 * has `usage: null`), then `data: [DONE]`. A failure after the stream started is sent as
 * `data: {"error": {...}}`.
 */
export function chatCompletions(serving: Serving) {
  return (app: FastifyInstance) => {
    app.post("/v1/chat/completions", async (req, reply) => {
      const body = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      const n = choiceCount(body);
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
        const chunk = (index: number, delta: object, fin: string | null, logprobs: object | null = null) =>
          sseEvent({ ...base, choices: [{ index, delta, logprobs, finish_reason: fin }], ...extra });
        const writer: ChoicesWriter = {
          format: { contentType: SSE_CONTENT_TYPE, keepAlive: () => ": loading model\n\n" },
          start: () => Array.from({ length: n }, (_, i) => chunk(i, { role: "assistant", content: "" }, null)).join(""),
          token: (e, i) => (e.text || e.logprobs ? chunk(i, { content: e.text }, null, e.logprobs ? { content: [chatLogprob(e.logprobs)], refusal: null } : null) : ""),
          finish: (r, i) => chunk(i, {}, finishReason(r)),
          end: (rs) => (includeUsage ? sseEvent({ ...base, choices: [], usage: usageOf(rs) }) : "") + sseEvent("[DONE]"),
          error: (e) => sseEvent(openaiErrorBody(e)),
        };
        return streamChoices(serving, reply, choices(request, n), writer);
      }
      const rs = await generateChoices(serving, reply, choices(request, n));
      return completion(id, created, model, rs, wantLogprobs);
    });
  };
}

function completion(id: string, created: number, model: string, rs: GenerationResult[], logprobs: boolean) {
  return {
    id,
    object: "chat.completion",
    created,
    model,
    system_fingerprint: null,
    choices: rs.map((r, index) => ({
      index,
      message: { role: "assistant", content: r.text, refusal: null },
      logprobs: logprobs ? { content: (r.logprobs ?? []).map(chatLogprob), refusal: null } : null,
      finish_reason: finishReason(r),
    })),
    usage: usageOf(rs),
  };
}
