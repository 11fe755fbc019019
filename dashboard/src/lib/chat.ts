import { ApiError, request } from "./api.svelte.js";
import { readSse } from "./sse.js";

/**
 * One streamed chat completion through the node's OpenAI API. Calls onText with each piece of the
 * answer; resolves with the timings the page shows: time to first token and decode tok/s (tokens
 * after the first, over the time since the first; the count comes from the usage chunk).
 */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatSettings {
  temperature: number;
  topP: number;
  maxTokens: number;
}

export interface ChatStats {
  ttftMs: number;
  tokens: number;
  tps: number | null;
  finish: string;
}

export async function streamChat(model: string, messages: ChatMessage[], s: ChatSettings, onText: (t: string) => void, signal: AbortSignal): Promise<ChatStats> {
  const start = performance.now();
  const res = await request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true }, temperature: s.temperature, top_p: s.topP, max_tokens: s.maxTokens }),
    signal,
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiError(res.status, body?.error?.message ?? `HTTP ${res.status}`);
  }
  let first = 0;
  let last = 0;
  let pieces = 0;
  let tokens: number | null = null;
  let finish = "";
  for await (const m of readSse(res, signal)) {
    if (m.data === "[DONE]") break;
    const chunk = JSON.parse(m.data) as {
      error?: { message: string };
      choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
      usage?: { completion_tokens: number } | null;
    };
    if (chunk.error) throw new Error(chunk.error.message);
    const c = chunk.choices?.[0];
    const text = c?.delta?.content;
    if (text) {
      const now = performance.now();
      if (!first) first = now;
      last = now;
      pieces++;
      onText(text);
    }
    if (c?.finish_reason) finish = c.finish_reason;
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  if (signal.aborted) throw new DOMException("stopped", "AbortError");
  const n = tokens ?? pieces;
  const span = (last - first) / 1000;
  return { ttftMs: first ? first - start : performance.now() - start, tokens: n, tps: n > 1 && span > 0 ? (n - 1) / span : null, finish };
}
