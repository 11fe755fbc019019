import { TesseraError } from "../errors.js";
import type { ReadCounts } from "../models/source/counting.js";
import { checkContextRoom } from "../engine/session/kv-cache.js";
import type { ResolvedSamplingParams, SampleResult } from "../engine/sampling/index.js";
import { HEADER_INTS, MAX_DECODE_SPAN, Op, StepFlag, Tag } from "./protocol.js";
import { decodeRange, pickRows } from "../engine/session/batch-engine.js";
import type { DecodeEntry } from "../engine/types.js";
import { checkSlot } from "../engine/session/slot-kv.js";
import { decodeSample, encodeSampling, sampleWireLength } from "./sample-wire.js";
import { LocalRunners, type LaunchOptions } from "./launcher.js";
import type { Group } from "../transport/index.js";
import type { RankPlace } from "../placement/shard-plan.js";
import { vocabSlices } from "./stage.js";

/** ShardedDriver.logprobsOf of a slot that has not begun sampling. */
const NOT_SAMPLING = -2;

/** Default prefill micro-batch for pipelines (LaunchOptions.microBatch); bench/parallel measures the choice. */
export const PIPELINE_MICRO_BATCH = 64;

/**
 * The runners a driver drives, however they were started: LocalRunners (child processes of this
 * process) or RemoteRunners (started by the nodes of a cluster).
 */
export interface RunnerSet {
  readonly places: RankPlace[];
  readonly world: Group;
  readonly vocabSize: number;
  /** RSS of each runner after loading (0 where unknown). */
  readonly rssBytes: number[];
  /** Process ids of runners on this machine (empty for remote ones). */
  readonly pids: number[];
  close(ms?: number): Promise<void>;
  kill(): void;
  /** The end of a local runner's stderr (empty for remote ones). */
  stderrOf(world: number): string;
  /** Bytes each local runner read from the model file, in world order (absent for remote runners). */
  readonly readCounts?: ReadCounts[];
}

/**
 * The driver of a sharded model (world rank 0): tokens go to stage 0, logits come back from tensor
 * rank 0 of the last stage. Its forward is asynchronous (the network answers on this thread's event
 * loop); ShardedStepper (bridge.ts) turns it into the synchronous Stepper the generation loop uses.
 */
export class ShardedDriver {
  /** Tokens cached in each slot (the runners keep the same count). */
  private readonly lengths: Int32Array;
  private readonly header = new Int32Array(HEADER_INTS);
  private readonly firstStage: number[];
  /** The last stage's ranks and the vocabulary slice each sends. */
  private readonly lastStage: { world: number; rows: [number, number] }[];
  private closing: Promise<void> | undefined;
  /** World rank of the last stage's tensor rank 0, which samples (op SAMPLING). */
  private readonly samplerRank: number;
  private sampleWire = new Float64Array(sampleWireLength(0));
  /** Each slot's logprobs count since its SAMPLING op (−1: none; NOT_SAMPLING before one), which sizes its sampled records. */
  private readonly logprobsOf: Int32Array;
  private steps = 0;

  private readonly stages: number;

  private constructor(
    readonly runners: RunnerSet,
    readonly contextLength: number,
    private readonly microBatch: number,
    readonly slots: number,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new TesseraError(`KV slots must be an integer ≥ 1, got ${slots}`);
    this.lengths = new Int32Array(slots);
    this.logprobsOf = new Int32Array(slots).fill(NOT_SAMPLING);
    this.stages = runners.places[runners.places.length - 1]!.stage + 1;
    this.firstStage = runners.places.filter((p) => p.stage === 0).map((p) => p.world);
    const last = runners.places.filter((p) => p.stage === runners.places[runners.places.length - 1]!.stage);
    this.samplerRank = last.find((p) => p.tpRank === 0)!.world;
    const slices = vocabSlices(runners.vocabSize, last.length);
    this.lastStage = last.map((p, i) => ({ world: p.world, rows: slices[i]! }));
  }

  /** Starts the runners, waits until all are connected, and warms them up with one step. */
  static async start(o: LaunchOptions): Promise<ShardedDriver> {
    return ShardedDriver.attach(await LocalRunners.start(o), o.contextLength, o.microBatch, o.slots);
  }

  /** Drives runners whose world group is already joined; warms them up with one step. */
  static async attach(runners: RunnerSet, contextLength: number, microBatch = PIPELINE_MICRO_BATCH, slots = 1): Promise<ShardedDriver> {
    const d = new ShardedDriver(runners, contextLength, microBatch, slots);
    try {
      await d.forward(Int32Array.of(0));
      d.truncate(0);
    } catch (e) {
      runners.kill();
      await runners.close(0);
      throw e;
    }
    return d;
  }

  get vocabSize(): number {
    return this.runners.vocabSize;
  }

  /** Tokens cached in slot 0 (the one-sequence calls use it). */
  get position(): number {
    return this.lengths[0]!;
  }

  /** Tokens cached in `slot`. */
  length(slot: number): number {
    return this.lengths[checkSlot(slot, this.slots)]!;
  }

  /** Steps sent to the runners so far (a pipelined prefill sends one per micro-batch). */
  get stepsSent(): number {
    return this.steps;
  }

