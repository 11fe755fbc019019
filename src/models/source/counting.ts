import type { ModelSource, RawTensor, TensorSlice } from "../types.js";

/**
 * A ModelSource that counts the bytes its reads return — what a shard really loaded from the file
 * (a tensor-parallel rank reads only its rows, columns and expert slices). Expert tensors
 * (`*_exps`) are also counted on their own.
 */
export interface ReadCounts {
  bytes: number;
  expertBytes: number;
}

export function countReads(source: ModelSource): { source: ModelSource; counts: ReadCounts } {
  const counts: ReadCounts = { bytes: 0, expertBytes: 0 };
  const counted: ModelSource = Object.create(source) as ModelSource;
  counted.read = async (name: string, slice?: TensorSlice): Promise<RawTensor> => {
    const r = await source.read(name, slice);
    const n = r.data.byteLength + (r.scales?.byteLength ?? 0) + (r.biases?.byteLength ?? 0);
    counts.bytes += n;
    if (/_exps\.weight$/.test(name)) counts.expertBytes += n;
    return r;
  };
  return { source: counted, counts };
}
