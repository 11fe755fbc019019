import type { ModelConfig } from "../models/types.js";
import { TesseraError } from "../errors.js";

/**
 * How a tensor-parallel group divides a mixture-of-experts layer. Two ways exist: expert parallel
 * (each rank holds whole experts) or slicing every expert (each rank holds the same rows of every
 * expert's gate/up and the same input columns of its down, like a dense MLP). Both keep one
 * all-reduce after the MLP and hold 1/size of the expert bytes per rank. At batch 1 (decode), slicing
 * gives every rank exactly 1/size of the chosen experts' work, while expert parallelism leaves ranks
 * idle whose experts were not chosen (the token's k experts land on ≤ k ranks, unevenly), so
 * slicing is preferred whenever the expert width splits in whole quantization blocks; expert
 * parallelism is not built, and a width that does not split is refused.
 *
 * Every rank's rows: [start, end) of the expert width F, dealt out in whole blocks of `block` (the
 * quantization block along ffn_down_exps' input), the first ranks one block larger when uneven.
 */
export function expertSlices(cfg: Pick<ModelConfig, "moe">, size: number, block: number): { expertRows: [number, number]; expertCols: [number, number] }[] {
  const F = cfg.moe!.expertFfnSize;
  if (F % block !== 0) throw new TesseraError(`expert width ${F} is not a whole number of quantization blocks (${block})`);
  const blocks = F / block;
  if (blocks < size) {
    throw new TesseraError(`expert width ${F} has only ${blocks} quantization blocks of ${block}, fewer than ${size} tensor-parallel ranks (expert parallelism is not built)`);
  }
  // (split.ts's evenSplit, inlined: split.ts imports this file)
  let at = 0;
  return Array.from({ length: size }, (_, i) => {
    const n = Math.floor(blocks / size) + (i < blocks % size ? 1 : 0);
    const r: [number, number] = [at * block, (at + n) * block];
    at += n;
    return { expertRows: r, expertCols: r };
  });
}
