import { resolveDevice } from "../onnx/devices.js";
import type { ModelConfig, ModelSource } from "../../models/types.js";
import type { TpSlice } from "../../placement/split.js";
import { buildTpAttentionGraph, buildTpMlpGraph } from "../graph/decoder.js";
import { SyncSession, ort } from "../onnx/session.js";
import { checkEngineConfig, loadCounter } from "../session/shard.js";
import { SlotKvStore } from "../session/slot-kv.js";
import type { Device, LoadProgress } from "../types.js";
import { embedTokens, type LinearWeight } from "../weights/linear.js";
import { loadEmbedding, loadLayer, loadRopeFreqs } from "../weights/load.js";
import { toLinearWeight, toVector } from "../weights/convert.js";
import { buildHeadGraph } from "./head-graph.js";

/** Sums a partial over the tensor-parallel group, in place; every rank must get the same bits. */
export type AllReduce = (partial: Float32Array) => Promise<void>;

export interface TpRankOptions {
  layers: [number, number];
  slice: TpSlice;
  contextLength: number;
  threads?: number;
  device?: Device;
  /** Load the embedding table (first stage). */
  embedding: boolean;
  /** Rows of lm_head (vocabulary ids [start, end)) this rank computes logits for (last stage). */
  vocabRows?: [number, number];
  /** Sequences its KV store holds at once (continuous batching); default 1. */
  slots?: number;
  onProgress?: (p: LoadProgress) => void;
}

interface LayerSessions {
  attn: SyncSession;
  mlp: SyncSession;
  layer: number;
  /** Gemma's norms of the summed attention / MLP outputs, applied after the all-reduce. */
  attnPostNorm?: Float32Array;
  ffnPostNorm?: Float32Array;
}

/**
 * One tensor-parallel rank of a pipeline stage. Per layer: graph A (attn_norm, this rank's heads
 * with their own KV cache, o_proj columns → partial), all-reduce, residual add; graph B (ffn_norm,
 * gate/up rows, down columns → partial), all-reduce, residual add. The residual stream is full
 * width and identical on every rank (the all-reduce gives every rank the same bits).
 *
 * Many sessions share the process, so their thread pools do not spin (facts.md: 15× slower if they do).
 */
export class TpRankEngine {
  private readonly lastIndex = new BigInt64Array(1);
  /** Decode-step buffers: the partial outputs are written in place (no allocation per layer). */
  private readonly partial1: ort.Tensor;
  private readonly lastLogits: ort.Tensor | undefined;

  private constructor(
    readonly config: ModelConfig,
    readonly layers: [number, number],
    private readonly sessions: LayerSessions[],
    private readonly embedding: LinearWeight | undefined,
    private readonly head: SyncSession | undefined,
    /** Logits this rank computes per position (its slice of the vocabulary). */
    readonly vocabSize: number,
    /** This rank's heads' KV cache, one entry per layer of `sessions`, for every slot. */
    readonly kv: SlotKvStore,
  ) {
    this.partial1 = new ort.Tensor("float32", new Float32Array(config.hiddenSize), [1, 1, config.hiddenSize]);
    if (head) this.lastLogits = new ort.Tensor("float32", new Float32Array(vocabSize), [1, 1, vocabSize]);
  }

  static async create(source: ModelSource, o: TpRankOptions): Promise<TpRankEngine> {
    const cfg = source.config;
    const device = o.device ?? "cpu";
    checkEngineConfig(cfg, source.path);
    if (device !== "cpu") resolveDevice(device); // a clear error before any weight is read
    const settings = { threads: o.threads ?? 1, device, spinning: false };
    const graphOpts = { maxSeq: o.contextLength, ropeInterleaved: source.ropeInterleaved, ropeFreqFactors: await loadRopeFreqs(source) };
    const shape = { heads: o.slice.heads, kvHeads: o.slice.kvHeads };
    const sessions: LayerSessions[] = [];
    let head: SyncSession | undefined;
    const progress = loadCounter(source, o.layers, o.onProgress);
    try {
      for (let l = o.layers[0]; l < o.layers[1]; l++) {
        const w = await loadLayer(source, l, o.slice);
        const a = buildTpAttentionGraph(cfg, graphOpts, l, w, shape);
        const b = buildTpMlpGraph(cfg, l, w);
        sessions.push({
          attn: SyncSession.create(a.toBytes(), a.blobs, settings),
          mlp: SyncSession.create(b.toBytes(), b.blobs, settings),
          layer: l,
          ...(w.attnPostNorm ? { attnPostNorm: w.attnPostNorm } : {}),
          ...(w.ffnPostNorm ? { ffnPostNorm: w.ffnPostNorm } : {}),
        });
        progress.layer(l);
      }
      const embedding = o.embedding ? await loadEmbedding(source) : undefined;
      progress.tensors(embedding ? ["token_embd.weight"] : []);
      let vocab = 0;
      if (o.vocabRows) {
        const norm = toVector(await source.read("output_norm.weight"));
        const tied = cfg.tiedEmbeddings || !source.info("output.weight");
        const lmHead = toLinearWeight(await source.read(tied ? "token_embd.weight" : "output.weight", { rows: o.vocabRows }));
        vocab = lmHead.n;
        const g = buildHeadGraph(cfg, norm, lmHead);
        head = SyncSession.create(g.toBytes(), g.blobs, settings);
      }
      progress.session();
      const kv = new SlotKvStore(sessions.map((s) => s.layer), o.slice.kvHeads, o.contextLength, cfg.headDim, o.slots ?? 1, cfg.slidingWindow);
      return new TpRankEngine(cfg, o.layers, sessions, embedding, head, vocab, kv);
    } catch (e) {
      for (const s of sessions) {
        s.attn.dispose();
        s.mlp.dispose();
      }
      head?.dispose();
      throw e;
    }
  }

