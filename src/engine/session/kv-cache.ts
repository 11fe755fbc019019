import { ort } from "../onnx/session.js";
import { TesseraError } from "../../errors.js";

/**
 * Positions the bound window grows by. The attention graph multiplies every position of the
 * window (stale ones are masked, not skipped), so the window follows the tokens cached, rounded up
 * to this step, rather than the capacity.
 */
export const KV_WINDOW_STEP = 64;

/**
 * One sequence's KV cache: per layer a key and a value buffer of `capacity` positions, allocated
 * once. The attention graph (graph/attention.ts) reads a window of it as input and returns the
 * step's new keys and values; `storeLayer` keeps those and `advance` writes them in.
 *
 * Layout of one layer's key (and value) buffer while the window is W positions:
 *
 *   [kvHeads][W][headDim] float32, packed from offset 0; positions ≥ length in each head are stale.
 *
 * The graph sees it as [1, kvHeads, W, headDim], W = max(length, 1) rounded up to the step: a
 * prefill from an empty cache reads 64 masked positions, not its own length. When W changes, each
 * head's first `length` rows move to their new offset (heads in the order that never overwrites
 * rows not yet moved); truncation shrinks W again.
 *
 * One step: prepare(n) → stepInputs(n) + bindLayer(...) per layer → run → storeLayer(...) per
 * layer → advance(n). `bind` and `store` do the per-layer parts for a graph holding every layer.
 */
export class KvCache {
  private readonly keyBufs: Float32Array[] = [];
  private readonly valueBufs: Float32Array[] = [];
  private keyTensors: ort.Tensor[] = [];
  private valueTensors: ort.Tensor[] = [];
  /** New rows of the current step, per layer index: [kvHeads][n][headDim] keys and values. */
  private readonly pending: ([Float32Array, Float32Array] | undefined)[];
  private readonly pastBias: Float32Array;
  private readonly decodeCausal = new ort.Tensor("float32", new Float32Array(1), [1, 1]);
  private _length = 0;
  private _window = 0;

  /**
   * `slidingWindow`: the model has sliding-window layers; every step then also gets their masks
   * (swa_past_bias, swa_causal_bias: see graph/attention.ts).
   */
  constructor(
    readonly layers: number[],
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
    readonly slidingWindow?: number,
  ) {
    for (let i = 0; i < layers.length; i++) {
      this.keyBufs.push(new Float32Array(kvHeads * capacity * headDim));
      this.valueBufs.push(new Float32Array(kvHeads * capacity * headDim));
    }
    this.pending = layers.map(() => undefined);
    this.pastBias = new Float32Array(capacity);
    this.setWindow(windowFor(1, capacity));
  }

