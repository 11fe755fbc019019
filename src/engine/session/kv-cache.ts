import { ort } from "../onnx/session.js";
import { TesseraError } from "../../errors.js";

/**
 * One sequence's KV cache: per layer a key and a value buffer [1, kvHeads, capacity, headDim],
 * allocated once. GroupQueryAttention reads and writes them in place (the same tensor is fed as
 * past_* and given as the pre-allocated present_* output). Positions ≥ `length` are stale and
 * simply overwritten, so truncation is free.
 */
export class KvCache {
  readonly keys: ort.Tensor[] = [];
  readonly values: ort.Tensor[] = [];
  length = 0;

  constructor(readonly layers: number[], readonly kvHeads: number, readonly capacity: number, readonly headDim: number) {
    const dims = [1, kvHeads, capacity, headDim];
    for (let i = 0; i < layers.length; i++) {
      this.keys.push(new ort.Tensor("float32", new Float32Array(kvHeads * capacity * headDim), dims));
      this.values.push(new ort.Tensor("float32", new Float32Array(kvHeads * capacity * headDim), dims));
    }
  }

  get bytes(): number {
    return this.layers.length * 2 * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Throws the user-facing overflow error when `n` more tokens do not fit. */
  reserve(n: number): void {
    if (this.length + n > this.capacity) {
      throw new TesseraError(
        `context overflow: ${this.length} cached + ${n} new tokens exceed the context length of ${this.capacity} tokens (raise --ctx)`,
      );
    }
  }

  /** Feeds and pre-allocated outputs for one run. */
  bind(feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>): void {
    this.layers.forEach((l, i) => {
      feeds[`past_key_${l}`] = this.keys[i];
      feeds[`past_value_${l}`] = this.values[i];
      outputs[`present_key_${l}`] = this.keys[i];
      outputs[`present_value_${l}`] = this.values[i];
    });
  }

  truncate(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0) throw new TesseraError(`invalid truncate position ${pos}`);
    this.length = Math.min(this.length, pos);
  }
}
