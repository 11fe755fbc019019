import type { Group } from "../transport/index.js";
import { Sampler } from "../engine/sampling/index.js";
import { HEADER_INTS, Op, StepFlag, Tag } from "./protocol.js";
import type { RankPlace } from "../placement/shard-plan.js";
import type { StageCompute } from "./stage.js";
import { decodeSampling, encodeSample, sampleWireLength, SAMPLING_FIELDS } from "./sample-wire.js";

/**
 * A runner's step loop (see protocol.ts for the data-plane messages). Returns when the driver says
 * CLOSE; rejects when a group fails (the error names the lost rank).
 */
export async function serveSteps(
  world: Group,
  stage: StageCompute,
  me: RankPlace,
  places: RankPlace[],
  hidden: number,
  /** The last stage's vocabulary slices, by tensor rank (the sampler rank gathers them). */
  vocabRows: [number, number][],
  /** Tests only (RunnerInit.testStepDelay): block this thread so long before each prefill step. */
  testPrefillDelayMs = 0,
): Promise<void> {
  const header = new Int32Array(HEADER_INTS);
  const prevStage = places.filter((p) => p.stage === me.stage - 1);
  const from = prevStage.length ? prevStage[me.tpRank % prevStage.length]!.world : 0;
  const to = places.filter((p) => p.stage === me.stage + 1 && p.tpRank % me.tpSize === me.tpRank).map((p) => p.world);
  const lastStage = places.filter((p) => p.stage === places[places.length - 1]!.stage).sort((a, b) => a.tpRank - b.tpRank);
  const sampling = stage.logitRows && me.tpRank === 0 ? new SamplingRank(world, lastStage, vocabRows, stage.slots) : undefined;
  let tokens = new Int32Array(1);
  let buf = new Float32Array(hidden);
  const one = [true];
  for (;;) {
    await world.broadcast(0, header);
    const [op, n, flags, position, slot, mask] = [header[0]!, header[1]!, header[2]!, header[3]!, header[4]!, header[5]!];
    if (op === Op.CLOSE) return;
    if (op === Op.TRUNCATE) {
      stage.truncate(slot, position);
      continue;
    }
    if (op === Op.SAMPLING) {
      await sampling?.begin(slot, n, flags);
      continue;
    }
    if (op !== Op.STEP && op !== Op.DECODE) throw new Error(`unknown step op ${op}`);
    // A DECODE step is n rows of one token (one per slot of its range), a STEP n tokens of one slot.
    let x: Float32Array;
    if (stage.first) {
      if (tokens.length < n) tokens = new Int32Array(n);
      const t = tokens.subarray(0, n);
      await world.recv(0, t, Tag.TOKENS);
      x = stage.embed(t);
    } else {
      if (buf.length < n * hidden) buf = new Float32Array(n * hidden);
      x = buf.subarray(0, n * hidden);
      await world.recv(from, x, Tag.HIDDEN);
    }
    if (op === Op.DECODE) {
      const active = Array.from({ length: n }, (_, b) => ((mask >>> b) & 1) === 1);
      const out = await stage.step(x, 1, false, slot, n, active);
      if (!stage.logitRows) for (const r of to) await world.send(r, out, Tag.HIDDEN);
      else if (!(flags & StepFlag.SAMPLE)) await world.send(0, out, Tag.LOGITS);
      else if (sampling) await sampling.sampleRows(out, slot, active);
      else await world.send(lastStage[0]!.world, out, Tag.LOGITS);
      continue;
    }
    if (testPrefillDelayMs > 0 && n > 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, testPrefillDelayMs);
    const allLogits = (flags & StepFlag.ALL_LOGITS) !== 0;
    const out = await stage.step(x, n, allLogits, slot, 1, one);
    const rows = stage.logitRows;
    if (rows) {
      const want = (allLogits ? n : 1) * (rows[1] - rows[0]);
      if (out.length !== want) throw new Error(`logits of ${out.length} values, expected ${want}`);
      if (flags & StepFlag.NO_OUTPUT) continue;
      if (!(flags & StepFlag.SAMPLE)) await world.send(0, out, Tag.LOGITS);
      else if (sampling) await sampling.sampleRows(out, slot, one);
      else await world.send(lastStage[0]!.world, out, Tag.LOGITS);
    } else {
      for (const r of to) await world.send(r, out, Tag.HIDDEN);
    }
  }
}

