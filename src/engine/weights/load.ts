import type { ModelSource, TensorInfo, TensorSlice } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import type { TpSlice } from "../../placement/split.js";
import { toLinearWeight, toVector } from "./convert.js";
import type { LinearWeight } from "./linear.js";

/** The weights of one decoder layer (or of one tensor-parallel rank's slice of it), converted. */
export interface LayerWeights {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  q: LinearWeight;
  k: LinearWeight;
  v: LinearWeight;
  o: LinearWeight;
  gate: LinearWeight;
  up: LinearWeight;
  down: LinearWeight;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  qNorm?: Float32Array;
  kNorm?: Float32Array;
}

async function linear(src: ModelSource, name: string, slice?: TensorSlice): Promise<LinearWeight> {
  if (!src.info(name)) throw new TesseraError(`tensor ${name} is missing`, src.path);
  return toLinearWeight(await src.read(name, slice));
}

async function vector(src: ModelSource, name: string, range?: [number, number]): Promise<Float32Array> {
  if (!src.info(name)) throw new TesseraError(`tensor ${name} is missing`, src.path);
  const v = toVector(await src.read(name));
  return range ? v.slice(range[0], range[1]) : v;
}

/** Reads layer `l`; with a slice of size > 1, only that rank's rows/columns. */
export async function loadLayer(src: ModelSource, l: number, slice?: TpSlice): Promise<LayerWeights> {
  const cfg = src.config;
  const p = `blk.${l}.`;
  const split = slice && slice.size > 1 ? slice : undefined;
  const rows = (r: [number, number]): TensorSlice | undefined => (split ? { rows: r } : undefined);
  const cols = (c: [number, number]): TensorSlice | undefined => (split ? { cols: c } : undefined);
  const w: LayerWeights = {
    attnNorm: await vector(src, p + "attn_norm.weight"),
    ffnNorm: await vector(src, p + "ffn_norm.weight"),
    q: await linear(src, p + "attn_q.weight", split && rows(split.qRows)),
    k: await linear(src, p + "attn_k.weight", split && rows(split.kvRows)),
    v: await linear(src, p + "attn_v.weight", split && rows(split.kvRows)),
    o: await linear(src, p + "attn_output.weight", split && cols(split.oCols)),
    gate: await linear(src, p + "ffn_gate.weight", split && rows(split.ffnRows)),
    up: await linear(src, p + "ffn_up.weight", split && rows(split.ffnRows)),
    down: await linear(src, p + "ffn_down.weight", split && cols(split.downCols)),
  };
  if (cfg.qkvBias) {
    w.qBias = await vector(src, p + "attn_q.bias", split?.qRows);
    w.kBias = await vector(src, p + "attn_k.bias", split?.kvRows);
    w.vBias = await vector(src, p + "attn_v.bias", split?.kvRows);
  }
  if (cfg.qkNorm) {
    w.qNorm = await vector(src, p + "attn_q_norm.weight");
    w.kNorm = await vector(src, p + "attn_k_norm.weight");
  }
  return w;
}

export async function loadEmbedding(src: ModelSource): Promise<LinearWeight> {
  return linear(src, "token_embd.weight");
}

/** Final norm and lm_head (the embedding table when tied or when output.weight is absent). */
export async function loadHead(src: ModelSource, embedding?: LinearWeight): Promise<{ norm: Float32Array; lmHead: LinearWeight }> {
  const norm = await vector(src, "output_norm.weight");
  const tied = src.config.tiedEmbeddings || !src.info("output.weight");
  const lmHead = tied ? (embedding ?? (await loadEmbedding(src))) : await linear(src, "output.weight");
  return { norm, lmHead };
}

/** GGUF llama3 rope scaling as a tensor of per-frequency divisors, if the model has it. */
export async function loadRopeFreqs(src: ModelSource): Promise<Float32Array | undefined> {
  return src.info("rope_freqs.weight") ? vector(src, "rope_freqs.weight") : undefined;
}

/**
 * Stored bytes of the weights a pipeline shard's graph holds: layers [a, b), plus the lm_head (or
 * the tied embedding) on the last stage. Decides where they are staged (onnx/staging.ts).
 */
export function shardWeightBytes(src: ModelSource, layers: [number, number]): number {
  let total = 0;
  for (const t of src.tensors()) {
    const l = Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1);
    if (l >= layers[0] && l < layers[1]) total += t.byteLength;
  }
  if (layers[1] === src.config.numLayers) total += lmHeadInfo(src)?.byteLength ?? 0;
  return total;
}

/** The stored lm_head: output.weight, or the embedding table it is tied to. */
export function lmHeadInfo(src: ModelSource): TensorInfo | undefined {
  return src.info("output.weight") ?? src.info("token_embd.weight");
}
