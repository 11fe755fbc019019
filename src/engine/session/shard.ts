import type { ModelConfig, ModelSource } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import { ShardGraphBuilder } from "../graph/decoder.js";
import { SyncSession, ort, type SessionSettings } from "../onnx/session.js";
import type { Device } from "../types.js";
import { embedTokens, type LinearWeight } from "../weights/linear.js";
import { loadEmbedding, loadHead, loadLayer, loadRopeFreqs, shardWeightBytes } from "../weights/load.js";
import { WeightStaging, type StagingOptions } from "../onnx/staging.js";
import { KvCache } from "./kv-cache.js";
import { physicalCores } from "./threads.js";

/** Default KV capacity when the caller sets none: the model's own, capped to keep memory modest. */
export const DEFAULT_CONTEXT = 4096;

export interface ShardOptions {
  /** Layers [start, end) this shard runs; default: all. */
  layers?: [number, number];
  threads?: number;
  device?: Device;
  contextLength?: number;
  /** Spinning intra-op threads (default on); turn off when several sessions share a process. */
  spinning?: boolean;
  /** onnxruntime profiling trace file prefix (diagnostics). */
  profilePrefix?: string;
  /** Extra onnxruntime session settings (memory experiments, diagnostics). */
  session?: Pick<SessionSettings, "sessionConfig" | "cpuMemArena">;
  /** Where converted weights wait while the session is created (default: disk when large). */
  staging?: StagingOptions;
  /** Told after each layer is read and converted: the share of the load done (the session build is the rest). */
  onProgress?: (fraction: number) => void;
}

export function checkEngineConfig(cfg: ModelConfig, subject: string): void {
  // Rope rotates pairs of dimensions.
  if (cfg.headDim % 2 !== 0) throw new TesseraError(`head_dim ${cfg.headDim} is odd`, subject);
}

/**
 * A pipeline stage: layers [a, b) as one ONNX graph plus its KV cache. The first stage also
 * owns the embedding table (looked up in JS: one dequantized row per token, so the table stays
 * at its stored size instead of a float32 copy); the last stage ends in final norm + lm_head.
 */
export class ShardEngine {
  private readonly lastLogits: ort.Tensor | undefined;
  private readonly lastIndex = new BigInt64Array(1);

  private constructor(
    readonly config: ModelConfig,
    readonly layers: [number, number],
    private readonly session: SyncSession,
    private readonly embedding: LinearWeight | undefined,
    readonly kv: KvCache,
    /** lm_head rows on the last stage, else 0. */
    readonly vocabSize: number,
  ) {
    if (vocabSize) this.lastLogits = new ort.Tensor("float32", new Float32Array(vocabSize), [1, 1, vocabSize]);
  }

  get isFirst(): boolean {
    return this.layers[0] === 0;
  }

  get isLast(): boolean {
    return this.layers[1] === this.config.numLayers;
  }

  static async create(source: ModelSource, opts: ShardOptions = {}): Promise<ShardEngine> {
    const cfg = source.config;
    const device = opts.device ?? "cpu";
    checkEngineConfig(cfg, source.path);
    const [a, b] = opts.layers ?? [0, cfg.numLayers];
    if (!(Number.isInteger(a) && Number.isInteger(b) && 0 <= a && a < b && b <= cfg.numLayers)) {
      throw new TesseraError(`invalid layer range [${a}, ${b}) for a model with ${cfg.numLayers} layers`, source.path);
    }
    const ctx = opts.contextLength ?? Math.min(cfg.contextLength || DEFAULT_CONTEXT, DEFAULT_CONTEXT);
    if (!Number.isInteger(ctx) || ctx < 1) throw new TesseraError(`invalid context length ${ctx}`, "--ctx");
    const embedding = a === 0 ? await loadEmbedding(source) : undefined;
    // Streams each layer's converted weights to disk as it is built (when large): see onnx/staging.ts.
    const staging = WeightStaging.open(shardWeightBytes(source, [a, b]), opts.staging);
    let vocab = 0;
    let session: SyncSession;
    try {
      const builder = new ShardGraphBuilder(cfg, {
        maxSeq: ctx,
        ropeInterleaved: source.ropeInterleaved,
        ropeFreqFactors: await loadRopeFreqs(source),
      });
      staging.attach(builder.g);
      for (let l = a; l < b; l++) {
        builder.addLayer(l, await loadLayer(source, l));
        opts.onProgress?.((l - a + 1) / (b - a + 1));
      }
      let graph;
      if (b === cfg.numLayers) {
        const head = await loadHead(source, embedding);
        vocab = head.lmHead.n;
        graph = builder.finishLogits(head.norm, head.lmHead);
      } else {
        graph = builder.finishHidden();
      }
      session = staging.createSession(graph, {
        threads: opts.threads ?? physicalCores(),
        device,
        spinning: opts.spinning,
        profilePrefix: opts.profilePrefix,
        ...opts.session,
      });
    } finally {
      staging.discard();
    }
    const layerIds = Array.from({ length: b - a }, (_, i) => a + i);
    const kv = new KvCache(layerIds, cfg.numKvHeads, ctx, cfg.headDim);
    return new ShardEngine(cfg, [a, b], session, embedding, kv, vocab);
  }

  /** Hidden states [n × hidden] for token ids (first stage only). */
  embed(tokens: Int32Array, into?: Float32Array): Float32Array {
    if (!this.embedding) throw new Error("embed() on a shard that is not the first stage");
    return embedTokens(this.embedding, tokens, into);
  }

  /**
   * Runs `n` positions of hidden states through the shard and appends them to the KV cache.
   * Last stage: logits of the last position ([vocab]) or of all ([n × vocab]); other stages:
   * hidden states [n × hidden].
   */
  run(hidden: Float32Array, n: number, opts: { allLogits?: boolean } = {}): Float32Array {
    if (n < 1) throw new TesseraError("a forward step needs at least one token");
    this.kv.prepare(n);
    const feeds: Record<string, ort.Tensor> = {
      hidden_in: new ort.Tensor("float32", hidden, [1, n, this.config.hiddenSize]),
    };
    const outputs: Record<string, ort.Tensor | null> = {};
    if (this.isLast) {
      let index = this.lastIndex;
      if (opts.allLogits) index = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
      else this.lastIndex[0] = BigInt(n - 1);
      feeds.logits_index = new ort.Tensor("int64", index, [index.length]);
      outputs.logits = opts.allLogits ? null : this.lastLogits!;
    } else {
      outputs.hidden_out = null;
    }
    this.kv.bind(feeds, outputs, n);
    const result = this.session.run(feeds, outputs);
    this.kv.store(result, n);
    if (!this.isLast) return result.hidden_out.data as Float32Array;
    if (opts.allLogits) return result.logits.data as Float32Array;
    return (this.lastLogits!.data as Float32Array).slice();
  }

  /** Writes the profiling trace (shards created with profilePrefix). */
  endProfiling(): void {
    this.session.endProfiling();
  }

  dispose(): void {
    this.session.dispose();
  }
}
