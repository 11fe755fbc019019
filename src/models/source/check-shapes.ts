import { TesseraError } from "../../errors.js";
import { archOf } from "../arch/registry.js";
import type { ModelConfig, TensorInfo } from "../types.js";

/** The shape every canonical tensor must have under `config` (row-major, [out, in] for linears). */
export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ["token_embd.weight", [c.vocabSize, c.hiddenSize]],
    ["output_norm.weight", [c.hiddenSize]],
  ]);
  if (!c.tiedEmbeddings) m.set("output.weight", [c.vocabSize, c.hiddenSize]);
  const arch = archOf(c);
  for (let l = 0; l < c.numLayers; l++) {
    for (const t of arch.layer(c, l).tensors) m.set(t.name, t.shape);
  }
  return m;
}

const LAYER = /^blk\.(\d+)\./;

/**
 * Fails with one clear message when the tensors and the config disagree: a missing tensor, a shape
 * that differs, or layers beyond the config's count. `configFile` is named in the message.
 */
export function checkTensorShapes(c: ModelConfig, tensors: TensorInfo[], configFile: string, tensorFile: string): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const [name, shape] of expectedShapes(c)) {
    const t = byName.get(name);
    if (!t) throw new TesseraError(`tensor ${name} is missing (the config in ${configFile} expects it)`, tensorFile);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new TesseraError(
        `the config in ${configFile} disagrees with the tensors: ${name} has shape [${t.shape.join(", ")}], the config implies [${shape.join(", ")}]`,
        tensorFile,
      );
    }
  }
  for (const t of tensors) {
    const m = LAYER.exec(t.name);
    if (m && Number(m[1]) >= c.numLayers) {
      throw new TesseraError(`the config in ${configFile} says ${c.numLayers} layers but tensor ${t.name} exists`, tensorFile);
    }
  }
}
