import type { ModelSource, TensorInfo, TensorSlice } from "../../models/types.js";
import { TesseraError } from "../../errors.js";
import { archOf } from "../../models/arch/registry.js";
import type { LayerRole, WeightRef } from "../../models/arch/types.js";
import type { TpSlice } from "../../placement/split.js";
import { toLinearWeight, toVector } from "./convert.js";
import type { LinearWeight } from "./linear.js";

/**
 * The weights of one decoder layer (or of one tensor-parallel rank's slice of it), converted. Which
 * are present follows the architecture (arch/ layouts): biases, q/k norms and post norms when the
 * model has them; a dense gated MLP (gate/up/down) or a mixture of experts (moe).
 */
export interface LayerWeights {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  q: LinearWeight;
  k: LinearWeight;
  v: LinearWeight;
  o: LinearWeight;
  gate?: LinearWeight;
  up?: LinearWeight;
  down?: LinearWeight;
  moe?: MoeWeights;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  /** Gemma's norms of the attention and MLP outputs before they join the residual stream. */
  attnPostNorm?: Float32Array;
  ffnPostNorm?: Float32Array;
}

/** A mixture-of-experts MLP: the router (all experts' scores) and each expert's gate/up/down (or this rank's slice of each). */
export interface MoeWeights {
  router: LinearWeight;
  experts: { gate: LinearWeight; up: LinearWeight; down: LinearWeight }[];
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

/**
 * Reads layer `l`; with a slice of size > 1, only that rank's rows/columns. Weights are found through
 * the architecture's layout, so a weight stored as rows of a fused tensor reads just those rows.
 */
export async function loadLayer(src: ModelSource, l: number, slice?: TpSlice): Promise<LayerWeights> {
  const cfg = src.config;
  const { weights } = archOf(cfg).layer(cfg, l);
  const split = slice && slice.size > 1 ? slice : undefined;
  const ref = (role: LayerRole): WeightRef => {
    const r = weights[role];
    if (!r) throw new Error(`${cfg.architecture} layer ${l} has no ${role}`);
    return r;
  };
  /** Rows [a, b) of the logical weight (all when no range), expert `expert` of a 3-D tensor. */
  const rowsOf = (role: LayerRole, range?: [number, number], cols?: [number, number], expert?: number): Promise<LinearWeight> => {
    const r = ref(role);
    const info = src.info(r.tensor);
    const stored = info ? (info.shape.length === 3 ? info.shape[1]! : info.shape[0]!) : r.rows;
    const [a, b] = range ?? [0, r.rows];
    const s: TensorSlice = {};
    if (expert !== undefined) s.expert = expert;
    if (a !== 0 || b !== stored || r.rowOffset !== 0) s.rows = [r.rowOffset + a, r.rowOffset + b];
    if (cols) s.cols = cols;
    return linear(src, r.tensor, s);
  };
  const vec = (role: LayerRole, range?: [number, number]) => {
    const r = ref(role);
    return vector(src, r.tensor, range);
  };
  const has = (role: LayerRole) => weights[role] !== undefined;
  const w: LayerWeights = {
    attnNorm: await vec("attnNorm"),
    ffnNorm: await vec("ffnNorm"),
    q: await rowsOf("q", split?.qRows),
    k: await rowsOf("k", split?.kvRows),
    v: await rowsOf("v", split?.kvRows),
    o: await rowsOf("o", undefined, split?.oCols),
  };
  if (has("gate")) {
    w.gate = await rowsOf("gate", split?.ffnRows);
    w.up = await rowsOf("up", split?.ffnRows);
    w.down = await rowsOf("down", undefined, split?.downCols);
  }
  if (has("router")) {
    const m = cfg.moe!;
    const rows = split?.expertRows;
    const cols = split?.expertCols;
    const experts: MoeWeights["experts"] = [];
    for (let e = 0; e < m.numExperts; e++) {
      experts.push({
        gate: await rowsOf("gateExps", rows, undefined, e),
        up: await rowsOf("upExps", rows, undefined, e),
        down: await rowsOf("downExps", undefined, cols, e),
      });
    }
    w.moe = { router: await rowsOf("router"), experts };
  }
  if (has("qBias")) {
    w.qBias = await vec("qBias", split?.qRows);
    w.kBias = await vec("kBias", split?.kvRows);
    w.vBias = await vec("vBias", split?.kvRows);
  }
  if (has("qNorm")) {
    w.qNorm = await vec("qNorm");
    w.kNorm = await vec("kNorm");
  }
  if (has("attnPostNorm")) w.attnPostNorm = await vec("attnPostNorm");
  if (has("ffnPostNorm")) w.ffnPostNorm = await vec("ffnPostNorm");
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
