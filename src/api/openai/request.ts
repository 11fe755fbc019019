import type { GenerationResult, TokenLogprobs } from "../../inference/result.js";
import type { InferenceRequest } from "../../inference/request.js";
import { MAX_CHOICES } from "../generation.js";
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

/** `best_of` other than 1 is refused: every choice generated is returned. */
export function refuseBestOf(body: Json): void {
  const n = optNumber(body, "best_of", { integer: true, min: 1, max: 128 });
  if (n !== undefined && n !== 1) throw bad("best_of", "only 1 is supported (ask for n choices instead)");
}

/** `n`: how many choices (default 1, at most MAX_CHOICES). */
export function choiceCount(body: Json): number {
  return optNumber(body, "n", { integer: true, min: 1, max: MAX_CHOICES }) ?? 1;
}

/** Usage of a request's choices: the prompt counted once, the completions summed. */
export function usageOf(rs: GenerationResult[]) {
  const prompt = rs[0]!.timings.promptTokens;
  const completion = rs.reduce((s, r) => s + r.timings.generatedTokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: rs[0]!.timings.cachedTokens },
  };
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