  private checkRoom(n: number, slot: number): void {
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    checkContextRoom(this.length(slot), n, this.contextLength);
  }

  private setHeader(op: number, n: number, flags: number, position: number, slot: number, mask = 0): Int32Array {
    const h = this.header;
    h[0] = op;
    h[1] = n;
    h[2] = flags;
    h[3] = position;
    h[4] = slot;
    h[5] = mask;
    return h;
  }

  /** Sends the step header and the tokens; the runners take it from there. */
  private async startStep(tokens: Int32Array, flags: number, slot: number): Promise<void> {
    const n = tokens.length;
    this.checkRoom(n, slot);
    const world = this.runners.world;
    await world.broadcast(0, this.setHeader(Op.STEP, n, flags, this.lengths[slot]!, slot));
    this.steps++;
    for (const r of this.firstStage) await world.send(r, tokens, Tag.TOKENS);
  }

  /**
   * Pipelined prefill: with several stages, all but the last micro-batch of a long input are sent as
   * steps that return nothing, back to back, so stage s computes micro-batch k while stage s + 1
   * computes k − 1 (a pipeline computes one stage at a time otherwise). Returns the last micro-batch,
   * which the caller runs as a normal step.
   */
  private async pipelinePrefix(tokens: Int32Array, slot: number): Promise<Int32Array> {
    this.checkRoom(tokens.length, slot); // before any micro-batch goes out
    const m = this.microBatch;
    if (this.stages < 2 || m <= 0 || tokens.length <= m) return tokens;
    const k = Math.ceil(tokens.length / m);
    const size = Math.ceil(tokens.length / k); // k even micro-batches, not k − 1 full ones and a stub
    let at = 0;
    for (; tokens.length - at > size; at += size) {
      await this.startStep(tokens.subarray(at, at + size), StepFlag.NO_OUTPUT, slot);
      this.lengths[slot]! += size;
    }
    return tokens.subarray(at);
  }

  /**
   * Runs tokens into the cache without waiting for them: steps that return nothing (micro-batches
   * under a pipeline), so consecutive prefill chunks stay in flight. A failure shows at the next step.
   */
  async prefill(tokens: Int32Array, slot = 0): Promise<void> {
    const last = await this.pipelinePrefix(tokens, slot);
    await this.startStep(last, StepFlag.NO_OUTPUT, slot);
    this.lengths[slot]! += last.length;
  }

  /** Runs tokens into a slot: logits of the last token ([vocab]) or of every one ([n × vocab]). */
  async forward(tokens: Int32Array, opts: { allLogits?: boolean; slot?: number } = {}): Promise<Float32Array> {
    const slot = opts.slot ?? 0;
    if (!opts.allLogits) tokens = await this.pipelinePrefix(tokens, slot);
    await this.startStep(tokens, opts.allLogits ? StepFlag.ALL_LOGITS : 0, slot);
    const logits = await this.receiveLogits(opts.allLogits ? tokens.length : 1);
    this.lengths[slot]! += tokens.length;
    return logits;
  }

  /**
   * Posts the receives of the last stage's logits for `rows` rows (each rank sends its vocabulary
   * slice of every row) and resolves with them gathered, [rows × vocab]. The receives are registered
   * at the call (Group.recv), so they match this step whatever is sent after it.
   */
  private receiveLogits(rows: number): Promise<Float32Array> {
    const V = this.vocabSize;
    const logits = new Float32Array(rows * V);
    const whole = this.lastStage.length === 1;
    const slices = this.lastStage.map(async ({ world: from, rows: [v0, v1] }) => {
      const w = v1 - v0;
      // One slice per rank: straight into place when it is whole rows or one row, else scattered from a buffer.
      const into = whole ? logits : rows === 1 ? logits.subarray(v0, v1) : new Float32Array(rows * w);
      const got = await this.runners.world.recv(from, into, Tag.LOGITS);
      if (got !== into.byteLength) throw new Error(`got ${got} bytes of logits from world rank ${from}, expected ${into.byteLength}`);
      if (!whole && rows > 1) for (let r = 0; r < rows; r++) logits.set(into.subarray(r * w, (r + 1) * w), r * V + v0);
    });
    return Promise.all(slices).then(() => logits);
  }

  /**
   * One token for each entry's slot as one batch through every stage (op DECODE): returns
   * [entries × vocab] logits, row i for entries[i]. The step spans the lowest to the highest slot
   * named (at most MAX_DECODE_SPAN); free slots between them ride along as padding rows.
   */
  async decode(entries: readonly DecodeEntry[]): Promise<Float32Array> {
    return (await this.startDecode(entries)).logits;
  }

  /**
   * Sends a DECODE step and waits for the sending only: its logits come with `logits`. Receives are
   * matched in the order steps were sent, so several steps may be in flight at once (a pipeline's
   * stages each compute a different one) and later steps of any kind may follow them.
   */
  async startDecode(entries: readonly DecodeEntry[]): Promise<{ logits: Promise<Float32Array> }> {
    const r = await this.sendDecode(entries, 0);
    const logits = this.receiveLogits(r.count).then((all) => pickRows(all, r.lo, entries, this.vocabSize));
    logits.catch(() => {}); // the caller gets the failure; an abandoned step must not crash the thread
    return { logits };
  }

