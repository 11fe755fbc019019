import type { EngineOptions, LoadProgress } from "../../engine/types.js";
import type { ChatMessage } from "../../models/types.js";
import type { MessagePort } from "node:worker_threads";
import type { ClusterRemote } from "../../runner/cluster-backend.js";
import type { ShardingOptions } from "../../runner/sharded-backend.js";
import type { ErrorWire } from "../errors.js";
import type { PromptInput, ResolvedRequest } from "../request.js";
import type { GenerationResult, PromptInfo, TokenEvent } from "../result.js";

/**
 * Messages between EngineWorker (main thread) and worker-main (the worker that owns the ORT
 * session). Every request carries an id; the worker answers with exactly one `result` or `error`
 * for it, after any number of `token` events.
 *
 *   main → worker: generate | cancel | count | encode | decode | chat | bench | close
 *   worker → main: progress (any number, while loading) · ready | init-error (once, at start) ·
 *                  prompt | token | result | error (per request) · closed
 */

/**
 * Which loader the worker runs, chosen by kind: one process (engine/backend.ts), local runner
 * processes (runner/sharded-backend.ts), or a module of the caller's exporting
 * `openEngine(modelPath, engineOptions)` (tests use it for scripted models).
 */
export type EngineBackend =
  | { kind: "model" }
  | { kind: "sharded"; sharding: ShardingOptions }
  /** A cluster instance's driver over runners the nodes started (runner/cluster-backend.ts). */
  | { kind: "cluster"; remote: ClusterRemote; control: MessagePort }
  | { kind: "module"; url: string };

export interface WorkerInit {
  modelPath: string;
  engine: Omit<EngineOptions, "onProgress">;
  /** Tokens per prefill forward. */
  prefillChunk?: number;
  backend: EngineBackend;
}

export interface EngineInfo {
  modelPath: string;
  architecture?: string;
  vocabSize: number;
  contextLength: number;
  /** Tokens that end a turn (eos, <|im_end|>, ...); empty without a tokenizer. */
  stopIds: number[];
  hasTokenizer: boolean;
  /** The chat template's Jinja source, when the tokenizer has one. */
  chatTemplate?: string;
  /** Bytes the engine's weights take, when the backend knows. */
  weightBytes?: number;
  parameterCount?: number;
  format?: string;
  /** Sequences the engine decodes together (1: one request at a time). */
  slots?: number;
}

export interface BenchRequest {
  /** Prompt tokens processed in one prefill (chunked as usual). 0 = skip. */
  pp: number;
  /** Single-token decode steps from an empty cache, like llama-bench's tg. 0 = skip. */
  tg: number;
  seed?: number;
}

export interface BenchResult {
  ppMs: number;
  tgMs: number;
}

export type ToWorker =
  | { type: "generate"; id: number; request: ResolvedRequest }
  | { type: "cancel"; id: number }
  | { type: "count"; id: number; input: PromptInput }
  | { type: "encode"; id: number; text: string; addSpecial?: boolean }
  | { type: "decode"; id: number; tokens: number[]; skipSpecial?: boolean }
  | { type: "chat"; id: number; messages: ChatMessage[]; addGenerationPrompt?: boolean }
  | { type: "bench"; id: number; bench: BenchRequest }
  | { type: "close" };

export type FromWorker =
  | { type: "progress"; progress: LoadProgress }
  | { type: "ready"; info: EngineInfo }
  | { type: "init-error"; error: ErrorWire }
  | { type: "prompt"; id: number; info: PromptInfo }
  | { type: "token"; id: number; event: TokenEvent }
  | { type: "result"; id: number; value: GenerationResult | BenchResult | number[] | number | string }
  | { type: "error"; id: number; error: ErrorWire }
  | { type: "closed" };
