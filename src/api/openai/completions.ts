import type { FastifyInstance } from "fastify";
import { objectId, unixSeconds } from "../ids.js";
import { resolveRequest, type PromptInput } from "../../inference/request.js";
import type { TokenLogprobs } from "../../inference/result.js";
import { choices, generateChoices, modelId, streamChoices, type ChoicesWriter, type Serving } from "../generation.js";
import { bad, objectBody, optBoolean, optNumber, optString, reqString, type Json } from "../http/fields.js";
import { SSE_CONTENT_TYPE, sseEvent } from "../http/stream.js";
import { openaiErrorBody } from "./errors.js";
import { choiceCount, finishReason, maxTokensField, refuseBestOf, samplingFields, stopField, streamOptions, usageOf } from "./request.js";

/** The legacy prompt: a string, token ids, or a list of exactly one of those. */
function promptInput(value: unknown): PromptInput {
  let v = value;
  if (Array.isArray(v) && v.length === 1 && (typeof v[0] === "string" || Array.isArray(v[0]))) v = v[0];
  if (typeof v === "string") return { kind: "text", text: v };
  if (Array.isArray(v) && v.length > 0 && v.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) return { kind: "tokens", tokens: v as number[] };
  if (Array.isArray(v) && v.length > 1) throw bad("prompt", "one prompt per request is supported");
  throw bad("prompt", "must be a string, an array of token ids, or a list of one of those");
}

/** Legacy completions logprobs: tokens, their logprobs, the top alternatives as {text: logprob}, text offsets. */
function legacyLogprobs(lps: TokenLogprobs[], offset: number) {
  const text_offset: number[] = [];
  let at = offset;
  for (const lp of lps) {
    text_offset.push(at);
    at += lp.text.length;
  }
  return {
    tokens: lps.map((l) => l.text),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [t.text, t.logprob]))),
    text_offset,
  };
}

/**
 * POST /v1/completions (legacy text completions): prompt as text or tokens, echo, logprobs (0–5
 * alternatives), stop, `n` choices, streaming with include_usage like chat completions.
 */
export function completions(serving: Serving) {
  return (app: FastifyInstance) => {
    app.post("/v1/completions", async (req, reply) => {
      const body: Json = objectBody(req.body);
      const model = modelId(serving, reqString(body, "model"));
      const n = choiceCount(body);
      refuseBestOf(body);
      if (optString(body, "suffix")) throw bad("suffix", "is not supported");
      const input = promptInput(body.prompt);
      const echo = optBoolean(body, "echo") === true;
      if (echo && input.kind !== "text") throw bad("echo", "needs a text prompt");
      const logprobs = optNumber(body, "logprobs", { integer: true, min: 0, max: 5 });
      const request = resolveRequest({ model, input, maxTokens: maxTokensField(body) ?? 16, stop: stopField(body), logprobs, ...samplingFields(body) });
      const prefix = echo && input.kind === "text" ? input.text : "";
      const id = objectId("cmpl-", request.id);
      const created = unixSeconds();
      const base = { id, object: "text_completion", created, model, system_fingerprint: null };
      if (optBoolean(body, "stream") === true) {
        const { includeUsage } = streamOptions(body);
        const extra = includeUsage ? { usage: null } : {};
        // each choice's text offset so far (its logprobs' text_offset counts from the echoed prompt)
        const at = new Array<number>(n).fill(prefix.length);
        const chunk = (index: number, text: string, fin: string | null, lp: TokenLogprobs | undefined) => {
          const out = sseEvent({ ...base, choices: [{ text, index, logprobs: lp ? legacyLogprobs([lp], at[index]!) : null, finish_reason: fin }], ...extra });
          at[index]! += text.length;
          return out;
        };
        const writer: ChoicesWriter = {
          format: { contentType: SSE_CONTENT_TYPE, keepAlive: () => ": loading model\n\n" },
          start: () => (prefix ? Array.from({ length: n }, (_, i) => chunk(i, prefix, null, undefined)).join("") : ""),
          token: (e, i) => (e.text || e.logprobs ? chunk(i, e.text, null, logprobs !== undefined ? e.logprobs : undefined) : ""),
          finish: (r, i) => chunk(i, "", finishReason(r), undefined),
          end: (rs) => (includeUsage ? sseEvent({ ...base, choices: [], usage: usageOf(rs) }) : "") + sseEvent("[DONE]"),
          error: (e) => sseEvent(openaiErrorBody(e)),
        };
        return streamChoices(serving, reply, choices(request, n), writer);
      }
      const rs = await generateChoices(serving, reply, choices(request, n));
      return {
        id,
        object: "text_completion",
        created,
        model,
        system_fingerprint: null,
        choices: rs.map((r, index) => ({
          text: prefix + r.text,
          index,
          logprobs: logprobs !== undefined ? legacyLogprobs(r.logprobs ?? [], prefix.length) : null,
          finish_reason: finishReason(r),
        })),
        usage: usageOf(rs),
      };
    });
  };
}
