import { layerRope } from "../arch/features.js";
import { archOf } from "../arch/registry.js";
import type { LayerRole } from "../arch/types.js";
import type { ModelConfig } from "../types.js";
import { packLayer } from "./pack.js";
import { Rng } from "./rng.js";

/**
 * The synthetic weights, in Hugging Face layout ([out, in] rows, q/k not permuted), named by their
 * canonical GGUF names. Built so that the next-token distribution is peaked, greedy decoding does not
 * loop, and the tokens depend on attention being computed right:
 *
 *  - codes: exactly orthogonal ±1 vectors (rows of a Sylvester Hadamard matrix with random column
 *    signs). Code d−1 is the "position" direction b; every token t has one of the first
 *    min(d − 1, kv_heads·head_dim) codes σ(t), and its embedding is code + b + 0.25·N(0,1) noise.
 *  - output: one representative token r_k per code. The lm_head row of r_{π(k)} is α·code_k, where π
 *    is a random cycle over the codes, so a final state closest to code k predicts r_{π(k)} with a
 *    clear logit margin; every other row is small noise.
 *  - layer 0 attends to the previous token, by position only: q and k read just the b direction and
 *    place constant vectors in the three fastest rope pairs, phased so that q_m·k_n peaks at m − n = 1
 *    (qwen2 puts these constants in the q/k biases; qwen3 makes them large through q_norm/k_norm).
 *    v_proj row r reads code r and o_proj is v_proj's transpose, so V·O = COPY_GAIN on code space: the state becomes
 *    code(x_n) + ~2.4·code(x_{n−1}), and the model predicts r_{π(σ(x_{n−1}))}. Wrong rope (or a missing
 *    permutation, bias or q/k norm) blurs that attention and changes the tokens.
 *  - later layers and all MLPs add weak random updates; norms are 1 + small noise.
 *
 * Limit: three rope pairs repeat; some distances beyond ~100 positions score almost as high as the
 * previous token (for head_dim 64, theta 1e4: distance 202), so keep prompt + generation within ~100
 * tokens when comparing engines token for token.
 *
 * With tied embeddings the lm_head is the embedding itself and none of this holds (tokens sharing a
 * code tie): tied synthetic models are for exercising the tied path, not for greedy comparisons.
 */
const EMBED_NOISE = 0.25;
const LOGIT_SCALE = 16;
const OTHER_ROW_STD = 0.3;
const COPY_GAIN = 3.5;
const LATER_COPY_GAIN = 0.2;
const FFN_GAIN = 0.3;
/** Gemma's post norms: layer 0's attention output ≈ 2.4·code (as V·O gives the others), later ones weak. */
const POST_COPY_GAIN = 2.4;
const POST_LATER_GAIN = 0.15;
const POST_FFN_GAIN = 0.3;
/** Router scores spread (std, in logits) so the chosen experts are clear-cut. */
const ROUTER_STD = 8;
const BIAS_STD = 0.1;
const NORM_NOISE = 0.05;
const QK_NOISE = 0.1;
const V_NOISE = 0.05;
/** Rope pairs that carry the positional pattern, and the score gap (in softmax units) it should give. */
const POS_PAIRS = 3;
const POS_SCORE_GAP = 12;
/** Σcos((δ−1)θ_i) over the pairs drops by ~0.48 from δ = 1 to δ = 0 or 2 (θ_0 = 1 rad dominates). */
const POS_COS_GAP = 0.48;

export interface SynthTensorSpec {
  /** Canonical (GGUF) name. */
  name: string;
  /** Row-major [out, in] for matrices, [experts, out, in] for experts, [n] for vectors. */
  shape: number[];
  /** Values of rows [r0, r1) of a matrix (rows of all experts in turn for experts); a vector returns all its values whatever the range. */
  rows(r0: number, r1: number): Float32Array;
  /** Set on the vocabulary-sized tensors: equal keys mean equal values, so encodings can be reused. */
  cacheKey?: string;
}

