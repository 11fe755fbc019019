import type { FastifyReply } from "fastify";

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) ac.abort();
  };
  res.once("close", onClose);
  return ac.signal;
}

export const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";
export const NDJSON_CONTENT_TYPE = "application/x-ndjson";

/** One Server-Sent Event: `event:` line when named, one `data:` line (JSON has no raw newlines). */
export function sseEvent(data: unknown, event?: string): string {
  return `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

export interface ResponseStreamOptions {
  contentType: string;
  /** What to send while the model loads, so clients and proxies keep the connection open. */
  keepAlive: () => string;
  keepAliveMs?: number;
}

const DEFAULT_KEEPALIVE_MS = 5000;

/**
 * A streamed response that starts (status 200 and headers) only when `commit` is called: until
 * then an error can still become a normal error reply with its own status. `signal` aborts when
 * the client disconnects.
 */
export class ResponseStream {
  readonly signal: AbortSignal;
  private started = false;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly reply: FastifyReply,
    private readonly opts: ResponseStreamOptions,
  ) {
    this.signal = disconnectSignal(reply);
  }

  get committed(): boolean {
    return this.started;
  }

  commit(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      "content-type": this.opts.contentType,
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...(this.reply.getHeaders() as Record<string, string>),
    });
  }

  write(text: string): void {
    if (this.ended || this.signal.aborted) return;
    this.commit();
    this.reply.raw.write(text);
  }

  /** Commits and sends keep-alives until stopKeepAlive or end (a model is being loaded). */
  keepAliveWhileLoading(): void {
    if (this.timer) return;
    this.write(this.opts.keepAlive());
    this.timer = setInterval(() => this.write(this.opts.keepAlive()), this.opts.keepAliveMs ?? DEFAULT_KEEPALIVE_MS);
  }

  stopKeepAlive(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  end(text = ""): void {
    this.stopKeepAlive();
    if (this.ended) return;
    if (text) this.write(text);
    this.ended = true;
    this.commit();
    this.reply.raw.end();
  }
}
