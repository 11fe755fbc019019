import type { ModelSource } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import type { BatchStepper, DecodeEntry, Stepper } from "../types.js";
import type { SlotKvStore } from "./slot-kv.js";
import { SlotStage, type SlotStageOptions } from "./slot-stage.js";
import type { ModelConfig } from "../../models/types.js";

export type BatchEngineOptions = SlotStageOptions;

/**
 * The whole model as one graph over a KV store of many slots (continuous batching). A decode step
 * runs one token of each of several sequences through the graph at once: the weight matmuls see
 * the B rows together (decode streams the weights once for all of them), attention stays per
 * sequence over its slot (session/slot-kv.ts). A prefill runs one slot's prompt chunk alone.
 * The graph is the same one a single sequence runs (graph/decoder.ts with B = 1).
 */
export class BatchEngine implements BatchStepper {
  private constructor(private readonly stage: SlotStage) {}

  static async create(source: ModelSource, opts: BatchEngineOptions): Promise<BatchEngine> {
    if (opts.layers && (opts.layers[0] !== 0 || opts.layers[1] !== source.config.numLayers)) {
      throw new TesseraError("a batch engine runs the whole model (pipeline stages batch through the runner)");
    }
    return new BatchEngine(await SlotStage.create(source, { ...opts, layers: undefined }));
  }

  get config(): ModelConfig {
    return this.stage.config;
  }

  get kv(): SlotKvStore {
    return this.stage.kv;
  }

  get vocabSize(): number {
    return this.stage.vocabSize;
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
    if (tokens.length < 1) throw new TesseraError("a forward step needs at least one token");
    this.kv.reserve(slot, tokens.length);
    return this.stage.run(slot, 1, tokens.length, [true], this.stage.embed(tokens), opts.allLogits);
  }

  /**
   * One token for each entry's slot, all in one run; returns [entries × vocab] logits, row i for
   * entries[i]. The bound range spans the lowest to the highest slot named; free slots between
   * them ride along as padding.
   */
  decode(entries: readonly DecodeEntry[]): Float32Array {
    const range = decodeRange(entries);
    for (const e of entries) this.kv.reserve(e.slot, 1);
    const all = this.stage.run(range.lo, range.count, 1, range.active, this.stage.embed(range.tokens));
    return pickRows(all, range.lo, entries, this.vocabSize);
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
    this.stage.dispose();
  }
}

/** The contiguous slot range a decode step binds: which of its rows take part, and each one's token (0 for padding). */
export interface DecodeRange {
  lo: number;
  count: number;
  active: boolean[];
  tokens: Int32Array;
}

export function decodeRange(entries: readonly DecodeEntry[]): DecodeRange {
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
  }
  return { lo, count, active, tokens };
}

/** Rows [count × width] of a range starting at slot `lo` → [entries × width], row i for entries[i]. */
export function pickRows(all: Float32Array, lo: number, entries: readonly DecodeEntry[], width: number): Float32Array {
  if (all.length === entries.length * width && entries.every((e, i) => e.slot === lo + i)) return all;
  const out = new Float32Array(entries.length * width);
  entries.forEach((e, i) => out.set(all.subarray((e.slot - lo) * width, (e.slot - lo + 1) * width), i * width));
  return out;
}
