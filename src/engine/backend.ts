import { TesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import { createStepper } from "./session/stepper.js";
import type { Tokenizer } from "../models/types.js";
import type { EngineOptions, Stepper } from "./types.js";


/** What a backend module's `openEngine` returns: the model loaded behind the Stepper contract. */
export interface LoadedEngine {
  stepper: Stepper;
  tokenizer?: Tokenizer;
  architecture?: string;
  weightBytes?: number;
  close(): Promise<void>;
}

export type OpenEngine = (modelPath: string, opts: EngineOptions) => Promise<LoadedEngine>;

/**
 * The real backend, loaded by the engine worker: a model file or folder → ModelSource → its
 * tokenizer and the ORT Stepper.
 */
export async function openEngine(modelPath: string, opts: EngineOptions): Promise<LoadedEngine> {
  const source = await openModel(modelPath);
  try {
    const tokenizer = await loadTokenizer(source);
    const stepper = await createStepper(source, opts);
    if (tokenizer.vocabSize > stepper.vocabSize) {
      await stepper.dispose();
      throw new TesseraError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's output only ${stepper.vocabSize}`, modelPath);
    }
    const weightBytes = source.tensors().reduce((s, t) => s + t.byteLength, 0);
    return { stepper, tokenizer, architecture: source.config.architecture, weightBytes, close: () => source.close() };
  } catch (e) {
    await source.close();
    throw e;
  }
}
