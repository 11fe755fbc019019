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
  const sampling = stage.logitRows && me.tpRank === 0 ? new SamplingRank(world, lastStage, vocabRows) : undefined;
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
      await sampling?.begin(n, flags);
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
      if (stage.logitRows) await world.send(0, out, Tag.LOGITS);
      else for (const r of to) await world.send(r, out, Tag.HIDDEN);
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
      else if (sampling) await sampling.sample(out);
      else await world.send(lastStage[0]!.world, out, Tag.LOGITS);
    } else {
      for (const r of to) await world.send(r, out, Tag.HIDDEN);
    }
  }
}

/** Tensor rank 0 of the last stage: holds the request's sampler and samples the gathered logits. */
class SamplingRank {
  private readonly logits: Float32Array;
  private readonly params = new Float64Array(SAMPLING_FIELDS.length);
  private sampler: Sampler | undefined;
  private wire = new Float64Array(sampleWireLength(0));
  private prompt = new Int32Array(1);

  constructor(
    private readonly world: Group,
    private readonly lastStage: RankPlace[],
    private readonly rows: [number, number][],
  ) {
    this.logits = new Float32Array(rows[rows.length - 1]![1]);
  }

  async begin(promptLength: number, logprobs: number): Promise<void> {
    await this.world.recv(0, this.params, Tag.SAMPLING);
    if (this.prompt.length < promptLength) this.prompt = new Int32Array(promptLength);
    const prompt = this.prompt.subarray(0, promptLength);
    await this.world.recv(0, prompt, Tag.TOKENS);
    const params = decodeSampling(this.params);
    const opts = logprobs >= 0 ? { logprobs } : {};
    if (this.sampler) this.sampler.reset(params, opts);
    else this.sampler = new Sampler(this.logits.length, params, opts);
    for (const t of prompt) this.sampler.accept(t);
    if (this.wire.length < sampleWireLength(logprobs)) this.wire = new Float64Array(sampleWireLength(logprobs));
  }

  /** `own`: this rank's slice of the last token's logits; the other ranks' slices arrive over the world group. */
  async sample(own: Float32Array): Promise<void> {
    if (!this.sampler) throw new Error("a sampled step before any SAMPLING op");
    this.logits.set(own, this.rows[0]![0]);
    for (let r = 1; r < this.lastStage.length; r++) {
      const [v0, v1] = this.rows[r]!;
      const got = await this.world.recv(this.lastStage[r]!.world, this.logits.subarray(v0, v1), Tag.LOGITS);
      if (got !== (v1 - v0) * 4) throw new Error(`got ${got} bytes of logits from tensor rank ${r}, expected ${(v1 - v0) * 4}`);
    }
    const result = this.sampler.sample(this.logits);
    this.sampler.accept(result.token);
    await this.world.send(0, encodeSample(result, this.wire), Tag.SAMPLE);
  }
}
