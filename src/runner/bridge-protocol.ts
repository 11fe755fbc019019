import type { MessagePort } from "node:worker_threads";
import type { ResolvedSamplingParams, SampleResult } from "../engine/sampling/index.js";
import type { LaunchOptions } from "./launcher.js";
import type { LoadProgress } from "../engine/types.js";

/**
 * Engine thread ⇄ driver thread. Requests go over a MessagePort; the engine thread then blocks in
 * Atomics.wait on flag[0] until the driver thread has posted the reply and set it to 1, and takes
 * the reply with receiveMessageOnPort (no event loop turn needed). Truncate and prefill have no reply: a
 * prefill that fails is answered with its error at the next request.
 */
export type BridgeRequest =
  | { type: "forward"; tokens: Int32Array; allLogits: boolean }
  | { type: "beginSampling"; params: ResolvedSamplingParams; logprobs?: number; prompt: number[] }
  | { type: "forwardSample"; tokens: Int32Array }
  | { type: "prefill"; tokens: Int32Array }
  | { type: "truncate"; pos: number }
  | { type: "close" };

export interface WireError {
  message: string;
  user: boolean;
}

export type BridgeReply =
  | { type: "logits"; logits: Float32Array }
  | { type: "sample"; sample: SampleResult }
  | { type: "begun" }
  | { type: "error"; error: WireError }
  | { type: "closed" };

/** Driver thread → its parent thread: load progress, then once started (or not). */
export type DriverThreadEvent =
  | { type: "progress"; progress: LoadProgress }
  | { type: "ready"; vocabSize: number; rssBytes: number[]; pids: number[] }
  | { type: "error"; error: WireError };

export interface DriverThreadData {
  launch: LaunchOptions;
  port: MessagePort;
  flag: SharedArrayBuffer;
}
