import { TesseraError } from "../errors.js";
import type { ReadCounts } from "../models/source/counting.js";
import { checkContextRoom } from "../engine/session/kv-cache.js";
import type { ResolvedSamplingParams, SampleResult } from "../engine/sampling/index.js";
import { HEADER_INTS, Op, StepFlag, Tag } from "./protocol.js";
import { decodeSample, encodeSampling, sampleWireLength } from "./sample-wire.js";
import { LocalRunners, type LaunchOptions } from "./launcher.js";
import type { Group } from "../transport/index.js";
import type { RankPlace } from "../placement/shard-plan.js";
import { vocabSlices } from "./stage.js";

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
  private pos = 0;
  private readonly header = new Int32Array(HEADER_INTS);
  private readonly firstStage: number[];
  /** The last stage's ranks and the vocabulary slice each sends. */
  private readonly lastStage: { world: number; rows: [number, number] }[];
  private closing: Promise<void> | undefined;
  /** World rank of the last stage's tensor rank 0, which samples (op SAMPLING). */
  private readonly samplerRank: number;
  private sampleWire = new Float64Array(sampleWireLength(0));
  private steps = 0;

  private readonly stages: number;

  private constructor(
    readonly runners: RunnerSet,
    readonly contextLength: number,
    private readonly microBatch: number,
  ) {
    this.stages = runners.places[runners.places.length - 1]!.stage + 1;
    this.firstStage = runners.places.filter((p) => p.stage === 0).map((p) => p.world);
    const last = runners.places.filter((p) => p.stage === runners.places[runners.places.length - 1]!.stage);
    this.samplerRank = last.find((p) => p.tpRank === 0)!.world;
    const slices = vocabSlices(runners.vocabSize, last.length);
    this.lastStage = last.map((p, i) => ({ world: p.world, rows: slices[i]! }));
  }

  /** Starts the runners, waits until all are connected, and warms them up with one step. */
  static async start(o: LaunchOptions): Promise<ShardedDriver> {
    return ShardedDriver.attach(await LocalRunners.start(o), o.contextLength, o.microBatch);
  }

  /** Drives runners whose world group is already joined; warms them up with one step. */
  static async attach(runners: RunnerSet, contextLength: number, microBatch = PIPELINE_MICRO_BATCH): Promise<ShardedDriver> {
    const d = new ShardedDriver(runners, contextLength, microBatch);
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

  get position(): number {
    return this.pos;
  }

  /** Steps sent to the runners so far (a pipelined prefill sends one per micro-batch). */
  get stepsSent(): number {
    return this.steps;
  }

  private checkRoom(n: number): void {
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    checkContextRoom(this.pos, n, this.contextLength);
  }

  /** Sends the step header and the tokens; the runners take it from there. */
  private async startStep(tokens: Int32Array, flags: number): Promise<void> {
    const n = tokens.length;
    this.checkRoom(n);
    const world = this.runners.world;
    const h = this.header;
    h[0] = Op.STEP;
    h[1] = n;
    h[2] = flags;
    h[3] = this.pos;
    await world.broadcast(0, h);
    this.steps++;
    for (const r of this.firstStage) await world.send(r, tokens, Tag.TOKENS);
  }

  /**
   * Pipelined prefill: with several stages, all but the last micro-batch of a long input are sent as
   * steps that return nothing, back to back, so stage s computes micro-batch k while stage s + 1
   * computes k − 1 (a pipeline computes one stage at a time otherwise). Returns the last micro-batch,
   * which the caller runs as a normal step.
   */
  private async pipelinePrefix(tokens: Int32Array): Promise<Int32Array> {
    this.checkRoom(tokens.length); // before any micro-batch goes out
    const m = this.microBatch;
    if (this.stages < 2 || m <= 0 || tokens.length <= m) return tokens;
    const k = Math.ceil(tokens.length / m);
    const size = Math.ceil(tokens.length / k); // k even micro-batches, not k − 1 full ones and a stub
    let at = 0;
    for (; tokens.length - at > size; at += size) {
      await this.startStep(tokens.subarray(at, at + size), StepFlag.NO_OUTPUT);
      this.pos += size;
    }
    return tokens.subarray(at);
  }

  /**
   * Runs tokens into the cache without waiting for them: steps that return nothing (micro-batches
   * under a pipeline), so consecutive prefill chunks stay in flight. A failure shows at the next step.
   */
  async prefill(tokens: Int32Array): Promise<void> {
    const last = await this.pipelinePrefix(tokens);
    await this.startStep(last, StepFlag.NO_OUTPUT);
    this.pos += last.length;
  }

  async forward(tokens: Int32Array, opts: { allLogits?: boolean } = {}): Promise<Float32Array> {
    if (!opts.allLogits) tokens = await this.pipelinePrefix(tokens);
    await this.startStep(tokens, opts.allLogits ? StepFlag.ALL_LOGITS : 0);
    const n = tokens.length;
    const world = this.runners.world;
    const V = this.vocabSize;
    const rows = opts.allLogits ? n : 1;
    const logits = new Float32Array(rows * V);
    await Promise.all(
      this.lastStage.map(async ({ world: from, rows: [v0, v1] }) => {
        const w = v1 - v0;
        // One slice per rank: straight into place for one row, else rows scattered from a buffer.
        const into = rows === 1 ? logits.subarray(v0, v1) : new Float32Array(rows * w);
        const got = await world.recv(from, into, Tag.LOGITS);
        if (got !== into.byteLength) throw new Error(`got ${got} bytes of logits from world rank ${from}, expected ${into.byteLength}`);
        if (rows > 1) for (let r = 0; r < rows; r++) logits.set(into.subarray(r * w, (r + 1) * w), r * V + v0);
      }),
    );
    this.pos += n;
    return logits;
  }

  /**
   * Starts a request's sampling on the last stage's tensor rank 0 (protocol.ts, op SAMPLING): from
   * now on forwardSample steps return a token, not logits.
   */
  async beginSampling(params: ResolvedSamplingParams, opts: { logprobs?: number }, prompt: readonly number[]): Promise<void> {
    const logprobs = opts.logprobs ?? -1;
    if (!Number.isInteger(logprobs) || logprobs < -1) throw new TesseraError(`logprobs must be an integer ≥ 0, got ${opts.logprobs}`, "request");
    const world = this.runners.world;
    const h = this.header;
    h[0] = Op.SAMPLING;
    h[1] = prompt.length;
    h[2] = logprobs;
    h[3] = this.pos;
    await world.broadcast(0, h);
    await world.send(this.samplerRank, encodeSampling(params), Tag.SAMPLING);
    await world.send(this.samplerRank, Int32Array.from(prompt), Tag.TOKENS);
    if (this.sampleWire.length < sampleWireLength(logprobs)) this.sampleWire = new Float64Array(sampleWireLength(logprobs));
  }

  /** forward(tokens), sampled where the logits are: only the token and its logprobs come back. */
  async forwardSample(tokens: Int32Array): Promise<SampleResult> {
    tokens = await this.pipelinePrefix(tokens);
    await this.startStep(tokens, StepFlag.SAMPLE);
    const got = await this.runners.world.recv(this.samplerRank, this.sampleWire, Tag.SAMPLE);
    this.pos += tokens.length;
    return decodeSample(this.sampleWire.subarray(0, got / 8));
  }

  truncate(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    if (pos >= this.pos) return;
    this.pos = pos;
    const h = this.header;
    h[0] = Op.TRUNCATE;
    h[1] = 0;
    h[2] = 0;
    h[3] = pos;
    // The root's broadcast is queued at once; a broken group shows up at the next forward.
    this.runners.world.broadcast(0, h).catch(() => {});
  }

  /** Tells the runners to exit and waits for them (killing what is left after `ms`). */
  close(ms = 10000): Promise<void> {
    this.closing ??= (async () => {
      const h = this.header;
      h.fill(0);
      h[0] = Op.CLOSE;
      await this.runners.world.broadcast(0, h).catch(() => {});
      await this.runners.close(ms);
    })();
    return this.closing;
  }
}
