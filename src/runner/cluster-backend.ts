import type { MessagePort } from "node:worker_threads";
import { TesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import type { EngineOptions } from "../engine/types.js";
import type { LoadedEngine } from "../engine/backend.js";
import { ShardedStepper } from "./bridge.js";
import type { RemoteOptions } from "./remote.js";
import { lmHeadRows } from "./stage.js";

/** Where a cluster instance's runners are (instances/driver-host.ts fills it in); the rest is read from the model. */
export type ClusterRemote = Omit<RemoteOptions, "vocabSize" | "contextLength">;

/**
 * The engine worker backend of an instance's home node: the tokenizer from the model file here,
 * the Stepper a driver over runners that the cluster's nodes started (RemoteRunners). The node's
 * inference worker thread runs the generation loop on it, as for a local model.
 */
export async function openClusterEngine(modelPath: string, opts: EngineOptions, remote: ClusterRemote, control: MessagePort): Promise<LoadedEngine> {
  const source = await openModel(modelPath);
  try {
    const cfg = source.config;
    const tokenizer = await loadTokenizer(source);
    const contextLength = opts.contextLength ?? cfg.contextLength;
    const stepper = await ShardedStepper.startRemote({ ...remote, contextLength, vocabSize: lmHeadRows(source) }, control);
    if (tokenizer.vocabSize > stepper.vocabSize) {
      await stepper.dispose();
      throw new TesseraError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's output only ${stepper.vocabSize}`, modelPath);
    }
    const weightBytes = source.tensors().reduce((s, t) => s + t.byteLength, 0);
    return { stepper, ...(stepper.batch ? { batch: stepper.batch } : {}), tokenizer, architecture: cfg.architecture, weightBytes, close: () => source.close() };
  } catch (e) {
    await source.close();
    throw e;
  }
}
