import { TesseraError } from "../errors.js";

/**
 * `tessera bench --url`: benchmarks a running node (or any OpenAI-compatible server) through
 * POST /v1/completions with stream: true. Each request's time to first token is the time until the
 * first streamed text; its decode rate is (completion tokens − 1) over the time from that first
 * text to the last chunk. Token counts come from the stream's usage chunk (include_usage), as the
 * stream does not send a chunk for a token whose text is still incomplete UTF-8.
 * A run puts `concurrency` requests in flight at once; its aggregate rate is all their completion
 * tokens over the run's wall time. One small warm-up request goes first (it may place the model).
 */
export interface HttpBenchOptions {
  url: string;
  model: string;
  promptTokens: number;
  genTokens: number;
  concurrency: number;
  repeat: number;
  /** Send the prompt as words instead of token ids (servers that take only text). */
  text: boolean;
  timeoutMs: number;
}

export interface RequestTiming {
  ttftMs: number;
  /** Single-stream decode rate after the first token; NaN with fewer than 2 tokens. */
  decodeTps: number;
  promptTokens: number;
  completionTokens: number;
  totalMs: number;
}

export interface RunTiming {
  wallMs: number;
  /** Σ completion tokens / wall time. */
  aggregateTps: number;
  requests: RequestTiming[];
}

export interface HttpBenchResult {
  url: string;
  model: string;
  promptTokens: number;
  genTokens: number;
  concurrency: number;
  repeat: number;
  prompt: "tokens" | "text";
  /** Medians over runs (aggregate) and over every request of every run (the rest). */
  aggregateTps: number;
  decodeTps: number;
  ttftMsP50: number;
  ttftMsP95: number;
  /** Prompt and completion tokens the server counted (median per request). */
  servedPromptTokens: number;
  servedCompletionTokens: number;
  runs: RunTiming[];
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

/** Linear interpolation between order statistics (q = 0.95 → p95); NaN for no samples. */
export function quantile(xs: number[], q: number): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (at - lo);
}

/** The base URL with a trailing slash removed, or a TesseraError naming the flag. */
export function baseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TesseraError(`--url must be an http(s) URL such as http://127.0.0.1:8080, got '${raw}'`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TesseraError(`--url must be an http(s) URL, got '${raw}'`);
  return u.href.replace(/\/+$/, "");
}

/** Token ids every vocabulary of a real model has (well below the smallest, ≈32k). */
function promptIds(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + salt * 104729) % 900));
}

/** Words that make about one token each in common tokenizers. */
function promptText(n: number, salt: number): string {
  const words = ["time", "water", "stone", "river", "light", "green", "house", "music", "paper", "cloud"];
  return Array.from({ length: n }, (_, i) => words[(i * 7 + salt) % words.length]).join(" ");
}

function why(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError") return "timed out";
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

/** The error message of a failed response: OpenAI's {error: {message}}, or the start of the body. */
function errorText(status: number, body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    const m = typeof j.error === "string" ? j.error : (j.error?.message ?? j.message);
    if (m) return `HTTP ${status}: ${m}`;
  } catch {
    /* not JSON */
  }
  return `HTTP ${status}: ${body.slice(0, 200).replace(/\s+/g, " ").trim()}`;
}