  get bytes(): number {
    return this.layers.length * 2 * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Tokens cached. */
  get length(): number {
    return this._length;
  }

  /** Positions bound to the graph's past_key/past_value inputs (≥ length, ≤ capacity). */
  get window(): number {
    return this._window;
  }

  /** Throws the user-facing overflow error when `n` more tokens do not fit. */
  reserve(n: number): void {
    checkContextRoom(this._length, n, this.capacity);
  }

  /** Checks that `n` more tokens fit and clears the rows of an abandoned step. */
  prepare(n: number): void {
    this.reserve(n);
    this.pending.fill(undefined);
  }

  /** Inputs every attention layer of a step of `n` new tokens shares (see graph/attention.ts). */
  stepInputs(n: number): Record<string, ort.Tensor> {
    const w = this._window;
    const bias = this.pastBias.subarray(0, w);
    bias.fill(0, 0, this._length).fill(-Infinity, this._length);
    let causal = this.decodeCausal;
    if (n > 1) {
      const c = new Float32Array(n * n);
      for (let i = 0; i < n; i++) c.fill(-Infinity, i * n + i + 1, (i + 1) * n);
      causal = new ort.Tensor("float32", c, [n, n]);
    }
    const inputs: Record<string, ort.Tensor> = {
      positions: new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt(this._length + i)), [1, n]),
      past_bias: new ort.Tensor("float32", bias, [1, w]),
      causal_bias: causal,
    };
    if (this.slidingWindow !== undefined) Object.assign(inputs, slidingMasks(this._length, n, w, this.slidingWindow));
    return inputs;
  }

  /** The cache window of the i-th layer held here as that layer's inputs (named by its graph layer id). */
  bindLayer(i: number, feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>): void {
    const l = this.layers[i]!;
    feeds[`past_key_${l}`] = this.keyTensors[i]!;
    feeds[`past_value_${l}`] = this.valueTensors[i]!;
    outputs[`new_key_${l}`] = null;
    outputs[`new_value_${l}`] = null;
  }

  /** Step inputs plus every layer's window: all a one-graph shard needs besides its hidden states. */
  bind(feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>, n: number): void {
    Object.assign(feeds, this.stepInputs(n));
    this.layers.forEach((_, i) => this.bindLayer(i, feeds, outputs));
  }

  /** Keeps the i-th layer's new keys and values (outputs [1, kvHeads, n, headDim]) until advance(). */
  storeLayer(i: number, result: Record<string, ort.Tensor>): void {
    const l = this.layers[i]!;
    this.pending[i] = [result[`new_key_${l}`]!.data as Float32Array, result[`new_value_${l}`]!.data as Float32Array];
  }

  /** storeLayer for every layer, then advance: the end of a one-graph step. */
  store(result: Record<string, ort.Tensor>, n: number): void {
    this.layers.forEach((_, i) => this.storeLayer(i, result));
    this.advance(n);
  }

  /** Appends the `n` stored rows of every layer (growing the window first if they do not fit). */
  advance(n: number): void {
    this.reserve(n);
    if (this.pending.some((p) => p === undefined)) throw new Error("KV cache: advance() before every layer stored its rows");
    const end = this._length + n;
    if (end > this._window) this.setWindow(windowFor(end, this.capacity));
    const D = this.headDim;
    const w = this._window;
    const rows = n * D;
    this.pending.forEach((p, i) => {
      const [k, v] = p!;
      for (let h = 0; h < this.kvHeads; h++) {
        const at = (h * w + this._length) * D;
        this.keyBufs[i]!.set(k.subarray(h * rows, (h + 1) * rows), at);
        this.valueBufs[i]!.set(v.subarray(h * rows, (h + 1) * rows), at);
      }
    });
    this.pending.fill(undefined);
    this._length = end;
  }

  truncate(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    this._length = Math.min(this._length, pos);
    const w = windowFor(Math.max(this._length, 1), this.capacity);
    if (w < this._window) this.setWindow(w);
  }

  /** Key rows of layer index `i`, head `h`, as cached (tests and diagnostics). */
  keyRows(i: number, h: number): Float32Array {
    const D = this.headDim;
    return this.keyBufs[i]!.subarray(h * this._window * D, (h * this._window + this._length) * D);
  }

  private setWindow(w: number): void {
    const old = this._window;
    const rows = this._length * this.headDim;
    if (old !== 0 && rows > 0 && w !== old) {
      const D = this.headDim;
      // Growing moves heads up (last head first); shrinking moves them down (first head first).
      const order = Array.from({ length: this.kvHeads }, (_, h) => h);
      if (w > old) order.reverse();
      for (const buf of [...this.keyBufs, ...this.valueBufs]) {
        for (const h of order) buf.copyWithin(h * w * D, h * old * D, h * old * D + rows);
      }
    }
    this._window = w;
    const dims = [1, this.kvHeads, w, this.headDim];
    const size = this.kvHeads * w * this.headDim;
    this.keyTensors = this.keyBufs.map((b) => new ort.Tensor("float32", b.subarray(0, size), dims));
    this.valueTensors = this.valueBufs.map((b) => new ort.Tensor("float32", b.subarray(0, size), dims));
  }
}

/** The user-facing error for `n` new tokens that do not fit after `cached` in a context of `capacity`. */
export function checkContextRoom(cached: number, n: number, capacity: number): void {
  if (cached + n > capacity) {
    throw new TesseraError(`context overflow: ${cached} cached + ${n} new tokens exceed the context length of ${capacity} tokens (raise --ctx)`);
  }
}

/**
 * Masks of a step of `n` new tokens after `cached` ones, with `window` cache positions bound, for
 * layers that see `size` positions back (the token itself included): new token i (position
 * cached + i) sees cached position j when j < cached and cached + i − j < size, and new token
 * j ≤ i when i − j < size.
 */
export function slidingMasks(cached: number, n: number, window: number, size: number): { swa_past_bias: ort.Tensor; swa_causal_bias: ort.Tensor } {
  const past = new Float32Array(n * window).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    const from = Math.max(0, cached + i - size + 1);
    if (from < cached) past.fill(0, i * window + from, i * window + cached);
  }
  const causal = new Float32Array(n * n).fill(-Infinity);
  for (let i = 0; i < n; i++) causal.fill(0, i * n + Math.max(0, i - size + 1), i * n + i + 1);
  return { swa_past_bias: new ort.Tensor("float32", past, [1, n, window]), swa_causal_bias: new ort.Tensor("float32", causal, [n, n]) };
}

/** The KV window that holds `tokens`: rounded up to KV_WINDOW_STEP, at most the capacity. */
export function windowFor(tokens: number, capacity: number): number {
  return Math.min(capacity, Math.ceil(tokens / KV_WINDOW_STEP) * KV_WINDOW_STEP);
}