/**
 * Tensor rank 0 of the last stage: holds each slot's sampler (its request's parameters and penalty
 * window) and samples the gathered logits.
 */
class SamplingRank {
  private readonly vocab: number;
  private readonly params = new Float64Array(SAMPLING_FIELDS.length);
  private readonly samplers: (Sampler | undefined)[];
  /** Each slot's logprobs count, −1 for none. */
  private readonly logprobs: Int32Array;
  private gathered = new Float32Array(0);
  private part = new Float32Array(0);
  private wire = new Float64Array(0);
  private prompt = new Int32Array(1);

  constructor(
    private readonly world: Group,
    private readonly lastStage: RankPlace[],
    private readonly rows: [number, number][],
    slots: number,
  ) {
    this.vocab = rows[rows.length - 1]![1];
    this.samplers = new Array<Sampler | undefined>(slots);
    this.logprobs = new Int32Array(slots).fill(-1);
  }

  async begin(slot: number, promptLength: number, logprobs: number): Promise<void> {
    if (!(slot >= 0 && slot < this.samplers.length)) throw new Error(`SAMPLING for slot ${slot}, but this rank holds ${this.samplers.length}`);
    await this.world.recv(0, this.params, Tag.SAMPLING);
    if (this.prompt.length < promptLength) this.prompt = new Int32Array(promptLength);
    const prompt = this.prompt.subarray(0, promptLength);
    await this.world.recv(0, prompt, Tag.TOKENS);
    const params = decodeSampling(this.params);
    const opts = logprobs >= 0 ? { logprobs } : {};
    const sampler = (this.samplers[slot] ??= new Sampler(this.vocab, params, opts));
    sampler.reset(params, opts);
    for (const t of prompt) sampler.accept(t);
    this.logprobs[slot] = logprobs;
  }

  /**
   * `own`: this rank's slice of the logits of `active.length` rows (slots lo, lo + 1, …); the other
   * ranks' slices arrive over the world group. Samples each active row with its slot's sampler and
   * sends the driver their records, in slot order.
   */
  async sampleRows(own: Float32Array, lo: number, active: readonly boolean[]): Promise<void> {
    const logits = await this.gather(own, active.length);
    const slots = active.flatMap((a, b) => (a ? [lo + b] : []));
    const stride = sampleWireLength(Math.max(-1, ...slots.map((s) => this.logprobs[s]!)));
    if (this.wire.length < slots.length * stride) this.wire = new Float64Array(slots.length * stride);
    slots.forEach((slot, k) => {
      const sampler = this.samplers[slot];
      if (!sampler) throw new Error(`a sampled step for slot ${slot} before its SAMPLING op`);
      const b = slot - lo;
      const result = sampler.sample(logits.subarray(b * this.vocab, (b + 1) * this.vocab));
      sampler.accept(result.token);
      encodeSample(result, this.wire.subarray(k * stride, (k + 1) * stride));
    });
    await this.world.send(0, this.wire.subarray(0, slots.length * stride), Tag.SAMPLE);
  }

  /** Every rank's vocabulary slices of `count` rows → [count × vocab]. */
  private async gather(own: Float32Array, count: number): Promise<Float32Array> {
    if (this.lastStage.length === 1) return own;
    const V = this.vocab;
    if (this.gathered.length < count * V) this.gathered = new Float32Array(count * V);
    const all = this.gathered.subarray(0, count * V);
    const scatter = (slice: Float32Array, [v0, v1]: [number, number]) => {
      for (let r = 0; r < count; r++) all.set(slice.subarray(r * (v1 - v0), (r + 1) * (v1 - v0)), r * V + v0);
    };
    scatter(own, this.rows[0]!);
    for (let t = 1; t < this.lastStage.length; t++) {
      const [v0, v1] = this.rows[t]!;
      const want = count * (v1 - v0);
      if (this.part.length < want) this.part = new Float32Array(want);
      const got = await this.world.recv(this.lastStage[t]!.world, this.part.subarray(0, want), Tag.LOGITS);
      if (got !== want * 4) throw new Error(`got ${got} bytes of logits from tensor rank ${t}, expected ${want * 4}`);
      scatter(this.part, this.rows[t]!);
    }
    return all;
  }
}
