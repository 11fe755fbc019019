import { ort } from "../onnx/session.js";
import { TesseraError } from "../../errors.js";
import { checkContextRoom, slidingMasks, windowFor } from "./kv-cache.js";

/**
 * The KV cache of many sequences (continuous batching): `slots` sequences of up to `capacity`
 * tokens each, allocated once, each slot with its own length. A run binds a contiguous range of
 * slots as one [B, kvHeads, W, headDim] tensor per layer, so every slot of the store shares one
 * window W (the longest slot's length rounded up to KV_WINDOW_STEP); each slot's row of past_bias
 * masks what lies beyond its own length.
 *
 * Layout of one layer's key (and value) buffer while the window is W:
 *
 *   [slots][kvHeads][W][headDim] float32, packed from offset 0; rows ≥ the slot's length are stale.
 *
 * Slot s is then the subarray [s·kvHeads·W·headDim, (s + 1)·kvHeads·W·headDim): binding slots
 * [lo, lo + B) costs no copy. When W changes, each (slot, head) block's live rows move to their new
 * offset (blocks in the order that never overwrites rows not yet moved), as session/kv-cache.ts does
 * for one sequence. Rows of a slot inside the bound range that takes no part in a step (a free slot
 * between two busy ones) are fed as padding: its past_bias row is all −∞ and its new keys are dropped.
 */
export class SlotKvStore {
  private readonly keyBufs: Float32Array[] = [];
  private readonly valueBufs: Float32Array[] = [];
  private readonly lengths: Int32Array;
  /** Each layer's new keys and values of the step under way (storeLayer), written by advance(). */
  private readonly pending: ([Float32Array, Float32Array] | undefined)[];
  private _window = 0;

  constructor(
    readonly layers: number[],
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
    readonly slots: number,
    readonly slidingWindow?: number,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new TesseraError(`KV slots must be an integer ≥ 1, got ${slots}`);
    const size = slots * kvHeads * capacity * headDim;
    for (let i = 0; i < layers.length; i++) {
      this.keyBufs.push(new Float32Array(size));
      this.valueBufs.push(new Float32Array(size));
    }
    this.lengths = new Int32Array(slots);
    this.pending = layers.map(() => undefined);
    this._window = windowFor(1, capacity);
  }

  /** Bytes of one slot's keys and values over every layer. */
  static slotBytes(layers: number, kvHeads: number, capacity: number, headDim: number): number {
    return layers * 2 * kvHeads * capacity * headDim * 4;
  }

  get bytes(): number {
    return this.slots * SlotKvStore.slotBytes(this.layers.length, this.kvHeads, this.capacity, this.headDim);
  }

  get window(): number {
    return this._window;
  }

  /** Tokens cached in `slot`. */
  length(slot: number): number {
    return this.lengths[checkSlot(slot, this.slots)]!;
  }

  /** Throws the user-facing overflow error when `n` more tokens do not fit in `slot`. */
  reserve(slot: number, n: number): void {
    checkContextRoom(this.length(slot), n, this.capacity);
  }

  /** Forgets the slot's cached positions ≥ pos. */
  truncate(slot: number, pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    const s = checkSlot(slot, this.slots);
    this.lengths[s] = Math.min(this.lengths[s]!, pos);
    const w = windowFor(Math.max(1, ...this.lengths), this.capacity);
    if (w < this._window) this.setWindow(w);
  }

  /**
   * Inputs every attention layer of a step of `n` new tokens in each of slots [lo, lo + count)
   * shares; `active[b]` says whether slot lo + b takes part (a padding row sees nothing cached and
   * its rows are dropped).
   */
  stepInputs(lo: number, count: number, n: number, active: readonly boolean[]): Record<string, ort.Tensor> {
    const w = this._window;
    const positions = new BigInt64Array(count * n);
    const pastBias = new Float32Array(count * w).fill(-Infinity);
    const swaPast = this.slidingWindow !== undefined ? new Float32Array(count * n * w).fill(-Infinity) : undefined;
    for (let b = 0; b < count; b++) {
      if (!active[b]) continue;
      const len = this.length(lo + b);
      this.reserve(lo + b, n);
      for (let i = 0; i < n; i++) positions[b * n + i] = BigInt(len + i);
      pastBias.fill(0, b * w, b * w + len);
      if (swaPast) swaPast.set(slidingMasks(len, n, w, this.slidingWindow!).swa_past_bias.data as Float32Array, b * n * w);
    }
    const causal = new Float32Array(n * n);
    for (let i = 0; i < n; i++) causal.fill(-Infinity, i * n + i + 1, (i + 1) * n);
    const feeds: Record<string, ort.Tensor> = {
      positions: new ort.Tensor("int64", positions, [count, n]),
      past_bias: new ort.Tensor("float32", pastBias, [count, w]),
      causal_bias: new ort.Tensor("float32", causal, [n, n]),
    };
    if (swaPast) {
      feeds.swa_past_bias = new ort.Tensor("float32", swaPast, [count, n, w]);
      feeds.swa_causal_bias = slidingMasks(0, n, w, this.slidingWindow!).swa_causal_bias;
    }
    return feeds;
  }

