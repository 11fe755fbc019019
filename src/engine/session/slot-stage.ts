import type { ModelConfig, ModelSource } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import { ort, type SyncSession } from "../onnx/session.js";
import { embedTokens, type LinearWeight } from "../weights/linear.js";
import { buildShardSession, type ShardOptions } from "./shard.js";
import { SlotKvStore } from "./slot-kv.js";

export interface SlotStageOptions extends ShardOptions {
  /** Sequences the KV store holds at once. */
  slots: number;
}

/**
 * A layer range [a, b) as one graph over a KV store of many slots: what a batch engine runs for
 * the whole model and a pipeline runner for its stage. One run takes `n` new tokens of each slot
 * of a contiguous range [lo, lo + count); rows of slots that take no part ride along as padding
 * (session/slot-kv.ts). The first stage also embeds tokens; the last ends in logits.
 */
export class SlotStage {
  private constructor(
    readonly config: ModelConfig,
    readonly layers: [number, number],
    private readonly session: SyncSession,
    private readonly embedding: LinearWeight | undefined,
    readonly kv: SlotKvStore,
    /** lm_head rows on the last stage, else 0. */
    readonly vocabSize: number,
  ) {}

  static async create(source: ModelSource, opts: SlotStageOptions): Promise<SlotStage> {
    const built = await buildShardSession(source, opts);
    const [a, b] = built.layers;
    const cfg = source.config;
    const layerIds = Array.from({ length: b - a }, (_, i) => a + i);
    const kv = new SlotKvStore(layerIds, cfg.numKvHeads, built.contextLength, cfg.headDim, opts.slots, cfg.slidingWindow);
    return new SlotStage(cfg, built.layers, built.session, built.embedding, kv, built.vocabSize);
  }

  get isFirst(): boolean {
    return this.layers[0] === 0;
  }

  get isLast(): boolean {
    return this.layers[1] === this.config.numLayers;
  }

  /** Hidden states [n × hidden] for token ids (first stage only). */
  embed(tokens: Int32Array): Float32Array {
    if (!this.embedding) throw new Error("embed() on a stage that is not the first");
    return embedTokens(this.embedding, tokens, undefined, this.config.embeddingScale);
  }

  /**
   * Runs hidden states [count × n × hidden] of slots [lo, lo + count) and appends the active rows to
   * their slots. Last stage: logits [count × (1 or n) × vocab] of each row's last (or every)
   * position; other stages: hidden states [count × n × hidden].
   */
  run(lo: number, count: number, n: number, active: readonly boolean[], hidden: Float32Array, allLogits = false): Float32Array {
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    const feeds: Record<string, ort.Tensor> = {
      hidden_in: new ort.Tensor("float32", hidden, [count, n, this.config.hiddenSize]),
    };
    const outputs: Record<string, ort.Tensor | null> = {};
    if (this.isLast) {
      const index = allLogits ? BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) : BigInt64Array.of(BigInt(n - 1));
      feeds.logits_index = new ort.Tensor("int64", index, [index.length]);
      outputs.logits = null;
    } else {
      outputs.hidden_out = null;
    }
    this.kv.bind(lo, count, n, active, feeds, outputs);
    const result = this.session.run(feeds, outputs);
    this.kv.store(lo, count, n, active, result);
    return (this.isLast ? result.logits!.data : result.hidden_out!.data) as Float32Array;
  }

  dispose(): void {
    this.session.dispose();
  }
}
