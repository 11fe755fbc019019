import { TesseraError } from "../errors.js";
import { resolveContextLength } from "../models/context.js";
import { memoryInfo } from "../system-memory.js";
import { BATCH_MEMORY_SHARE } from "../parallel-defaults.js";
import { checkMemoryFits, estimateShardMemory } from "./memory.js";
import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import type { ModelSource, Tokenizer } from "../models/types.js";
import { createStepper } from "./session/stepper.js";
import type { BatchStepper, EngineOptions, Stepper } from "./types.js";
import { BatchEngine } from "./session/batch-engine.js";
import type { MemoryEstimate } from "./memory.js";

/** A model loaded behind the Stepper contract, with what clients want to know about it. */
export interface LoadedEngine {
  stepper: Stepper;
  /** Many sequences at once (continuous batching), when the backend has it; `stepper` is then its slot 0. */
  batch?: BatchStepper;
  tokenizer?: Tokenizer;
  architecture?: string;
  /** Bytes of the stored weights. */
  weightBytes?: number;
  /** Number of weights (elements of every tensor). */
  parameterCount?: number;
  /** File format of the model ("gguf", "safetensors", "mlx"). */
  format?: string;
  close(): Promise<void>;
}

/**
 * The loader every backend shares after its Stepper exists: checks the tokenizer fits the model's
 * output and describes the source. Disposes the stepper when the check fails.
 */
export async function loadedEngine(source: ModelSource, tokenizer: Tokenizer, stepper: Stepper): Promise<LoadedEngine> {
  if (tokenizer.vocabSize > stepper.vocabSize) {
    await stepper.dispose();
    throw new TesseraError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's output only ${stepper.vocabSize}`, source.path);
  }
  const tensors = source.tensors();
  return {
    stepper,
    tokenizer,
    architecture: source.config.architecture,
    weightBytes: tensors.reduce((s, t) => s + t.byteLength, 0),
    parameterCount: tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0),
    format: source.format,
    close: () => source.close(),
  };
}

/** One process: a model file or folder → ModelSource → its tokenizer and the ORT Stepper. */
export async function openEngine(modelPath: string, opts: EngineOptions): Promise<LoadedEngine> {
  const source = await openModel(modelPath);
  try {
    // Checked before anything is allocated: an absurd --ctx or a model too large fails here, at once.
    const contextLength = resolveContextLength(source.config, opts.contextLength, modelPath);
    const estimate = estimateShardMemory(source.config, source.tensors(), { contextLength });
    const available = memoryInfo().availableBytes;
    checkMemoryFits(estimate, available, contextLength, modelPath);
    const tokenizer = await loadTokenizer(source);
    const slots = slotsThatFit(opts.slots ?? 1, estimate, available);
    if (slots <= 1) return await loadedEngine(source, tokenizer, await createStepper(source, { ...opts, contextLength }));
    const batch = await BatchEngine.create(source, { ...opts, contextLength, slots });
    const loaded = await loadedEngine(source, tokenizer, batch.slotStepper(0));
    return { ...loaded, batch };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/**
 * How many KV slots of the estimate's context to allocate: the ones asked for, as far as each
 * slot past the first fits in what the model leaves of BATCH_MEMORY_SHARE of the available
 * memory. Always at least 1 (that one was checked to fit).
 */
export function slotsThatFit(wanted: number, e: MemoryEstimate, availableBytes: number): number {
  if (!Number.isInteger(wanted) || wanted < 1) throw new TesseraError(`--parallel must be an integer ≥ 1, got ${wanted}`);
  if (e.kvBytes <= 0) return wanted;
  const room = Math.floor((availableBytes * BATCH_MEMORY_SHARE - e.totalBytes) / e.kvBytes);
  return Math.max(1, Math.min(wanted, 1 + room));
}
