import type { MessagePort } from "node:worker_threads";
import { TesseraError } from "../errors.js";
import { openModel } from "../models/open.js";
import { loadTokenizer } from "../models/tokenizer/index.js";
import type { EngineOptions } from "../engine/types.js";
import type { LoadedEngine } from "../engine/worker/protocol.js";
import { ShardedStepper } from "./bridge.js";
import type { RemoteOptions } from "./remote.js";
import { lmHeadRows } from "./stage.js";

/** Engine options of a cluster instance's driver (instances/driver-host.ts fills them in). */
export interface ClusterEngineOptions extends EngineOptions {
  remote: Omit<RemoteOptions, "vocabSize" | "contextLength">;
  /** The driver's control port (bridge-protocol.ts); transferred into the engine worker. */
  control: MessagePort;
}

/** URL of this module, for EngineWorker's `backend` option. */
export function clusterBackendUrl(): string {
  return import.meta.url;
}

/**
 * The engine worker backend of an instance's home node: the tokenizer from the model file here,
 * the Stepper a driver over runners that the cluster's nodes started (RemoteRunners). The node's
 * inference worker thread runs the generation loop on it, as for a local model.
 */
export async function openEngine(modelPath: string, opts: EngineOptions): Promise<LoadedEngine> {
  const o = opts as ClusterEngineOptions;
  const source = await openModel(modelPath);
  try {
    const cfg = source.config;
    const tokenizer = await loadTokenizer(source);
    const contextLength = o.contextLength ?? cfg.contextLength;
    const stepper = await ShardedStepper.startRemote({ ...o.remote, contextLength, vocabSize: lmHeadRows(source) }, o.control);
    if (tokenizer.vocabSize > stepper.vocabSize) {
      await stepper.dispose();
      throw new TesseraError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's output only ${stepper.vocabSize}`, modelPath);
    }
    const weightBytes = source.tensors().reduce((s, t) => s + t.byteLength, 0);
    return { stepper, tokenizer, architecture: cfg.architecture, weightBytes, close: () => source.close() };
  } catch (e) {
    await source.close();
    throw e;
  }
}
