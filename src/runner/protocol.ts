import type { ReadCounts } from "../models/source/counting.js";
import type { Device } from "../engine/types.js";
import type { PeerAddress } from "../transport/index.js";
import type { ShardPlan } from "../placement/shard-plan.js";

/**
 * The runner's two channels.
 *
 * Control (parent ⇄ runner process, Node IPC; the runner exits when it closes):
 *   parent → runner  init                       once, first
 *   runner → parent  ports {world, tp?, live}   listening ports (opened on port 0); live: its liveness thread's
 *   runner → parent  progress {done, total, phase}  while loading (LoadProgress, engine/types.ts), any number
 *   runner → parent  loaded {rssBytes, read}    its tensors are read (read: bytes, of which experts) and its sessions built
 *   parent → runner  peers {world, tp?, live}   every rank's addresses, sent once all are loaded
 *   runner → parent  joined                     its groups are connected; it serves steps now
 *   runner → parent  failed {message, user}     then it exits (code 3)
 *   runner → parent  exiting {peakRssBytes}     after CLOSE, its peak RSS over its whole life, then it exits 0
 *
 * Data (world group over src/transport; the driver is world rank 0): every step starts with a
 * broadcast of a StepHeader from the driver, Int32Array [op, n, flags, position, slot, mask]. Every
 * rank holds the KV of RunnerInit.slots sequences; `slot` says whose a step is:
 *   op STEP      n tokens of `slot` at `position`. The driver then sends the tokens (int32 [n], tag TOKENS) to
 *                every rank of stage 0; stage s > 0 receives hidden states (float32 [n × hidden], tag
 *                HIDDEN) from the rank of stage s − 1 with the same tensor rank modulo that stage's
 *                size. Then, by flags:
 *                - none / ALL_LOGITS: every rank of the last stage sends the driver its slice of the
 *                  vocabulary (evenSplit over the group, in rank order), float32 [1 or n × slice], tag LOGITS;
 *                - NO_OUTPUT: nothing; the driver does not wait (a pipelined prefill micro-batch);
 *                - SAMPLE: the last stage's other ranks send their slices to its tensor rank 0 (the
 *                  sampler rank, tag LOGITS), which samples the last token's logits with the slot's
 *                  sampler and sends the driver the result (SAMPLE_LAYOUT, sample-wire.ts), float64, tag SAMPLE.
 *   op DECODE    one token for each of the slots [slot, slot + n) whose bit is set in `mask` (bit b:
 *                slot + b; n ≤ 32), as one batch: the driver sends stage 0 int32 [n] tokens (0 for
 *                padding rows), hidden states go on as float32 [n × hidden]. Then, by flags:
 *                - none: every rank of the last stage sends the driver its vocabulary slice for every
 *                  row, float32 [n × slice], tag LOGITS (the driver samples; padding rows are dropped);
 *                - SAMPLE: they send them to the sampler rank instead, which samples each active row
 *                  with its slot's sampler and sends the driver one SAMPLE_LAYOUT record per active row,
 *                  in slot order, each of the stride the step's largest logprobs count needs, tag SAMPLE.
 *   op SAMPLING  a request starts in `slot` (n = prompt length, flags = logprobs count or -1): the driver
 *                sends the sampler rank the parameters (float64 [SAMPLING_FIELDS], tag SAMPLING), then
 *                the prompt (int32 [n], tag TOKENS) for the penalty window.
 *   op TRUNCATE  forget `slot`'s positions ≥ `position`.
 *   op CLOSE     leave the groups and exit 0.
 */
export const Op = { STEP: 1, TRUNCATE: 2, CLOSE: 3, SAMPLING: 4, DECODE: 5 } as const;
export const Tag = { TOKENS: 1, HIDDEN: 2, LOGITS: 3, SAMPLING: 4, SAMPLE: 5 } as const;
export const StepFlag = { ALL_LOGITS: 1, SAMPLE: 2, NO_OUTPUT: 4 } as const;
export const HEADER_INTS = 6;
/** Slots one DECODE step can name (its mask is one int32). */
export const MAX_DECODE_SPAN = 32;

export interface RunnerInit {
  type: "init";
  /** Shared by all ranks of this instance (group ids derive from it). */
  instance: string;
  world: number;
  plan: ShardPlan;
  modelPath: string;
  threads: number;
  device: Device;
  contextLength: number;
  /** Sequences whose KV each rank holds (continuous batching; default 1). */
  slots?: number;
  /** Interface to listen on for peers. */
  host: string;
  /** A peer silent on both its data links and its liveness thread is lost after this long. */
  stallTimeoutMs: number;
  /** Tensor-parallel all-reduces send 8-bit partial sums; every rank of a group gets the same. */
  compressActivations: boolean;
  /** Tests only: this world rank blocks its thread for `ms` before every prefill step (n > 1), like a long ORT run. */
  testStepDelay?: { world: number; ms: number };
  /** The instance's data-plane key (64 hex digits): every group and liveness link proves it. Default: the open key. */
  key?: string;
  /** The model header digest the instance was placed with (models/registry/describe.ts: the registry's digest): checked before loading. */
  digest?: string;
}

export type ToRunner = RunnerInit | { type: "peers"; world: PeerAddress[]; tp?: PeerAddress[]; live: PeerAddress[] };

export type FromRunner =
  | { type: "ports"; world: number; tp?: number; live: number }
  | { type: "progress"; done: number; total: number; phase: "weights" | "session" }
  | { type: "loaded"; rssBytes: number; read: ReadCounts }
  | { type: "joined" }
  | { type: "failed"; message: string; user: boolean }
  | { type: "exiting"; peakRssBytes: number };
