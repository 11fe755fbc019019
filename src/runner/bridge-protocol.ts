import type { MessagePort } from "node:worker_threads";
import type { ResolvedSamplingParams, SampleResult } from "../engine/sampling/index.js";
import type { LaunchOptions } from "./launcher.js";
import type { LoadProgress } from "../engine/types.js";
import type { PeerAddress } from "../transport/index.js";
import type { RemoteOptions } from "./remote.js";

/**
 * Engine thread ⇄ driver thread. Requests go over a MessagePort; the engine thread then blocks in
 * Atomics.wait on flag[0] until the driver thread has posted the reply and set it to 1, and takes
 * the reply with receiveMessageOnPort (no event loop turn needed). Truncate and prefill have no reply: a
 * prefill that fails is answered with its error at the next request. Slot 0 is the one-sequence
 * Stepper's; forward, decode, truncate and the sampling requests name other slots for the batch
 * scheduler (a sampled decode is answered with each row's token, not logits).
 */
export type BridgeRequest =
  | { type: "forward"; tokens: Int32Array; allLogits: boolean; slot: number }
  | { type: "beginSampling"; params: ResolvedSamplingParams; logprobs?: number; prompt: number[]; slot: number }
  | { type: "forwardSample"; tokens: Int32Array; slot: number }
  | { type: "prefill"; tokens: Int32Array }
  | { type: "decode"; slots: Int32Array; tokens: Int32Array; sample: boolean }
  | { type: "truncate"; pos: number; slot: number }
  | { type: "close" };

export interface WireError {
  message: string;
  user: boolean;
}

export type BridgeReply =
  | { type: "logits"; logits: Float32Array }
  | { type: "sample"; sample: SampleResult }
  | { type: "samples"; samples: SampleResult[] }
  | { type: "begun" }
  | { type: "error"; error: WireError }
  | { type: "closed" };

/** Driver thread → its parent thread: load progress, then once started (or not). */
export type DriverThreadEvent =
  | { type: "progress"; progress: LoadProgress }
  | { type: "ready"; vocabSize: number; rssBytes: number[]; pids: number[] }
  | { type: "error"; error: WireError };

/** Either runners to start here (launch) or runners the cluster's nodes started (remote, with its control port). */
export interface DriverThreadData {
  launch?: LaunchOptions;
  remote?: RemoteOptions;
  control?: MessagePort;
  port: MessagePort;
  flag: SharedArrayBuffer;
}

/**
 * The control port of a driver whose runners a cluster started (RemoteRunners), between the driver
 * thread and the node that hosts it:
 *   driver → node  ports {world, live}     its listening ports, to relay through the control plane
 *   node → driver  peers {world, live}     every rank's addresses (world rank order), once all are loaded
 *   node → driver  abort {reason}          give up joining (the instance was torn down)
 *   driver → node  failed {message}        the group failed after it was joined (a rank was lost)
 */
export type ToDriverControl = { type: "peers"; world: PeerAddress[]; live: PeerAddress[] } | { type: "abort"; reason: string };
export type FromDriverControl = { type: "ports"; world: number; live: number } | { type: "failed"; message: string };