interface Structure {
  signs: Int8Array;
  /** code of every token */
  codeOf: Int32Array;
  /** representative token of each code */
  reps: Int32Array;
  /** π as an array: next[k] = π(k) */
  next: Int32Array;
  /** lm_head row → code it points from (π⁻¹ of the rep's code), or -1 */
  outputCode: Int32Array;
}

function popcountParity(x: number): number {
  x ^= x >>> 16;
  x ^= x >>> 8;
  x ^= x >>> 4;
  x ^= x >>> 2;
  x ^= x >>> 1;
  return x & 1;
}

function code(s: Structure, k: number, i: number): number {
  return (popcountParity(k & i) ? -1 : 1) * s.signs[i]!;
}

/** Token ids that may serve as representatives: ordinary text tokens in the lower part of the vocabulary. */
export interface RepRange {
  lo: number;
  hi: number;
}

function buildStructure(cfg: ModelConfig, seed: number, repRange: RepRange): Structure {
  const d = cfg.hiddenSize;
  const rng = new Rng(seed, "structure");
  const signs = new Int8Array(d);
  for (let i = 0; i < d; i++) signs[i] = rng.u32() & 1 ? 1 : -1;
  const codes = codeCount(cfg);
  const order = rng.shuffle(Array.from({ length: codes }, (_, i) => i));
  const next = new Int32Array(codes);
  for (let i = 0; i < codes; i++) next[order[i]!] = order[(i + 1) % codes]!;
  const span = repRange.hi - repRange.lo;
  if (span < codes) throw new Error(`vocabulary range ${repRange.lo}..${repRange.hi} is too small for ${codes} representative tokens`);
  const chosen = new Set<number>();
  const reps = new Int32Array(codes);
  for (let k = 0; k < codes; k++) {
    let t: number;
    do t = repRange.lo + rng.int(span);
    while (chosen.has(t));
    chosen.add(t);
    reps[k] = t;
  }
  const codeOf = new Int32Array(cfg.vocabSize);
  for (let t = 0; t < cfg.vocabSize; t++) codeOf[t] = rng.int(codes);
  reps.forEach((t, k) => (codeOf[t] = k));
  const outputCode = new Int32Array(cfg.vocabSize).fill(-1);
  for (let k = 0; k < codes; k++) outputCode[reps[next[k]!]!] = k;
  return { signs, codeOf, reps, next, outputCode };
}

/**
 * The vocabulary-sized tensors dominate generation time and do not depend on the architecture or
 * the quantization, so writing several variants of one model in a process reuses them (up to ~256 MiB).
 */
const bigChunks = new Map<string, Float32Array | Uint8Array>();
let bigChunkBytes = 0;
export function remember(key: string, values: Float32Array | Uint8Array): void {
  bigChunks.set(key, values);
  bigChunkBytes += values.byteLength;
  for (const [k, v] of bigChunks) {
    if (bigChunkBytes <= 256 * 2 ** 20) break;
    bigChunks.delete(k);
    bigChunkBytes -= v.byteLength;
  }
}

export function recall(key: string): Float32Array | Uint8Array | undefined {
  return bigChunks.get(key);
}

/**
 * Token codes: as many as layer 0's value rows can carry exactly (each v_proj row is one code), and
 * never code d−1, which is the position direction.
 */
