import type { ModelSource } from "../../models/types.js";
import type { EngineOptions, Stepper } from "../types.js";
import { ShardEngine } from "./shard.js";

export { DEFAULT_CONTEXT, checkEngineConfig } from "./shard.js";

/** The single-node engine: one shard holding every layer, tokens in, logits out. */
class OrtStepper implements Stepper {
  private readonly hiddenBuf: Float32Array;

  constructor(private readonly shard: ShardEngine) {
    this.hiddenBuf = new Float32Array(shard.config.hiddenSize);
  }

  get vocabSize(): number {
    return this.shard.vocabSize;
  }

  get contextLength(): number {
    return this.shard.kv.capacity;
  }

  get position(): number {
    return this.shard.kv.length;
  }

  forward(tokens: Int32Array, opts: { allLogits?: boolean } = {}): Float32Array {
    // Checked before the embedding so an overflow costs nothing.
    this.shard.kv.reserve(tokens.length);
    const hidden = this.shard.embed(tokens, tokens.length === 1 ? this.hiddenBuf : undefined);
    return this.shard.run(hidden, tokens.length, opts);
  }

  truncate(pos: number): void {
    this.shard.kv.truncate(pos);
  }

  async dispose(): Promise<void> {
    this.shard.dispose();
  }
}

/** Reads the model's tensors, builds its graph and starts an onnxruntime session. */
export async function createStepper(source: ModelSource, opts: EngineOptions = {}): Promise<Stepper> {
  return new OrtStepper(await ShardEngine.create(source, opts));
}
