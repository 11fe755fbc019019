import type { ChatMessage } from "../../models/types.js";
import type { EngineOptions } from "../../engine/types.js";
import type { GenerationRequest, GenerationResult, TokenEvent } from "../generator.js";

/**
 * Messages between EngineWorker (main thread) and worker-main (the worker that owns the ORT
 * session). Every request carries an id; the worker answers with exactly one `result` or `error`
 * for it, after any number of `token` events.
 *
 *   main → worker: generate | cancel | encode | decode | chat | bench | close
 *   worker → main: ready | init-error (once, at start) · token | result | error (per request) · closed
 */

export interface WorkerInit {
  modelPath: string;
  engine: EngineOptions;
  /** Tokens per prefill forward. */
  prefillChunk?: number;
  /** URL of the module whose `openEngine` loads the model (tests swap it). */
  backend: string;
}

export interface EngineInfo {
  modelPath: string;
  architecture?: string;
  vocabSize: number;
  contextLength: number;
  /** Tokens that end a turn (eos, <|im_end|>, ...); empty without a tokenizer. */
  stopIds: number[];
  hasTokenizer: boolean;
  /** Bytes the engine's weights take, when the backend knows. */
  weightBytes?: number;
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
  | { type: "generate"; id: number; request: GenerationRequest }
  | { type: "cancel"; id: number }
  | { type: "encode"; id: number; text: string; addSpecial?: boolean }
  | { type: "decode"; id: number; tokens: number[]; skipSpecial?: boolean }
  | { type: "chat"; id: number; messages: ChatMessage[]; addGenerationPrompt?: boolean }
  | { type: "bench"; id: number; bench: BenchRequest }
  | { type: "close" };

export interface WireError {
  message: string;
  /** A TesseraError (user-facing) rather than a programming error. */
  user: boolean;
  stack?: string;
}

export type FromWorker =
  | { type: "ready"; info: EngineInfo }
  | { type: "init-error"; error: WireError }
  | { type: "token"; id: number; event: TokenEvent }
  | { type: "result"; id: number; value: GenerationResult | BenchResult | number[] | string }
  | { type: "error"; id: number; error: WireError }
  | { type: "closed" };