function codeCount(cfg: ModelConfig): number {
  return Math.min(cfg.hiddenSize - 1, cfg.numKvHeads * cfg.headDim);
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

export function synthWeights(cfg: ModelConfig, seed: number, repRange: RepRange): SynthTensorSpec[] {
  const d = cfg.hiddenSize;
  const hd = cfg.headDim;
  const qRows = cfg.numHeads * hd;
  const kvRows = cfg.numKvHeads * hd;
  const ff = cfg.intermediateSize;
  let structure: Structure | undefined;
  const st = () => (structure ??= buildStructure(cfg, seed, repRange));

  const perRow = (name: string, cols: number, row: (rng: Rng, r: number, out: Float32Array) => void) =>
    (r0: number, r1: number) => {
      const key = `${name}|${seed}|${cfg.vocabSize}|${d}|${cfg.numKvHeads * hd}|${repRange.lo}-${repRange.hi}|${embedScale}|${r0}-${r1}`;
      const hit = bigChunks.get(key);
      if (hit instanceof Float32Array) return hit;
      const out = new Float32Array((r1 - r0) * cols);
      for (let r = r0; r < r1; r++) row(new Rng(seed, `${name}#${r}`), r, out.subarray((r - r0) * cols, (r - r0 + 1) * cols));
      if (name === "token_embd.weight" || name === "output.weight") remember(key, out);
      return out;
    };
  const gaussian = (name: string, shape: number[], std: number, mean = 0): SynthTensorSpec => {
    const cols = shape.at(-1)!;
    return { name, shape, rows: perRow(name, cols, (rng, _r, out) => rng.fillNormal(out, std, mean)) };
  };
  const vector = (name: string, n: number, std: number, mean: number): SynthTensorSpec => ({
    name,
    shape: [n],
    rows: () => new Rng(seed, name).fillNormal(new Float32Array(n), std, mean),
  });

  const tensors: SynthTensorSpec[] = [];
  const arch = archOf(cfg);
  // Gemma multiplies embeddings by √hidden: store them divided, so the residual stream starts alike.
  const embedScale = cfg.embeddingScale ?? 1;
  const bigKey = (name: string) => `${name}|${seed}|${cfg.vocabSize}|${d}|${cfg.numKvHeads * hd}|${repRange.lo}-${repRange.hi}|${embedScale}`;
  tensors.push({
    name: "token_embd.weight",
    cacheKey: bigKey("token_embd.weight"),
    shape: [cfg.vocabSize, d],
    rows: perRow("token_embd.weight", d, (rng, t, out) => {
      const s = st();
      const k = s.codeOf[t]!;
      for (let i = 0; i < d; i++) out[i] = (code(s, k, i) + code(s, d - 1, i) + EMBED_NOISE * rng.normal()) / embedScale;
    }),
  });

  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `blk.${l}.`;
    const layout = arch.layer(cfg, l);
    const roles: Partial<Record<LayerRole, SynthTensorSpec>> = {};
    roles.attnNorm = vector(p + "attn_norm.weight", d, NORM_NOISE, 1);
    if (l === 0) {
      const pos = positionalQk(cfg, layerRope(cfg, 0).ropeTheta);
      // Weights read the b direction (code d−1, which the normalized input carries with weight ≈ 0.7).
      const fromB = (name: string, heads: number, constant: (j: number) => number): SynthTensorSpec => ({
        name,
        shape: [heads * hd, d],
        rows: perRow(name, d, (rng, r, out) => {
          const c = cfg.qkvBias ? 0 : constant(r % hd) / 0.7;
          for (let i = 0; i < d; i++) out[i] = (c * code(st(), d - 1, i)) / d + (QK_NOISE / Math.sqrt(d)) * rng.normal();
        }),
      });
      roles.q = fromB(p + "attn_q.weight", cfg.numHeads, pos.q);
      roles.k = fromB(p + "attn_k.weight", cfg.numKvHeads, pos.k);
    } else {
      roles.q = gaussian(p + "attn_q.weight", [qRows, d], 1 / Math.sqrt(d));
      roles.k = gaussian(p + "attn_k.weight", [kvRows, d], 1 / Math.sqrt(d));
    }
    // Layer 0: v_proj row r reads code r (unit norm), so V·O below copies code space exactly; later
    // layers: random rows with nothing along b.
    const vName = p + "attn_v.weight";
    const nCodes = codeCount(cfg);
    const v: SynthTensorSpec = {
      name: vName,
      shape: [kvRows, d],
      rows: perRow(vName, d, (rng, r, out) => {
        if (l === 0) {
          rng.fillNormal(out, V_NOISE / Math.sqrt(d));
          if (r < nCodes) for (let i = 0; i < d; i++) out[i] = out[i]! + code(st(), r, i) / Math.sqrt(d);
          return;
        }
        rng.fillNormal(out, 1 / Math.sqrt(d));
        let along = 0;
        for (let i = 0; i < d; i++) along += out[i]! * code(st(), d - 1, i);
        for (let i = 0; i < d; i++) out[i] = out[i]! - (along / d) * code(st(), d - 1, i);
      }),
    };
    roles.v = v;
    if (layout.weights.qBias) {
      const pos = positionalQk(cfg, layerRope(cfg, 0).ropeTheta);
      const withPattern = (name: string, n: number, f: (j: number) => number): SynthTensorSpec => ({
        name,
        shape: [n],
        rows: () => {
          const out = new Rng(seed, name).fillNormal(new Float32Array(n), BIAS_STD);
          if (l === 0) for (let r = 0; r < n; r++) out[r] = out[r]! + f(r % hd);
          return out;
        },
      });
      roles.qBias = withPattern(p + "attn_q.bias", qRows, pos.q);
      roles.kBias = withPattern(p + "attn_k.bias", kvRows, pos.k);
      roles.vBias = vector(p + "attn_v.bias", kvRows, BIAS_STD, 0);
    }
    if (layout.weights.qNorm) {
      const normWeights = (name: string): SynthTensorSpec => ({
        name,
        shape: [hd],
        rows: () => {
          const out = new Rng(seed, name).fillNormal(new Float32Array(hd), NORM_NOISE, 1);
          if (l === 0) {
            const w = positionalQk(cfg, layerRope(cfg, 0).ropeTheta).normWeight;
            for (const j of positionalDims(hd)) out[j] = out[j]! * w;
          }
          return out;
        },
      });
      roles.qNorm = normWeights(p + "attn_q_norm.weight");
      roles.kNorm = normWeights(p + "attn_k_norm.weight");
    }
    // o_proj[i, h*hd + c] = f · v_proj[g(h)*hd + c, i]. Layer 0: VᵀV is the projection on code space,
    // so f = gain / group makes V·O = gain on codes. Later layers: VᵀV ≈ (kvRows/d)·I.
    const gain = l === 0 ? COPY_GAIN : LATER_COPY_GAIN;
    const group = cfg.numHeads / cfg.numKvHeads;
    const factor = l === 0 ? gain / group : gain / (group * (kvRows / d));
    let vAll: Float32Array | undefined;
    roles.o = {
      name: p + "attn_output.weight",
      shape: [d, qRows],
      rows: (r0, r1) => {
        vAll ??= v.rows(0, kvRows);
        const out = new Float32Array((r1 - r0) * qRows);
        for (let i = r0; i < r1; i++) {
          for (let h = 0; h < cfg.numHeads; h++) {
            const g = Math.floor(h / group);
            for (let c = 0; c < hd; c++) out[(i - r0) * qRows + h * hd + c] = factor * vAll[(g * hd + c) * d + i]!;
          }
        }
        return out;
      },
    };
    // Gemma normalizes the attention and MLP outputs before the residual add: these norms' weights
    // set the outputs' sizes to what the other families get from the projections alone.
    if (layout.weights.attnPostNorm) {
      const gain = l === 0 ? POST_COPY_GAIN : POST_LATER_GAIN;
      roles.attnPostNorm = vector(p + "post_attention_norm.weight", d, NORM_NOISE * gain, gain);
    }
    roles.ffnNorm = vector(p + "ffn_norm.weight", d, NORM_NOISE, 1);
    if (cfg.moe) {
      const { numExperts: E, expertFfnSize: fe } = cfg.moe;
      roles.router = gaussian(p + "ffn_gate_inp.weight", [E, d], ROUTER_STD / Math.sqrt(d));
      roles.gateExps = gaussian(p + "ffn_gate_exps.weight", [E, fe, d], 1 / Math.sqrt(d));
      roles.upExps = gaussian(p + "ffn_up_exps.weight", [E, fe, d], 1 / Math.sqrt(d));
      roles.downExps = gaussian(p + "ffn_down_exps.weight", [E, d, fe], (2 * FFN_GAIN) / Math.sqrt(fe));
    } else {
      roles.gate = gaussian(p + "ffn_gate.weight", [ff, d], 1 / Math.sqrt(d));
      roles.up = gaussian(p + "ffn_up.weight", [ff, d], 1 / Math.sqrt(d));
      roles.down = gaussian(p + "ffn_down.weight", [d, ff], (2 * FFN_GAIN) / Math.sqrt(ff));
    }
    if (layout.weights.ffnPostNorm) roles.ffnPostNorm = vector(p + "post_ffw_norm.weight", d, NORM_NOISE * POST_FFN_GAIN, POST_FFN_GAIN);
    tensors.push(...packLayer(layout, roles));
  }

  tensors.push({ name: "output_norm.weight", shape: [d], rows: () => new Float32Array(d).fill(1) });
  if (!cfg.tiedEmbeddings) {
    const alpha = LOGIT_SCALE / d;
    tensors.push({
      name: "output.weight",
      cacheKey: bigKey("output.weight"),
      shape: [cfg.vocabSize, d],
      rows: perRow("output.weight", d, (rng, j, out) => {
        const s = st();
        const k = s.outputCode[j]!;
        if (k >= 0) for (let i = 0; i < d; i++) out[i] = alpha * code(s, k, i);
        else for (let i = 0; i < d; i++) out[i] = alpha * OTHER_ROW_STD * rng.normal();
      }),
    });
  }
  return tensors;
}

