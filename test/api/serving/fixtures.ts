import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize } from "../../../src/models/synth/synthesize.js";
import { loadTokenizer } from "../../../src/models/tokenizer/index.js";
import type { ChatMessage, Tokenizer } from "../../../src/models/types.js";

/**
 * A tiny synthetic qwen3 model with the real Qwen3 tokenizer and chat template (quick to write,
 * load and run on 2 cores), written into a temp dir per test file.
 */
export interface TinyModel {
  dir: string;
  /** Path of the GGUF file; the node serves it under its file name. */
  path: string;
  id: string;
  tokenizer: Tokenizer;
  /** Prompt tokens the chat template makes of these messages (counted here, not by the node). */
  promptTokens(messages: ChatMessage[]): number;
  remove(): Promise<void>;
}

export async function tinyModel(id = "tiny-qwen3"): Promise<TinyModel> {
  const dir = await mkdtemp(join(tmpdir(), "tessera-serving-"));
  const path = join(dir, `${id}.gguf`);
  await synthesize({ arch: "qwen3", preset: "tiny", format: "gguf", quant: "q8_0", vocab: "qwen3", out: path, seed: 3 });
  const tokenizer = await loadTokenizer(path);
  return {
    dir,
    path,
    id,
    tokenizer,
    promptTokens: (messages) => tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })).length,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Server-sent events of a response body: [{event, data}] with data parsed as JSON unless it is [DONE]. */
export function parseSse(text: string): { event?: string; data: unknown; comment?: string }[] {
  const out: { event?: string; data: unknown; comment?: string }[] = [];
  for (const block of text.split("\n\n")) {
    if (!block.trim()) continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) out.push({ comment: line.slice(1).trim(), data: undefined });
      else if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) {
      const d = data.join("\n");
      out.push({ ...(event ? { event } : {}), data: d === "[DONE]" ? d : JSON.parse(d) });
    }
  }
  return out;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body), signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

export async function getText(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}
