import type { ModelSource } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import { ort, type SyncSession } from "../onnx/session.js";
import type { LinearWeight } from "../weights/linear.js";
import { embedTokens } from "../weights/linear.js";
import type { BatchStepper, Stepper } from "../types.js";
import { buildShardSession, type ShardOptions } from "./shard.js";
import { SlotKvStore } from "./slot-kv.js";
import type { ModelConfig } from "../../models/types.js";

export interface BatchEngineOptions extends ShardOptions {
  /** Sequences the KV store holds at once. */
  slots: number;
}

/** One decode step's work for a slot: the token whose successor it wants. */
export interface DecodeEntry {
  slot: number;
  token: number;
}

/**
 * The whole model as one graph over a KV store of many slots (continuous batching). A decode step
 * runs one token of each of several sequences through the graph at once: the weight matmuls see
 * the B rows together (decode streams the weights once for all of them), attention stays per
 * sequence over its slot (session/slot-kv.ts). A prefill runs one slot's prompt chunk alone.
 * The graph is the same one a single sequence runs (graph/decoder.ts with B = 1).
 */
export class BatchEngine implements BatchStepper {
  private constructor(
    readonly config: ModelConfig,
    private readonly session: SyncSession,
    private readonly embedding: LinearWeight,
    readonly kv: SlotKvStore,
    readonly vocabSize: number,
  ) {}

  static async create(source: ModelSource, opts: BatchEngineOptions): Promise<BatchEngine> {
    if (opts.layers && (opts.layers[0] !== 0 || opts.layers[1] !== source.config.numLayers)) {
      throw new TesseraError("a batch engine runs the whole model (pipeline stages batch through the runner)");
    }
    const built = await buildShardSession(source, { ...opts, layers: undefined });
    const cfg = source.config;
    const layerIds = Array.from({ length: cfg.numLayers }, (_, i) => i);
    const kv = new SlotKvStore(layerIds, cfg.numKvHeads, built.contextLength, cfg.headDim, opts.slots, cfg.slidingWindow);
    return new BatchEngine(cfg, built.session, built.embedding!, kv, built.vocabSize);
  }

  get slots(): number {
    return this.kv.slots;
  }

  get contextLength(): number {
    return this.kv.capacity;
  }

  length(slot: number): number {
    return this.kv.length(slot);
  }

  truncate(slot: number, pos: number): void {
    this.kv.truncate(slot, pos);
  }

  /** Runs a chunk of one slot's prompt; logits of its last token ([vocab]) or of every token. */
  prefill(slot: number, tokens: Int32Array, opts: { allLogits?: boolean } = {}): Float32Array {
    const n = tokens.length;
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    this.kv.reserve(slot, n);
    const hidden = embedTokens(this.embedding, tokens, undefined, this.config.embeddingScale);
    const index = opts.allLogits ? BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) : BigInt64Array.of(BigInt(n - 1));
    return this.run(slot, 1, n, [true], hidden, index);
  }

  /**
   * One token for each entry's slot, all in one run; returns [entries × vocab] logits, row i for
   * entries[i]. The bound range spans the lowest to the highest slot named; free slots between
   * them ride along as padding.
   */
  decode(entries: readonly DecodeEntry[]): Float32Array {
    if (entries.length === 0) throw new TesseraError("a decode step needs at least one sequence");
    const lo = Math.min(...entries.map((e) => e.slot));
    const hi = Math.max(...entries.map((e) => e.slot));
    const count = hi - lo + 1;
    const active = new Array<boolean>(count).fill(false);
    const tokens = new Int32Array(count);
    for (const e of entries) {
      if (active[e.slot - lo]) throw new Error(`slot ${e.slot} appears twice in one decode step`);
      active[e.slot - lo] = true;
      tokens[e.slot - lo] = e.token;
      this.kv.reserve(e.slot, 1);
    }
    const hidden = embedTokens(this.embedding, tokens, undefined, this.config.embeddingScale);
    const all = this.run(lo, count, 1, active, hidden, BigInt64Array.of(0n));
    const V = this.vocabSize;
    if (count === entries.length && entries.every((e, i) => e.slot === lo + i)) return all;
    const out = new Float32Array(entries.length * V);
    entries.forEach((e, i) => out.set(all.subarray((e.slot - lo) * V, (e.slot - lo + 1) * V), i * V));
    return out;
  }

  private run(lo: number, count: number, n: number, active: boolean[], hidden: Float32Array, index: BigInt64Array): Float32Array {
    const feeds: Record<string, ort.Tensor> = {
      hidden_in: new ort.Tensor("float32", hidden, [count, n, this.config.hiddenSize]),
      logits_index: new ort.Tensor("int64", index, [index.length]),
    };
    const outputs: Record<string, ort.Tensor | null> = { logits: null };
    this.kv.bind(lo, count, n, active, feeds, outputs);
    const result = this.session.run(feeds, outputs);
    this.kv.store(lo, count, n, active, result);
    return result.logits.data as Float32Array;
  }

  /** One sequence in one slot behind the Stepper contract (warm-up, benchmarks, the one-at-a-time loop). */
  slotStepper(slot: number): Stepper {
    const kv = this.kv;
    return {
      vocabSize: this.vocabSize,
      contextLength: this.contextLength,
      get position() {
        return kv.length(slot);
      },
      forward: (tokens, opts) => this.prefill(slot, tokens, opts),
      truncate: (pos) => this.truncate(slot, pos),
      dispose: async () => this.dispose(),
    };
  }

  dispose(): void {
    this.session.dispose();
  }
}