/** The head dims of the first POS_PAIRS rope pairs in HF (rotate-half) layout: i and i + hd/2. */
function positionalDims(hd: number): number[] {
  const dims: number[] = [];
  for (let i = 0; i < POS_PAIRS; i++) dims.push(i, i + hd / 2);
  return dims;
}

/**
 * Constant q and k head vectors (by head dim) whose rope-rotated dot product is
 * A²·Σ_i cos((m − n − 1)·θ_i) over the first POS_PAIRS pairs: largest for the previous position.
 * For qwen3 the constants are normalized per head before use, so the scale comes from q_norm/k_norm.
 */
function positionalQk(cfg: ModelConfig, ropeTheta: number): { q: (j: number) => number; k: (j: number) => number; normWeight: number } {
  const hd = cfg.headDim;
  const half = hd / 2;
  const theta = (i: number) => Math.pow(ropeTheta, (-2 * i) / hd);
  // score = q·k/√hd; the gap between δ = 1 and its neighbours is ≈ POS_COS_GAP·A² (per unit amplitude²).
  const amp = Math.sqrt((POS_SCORE_GAP * Math.sqrt(hd)) / POS_COS_GAP);
  // After per-head RMS normalization each pair has length √(hd / POS_PAIRS); q_norm/k_norm scale it by w.
  const normWeight = Math.sqrt((POS_SCORE_GAP * POS_PAIRS) / (POS_COS_GAP * Math.sqrt(hd)));
  const a = cfg.qkNorm ? 1 : amp;
  const q = (j: number) => (j < POS_PAIRS ? a : 0);
  const k = (j: number) => {
    const i = j % half;
    if (i >= POS_PAIRS) return 0;
    return j < half ? a * Math.cos(theta(i)) : a * Math.sin(theta(i));
  };
  return { q, k, normWeight };
}

/** llama.cpp's converter reorders q/k rows per head for its interleaved rope: row h·hd + 2i + j ← h·hd + j·hd/2 + i. */
export function permuteForInterleavedRope(values: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const dst = h * headDim + 2 * i + j;
        const src = h * headDim + j * half + i;
        out.set(values.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}
