import type { ModelSource } from "../models/types.js";
import { SlotStage } from "../engine/session/slot-stage.js";
import { TpRankEngine, type AllReduce } from "../engine/tp/rank-engine.js";
import type { Device, LoadProgress } from "../engine/types.js";
import { evenSplit, type TpSlice } from "../placement/split.js";
import { lmHeadInfo } from "../engine/weights/load.js";

/**
 * What one runner computes for a step, whatever its kind: a whole pipeline stage in one graph
 * (tensor group of 1), or one tensor-parallel rank of a stage (two graphs per layer). Either holds
 * the KV of `slots` sequences; a step runs `n` new tokens of each slot of a range [lo, lo + count),
 * of which `active` take part (the others are padding rows: nothing cached, nothing kept).
 */
export interface StageCompute {
  readonly first: boolean;
  /** Returns logits for these vocabulary ids (last stage), which it sends to the driver. */
  readonly logitRows: [number, number] | undefined;
  readonly slots: number;
  embed(tokens: Int32Array): Float32Array;
  /** hidden [count × n × hidden] in → hidden out, or (last stage) logits [count × (1 or n) × rows]. */
  step(hidden: Float32Array, n: number, allLogits: boolean, lo: number, count: number, active: readonly boolean[]): Promise<Float32Array>;
  truncate(slot: number, pos: number): void;
  dispose(): void;
}

export interface StageOptions {
  layers: [number, number];
  slice: TpSlice;
  contextLength: number;
  /** Sequences whose KV the stage holds at once (continuous batching). */
  slots: number;
  threads: number;
  device: Device;
  allReduce: AllReduce;
  onProgress?: (p: LoadProgress) => void;
}

class WholeStage implements StageCompute {
  constructor(private readonly stage: SlotStage) {}
  get first(): boolean {
    return this.stage.isFirst;
  }
  get logitRows(): [number, number] | undefined {
    return this.stage.isLast ? [0, this.stage.vocabSize] : undefined;
  }
  get slots(): number {
    return this.stage.kv.slots;
  }
  embed(tokens: Int32Array): Float32Array {
    return this.stage.embed(tokens);
  }
  async step(hidden: Float32Array, n: number, allLogits: boolean, lo: number, count: number, active: readonly boolean[]): Promise<Float32Array> {
    return this.stage.run(lo, count, n, active, hidden, allLogits);
  }
  truncate(slot: number, pos: number): void {
    this.stage.kv.truncate(slot, pos);
  }
  dispose(): void {
    this.stage.dispose();
  }
}

class TensorStage implements StageCompute {
  constructor(
    private readonly engine: TpRankEngine,
    readonly first: boolean,
    readonly logitRows: [number, number] | undefined,
    private readonly allReduce: AllReduce,
  ) {}
  get slots(): number {
    return this.engine.kv.slots;
  }
  embed(tokens: Int32Array): Float32Array {
    return this.engine.embed(tokens);
  }
  async step(hidden: Float32Array, n: number, allLogits: boolean, lo: number, count: number, active: readonly boolean[]): Promise<Float32Array> {
    const out = await this.engine.layersForward(hidden, n, this.allReduce, lo, count, active);
    return this.logitRows ? this.engine.logits(out, n, allLogits, count) : out;
  }
  truncate(slot: number, pos: number): void {
    this.engine.truncate(slot, pos);
  }
  dispose(): void {
    this.engine.dispose();
  }
}

/**
 * Loads only this rank's tensors: its layers, and under tensor parallelism only its rows/columns.
 * lm_head is split by vocabulary over the last stage's tensor group: each rank sends its slice of
 * the logits straight to the driver, which gathers them (bench/parallel measured the 1b model's
 * lm_head at ~1/8 of a TP 2 token, far more than the extra messages cost).
 */
export async function loadStage(source: ModelSource, o: StageOptions): Promise<StageCompute> {
  const L = source.config.numLayers;
  const first = o.layers[0] === 0;
  const last = o.layers[1] === L;
  if (o.slice.size === 1) {
    const stage = await SlotStage.create(source, {
      layers: o.layers,
      slots: o.slots,
      threads: o.threads,
      device: o.device,
      contextLength: o.contextLength,
      // Idle stages wait on the network while another computes: spinning pools would steal its cores.
      spinning: false,
      onProgress: o.onProgress,
    });
    return new WholeStage(stage);
  }
  const vocabRows = last ? vocabSlices(lmHeadRows(source), o.slice.size)[o.slice.rank] : undefined;
  const engine = await TpRankEngine.create(source, {
    layers: o.layers,
    slice: o.slice,
    contextLength: o.contextLength,
    threads: o.threads,
    device: o.device,
    embedding: first,
    vocabRows,
    slots: o.slots,
    onProgress: o.onProgress,
  });
  return new TensorStage(engine, first, vocabRows, o.allReduce);
}

/** lm_head rows: the output matrix's (or the tied embedding's). */
export function lmHeadRows(source: ModelSource): number {
  return lmHeadInfo(source)?.shape[0] ?? source.config.vocabSize;
}

/** The vocabulary [start, end) of each rank of a last stage of `size` ranks: `rows` dealt out as evenly as possible, in rank order. */
export function vocabSlices(rows: number, size: number): [number, number][] {
  let at = 0;
  return evenSplit(rows, size).map((c) => [at, (at += c)]);
}
