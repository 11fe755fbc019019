import { randomUUID } from "node:crypto";
import { randomSeed, type ResolvedSamplingParams } from "../engine/sampling/index.js";
import type { ChatMessage } from "../models/types.js";
import { InferenceError } from "./errors.js";
import { DEFAULT_SAMPLING, resolveSamplingParams, type SamplingDefaults, type SamplingParams } from "./sampling.js";

/**
 * The canonical request: what every API adapter (OpenAI, Ollama, Anthropic) and the CLI turn their
 * input into. It is resolved once (`resolveRequest`: defaults, seed, stop lists, logprobs) into a
 * frozen ResolvedRequest, and that value is what travels: to the worker thread, to another node, to
 * the generation loop. What needs the model (tokenizing, the context limit) happens where the model
 * runs (generator.ts).
 */

/** What to generate from. Chat messages go through the model's chat template; text is tokenized as is. */
export type PromptInput =
  | { kind: "chat"; messages: ChatMessage[] }
  | { kind: "text"; text: string }
  | { kind: "tokens"; tokens: number[] };

export interface InferenceRequest extends SamplingParams {
  /** The model id (after name resolution); "" where a caller holds the model itself. */
  model?: string;
  input: PromptInput;
  /** Most tokens to generate; default (and upper bound): what the context has left after the prompt. */
  maxTokens?: number;
  /** Generation ends before any of these strings; the string itself is not part of the text. */
  stop?: string[];
  /** Generation ends when one of these is sampled; default: the model's end-of-turn tokens. [] = none. */
  stopTokenIds?: number[];
  /** Report log-probabilities with this many alternatives per token (0: the chosen token only). */
  logprobs?: number;
}

export interface ResolvedRequest {
  /** Unique per request: cancel by id, log lines, API response ids derive from it. */
  readonly id: string;
  readonly model: string;
  readonly input: Readonly<PromptInput>;
  /** null: until the context is full. */
  readonly maxTokens: number | null;
  readonly sampling: Readonly<ResolvedSamplingParams>;
  readonly stop: readonly string[];
  /** null: the model's end-of-turn tokens. */
  readonly stopTokenIds: readonly number[] | null;
  /** null: no log-probabilities. */
  readonly logprobs: number | null;
}

/** Bounds that keep one request from costing more than it is worth (and a hostile one from hurting). */
export const REQUEST_LIMITS = Object.freeze({
  stopStrings: 32,
  stopLength: 1000,
  stopTokenIds: 1024,
  /** Alternatives per token, as OpenAI's top_logprobs. */
  logprobs: 20,
  maxTokens: 0x7fffffff,
  messages: 100_000,
});

function bad(message: string, param: string): InferenceError {
  return new InferenceError("invalid_request", message, { param });
}

function checkInput(input: PromptInput): PromptInput {
  if (input === null || typeof input !== "object") throw bad("the request has no input", "input");
  switch (input.kind) {
    case "chat": {
      if (!Array.isArray(input.messages)) throw bad("messages must be an array", "messages");
      if (input.messages.length > REQUEST_LIMITS.messages) throw bad(`at most ${REQUEST_LIMITS.messages} messages`, "messages");
      const messages = input.messages.map((m, i) => {
        if (!m || typeof m.content !== "string" || !["system", "user", "assistant", "tool"].includes(m.role)) {
          throw bad(`message ${i} must have a role (system, user, assistant, tool) and text content`, `messages[${i}]`);
        }
        return Object.freeze({ role: m.role, content: m.content });
      });
      return Object.freeze({ kind: "chat", messages: Object.freeze(messages) as ChatMessage[] });
    }
    case "text":
      if (typeof input.text !== "string") throw bad("the prompt must be a string", "prompt");
      return Object.freeze({ kind: "text", text: input.text });
    case "tokens":
      if (!Array.isArray(input.tokens) || !input.tokens.every((t) => Number.isInteger(t) && t >= 0)) {
        throw bad("prompt tokens must be an array of integers ≥ 0", "prompt");
      }
      return Object.freeze({ kind: "tokens", tokens: Object.freeze([...input.tokens]) as number[] });
    default:
      throw bad(`unknown input kind '${String((input as { kind?: unknown }).kind)}'`, "input");
  }
}

/**
 * Resolves a request once: sampling defaults from `defaults`, a random seed when none is given,
 * stop lists and logprobs checked. Throws InferenceError (invalid_request, naming the field).
 */
export function resolveRequest(req: InferenceRequest, opts: { defaults?: SamplingDefaults; id?: string } = {}): ResolvedRequest {
  const { model, input, maxTokens, stop, stopTokenIds, logprobs, ...sampling } = req;
  const seed = sampling.seed ?? randomSeed();
  const params = Object.freeze(resolveSamplingParams(sampling, seed, opts.defaults ?? DEFAULT_SAMPLING));
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > REQUEST_LIMITS.maxTokens)) {
    throw bad(`max tokens must be an integer in [1, ${REQUEST_LIMITS.maxTokens}], got ${String(maxTokens)}`, "maxTokens");
  }
  const stops = stop ?? [];
  if (!Array.isArray(stops) || stops.length > REQUEST_LIMITS.stopStrings) throw bad(`at most ${REQUEST_LIMITS.stopStrings} stop strings`, "stop");
  for (const s of stops) {
    if (typeof s !== "string" || s.length === 0 || s.length > REQUEST_LIMITS.stopLength) {
      throw bad(`stop strings must be non-empty strings of at most ${REQUEST_LIMITS.stopLength} characters`, "stop");
    }
  }
  if (stopTokenIds !== undefined) {
    if (!Array.isArray(stopTokenIds) || stopTokenIds.length > REQUEST_LIMITS.stopTokenIds || !stopTokenIds.every((t) => Number.isInteger(t) && t >= 0)) {
      throw bad(`stop token ids must be at most ${REQUEST_LIMITS.stopTokenIds} integers ≥ 0`, "stopTokenIds");
    }
  }
  if (logprobs !== undefined && (!Number.isInteger(logprobs) || logprobs < 0 || logprobs > REQUEST_LIMITS.logprobs)) {
    throw bad(`logprobs must be an integer in [0, ${REQUEST_LIMITS.logprobs}], got ${String(logprobs)}`, "logprobs");
  }
  if (model !== undefined && typeof model !== "string") throw bad("model must be a string", "model");
  return Object.freeze({
    id: opts.id ?? randomUUID(),
    model: model ?? "",
    input: checkInput(input),
    maxTokens: maxTokens ?? null,
    sampling: params,
    stop: Object.freeze([...stops]),
    stopTokenIds: stopTokenIds === undefined ? null : Object.freeze([...stopTokenIds]),
    logprobs: logprobs ?? null,
  });
}

/** A resolved request for another model id (the router maps client names to ids after resolution). */
export function withModel(req: ResolvedRequest, model: string): ResolvedRequest {
  return Object.freeze({ ...req, model });
}