  /**
   * startDecode, sampled on the last stage (op DECODE, flag SAMPLE): each entry's slot must have
   * begun sampling; `samples` resolves with each entry's token, in entry order.
   */
  async startDecodeSampled(entries: readonly DecodeEntry[]): Promise<{ samples: Promise<SampleResult[]> }> {
    for (const e of entries) this.checkSampling(e.slot);
    await this.sendDecode(entries, StepFlag.SAMPLE);
    const samples = this.receiveSamples(entries);
    samples.catch(() => {});
    return { samples };
  }

  private async sendDecode(entries: readonly DecodeEntry[], flags: number): Promise<{ lo: number; count: number }> {
    const r = decodeRange(entries);
    if (r.count > MAX_DECODE_SPAN) throw new Error(`a decode step spans slots ${r.lo}..${r.lo + r.count - 1}: more than ${MAX_DECODE_SPAN}`);
    for (const e of entries) checkContextRoom(this.length(e.slot), 1, this.contextLength);
    let mask = 0;
    r.active.forEach((a, b) => (mask |= a ? 1 << b : 0));
    const world = this.runners.world;
    await world.broadcast(0, this.setHeader(Op.DECODE, r.count, flags, 0, r.lo, mask));
    this.steps++;
    for (const rank of this.firstStage) await world.send(rank, r.tokens, Tag.TOKENS);
    for (const e of entries) this.lengths[e.slot]!++;
    return r;
  }

  /** The sampler rank would fail the whole instance on a slot it holds no sampler for. */
  private checkSampling(slot: number): void {
    if (this.logprobsOf[checkSlot(slot, this.slots)] === NOT_SAMPLING) throw new Error(`slot ${slot} takes a sampled step before beginSampling`);
  }

  /** The sampler rank's records of a sampled DECODE step (one per entry, in slot order) → each entry's token. */
  private async receiveSamples(entries: readonly DecodeEntry[]): Promise<SampleResult[]> {
    const stride = sampleWireLength(Math.max(-1, ...entries.map((e) => this.logprobsOf[e.slot]!)));
    const wire = new Float64Array(entries.length * stride);
    const got = await this.runners.world.recv(this.samplerRank, wire, Tag.SAMPLE);
    if (got !== wire.byteLength) throw new Error(`got ${got} bytes of sampled tokens from world rank ${this.samplerRank}, expected ${wire.byteLength}`);
    const bySlot = entries.map((e) => e.slot).sort((a, b) => a - b);
    return entries.map((e) => {
      const k = bySlot.indexOf(e.slot);
      return decodeSample(wire.subarray(k * stride, (k + 1) * stride));
    });
  }

  /**
   * Starts a request's sampling in `slot` on the last stage's tensor rank 0 (protocol.ts, op
   * SAMPLING): from now on the slot's sampled steps return a token, not logits.
   */
  async beginSampling(params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[], slot = 0): Promise<void> {
    const logprobs = opts.logprobs ?? -1;
    if (!Number.isInteger(logprobs) || logprobs < -1) throw new TesseraError(`logprobs must be an integer ≥ 0, got ${opts.logprobs}`, "request");
    const world = this.runners.world;
    await world.broadcast(0, this.setHeader(Op.SAMPLING, prompt.length, logprobs, this.length(slot), slot));
    await world.send(this.samplerRank, encodeSampling(params), Tag.SAMPLING);
    await world.send(this.samplerRank, Int32Array.from(prompt), Tag.TOKENS);
    this.logprobsOf[slot] = logprobs;
    if (this.sampleWire.length < sampleWireLength(logprobs)) this.sampleWire = new Float64Array(sampleWireLength(logprobs));
  }

  /** forward(tokens), sampled where the logits are: only the token and its logprobs come back. */
  async forwardSample(tokens: Int32Array, slot = 0): Promise<SampleResult> {
    this.checkSampling(slot);
    tokens = await this.pipelinePrefix(tokens, slot);
    await this.startStep(tokens, StepFlag.SAMPLE, slot);
    const got = await this.runners.world.recv(this.samplerRank, this.sampleWire, Tag.SAMPLE);
    this.lengths[slot]! += tokens.length;
    return decodeSample(this.sampleWire.subarray(0, got / 8));
  }

  truncate(pos: number, slot = 0): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    if (pos >= this.length(slot)) return;
    this.lengths[slot] = pos;
    // The root's broadcast is queued at once; a broken group shows up at the next forward.
    this.runners.world.broadcast(0, this.setHeader(Op.TRUNCATE, 0, 0, pos, slot)).catch(() => {});
  }

  /** Tells the runners to exit and waits for them (killing what is left after `ms`). */
  close(ms = 10000): Promise<void> {
    this.closing ??= (async () => {
      await this.runners.world.broadcast(0, this.setHeader(Op.CLOSE, 0, 0, 0, 0)).catch(() => {});
      await this.runners.close(ms);
    })();
    return this.closing;
  }
}
