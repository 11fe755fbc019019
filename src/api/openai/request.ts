import type { GenerationResult, TokenLogprobs } from "../../inference/result.js";
import type { InferenceRequest } from "../../inference/request.js";
import { bad, optBoolean, optCount, optNumber, optObject, optSeed, optStringList, type Json } from "../http/fields.js";

/**
 * Fields chat completions, completions and responses share, mapped to the canonical request.
 * Beyond OpenAI's own: top_k, min_p and repetition_penalty (as vLLM and llama.cpp's server take them).
 */
export function samplingFields(body: Json): Omit<InferenceRequest, "input"> {
  return {
    temperature: optNumber(body, "temperature", { min: 0, max: 2 }),
    topP: nucleus(optNumber(body, "top_p", { min: 0, max: 1 })),
    topK: optNumber(body, "top_k", { integer: true, min: 0, max: 1_000_000 }),
    minP: optNumber(body, "min_p", { min: 0, max: 1 }),
    repetitionPenalty: optNumber(body, "repetition_penalty", { min: 0.01, max: 10 }),
    presencePenalty: optNumber(body, "presence_penalty", { min: -2, max: 2 }),
    frequencyPenalty: optNumber(body, "frequency_penalty", { min: -2, max: 2 }),
    seed: optSeed(body, "seed"),
  };
}

/** top_p 0 keeps only the most likely token (the sampler's nucleus always holds the crossing token). */
export function nucleus(p: number | undefined): number | undefined {
  return p === undefined ? undefined : Math.max(p, Number.MIN_VALUE);
}

/** `stop`: a string or up to 32 strings. */
export function stopField(body: Json): string[] | undefined {
  return optStringList(body, "stop");
}

/** `n` other than 1 is refused: one sequence per request. */
export function refuseN(body: Json, key = "n"): void {
  const n = optNumber(body, key, { integer: true, min: 1, max: 128 });
  if (n !== undefined && n !== 1) throw bad(key, "only 1 choice per request is supported");
}

/** Structured output is not enforced here, so asking for it is refused rather than ignored. */
export function refuseJsonFormat(format: Json | undefined, param: string): void {
  if (!format) return;
  const type = format.type;
  if (type === undefined || type === "text") return;
  if (type === "json_object" || type === "json_schema") throw bad(param, `${type} output is not supported; ask for JSON in the prompt instead`);
  throw bad(param, `unknown format type '${String(type)}'`);
}

export function streamOptions(body: Json): { includeUsage: boolean } {
  const o = optObject(body, "stream_options");
  return { includeUsage: o ? optBoolean(o, "include_usage", "stream_options.include_usage") === true : false };
}

/** max_completion_tokens (current name) wins over max_tokens (older name). */
export function maxTokensField(body: Json): number | undefined {
  return optCount(body, "max_completion_tokens") ?? optCount(body, "max_tokens");
}

export function usage(r: GenerationResult) {
  return {
    prompt_tokens: r.timings.promptTokens,
    completion_tokens: r.timings.generatedTokens,
    total_tokens: r.timings.promptTokens + r.timings.generatedTokens,
    prompt_tokens_details: { cached_tokens: r.timings.cachedTokens },
  };
}

export function finishReason(r: GenerationResult): "stop" | "length" {
  return r.finishReason === "length" ? "length" : "stop";
}

const bytes = (text: string) => [...Buffer.from(text, "utf8")];

/** Chat completions' logprobs entry for one token. */
export function chatLogprob(lp: TokenLogprobs) {
  return {
    token: lp.text,
    logprob: lp.logprob,
    bytes: bytes(lp.text),
    top_logprobs: lp.top.map((t) => ({ token: t.text, logprob: t.logprob, bytes: bytes(t.text) })),
  };
}