  embed(tokens: Int32Array): Float32Array {
    if (!this.embedding) throw new Error("embed() on a rank without the embedding table");
    return embedTokens(this.embedding, tokens, undefined, this.config.embeddingScale);
  }

  /**
   * Runs `n` positions of each slot of [lo, lo + count) through this rank's layers (all-reducing
   * twice per layer, once for the whole batch) and appends the active rows to their slots. Returns
   * the hidden states [count × n × hidden], updated in place in `hidden`.
   */
  async layersForward(hidden: Float32Array, n: number, allReduce: AllReduce, lo = 0, count = 1, active: readonly boolean[] = [true]): Promise<Float32Array> {
    const H = this.config.hiddenSize;
    const x = new ort.Tensor("float32", hidden, [count, n, H]);
    const step = this.kv.stepInputs(lo, count, n, active);
    const out = () => ({ partial: n === 1 && count === 1 ? this.partial1 : null });
    for (const [i, s] of this.sessions.entries()) {
      const feeds: Record<string, ort.Tensor> = { hidden_in: x, ...step };
      const outA: Record<string, ort.Tensor | null> = out();
      this.kv.bindLayer(i, lo, count, feeds, outA);
      const ra = s.attn.run(feeds, outA);
      this.kv.storeLayer(i, ra);
      const pa = ra.partial.data as Float32Array;
      await allReduce(pa);
      if (s.attnPostNorm) rmsNormRows(pa, s.attnPostNorm, this.config.rmsNormEps);
      addInto(hidden, pa);
      const pb = s.mlp.run({ hidden_in: x }, out()).partial.data as Float32Array;
      await allReduce(pb);
      if (s.ffnPostNorm) rmsNormRows(pb, s.ffnPostNorm, this.config.rmsNormEps);
      addInto(hidden, pb);
    }
    this.kv.advance(lo, count, n, active);
    return hidden;
  }

  /**
   * Final norm + this rank's lm_head rows: logits of each sequence's last position ([count × rows])
   * or of all ([count × n × rows]).
   */
  logits(hidden: Float32Array, n: number, allLogits: boolean, count = 1): Float32Array {
    if (!this.head) throw new Error("logits() on a rank without lm_head");
    const index = allLogits ? BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) : this.lastIndex;
    if (!allLogits) this.lastIndex[0] = BigInt(n - 1);
    const feeds = {
      hidden_in: new ort.Tensor("float32", hidden, [count, n, this.config.hiddenSize]),
      logits_index: new ort.Tensor("int64", index, [index.length]),
    };
    const out = this.head.run(feeds, { logits: allLogits || count > 1 ? null : this.lastLogits! });
    return out.logits.data as Float32Array;
  }

  truncate(slot: number, pos: number): void {
    this.kv.truncate(slot, pos);
  }

  dispose(): void {
    for (const s of this.sessions) {
      s.attn.dispose();
      s.mlp.dispose();
    }
    this.head?.dispose();
  }
}

/** RMSNorm of each row of `x` (rows of weight.length) in place; every rank computes the same bits. */
function rmsNormRows(x: Float32Array, weight: Float32Array, eps: number): void {
  const H = weight.length;
  for (let o = 0; o < x.length; o += H) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) x[o + i] = x[o + i]! * inv * weight[i]!;
  }
}

function addInto(acc: Float32Array, x: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += x[i]!;
}