/** One streamed completion, timed. */
export async function timedCompletion(o: HttpBenchOptions, base: string, salt: number, gen = o.genTokens, promptLen = o.promptTokens): Promise<RequestTiming> {
  const url = `${base}/v1/completions`;
  const body = {
    model: o.model,
    prompt: o.text ? promptText(promptLen, salt) : promptIds(promptLen, salt),
    max_tokens: gen,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  const t0 = performance.now();
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(o.timeoutMs) });
  } catch (e) {
    throw new TesseraError(`cannot reach ${url}: ${why(e)}`);
  }
  if (!res.ok) throw new TesseraError(`${url} (model '${o.model}'): ${errorText(res.status, await res.text())}`);
  let first = NaN;
  let last = NaN;
  let chunks = 0;
  let usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
  let pending = "";
  const decoder = new TextDecoder();
  const onEvent = (data: string): void => {
    if (data === "[DONE]") return;
    const j = JSON.parse(data) as { error?: { message?: string }; choices?: { text?: string; finish_reason?: string | null }[]; usage?: typeof usage };
    if (j.error) throw new TesseraError(`${url} (model '${o.model}'): ${j.error.message ?? "error in the stream"}`);
    const now = performance.now();
    for (const c of j.choices ?? []) {
      if (c.text) {
        if (Number.isNaN(first)) first = now;
        chunks++;
      }
      if (c.text || c.finish_reason) last = now;
    }
    if (j.usage) usage = j.usage;
  };
  try {
    for await (const part of res.body as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(part, { stream: true });
      let cut: number;
      while ((cut = pending.indexOf("\n\n")) >= 0) {
        const event = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) onEvent(data);
      }
    }
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw new TesseraError(`${url}: the stream broke off: ${why(e)}`);
  }
  const end = performance.now();
  if (Number.isNaN(first)) throw new TesseraError(`${url} (model '${o.model}'): the stream carried no text`);
  const completion = usage?.completion_tokens ?? chunks;
  return {
    ttftMs: first - t0,
    decodeTps: completion > 1 && last > first ? ((completion - 1) * 1000) / (last - first) : NaN,
    promptTokens: usage?.prompt_tokens ?? promptLen,
    completionTokens: completion,
    totalMs: end - t0,
  };
}

export async function httpBench(o: HttpBenchOptions, onRun?: (i: number, r: RunTiming) => void): Promise<HttpBenchResult> {
  const base = baseUrl(o.url);
  await timedCompletion(o, base, 0, Math.min(o.genTokens, 4), Math.min(o.promptTokens, 16));
  const runs: RunTiming[] = [];
  for (let i = 0; i < o.repeat; i++) {
    const t0 = performance.now();
    const requests = await Promise.all(Array.from({ length: o.concurrency }, (_, k) => timedCompletion(o, base, 1 + i * o.concurrency + k)));
    const wallMs = performance.now() - t0;
    const run = { wallMs, aggregateTps: (requests.reduce((a, r) => a + r.completionTokens, 0) * 1000) / wallMs, requests };
    runs.push(run);
    onRun?.(i, run);
  }
  const all = runs.flatMap((r) => r.requests);
  return {
    url: base,
    model: o.model,
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    concurrency: o.concurrency,
    repeat: o.repeat,
    prompt: o.text ? "text" : "tokens",
    aggregateTps: median(runs.map((r) => r.aggregateTps)),
    decodeTps: median(all.map((r) => r.decodeTps)),
    ttftMsP50: quantile(all.map((r) => r.ttftMs), 0.5),
    ttftMsP95: quantile(all.map((r) => r.ttftMs), 0.95),
    servedPromptTokens: median(all.map((r) => r.promptTokens)),
    servedCompletionTokens: median(all.map((r) => r.completionTokens)),
    runs,
  };
}

/** The human-readable summary (llama-bench-like rows). */
export function printHttpBench(r: HttpBenchResult): string {
  const f = (x: number, d = 2): string => (Number.isNaN(x) ? "—" : x.toFixed(d));
  return [
    `${r.url} model ${r.model}: prompt ${r.promptTokens} ${r.prompt === "text" ? "words" : "token ids"} (server counted ${f(r.servedPromptTokens, 0)}), ${r.genTokens} generated (median ${f(r.servedCompletionTokens, 0)}), concurrency ${r.concurrency}, median of ${r.repeat}`,
    `decode      ${f(r.decodeTps).padStart(10)} tok/s per request`,
    `aggregate   ${f(r.aggregateTps).padStart(10)} tok/s (all ${r.concurrency} request${r.concurrency === 1 ? "" : "s"} over the run's wall time)`,
    `TTFT        ${f(r.ttftMsP50, 1).padStart(10)} ms p50, ${f(r.ttftMsP95, 1)} ms p95`,
  ].join("\n");
}
