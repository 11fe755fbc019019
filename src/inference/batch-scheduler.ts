import type { Tokenizer } from "../models/types.js";
import type { BatchStepper, DecodeEntry } from "../engine/types.js";
import { InferenceError } from "./errors.js";
import { checkRequest, commonPrefix, type GenerateOptions } from "./generator.js";
import { promptTokens } from "./prompt.js";
import type { ResolvedRequest } from "./request.js";
import type { GenerationResult } from "./result.js";
import { Sequence } from "./sequence.js";
import { Sampler, type SampleResult } from "../engine/sampling/index.js";

/** A decode step's rows: [rows × vocab] logits, or each row's token sampled where the logits are. */
type StepOutput = Float32Array | SampleResult[];

export interface BatchSchedulerOptions {
  /** Prompt tokens computed between two decode steps (split over the requests prefilling). Default 128. */
  prefillChunk?: number;
  /** Requests that may wait for a free slot before new ones are refused (overloaded). Default 64. */
  maxQueued?: number;
}

export interface BatchStats {
  slots: number;
  /** Requests holding a slot (prefilling or decoding). */
  running: number;
  /** Requests waiting for a slot. */
  queued: number;
  /** Sequences the last decode step advanced together. */
  lastBatch: number;
  /** Decode steps and prefill chunks run so far. */
  decodeSteps: number;
  prefillChunks: number;
}

interface Job {
  request: ResolvedRequest;
  opts: GenerateOptions;
  prompt: number[];
  maxTokens: number;
  t0: number;
  resolve(r: GenerationResult): void;
  reject(e: unknown): void;
  slot: number;
  /** Next prompt index to prefill. */
  at: number;
  seq?: Sequence;
}

export const DEFAULT_BATCH_PREFILL_CHUNK = 128;
const DEFAULT_MAX_QUEUED = 64;

/** Lets the thread's event loop run (new requests, cancels) between two synchronous steps. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Continuous batching over a BatchStepper (knows nothing of HTTP). Each request holds one KV slot
 * from admission to its end. Every turn of the loop: admit waiting requests into free slots (in
 * arrival order), run up to one chunk of prompt tokens (of the earliest admitted requests still
 * prefilling), then one decode step that advances every request with a sampled token at once. So a
 * long prompt delays running streams by one chunk per token at most, and a new request waits for
 * nothing but a slot.
 *
 * Prefix cache: a slot keeps the tokens of its last request after it ends; a new request goes to
 * the free slot sharing the longest prefix with its prompt and computes only the rest
 * (PromptInfo.cachedTokens says how many it skipped).
 */
export class BatchScheduler {
  private readonly waiting: Job[] = [];
  /** In admission order. */
  private readonly active: Job[] = [];
  /** Tokens whose keys and values each slot holds (kept after its request ends). */
  private readonly slotTokens: number[][];
  private readonly slotBusy: boolean[];
  private readonly prefillChunk: number;
  private readonly maxQueued: number;
  private looping = false;
  private idleWaiters: (() => void)[] = [];
  private lastBatch = 0;
  private decodeSteps = 0;
  /** Decode steps sent and not yet finished, oldest first (an engine of depth > 1). */
  private readonly inFlight: { jobs: Job[]; entries: DecodeEntry[] }[] = [];
  private prefillChunks = 0;

  constructor(
    private readonly engine: BatchStepper,
    private readonly tokenizer: Tokenizer | undefined,
    opts: BatchSchedulerOptions = {},
  ) {
    this.prefillChunk = opts.prefillChunk ?? DEFAULT_BATCH_PREFILL_CHUNK;
    this.maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new Error(`prefill chunk must be an integer ≥ 1, got ${this.prefillChunk}`);
    this.slotTokens = Array.from({ length: engine.slots }, () => []);
    this.slotBusy = new Array<boolean>(engine.slots).fill(false);
  }

  stats(): BatchStats {
    return {
      slots: this.engine.slots,
      running: this.active.length,
      queued: this.waiting.length,
      lastBatch: this.lastBatch,
      decodeSteps: this.decodeSteps,
      prefillChunks: this.prefillChunks,
    };
  }

