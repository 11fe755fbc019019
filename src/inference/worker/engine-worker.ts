import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../../spawn.js";
import { TesseraError } from "../../errors.js";
import type { ChatMessage } from "../../models/types.js";
import type { EngineOptions, LoadProgress } from "../../engine/types.js";
import { fromWire } from "../errors.js";
import type { PromptInput, ResolvedRequest } from "../request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "../result.js";
import type { BenchRequest, BenchResult, EngineBackend, EngineInfo, FromWorker, ToWorker, WorkerInit } from "./protocol.js";

export interface EngineWorkerOptions extends EngineOptions {
  /** Tokens per prefill forward (default 512). */
  prefillChunk?: number;
  /** Which loader runs the model (default: one process, engine/backend.ts). */
  backend?: EngineBackend;
  /** Called on this thread as the worker loads the model (a progress bar, a node's log). */
  onProgress?: (p: LoadProgress) => void;
}

export interface GenerateCallbacks {
  onPrompt?: (info: PromptInfo) => void;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  onToken?: (event: TokenEvent) => void;
  onPrompt?: (info: PromptInfo) => void;
}

/**
 * The engine in a worker thread: the model, its ORT session and the generation loop live there,
 * so the calling thread's event loop stays free while tokens are computed.
 */
export class EngineWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
  ) {
    worker.on("message", (m: FromWorker) => this.onMessage(m));
    worker.on("error", (e) => this.fail(new TesseraError(`engine worker failed: ${e.message}`, undefined, { cause: e })));
    worker.on("exit", (code) => this.fail(new TesseraError(`engine worker exited (code ${code})`)));
  }

  /** Loads the model in a new worker; resolves once it is ready to generate. */
  static start(modelPath: string, opts: EngineWorkerOptions = {}): Promise<EngineWorker> {
    const { prefillChunk, backend, onProgress, ...engine } = opts;
    const init: WorkerInit = { modelPath, engine, prefillChunk, backend: backend ?? { kind: "model" } };
    // a cluster driver's line to its node travels with the init: moved, not copied
    const transferList = init.backend.kind === "cluster" ? [init.backend.control] : [];
    const worker = startModuleWorker("./worker-main", import.meta.url, { workerData: init, transferList });
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === "progress") {
          onProgress?.(m.progress);
        } else if (m.type === "ready") {
          cleanup();
          resolve(new EngineWorker(worker, m.info));
        } else if (m.type === "init-error") {
          cleanup();
          void worker.terminate();
          reject(fromWire(m.error));
        }
      };
      const onError = (e: Error) => {
        cleanup();
        void worker.terminate();
        reject(new TesseraError(`engine worker failed to start: ${e.message}`, undefined, { cause: e }));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new TesseraError(`engine worker exited during start (code ${code})`));
      };
      const cleanup = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  /** Why the worker is gone (it exited, failed or was closed); undefined while it serves. */
  get failure(): Error | undefined {
    return this.dead;
  }

  generate(request: ResolvedRequest, { onPrompt, onToken, signal }: GenerateCallbacks = {}): Promise<GenerationResult> {
    const id = this.nextId++;
    const result = this.call<GenerationResult>({ type: "generate", id, request }, id, { onToken, onPrompt });
    if (signal) {
      const cancel = () => this.post({ type: "cancel", id });
      if (signal.aborted) cancel();
      else {
        signal.addEventListener("abort", cancel, { once: true });
        void result.finally(() => signal.removeEventListener("abort", cancel)).catch(() => undefined);
      }
    }
    return result;
  }

  /** How many prompt tokens the input makes (after the chat template). */
  countTokens(input: PromptInput): Promise<number> {
    const id = this.nextId++;
    return this.call({ type: "count", id, input }, id);
  }

  encode(text: string, opts: { addSpecial?: boolean } = {}): Promise<number[]> {
    const id = this.nextId++;
    return this.call({ type: "encode", id, text, addSpecial: opts.addSpecial }, id);
  }

  decode(tokens: number[], opts: { skipSpecial?: boolean } = {}): Promise<string> {
    const id = this.nextId++;
    return this.call({ type: "decode", id, tokens, skipSpecial: opts.skipSpecial }, id);
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): Promise<string> {
    const id = this.nextId++;
    return this.call({ type: "chat", id, messages, addGenerationPrompt: opts.addGenerationPrompt }, id);
  }

  /** Raw prefill / decode throughput (llama-bench style); forgets the cached conversation. */
  bench(req: BenchRequest): Promise<BenchResult> {
    const id = this.nextId++;
    return this.call({ type: "bench", id, bench: req }, id);
  }

  /** Finishes queued work, frees the model and stops the worker. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.dead) {
        const closed = new Promise<void>((resolve) => {
          const onMessage = (m: FromWorker) => m.type === "closed" && resolve();
          this.worker.on("message", onMessage);
          this.worker.once("exit", () => resolve());
        });
        this.post({ type: "close" });
        await closed;
      }
      this.fail(new TesseraError("engine closed"));
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private call<T>(msg: ToWorker, id: number, callbacks: Pick<Pending, "onToken" | "onPrompt"> = {}): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...callbacks });
      this.post(msg);
    });
  }

  private post(msg: ToWorker): void {
    if (!this.dead) this.worker.postMessage(msg);
  }

  private onMessage(m: FromWorker): void {
    if (m.type === "token" || m.type === "prompt") {
      const p = this.pending.get(m.id);
      try {
        if (m.type === "token") p?.onToken?.(m.event);
        else p?.onPrompt?.(m.info);
      } catch (e) {
        // A failing callback ends its own request, not the engine.
        this.pending.delete(m.id);
        this.post({ type: "cancel", id: m.id });
        p?.reject(e instanceof Error ? e : new Error(String(e)));
      }
    } else if (m.type === "result" || m.type === "error") {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === "result") p.resolve(m.value);
      else p.reject(fromWire(m.error));
    }
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
