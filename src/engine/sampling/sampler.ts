import { Prng } from "./prng.js";
import { PenaltyWindow } from "./penalties.js";
import { hasPenalties, type ResolvedSamplingParams } from "./params.js";
import { argmax, logSumExp, maxValue, topIndices } from "./select.js";

/** A token with its log-probability under the model's raw distribution (see TokenLogprobs). */
export interface TokenLogprob {
  token: number;
  logprob: number;
}

/**
 * Log-probabilities are the log-softmax of the RAW logits the model produced (before penalties,
 * temperature and filters), as OpenAI's API reports them: they describe the model, not the dice.
 */
export interface TokenLogprobs extends TokenLogprob {
  /** The `logprobs` most likely tokens, best first. */
  top: TokenLogprob[];
}

export interface SampleResult {
  token: number;
  logprobs?: TokenLogprobs;
}

/** First candidate budget for top-p without top-k; grows ×8 until the nucleus fits. */
const NUCLEUS_FIRST_GUESS = 64;

/**
 * Samples one token per call from a logits vector. Holds the vocab-sized scratch buffers, so one
 * Sampler serves many requests (reset) without allocating per token.
 */
export class Sampler {
  private readonly work: Float32Array;
  private readonly expBuf: Float32Array;
  private readonly idx: Int32Array;
  private readonly sel: Int32Array;
  private params!: ResolvedSamplingParams;
  private rng!: Prng;
  private window: PenaltyWindow | undefined;
  private logprobsN = -1;
  private topBuf = new Int32Array(0);

  constructor(readonly vocabSize: number, params: ResolvedSamplingParams, opts: { logprobs?: number } = {}) {
    this.work = new Float32Array(vocabSize);
    this.expBuf = new Float32Array(vocabSize);
    this.idx = new Int32Array(vocabSize);
    this.sel = new Int32Array(vocabSize);
    this.reset(params, opts);
  }

  /** Starts a new request: new parameters, fresh PRNG from the seed, empty penalty window. */
  reset(params: ResolvedSamplingParams, opts: { logprobs?: number } = {}): void {
    this.params = params;
    this.rng = new Prng(params.seed);
    this.window = hasPenalties(params) ? new PenaltyWindow(this.vocabSize, params.penaltyLastN) : undefined;
    this.logprobsN = opts.logprobs ?? -1;
    if (this.logprobsN > this.topBuf.length) this.topBuf = new Int32Array(this.logprobsN);
  }

  /** Feeds a token into the penalty window (every prompt token, then every sampled token). */
  accept(token: number): void {
    this.window?.push(token);
  }

  sample(logits: Float32Array): SampleResult {
    const n = this.vocabSize;
    if (logits.length < n) throw new Error(`sampler: ${logits.length} logits for a vocabulary of ${n}`);
    const p = this.params;
    let token: number;
    if (p.temperature <= 0 && !this.window) {
      token = argmax(logits, n); // nothing to change in the logits: skip the copy
    } else {
      this.work.set(logits.length === n ? logits : logits.subarray(0, n));
      this.window?.apply(this.work, p.repetitionPenalty, p.frequencyPenalty, p.presencePenalty);
      token = p.temperature <= 0 ? argmax(this.work, n) : this.draw();
    }
    return this.logprobsN >= 0 ? { token, logprobs: this.logprobsOf(logits, token) } : { token };
  }

  private draw(): number {
    const n = this.vocabSize;
    const work = this.work;
    const ex = this.expBuf;
    const { temperature, topK, topP, minP } = this.params;
    const invT = 1 / temperature;
    const idx = this.idx;
    const useTopK = topK > 0 && topK < n;
    let count = useTopK ? topIndices(work, n, topK, idx) : n;
    const max = useTopK ? work[idx[0]!]! : maxValue(work, n);
    if (max === -Infinity || Number.isNaN(max)) return argmax(work, n);

    if (useTopK) {
      if (topP < 1) {
        let z = 0;
        for (let j = 0; j < count; j++) z += ex[idx[j]!] = Math.exp((work[idx[j]!]! - max) * invT);
        count = nucleus(idx, count, ex, topP * z);
      }
    } else if (topP < 1) {
      let z = 0;
      for (let i = 0; i < n; i++) z += ex[i] = Math.exp((work[i]! - max) * invT);
      const target = topP * z;
      for (let m = NUCLEUS_FIRST_GUESS; ; m *= 8) {
        count = topIndices(work, n, m, idx);
        let cum = 0;
        for (let j = 0; j < count; j++) cum += ex[idx[j]!]!;
        if (cum >= target || count === n) break;
      }
      count = nucleus(idx, count, ex, target);
    } else {
      for (let i = 0; i < n; i++) idx[i] = i;
    }

    if (minP > 0) {
      // p_i ≥ minP·p_max  ⇔  (l_i − max)/T ≥ ln(minP): a threshold on logits, no exp needed.
      const threshold = max + Math.log(minP) * temperature;
      let kept = 0;
      for (let j = 0; j < count; j++) {
        const t = idx[j]!;
        if (work[t]! >= threshold) idx[kept++] = t;
      }
      count = kept;
    }

    let z = 0;
    for (let j = 0; j < count; j++) {
      const t = idx[j]!;
      z += ex[t] = Math.exp((work[t]! - max) * invT);
    }
    const r = this.rng.next() * z;
    let acc = 0;
    for (let j = 0; j < count; j++) {
      acc += ex[idx[j]!]!;
      if (r < acc) return idx[j]!;
    }
    return idx[count - 1]!;
  }

  private logprobsOf(raw: Float32Array, token: number): TokenLogprobs {
    const n = this.vocabSize;
    const lse = logSumExp(raw, n);
    const top: TokenLogprob[] = [];
    const k = topIndices(raw, n, this.logprobsN, this.topBuf);
    for (let j = 0; j < k; j++) {
      const t = this.topBuf[j]!;
      top.push({ token: t, logprob: raw[t]! - lse });
    }
    return { token, logprob: raw[token]! - lse, top };
  }
}

/** Length of the shortest best-first prefix of idx whose mass (ex) reaches target. */
function nucleus(idx: Int32Array, count: number, ex: Float32Array, target: number): number {
  let cum = 0;
  for (let j = 0; j < count; j++) {
    cum += ex[idx[j]!]!;
    if (cum >= target) return j + 1;
  }
  return count;
}
