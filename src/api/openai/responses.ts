import type { FastifyInstance } from "fastify";
import { objectId, unixSeconds } from "../ids.js";
import type { InferenceError } from "../../inference/errors.js";
import { resolveRequest } from "../../inference/request.js";
import type { GenerationResult } from "../../inference/result.js";
import type { ChatMessage } from "../../models/types.js";
import { generateOnce, modelId, streamGeneration, type Serving, type StreamWriter } from "../generation.js";
import { bad, isObject, objectBody, optArray, optBoolean, optCount, optObject, optString, reqString, type Json } from "../http/fields.js";
import { SSE_CONTENT_TYPE, sseEvent } from "../http/stream.js";
import { openaiErrorBody } from "./errors.js";
import { contentText } from "./messages.js";
import { refuseJsonFormat, samplingFields } from "./request.js";

/**
 * POST /v1/responses, as Codex CLI and the OpenAI SDK use it: `input` as a string or a list of
 * items (messages, function calls and their outputs; reasoning and unknown items are skipped),
 * `instructions` as the system message, tools of unknown types skipped, `previous_response_id`
 * refused (nothing is stored: send the whole conversation). Streamed as the documented event
 * sequence (response.created … response.completed), every event with its sequence_number.
 */

function roleOf(role: unknown, param: string): ChatMessage["role"] {
  if (role === "user") return "user";
  if (role === "assistant") return "assistant";
  if (role === "system" || role === "developer") return "system";
  throw bad(param, `must be user, assistant, system or developer, got ${JSON.stringify(role) ?? "nothing"}`);
}

function inputMessages(body: Json): ChatMessage[] {
  const messages: ChatMessage[] = [];
  const instructions = optString(body, "instructions");
  if (instructions) messages.push({ role: "system", content: instructions });
  const input = body.input;
  if (typeof input === "string") {
    if (input !== "") messages.push({ role: "user", content: input });
  } else if (Array.isArray(input)) {
    input.forEach((item, i) => {
      const p = `input[${i}]`;
      if (!isObject(item)) throw bad(p, "must be an object");
      const type = item.type ?? "message";
      if (type === "message") messages.push({ role: roleOf(item.role, `${p}.role`), content: contentText(item.content, `${p}.content`) });
      else if (type === "function_call") messages.push({ role: "assistant", content: JSON.stringify({ name: item.name, arguments: item.arguments }) });
      else if (type === "function_call_output") messages.push({ role: "tool", content: typeof item.output === "string" ? item.output : JSON.stringify(item.output ?? "") });
      // reasoning items, tool calls of built-in tools and item types newer than this code: nothing to show the model
    });
  } else if (input !== undefined && input !== null) {
    throw bad("input", "must be a string or an array of input items");
  }
  // A probe with empty input still gets an answer: the template needs a turn to answer.
  if (!messages.some((m) => m.role !== "system")) messages.push({ role: "user", content: "" });
  return messages;
}

/** Function tools are echoed back; tools of other (built-in or unknown) types are skipped. */
function functionTools(body: Json): Json[] {
  return (optArray(body, "tools") ?? []).filter((t): t is Json => isObject(t) && t.type === "function");
}

export function responses(serving: Serving) {
  return (app: FastifyInstance) => {
    app.post("/v1/responses", async (req, reply) => {
      const body = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      if (optString(body, "previous_response_id") !== undefined) {
        throw bad("previous_response_id", "is not supported: this node stores no responses; send the whole conversation in input (store: false)");
      }
      const text = optObject(body, "text");
      refuseJsonFormat(text ? optObject(text, "format", "text.format") : undefined, "text.format");
      const maxOutput = optCount(body, "max_output_tokens");
      const request = resolveRequest({ model, input: { kind: "chat", messages: inputMessages(body) }, maxTokens: maxOutput, ...samplingFields(body) });
      const id = objectId("resp_", request.id);
      const itemId = objectId("msg_", request.id);
      const createdAt = unixSeconds();
      const tools = functionTools(body);
      const shell = (status: string, output: unknown[], r?: GenerationResult, error: unknown = null) => ({
        id,
        object: "response",
        created_at: createdAt,
        status,
        error,
        incomplete_details: r && r.finishReason === "length" ? { reason: "max_output_tokens" } : null,
        instructions: optString(body, "instructions") ?? null,
        max_output_tokens: maxOutput ?? null,
        model,
        output,
        parallel_tool_calls: optBoolean(body, "parallel_tool_calls") ?? true,
        previous_response_id: null,
        reasoning: { effort: null, summary: null },
        store: false,
        temperature: request.sampling.temperature,
        text: { format: { type: "text" } },
        tool_choice: body.tool_choice ?? "auto",
        tools,
        top_p: request.sampling.topP,
        truncation: "disabled",
        usage: r
          ? {
              input_tokens: r.timings.promptTokens,
              input_tokens_details: { cached_tokens: r.timings.cachedTokens },
              output_tokens: r.timings.generatedTokens,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: r.timings.promptTokens + r.timings.generatedTokens,
            }
          : null,
        metadata: isObject(body.metadata) ? body.metadata : {},
      });
      const part = (t: string) => ({ type: "output_text", text: t, annotations: [], logprobs: [] });
      const item = (status: string, t?: string) => ({ id: itemId, type: "message", status, role: "assistant", content: t === undefined ? [] : [part(t)] });
      const statusOf = (r: GenerationResult) => (r.finishReason === "length" ? "incomplete" : "completed");

      if (optBoolean(body, "stream") === true) {
        let seq = 0;
        let textSoFar = "";
        const ev = (type: string, data: object) => sseEvent({ type, sequence_number: seq++, ...data }, type);
        const at = { item_id: itemId, output_index: 0, content_index: 0 };
        const writer: StreamWriter = {
          format: { contentType: SSE_CONTENT_TYPE, keepAlive: () => ": loading model\n\n" },
          start: () =>
            ev("response.created", { response: shell("in_progress", []) }) +
            ev("response.in_progress", { response: shell("in_progress", []) }) +
            ev("response.output_item.added", { output_index: 0, item: item("in_progress") }) +
            ev("response.content_part.added", { ...at, part: part("") }),
          token: (e) => {
            if (!e.text) return "";
            textSoFar += e.text;
            return ev("response.output_text.delta", { ...at, delta: e.text, logprobs: [] });
          },
          end: (r) =>
            ev("response.output_text.done", { ...at, text: r.text, logprobs: [] }) +
            ev("response.content_part.done", { ...at, part: part(r.text) }) +
            ev("response.output_item.done", { output_index: 0, item: item("completed", r.text) }) +
            ev(`response.${statusOf(r)}`, { response: shell(statusOf(r), [item("completed", r.text)], r) }),
          error: (e: InferenceError) => {
            const { error } = openaiErrorBody(e);
            return (
              ev("error", { code: error.code ?? error.type, message: error.message, param: error.param }) +
              ev("response.failed", { response: shell("failed", textSoFar ? [item("incomplete", textSoFar)] : [], undefined, { code: error.code ?? "server_error", message: error.message }) })
            );
          },
        };
        return streamGeneration(serving, reply, request, writer);
      }
      const r = await generateOnce(serving, reply, request);
      return { ...shell(statusOf(r), [item("completed", r.text)], r), output_text: r.text };
    });
  };
}
