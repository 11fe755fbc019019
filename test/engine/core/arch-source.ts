import type { ModelConfig, ModelSource, RawTensor, TensorInfo, TensorSlice, TensorType } from "../../../src/models/types.js";
import { archOf } from "../../../src/models/arch/registry.js";
import { LAYOUTS, byteSize, quantize } from "../../../src/models/quant/index.js";
import { rng } from "./fixtures.js";

/**
 * An in-memory ModelSource with random weights for any architecture: the tensors are the ones its
 * file (src/models/arch) lays out, so fused tensors, post norms and 3-D expert tensors come out as a
 * real file would hold them. Matrices are stored as `linearType` (the router stays F32, as llama.cpp
 * keeps it), vectors as F32; norms are 1 + noise. Reads cut rows, block-aligned columns and experts
 * the way the file readers do.
 */
export function archSource(
  cfg: ModelConfig,
  opts: { seed?: number; linearType?: TensorType; expertType?: TensorType; scale?: number; ropeInterleaved?: boolean } = {},
): ModelSource {
  const r = rng(opts.seed ?? 1);
  const linearType = opts.linearType ?? "F32";
  const scale = opts.scale ?? 0.15;
  const tensors = new Map<string, { info: TensorInfo; data: Uint8Array }>();
  const add = (name: string, shape: number[]): void => {
    const isNorm = /_norm\.weight$/.test(name);
    const type: TensorType = shape.length === 3 ? (opts.expertType ?? linearType) : shape.length === 2 && !/ffn_gate_inp/.test(name) ? linearType : "F32";
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, () => (isNorm ? 1 + r.normal() * 0.1 : shape.length === 1 ? r.normal() * scale : r.normal() * scale));
    // Routers get larger scores so the chosen experts are clear-cut.
    if (/ffn_gate_inp/.test(name)) values.forEach((v, i) => (values[i] = v * 8));
    const data = quantize(type, values);
    tensors.set(name, { info: { name, type, shape, byteLength: data.byteLength, groupSize: LAYOUTS[type].blockSize }, data });
  };
  const H = cfg.hiddenSize;
  add("token_embd.weight", [cfg.vocabSize, H]);
  const arch = archOf(cfg);
  for (let l = 0; l < cfg.numLayers; l++) for (const t of arch.layer(cfg, l).tensors) add(t.name, t.shape);
  add("output_norm.weight", [H]);
  if (!cfg.tiedEmbeddings) add("output.weight", [cfg.vocabSize, H]);
  return {
    path: `memory:${cfg.architecture}`,
    format: "gguf",
    config: cfg,
    ropeInterleaved: opts.ropeInterleaved ?? false,
    tensors: () => [...tensors.values()].map((t) => t.info),
    info: (name) => tensors.get(name)?.info,
    async read(name: string, slice: TensorSlice = {}): Promise<RawTensor> {
      const t = tensors.get(name);
      if (!t) throw new Error(`no tensor ${name}`);
      const { info } = t;
      let data = t.data;
      let shape = info.shape;
      if (slice.expert !== undefined) {
        const [E, R, C] = shape as [number, number, number];
        const per = byteSize(info.type, R * C)!;
        if (slice.expert >= E) throw new Error(`expert ${slice.expert} of ${E}`);
        data = data.subarray(slice.expert * per, (slice.expert + 1) * per);
        shape = [R, C];
      }
      const cols = shape.length >= 2 ? shape.at(-1)! : shape[0]!;
      const rows = shape.length >= 2 ? shape[0]! : 1;
      const [r0, r1] = slice.rows ?? [0, rows];
      const [c0, c1] = slice.cols ?? [0, cols];
      const rowBytes = byteSize(info.type, cols)!;
      const b0 = byteSize(info.type, c0)!;
      const b1 = byteSize(info.type, c1)!;
      const out = new Uint8Array((r1 - r0) * (b1 - b0));
      for (let i = r0; i < r1; i++) out.set(data.subarray(i * rowBytes + b0, i * rowBytes + b1), (i - r0) * (b1 - b0));
      return { info, shape: shape.length >= 2 ? [r1 - r0, c1 - c0] : [c1 - c0], data: out };
    },
    async close() {},
  };
}
