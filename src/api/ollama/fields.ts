import type { InferenceRequest } from "../../inference/request.js";
import type { KeepAlive } from "../../inference/service.js";
import type { ChatMessage } from "../../models/types.js";
import { parseKeepAlive } from "../http/duration.js";
import { bad, isObject, optArray, optNumber, optObject, optStringList, type Json } from "../http/fields.js";

/** Ollama's request fields → the canonical request (options, keep_alive, messages). */

/**
 * keep_alive: a number of seconds or a Go duration ("5m", "1h30m", "300ms", "0", "-1"). Negative
 * keeps the model loaded forever, 0 unloads it after the request. Returns milliseconds.
 */
export function keepAliveField(body: Json): KeepAlive {
  const v = body.keep_alive;
  if (v === undefined || v === null) return undefined;
  const ms = parseKeepAlive(v);
  if (ms === undefined) throw bad("keep_alive", "must be seconds or a duration such as '5m', '1h' or -1");
  return ms;
}

/** The `options` object (Modelfile parameters) → sampling fields; engine options (num_ctx, num_thread...) are ignored. */
export function optionFields(body: Json): Omit<InferenceRequest, "input" | "model"> {
  const o = optObject(body, "options") ?? {};
  const p = (k: string) => `options.${k}`;
  const numPredict = optNumber(o, "num_predict", { integer: true, min: -2, max: 0x7fffffff }, p("num_predict"));
  const topP = optNumber(o, "top_p", { min: 0, max: 1 }, p("top_p"));
  return {
    temperature: optNumber(o, "temperature", { min: 0, max: 100 }, p("temperature")),
    topK: optNumber(o, "top_k", { integer: true, min: 0, max: 1_000_000 }, p("top_k")),
    topP: topP === undefined ? undefined : Math.max(topP, Number.MIN_VALUE),
    minP: optNumber(o, "min_p", { min: 0, max: 1 }, p("min_p")),
    repetitionPenalty: optNumber(o, "repeat_penalty", { min: 0.01, max: 10 }, p("repeat_penalty")),
    penaltyLastN: optNumber(o, "repeat_last_n", { integer: true, min: -1, max: 0x7fffffff }, p("repeat_last_n")),
    presencePenalty: optNumber(o, "presence_penalty", { min: -2, max: 2 }, p("presence_penalty")),
    frequencyPenalty: optNumber(o, "frequency_penalty", { min: -2, max: 2 }, p("frequency_penalty")),
    seed: (() => {
      const s = optNumber(o, "seed", { integer: true }, p("seed"));
      return s === undefined || s < 0 ? undefined : s % 0x100000000;
    })(),
    // -1: until the end of the text; -2: fill the context; both are the default here
    maxTokens: numPredict === undefined || numPredict < 1 ? undefined : numPredict,
    stop: optStringList(o, "stop", p("stop")),
  };
}

/** `format` ("json" or a JSON schema) would need constrained decoding, which this node does not do. */
export function refuseFormat(body: Json): void {
  const f = body.format;
  if (f === undefined || f === null || f === "") return;
  throw bad("format", "structured output (json or a schema) is not supported; ask for JSON in the prompt instead");
}

export function refuseImages(images: unknown, param: string): void {
  if (images === undefined || images === null) return;
  if (!Array.isArray(images)) throw bad(param, "must be an array");
  if (images.length > 0) throw bad(param, "images are not supported: this node serves text-only models");
}

export function chatMessages(body: Json): ChatMessage[] {
  return (optArray(body, "messages") ?? []).map((m, i) => {
    const p = `messages[${i}]`;
    if (!isObject(m)) throw bad(p, "must be an object with a role and content");
    if (!["system", "user", "assistant", "tool"].includes(m.role as string)) throw bad(`${p}.role`, `must be system, user, assistant or tool, got ${JSON.stringify(m.role) ?? "nothing"}`);
    const content = m.content ?? "";
    if (typeof content !== "string") throw bad(`${p}.content`, "must be a string");
    refuseImages(m.images, `${p}.images`);
    const calls = Array.isArray(m.tool_calls) ? m.tool_calls.map((c) => JSON.stringify(isObject(c) ? (c.function ?? c) : c)).join("\n") : "";
    return { role: m.role as ChatMessage["role"], content: calls ? (content ? `${content}\n${calls}` : calls) : content };
  });
}
