import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from "node:worker_threads";
import { startModuleWorker } from "../spawn.js";
import { checkContextRoom } from "../engine/session/kv-cache.js";
import { TesseraError } from "../errors.js";
import type { BatchStepper, DecodeEntry, LoadProgress, SamplingStepper } from "../engine/types.js";
import { checkSlot } from "../engine/session/slot-kv.js";
import type { ResolvedSamplingParams, SampleResult } from "../engine/sampling/index.js";
import type { BridgeReply, BridgeRequest, DriverThreadData, DriverThreadEvent, WireError } from "./bridge-protocol.js";
import type { LaunchOptions } from "./launcher.js";
import type { RemoteOptions } from "./remote.js";

function startThread(data: DriverThreadData): Worker {
  const transferList = data.control ? [data.port, data.control] : [data.port];
  return startModuleWorker("./driver-thread", import.meta.url, { workerData: data, transferList });
}

function toError(w: WireError): Error {
  return w.user ? new TesseraError(w.message) : new Error(w.message);
}

/**
 * The synchronous Stepper of a sharded model, for the engine thread (H4's generation loop runs on it
 * unchanged). Each forward hands the tokens to the driver thread and blocks until the logits (or,
 * sampling on the last stage, the token) are back; a lost runner surfaces as the TesseraError the
 * data plane raised (naming the rank).
 */
export class ShardedStepper implements SamplingStepper {
  /** Tokens cached in each slot, as the driver counts them (slot 0 is this Stepper's). */
  private readonly lengths: Int32Array;
  private closed = false;
  /** Every slot, for continuous batching (when the runners hold more than one). */
  readonly batch: BatchStepper | undefined;
  /** Replies taken so far; the driver thread counts those it posted in flag[0]. */
  private taken = 0;
  /** Decode steps sent whose replies are not taken yet, then replies taken for them early (in order). */
  private inFlight = 0;
  private readonly early: BridgeReply[] = [];

  private constructor(
    private readonly thread: Worker,
    private readonly port: MessagePort,
    private readonly flag: Int32Array,
    readonly vocabSize: number,
    readonly contextLength: number,
    /** RSS of each runner process after loading. */
    readonly runnerRss: number[],
    readonly runnerPids: number[],
    slots: number,
    /** Pipeline stages: decode steps that can compute at once, one per stage. */
    private readonly stages: number,
  ) {
    this.lengths = new Int32Array(slots);
    this.batch = slots > 1 ? this.slotsView() : undefined;
  }

  /** Starts the runner processes of `launch` on this machine. */
  static start({ onProgress, ...launch }: LaunchOptions): Promise<ShardedStepper> {
    return ShardedStepper.open({ launch }, launch.contextLength, launch.slots ?? 1, onProgress);
  }

  /** Joins runners that the cluster's nodes started; `control` is the driver's line to its node (bridge-protocol.ts). */
  static startRemote(remote: RemoteOptions, control: MessagePort): Promise<ShardedStepper> {
    return ShardedStepper.open({ remote, control }, remote.contextLength, remote.slots ?? 1);
  }

  private static async open(
    what: Pick<DriverThreadData, "launch" | "remote" | "control">,
    contextLength: number,
    slots: number,
    onProgress?: (p: LoadProgress) => void,
  ): Promise<ShardedStepper> {
    const { port1, port2 } = new MessageChannel();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const thread = startThread({ ...what, port: port2, flag: flag.buffer as SharedArrayBuffer });
    const event = await new Promise<Exclude<DriverThreadEvent, { type: "progress" }>>((resolve, reject) => {
      thread.on("message", (m: DriverThreadEvent) => (m.type === "progress" ? onProgress?.(m.progress) : resolve(m)));
      thread.once("error", (e) => reject(new Error(`driver thread failed: ${e.message}`)));
      thread.once("exit", (code) => reject(new Error(`driver thread exited (code ${code}) before it was ready`)));
    });
    if (event.type === "error") {
      await thread.terminate();
      throw toError(event.error);
    }
    thread.removeAllListeners();
    thread.on("error", () => {});
    return new ShardedStepper(thread, port1, flag, event.vocabSize, contextLength, event.rssBytes, event.pids, slots, (what.launch?.plan ?? what.remote!.plan).stages.length);
  }

  get position(): number {
    return this.lengths[0]!;
  }

  private call(req: BridgeRequest): BridgeReply {
    this.port.postMessage(req);
    // replies come in request order: those of decode steps still in flight first
    for (; this.inFlight > 0; this.inFlight--) this.early.push(this.nextReply());
    return this.nextReply();
  }

  private nextReply(): BridgeReply {
    // Wake up now and then: a driver thread that died would never count a reply.
    while (Atomics.load(this.flag, 0) === this.taken) {
      if (Atomics.wait(this.flag, 0, this.taken, 1000) === "timed-out" && this.thread.threadId < 0) throw new Error("the driver thread is gone");
    }
    const reply = receiveMessageOnPort(this.port)?.message as BridgeReply | undefined;
    if (!reply) throw new Error("the driver thread counted a reply that is not there");
    this.taken = (this.taken + 1) | 0;
    return reply;
  }

  private checkStep(tokens: Int32Array, slot = 0): void {
    if (this.closed) throw new Error("forward() after dispose()");
    checkContextRoom(this.lengths[slot]!, tokens.length, this.contextLength);
  }