  /** The i-th layer's window of slots [lo, lo + count) as that layer's inputs (named by its graph layer id). */
  bindLayer(i: number, lo: number, count: number, feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>): void {
    const l = this.layers[i]!;
    const block = this.kvHeads * this._window * this.headDim;
    const dims = [count, this.kvHeads, this._window, this.headDim];
    feeds[`past_key_${l}`] = new ort.Tensor("float32", this.keyBufs[i]!.subarray(lo * block, (lo + count) * block), dims);
    feeds[`past_value_${l}`] = new ort.Tensor("float32", this.valueBufs[i]!.subarray(lo * block, (lo + count) * block), dims);
    outputs[`new_key_${l}`] = null;
    outputs[`new_value_${l}`] = null;
  }

  /** Step inputs plus every layer's window: all a one-graph shard needs besides its hidden states. */
  bind(lo: number, count: number, n: number, active: readonly boolean[], feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>): void {
    Object.assign(feeds, this.stepInputs(lo, count, n, active));
    this.layers.forEach((_, i) => this.bindLayer(i, lo, count, feeds, outputs));
  }

  /** Keeps the i-th layer's new keys and values (outputs [count, kvHeads, n, headDim]) until advance(). */
  storeLayer(i: number, result: Record<string, ort.Tensor>): void {
    const l = this.layers[i]!;
    this.pending[i] = [result[`new_key_${l}`]!.data as Float32Array, result[`new_value_${l}`]!.data as Float32Array];
  }

  /** storeLayer for every layer, then advance: the end of a one-graph step. */
  store(lo: number, count: number, n: number, active: readonly boolean[], result: Record<string, ort.Tensor>): void {
    this.layers.forEach((_, i) => this.storeLayer(i, result));
    this.advance(lo, count, n, active);
  }

  /** Appends each active row's `n` stored keys and values to its slot (growing the window first if they do not fit). */
  advance(lo: number, count: number, n: number, active: readonly boolean[]): void {
    if (this.pending.some((p) => p === undefined)) throw new Error("KV slots: advance() before every layer stored its rows");
    let longest = 0;
    for (let b = 0; b < count; b++) if (active[b]) longest = Math.max(longest, this.length(lo + b) + n);
    if (longest > this._window) this.setWindow(windowFor(longest, this.capacity));
    const D = this.headDim;
    const H = this.kvHeads;
    const w = this._window;
    const rows = n * D;
    this.pending.forEach((p, i) => {
      const [k, v] = p!;
      for (let b = 0; b < count; b++) {
        if (!active[b]) continue;
        const s = lo + b;
        for (let h = 0; h < H; h++) {
          const from = (b * H + h) * rows;
          const at = ((s * H + h) * w + this.lengths[s]!) * D;
          this.keyBufs[i]!.set(k.subarray(from, from + rows), at);
          this.valueBufs[i]!.set(v.subarray(from, from + rows), at);
        }
      }
    });
    this.pending.fill(undefined);
    for (let b = 0; b < count; b++) if (active[b]) this.lengths[lo + b]! += n;
  }

  private setWindow(w: number): void {
    const old = this._window;
    const D = this.headDim;
    const H = this.kvHeads;
    if (w === old) return;
    // Growing moves blocks up (last block first); shrinking moves them down (first block first).
    const order = Array.from({ length: this.slots * H }, (_, i) => i);
    if (w > old) order.reverse();
    for (const buf of [...this.keyBufs, ...this.valueBufs]) {
      for (const blk of order) {
        const rows = this.lengths[Math.floor(blk / H)]! * D;
        if (rows > 0) buf.copyWithin(blk * w * D, blk * old * D, blk * old * D + rows);
      }
    }
    this._window = w;
  }
}

/** `slot` when it names one of `slots` KV slots; throws otherwise. */
export function checkSlot(slot: number, slots: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= slots) throw new Error(`KV slot ${slot} is not in [0, ${slots})`);
  return slot;
}