  /**
   * Queues a request; resolves with its result (finish reason "cancelled" when its signal aborts).
   * A prompt that cannot run is refused at once; so is a request beyond the queue's bound.
   */
  generate(request: ResolvedRequest, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const t0 = performance.now();
    try {
      const prompt = promptTokens(request.input, this.tokenizer);
      const maxTokens = checkRequest(request, prompt, this.engine);
      const free = this.slotBusy.filter((busy) => !busy).length;
      if (this.waiting.length - free >= this.maxQueued) {
        throw new InferenceError("overloaded", `the model's queue is full (${this.maxQueued} requests waiting); try again later`, { retryAfterS: 1 });
      }
      return new Promise<GenerationResult>((resolve, reject) => {
        this.waiting.push({ request, opts, prompt, maxTokens, t0, resolve, reject, slot: -1, at: 0 });
        void this.loop();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Resolves once no request is running or waiting. */
  idle(): Promise<void> {
    if (this.active.length === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Forgets every slot's cached tokens (after the engine was used directly). Only while idle. */
  resetCache(): void {
    if (this.active.length > 0) throw new Error("BatchScheduler.resetCache while requests run");
    this.slotTokens.forEach((t, s) => {
      t.length = 0;
      this.engine.truncate(s, 0);
    });
  }

  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      while (this.active.length > 0 || this.waiting.length > 0) {
        // a waiter whose client left goes at once, as in RequestQueue
        for (const j of this.waiting.filter((w) => w.opts.signal?.aborted)) {
          this.waiting.splice(this.waiting.indexOf(j), 1);
          j.reject(new InferenceError("cancelled", "the request was cancelled"));
        }
        this.admit();
        for (const j of this.active) if (j.opts.signal?.aborted) j.seq!.cancel();
        this.prefillStep();
        this.decodeStep();
        this.settle();
        await yieldToEventLoop();
      }
    } finally {
      this.looping = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private admit(): void {
    while (this.waiting.length > 0) {
      const slot = this.pickSlot(this.waiting[0]!.prompt);
      if (slot < 0) return;
      const job = this.waiting.shift()!;
      // at least one prompt token must run to get logits
      const keep = Math.min(commonPrefix(this.slotTokens[slot]!, job.prompt), job.prompt.length - 1);
      try {
        this.engine.truncate(slot, keep);
        this.slotTokens[slot]!.length = keep;
        const opts = { logprobs: job.request.logprobs ?? undefined };
        // sampled where the logits are (a sharded model's last stage), or here from the logits
        let sampler: Sampler | undefined;
        if (this.engine.sampling) {
          this.engine.sampling.begin(slot, job.request.sampling, opts, job.prompt);
        } else {
          sampler = new Sampler(this.engine.vocabSize, job.request.sampling, opts);
          for (const t of job.prompt) sampler.accept(t);
        }
        job.seq = new Sequence(job.request, job.prompt, job.maxTokens, sampler, this.tokenizer, job.opts.onToken, job.t0);
        job.seq.timings.cachedTokens = keep;
        job.opts.onPrompt?.({ promptTokens: job.prompt.length, cachedTokens: keep });
      } catch (e) {
        job.reject(e);
        continue;
      }
      job.slot = slot;
      job.at = keep;
      this.slotBusy[slot] = true;
      this.active.push(job);
    }
  }

  /** The free slot whose cached tokens share the longest prefix with `prompt`; then an empty one; then the lowest. */
  private pickSlot(prompt: readonly number[]): number {
    let best = -1;
    let bestKeep = -1;
    for (let s = 0; s < this.slotBusy.length; s++) {
      if (this.slotBusy[s]) continue;
      const keep = commonPrefix(this.slotTokens[s]!, prompt);
      const better = keep > bestKeep || (keep === bestKeep && this.slotTokens[s]!.length === 0 && this.slotTokens[best]!.length > 0);
      if (better) {
        best = s;
        bestKeep = keep;
      }
    }
    return best;
  }

  /**
   * Prompt work of one turn: at most `prefillChunk` tokens, earliest admitted first, one run per
   * request (so several short prompts start in the same turn, and a long one takes turns).
   */
  private prefillStep(): void {
    let budget = this.prefillChunk;
    for (const job of this.active) {
      if (budget <= 0) return;
      const seq = job.seq!;
      if (seq.done || job.at >= job.prompt.length) continue;
      const chunk = job.prompt.slice(job.at, job.at + budget);
      budget -= chunk.length;
      try {
        if (job.at === seq.timings.cachedTokens) seq.startPrefill(job.at);
        const last = job.at + chunk.length === job.prompt.length;
        const tokens = Int32Array.from(chunk);
        const next = last && this.engine.sampling ? this.engine.sampling.prefill(job.slot, tokens) : this.engine.prefill(job.slot, tokens);
        this.prefillChunks++;
        this.slotTokens[job.slot]!.push(...chunk);
        job.at += chunk.length;
        if (last) {
          seq.endPrefill();
          seq.take(next);
        }
      } catch (e) {
        this.fail([job], e);
      }
    }
  }

  private decodeStep(): void {
    const engine = this.engine;
    const sampling = engine.sampling;
    const depth = engine.depth ?? 1;
    if (depth > 1 && sampling?.startDecode && sampling.finishDecode) {
      return this.pipelinedDecode(depth, (x) => sampling.startDecode!(x), () => sampling.finishDecode!());
    }
    if (depth > 1 && !sampling && engine.startDecode && engine.finishDecode) {
      return this.pipelinedDecode(depth, (x) => engine.startDecode!(x), () => engine.finishDecode!());
    }
    const batch = this.active.filter((j) => !j.seq!.done && j.seq!.pending !== undefined);
    if (batch.length === 0) return;
    const entries = batch.map((j) => ({ slot: j.slot, token: j.seq!.pending! }));
    let out: StepOutput;
    try {
      out = sampling ? sampling.decode(entries) : engine.decode(entries);
    } catch (e) {
      this.fail(batch, e);
      return;
    }
    this.took(batch, entries, out);
  }

  /**
   * Decode on a pipeline: the decoding sequences, in slot order, are cut into up to `depth` groups of
   * consecutive slots (a step spans its lowest to its highest slot), each its own step, so every stage
   * computes one group while the next stage computes another. Each turn sends every group none of
   * whose sequences is in flight (while there is room), then finishes the oldest step. When a
   * sequence joins or ends the groups shift, and a sequence waits at most one turn for its new group.
   */
  private pipelinedDecode(depth: number, start: (entries: DecodeEntry[]) => void, finish: () => StepOutput): void {
    const flying = new Set(this.inFlight.flatMap((s) => s.jobs));
    const decoding = this.active.filter((j) => !j.seq!.done && j.seq!.pending !== undefined).sort((x, y) => x.slot - y.slot);
    const groups = Math.min(depth, decoding.length);
    for (let g = 0; g < groups && this.inFlight.length < depth; g++) {
      const jobs = decoding.slice(Math.round((g * decoding.length) / groups), Math.round(((g + 1) * decoding.length) / groups));
      if (jobs.some((j) => flying.has(j))) continue;
      const entries = jobs.map((j) => ({ slot: j.slot, token: j.seq!.pending! }));
      try {
        start(entries);
      } catch (e) {
        this.fail(jobs, e);
        continue;
      }
      this.inFlight.push({ jobs, entries });
    }
    const step = this.inFlight.shift();
    if (!step) return;
    let out: StepOutput;
    try {
      out = finish();
    } catch (e) {
      this.fail(step.jobs, e);
      return;
    }
    this.took(step.jobs, step.entries, out);
  }

  /**
   * A decode step's output, row i for jobs[i] (logits to sample, or tokens sampled already): each
   * sequence takes its next token (one cancelled meanwhile only keeps its slot's token).
   */
  private took(jobs: Job[], entries: DecodeEntry[], out: StepOutput): void {
    this.decodeSteps++;
    this.lastBatch = jobs.length;
    const V = this.engine.vocabSize;
    jobs.forEach((j, i) => {
      this.slotTokens[j.slot]!.push(entries[i]!.token);
      if (j.seq!.done) return;
      j.seq!.decoded();
      j.seq!.take(out instanceof Float32Array ? out.subarray(i * V, (i + 1) * V) : out[i]!);
    });
  }

  /** A failed step leaves its slots anywhere: they start clean, and their requests fail. */
  private fail(jobs: Job[], e: unknown): void {
    for (const j of jobs) {
      this.slotTokens[j.slot]!.length = 0;
      try {
        this.engine.truncate(j.slot, 0);
      } catch {
        // the engine is broken; the next request will report it
      }
      this.release(j);
      j.reject(e);
    }
  }

  private settle(): void {
    // a sequence whose step is in flight keeps its slot until the step is back (the runners append to it)
    const flying = new Set(this.inFlight.flatMap((s) => s.jobs));
    for (const j of [...this.active]) {
      if (!j.seq!.done || flying.has(j)) continue;
      this.release(j);
      j.resolve(j.seq!.result!);
    }
  }

  private release(j: Job): void {
    const i = this.active.indexOf(j);
    if (i >= 0) this.active.splice(i, 1);
    this.slotBusy[j.slot] = false;
  }
}
