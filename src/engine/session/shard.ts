import type { ModelConfig, ModelSource } from "../../models/types.js";
import { resolveDevice } from "../onnx/devices.js";
import { TesseraError } from "../../errors.js";
import { ShardGraphBuilder } from "../graph/decoder.js";
import { SyncSession, ort, type SessionSettings } from "../onnx/session.js";
import type { Device } from "../types.js";
import { embedTokens, type LinearWeight } from "../weights/linear.js";
import { loadEmbedding, loadHead, loadLayer, loadRopeFreqs, shardWeightBytes } from "../weights/load.js";
import { WeightStaging, type StagingOptions } from "../onnx/staging.js";
import { KvCache } from "./kv-cache.js";
import { physicalCores } from "./threads.js";
import type { LoadProgress } from "../types.js";
import { DEFAULT_CONTEXT, resolveContextLength } from "../../models/context.js";

export { DEFAULT_CONTEXT };

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
  onProgress?: (p: LoadProgress) => void;
}

export function checkEngineConfig(cfg: ModelConfig, subject: string): void {
  // Rope rotates pairs of dimensions.
  if (cfg.headDim % 2 !== 0) throw new TesseraError(`head_dim ${cfg.headDim} is odd`, subject);
}

/**
 * Reports a shard's load as bytes of its stored tensors: the embedding (first stage), each layer,
 * then the rest (norms, lm_head) when the session build starts. Shared with the tensor-parallel rank.
 */
export function loadCounter(source: ModelSource, [a, b]: [number, number], onProgress?: (p: LoadProgress) => void) {
  const first = a === 0;
  const last = b === source.config.numLayers;
  const tiedHead = !source.info("output.weight");
  const byLayer = new Map<number, number>();
  let total = 0;
  for (const t of source.tensors()) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) {
      const l = Number(m[1]);
      if (l >= a && l < b) byLayer.set(l, (byLayer.get(l) ?? 0) + t.byteLength);
    } else if (t.name === "token_embd.weight" ? first || (last && tiedHead) : last) {
      total += t.byteLength;
    }
  }
  for (const n of byLayer.values()) total += n;
  let done = 0;
  const tell = (phase: LoadProgress["phase"]) => onProgress?.({ done: Math.min(done, total), total, phase });
  tell("weights");
  return {
    tensors(names: string[]): void {
      for (const n of names) done += source.info(n)?.byteLength ?? 0;
      if (names.length) tell("weights");
    },
    layer(l: number): void {
      done += byLayer.get(l) ?? 0;
      tell("weights");
    },
    session(): void {
      done = total;
      tell("session");
    },
  };
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
    /** Converted weight bytes that went through a staging file on disk (0: staged in memory). */
    readonly stagedBytes: number,
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
    const built = await buildShardSession(source, opts);
    const [a, b] = built.layers;
    const layerIds = Array.from({ length: b - a }, (_, i) => a + i);
    const cfg = source.config;
    const kv = new KvCache(layerIds, cfg.numKvHeads, built.contextLength, cfg.headDim, cfg.slidingWindow);
    return new ShardEngine(cfg, built.layers, built.session, built.embedding, kv, built.vocabSize, built.stagedBytes);
  }

  /** Hidden states [n × hidden] for token ids (first stage only). */
  embed(tokens: Int32Array, into?: Float32Array): Float32Array {
    if (!this.embedding) throw new Error("embed() on a shard that is not the first stage");
    return embedTokens(this.embedding, tokens, into, this.config.embeddingScale);
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

/** A shard's graph built and its onnxruntime session started, without any KV cache (the caller sizes its own). */
export interface BuiltShard {
  layers: [number, number];
  session: SyncSession;
  embedding: LinearWeight | undefined;
  /** lm_head rows on the last stage, else 0. */
  vocabSize: number;
  stagedBytes: number;
  contextLength: number;
}

/** Reads a layer range's weights, builds its graph and creates the session (shared by ShardEngine and BatchEngine). */
export async function buildShardSession(source: ModelSource, opts: ShardOptions = {}): Promise<BuiltShard> {
    const cfg = source.config;
    const device = opts.device ?? "cpu";
    checkEngineConfig(cfg, source.path);
    if (device !== "cpu") resolveDevice(device); // a clear error before any weight is read
    const [a, b] = opts.layers ?? [0, cfg.numLayers];
    if (!(Number.isInteger(a) && Number.isInteger(b) && 0 <= a && a < b && b <= cfg.numLayers)) {
      throw new TesseraError(`invalid layer range [${a}, ${b}) for a model with ${cfg.numLayers} layers`, source.path);
    }
    const ctx = resolveContextLength(cfg, opts.contextLength, source.path);
    const progress = loadCounter(source, [a, b], opts.onProgress);
    const embedding = a === 0 ? await loadEmbedding(source) : undefined;
    progress.tensors(embedding ? ["token_embd.weight"] : []);
    // Streams each layer's converted weights to disk as it is built (when large): see onnx/staging.ts.
    const staging = WeightStaging.open(shardWeightBytes(source, [a, b]), opts.staging);
    let vocab = 0;
    let session: SyncSession;
    let stagedBytes = 0;
    try {
      const builder = new ShardGraphBuilder(cfg, {
        maxSeq: ctx,
        ropeInterleaved: source.ropeInterleaved,
        ropeFreqFactors: await loadRopeFreqs(source),
      });
      staging.attach(builder.g);
      for (let l = a; l < b; l++) {
        builder.addLayer(l, await loadLayer(source, l));
        progress.layer(l);
      }
      let graph;
      if (b === cfg.numLayers) {
        const head = await loadHead(source, embedding);
        vocab = head.lmHead.n;
        graph = builder.finishLogits(head.norm, head.lmHead);
      } else {
        graph = builder.finishHidden();
      }
      progress.session();
      session = staging.createSession(graph, {
        threads: opts.threads ?? physicalCores(),
        device,
        spinning: opts.spinning,
        profilePrefix: opts.profilePrefix,
        ...opts.session,
      });
      stagedBytes = staging.stagedBytes;
    } finally {
      staging.discard();
    }
    return { layers: [a, b], session, embedding, vocabSize: vocab, stagedBytes, contextLength: ctx };
}