  private expect<T extends BridgeReply["type"]>(reply: BridgeReply, type: T, to: string): Extract<BridgeReply, { type: T }> {
    if (reply.type === "error") throw toError(reply.error);
    if (reply.type !== type) throw new Error(`unexpected reply '${reply.type}' to ${to}`);
    return reply as Extract<BridgeReply, { type: T }>;
  }

  forward(tokens: Int32Array, opts: { allLogits?: boolean } = {}): Float32Array {
    return this.forwardSlot(0, tokens, opts.allLogits === true);
  }

  private forwardSlot(slot: number, tokens: Int32Array, allLogits: boolean): Float32Array {
    this.checkStep(tokens, slot);
    const reply = this.expect(this.call({ type: "forward", tokens, allLogits, slot }), "logits", "forward");
    this.lengths[slot]! += tokens.length;
    return reply.logits;
  }

  /**
   * Sends a decode step without waiting for it: finishDecode() takes its reply (logits, or each
   * row's token when sampled on the last stage), oldest step first.
   */
  private startDecode(entries: readonly DecodeEntry[], sample: boolean): void {
    if (this.closed) throw new Error("decode() after dispose()");
    for (const e of entries) checkContextRoom(this.lengths[e.slot]!, 1, this.contextLength);
    const slots = Int32Array.from(entries, (e) => e.slot);
    const tokens = Int32Array.from(entries, (e) => e.token);
    this.port.postMessage({ type: "decode", slots, tokens, sample } satisfies BridgeRequest);
    this.inFlight++;
    for (const e of entries) this.lengths[e.slot]!++;
  }

  private finishDecode<T extends "logits" | "samples">(type: T): Extract<BridgeReply, { type: T }> {
    let reply = this.early.shift();
    if (!reply) {
      if (this.inFlight === 0) throw new Error("finishDecode() with no decode step in flight");
      this.inFlight--;
      reply = this.nextReply();
    }
    return this.expect(reply, type, "decode");
  }

  private decodeSlots<T extends "logits" | "samples">(entries: readonly DecodeEntry[], type: T): Extract<BridgeReply, { type: T }> {
    if (this.inFlight > 0 || this.early.length > 0) throw new Error("decode() while decode steps are in flight: finish them first");
    this.startDecode(entries, type === "samples");
    return this.finishDecode(type);
  }

  private truncateSlot(slot: number, pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    if (pos >= this.lengths[slot]!) return;
    this.lengths[slot] = pos;
    this.port.postMessage({ type: "truncate", pos, slot } satisfies BridgeRequest);
  }

  /** The runners' slots behind the BatchStepper contract: the batch scheduler's view of this driver. */
  private slotsView(): BatchStepper {
    const lengths = this.lengths;
    const slotOf = (slot: number): number => checkSlot(slot, lengths.length);
    const checked = (entries: readonly DecodeEntry[]) => entries.map((e) => ({ slot: slotOf(e.slot), token: e.token }));
    return {
      vocabSize: this.vocabSize,
      contextLength: this.contextLength,
      slots: lengths.length,
      length: (slot) => lengths[slotOf(slot)]!,
      prefill: (slot, tokens) => this.forwardSlot(slotOf(slot), tokens, false),
      decode: (entries) => this.decodeSlots(checked(entries), "logits").logits,
      depth: this.stages,
      startDecode: (entries) => this.startDecode(checked(entries), false),
      finishDecode: () => this.finishDecode("logits").logits,
      truncate: (slot, pos) => this.truncateSlot(slotOf(slot), pos),
      // the runners go with the Stepper's dispose()
      dispose: () => undefined,
      sampling: {
        begin: (slot, params, opts, prompt) => this.beginSlotSampling(slotOf(slot), params, opts, prompt),
        prefill: (slot, tokens) => this.forwardSampleSlot(slotOf(slot), tokens),
        decode: (entries) => this.decodeSlots(checked(entries), "samples").samples,
        startDecode: (entries) => this.startDecode(checked(entries), true),
        finishDecode: () => this.finishDecode("samples").samples,
      },
    };
  }

  beginSampling(params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): void {
    this.beginSlotSampling(0, params, opts, prompt);
  }

  private beginSlotSampling(slot: number, params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): void {
    if (this.closed) throw new Error("beginSampling() after dispose()");
    this.expect(this.call({ type: "beginSampling", params, ...opts, prompt: [...prompt], slot }), "begun", "beginSampling");
  }

  prefill(tokens: Int32Array): void {
    this.checkStep(tokens);
    this.port.postMessage({ type: "prefill", tokens } satisfies BridgeRequest);
    this.lengths[0]! += tokens.length;
  }

  forwardSample(tokens: Int32Array): SampleResult {
    return this.forwardSampleSlot(0, tokens);
  }

  private forwardSampleSlot(slot: number, tokens: Int32Array): SampleResult {
    this.checkStep(tokens, slot);
    const reply = this.expect(this.call({ type: "forwardSample", tokens, slot }), "sample", "forwardSample");
    this.lengths[slot]! += tokens.length;
    return reply.sample;
  }

  truncate(pos: number): void {
    this.truncateSlot(0, pos);
  }

  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.call({ type: "close" });
    } finally {
      this.port.close();
      await this.thread.terminate();
    }
  }
}
