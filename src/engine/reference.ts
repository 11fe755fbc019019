import type { ModelConfig } from "../models/types.js";
import { attentionScale, isSlidingLayer, layerRope } from "../models/arch/features.js";
import { ropeInvFreq } from "./graph/rope.js";
import { dequantizeAll, dequantizeRow, type LinearWeight } from "./weights/linear.js";
import type { LayerWeights } from "./weights/load.js";

/**
 * A plain float32 decoder, one token at a time, written for clarity: the yardstick the ONNX
 * graphs are tested against. It uses the same converted weights (dequantized), so it checks the
 * graph, not the weight conversion (tested separately against ggml's dequantization). The rotary
 * inverse frequencies come from the caller, so a test can compute them independently of the graph's
 * rope tables (graph/rope.ts): a shared bug there would otherwise pass unseen.
 */
interface DenseLayer {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array;
  gate?: Float32Array; up?: Float32Array; down?: Float32Array;
  router?: Float32Array;
  experts?: { gate: Float32Array; up: Float32Array; down: Float32Array }[];
  qBias?: Float32Array; kBias?: Float32Array; vBias?: Float32Array;
  qNorm?: Float32Array; kNorm?: Float32Array;
  attnPostNorm?: Float32Array; ffnPostNorm?: Float32Array;
}

function matVec(w: Float32Array, x: Float32Array, n: number, k: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    const o = r * k;
    for (let c = 0; c < k; c++) s += w[o + c] * x[c];
    y[r] = s + (bias ? bias[r] : 0);
  }
  return y;
}

export function rmsNormRef(x: Float32Array, w: Float32Array, eps: number, offset = 0, len = x.length): void {
  let ss = 0;
  for (let i = 0; i < len; i++) ss += x[offset + i] * x[offset + i];
  const inv = 1 / Math.sqrt(ss / len + eps);
  for (let i = 0; i < len; i++) x[offset + i] = x[offset + i] * inv * w[i];
}

function activation(x: number, kind: ModelConfig["hiddenAct"]): number {
  if (kind === "gelu_tanh") return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
  return x / (1 + Math.exp(-x));
}

/** Each layer's rope table as the model's family defines it (sliding layers may use their own base). */
export function familyInvFreq(cfg: ModelConfig, ropeFreqFactors?: Float32Array): (layer: number) => Float64Array {
  return (l) => {
    const rope = layerRope(cfg, l);
    return ropeInvFreq(rope, rope === cfg ? ropeFreqFactors : undefined);
  };
}

export class ReferenceDecoder {
  private readonly layers: DenseLayer[];
  private readonly kCache: Float32Array[][] = [];
  private readonly vCache: Float32Array[][] = [];
  private readonly invFreq: Float64Array[];
  private readonly lmHead: Float32Array;

  constructor(
    private readonly cfg: ModelConfig,
    layers: LayerWeights[],
    private readonly embedding: LinearWeight,
    private readonly outputNorm: Float32Array,
    lmHead: LinearWeight,
    private readonly ropeInterleaved: boolean,
    /**
     * Rotary inverse frequency of each pair [headDim / 2], scaling already applied: one table for every
     * layer, or one per layer (familyInvFreq). Tests of rope itself pass values computed independently.
     */
    invFreq: Float64Array | ((layer: number) => Float64Array),
  ) {
    this.invFreq = layers.map((_, l) => (typeof invFreq === "function" ? invFreq(l) : invFreq));
    for (const f of this.invFreq) if (f.length !== cfg.headDim / 2) throw new Error(`expected ${cfg.headDim / 2} rope frequencies, got ${f.length}`);
    this.layers = layers.map((w) => ({
      ...w,
      q: dequantizeAll(w.q), k: dequantizeAll(w.k), v: dequantizeAll(w.v), o: dequantizeAll(w.o),
      gate: w.gate && dequantizeAll(w.gate), up: w.up && dequantizeAll(w.up), down: w.down && dequantizeAll(w.down),
      router: w.moe && dequantizeAll(w.moe.router),
      experts: w.moe?.experts.map((e) => ({ gate: dequantizeAll(e.gate), up: dequantizeAll(e.up), down: dequantizeAll(e.down) })),
    }));
    this.lmHead = dequantizeAll(lmHead);
    for (let l = 0; l < layers.length; l++) {
      this.kCache.push([]);
      this.vCache.push([]);
    }
  }

  get position(): number {
    return this.kCache[0]?.length ?? 0;
  }

  private rope(x: Float32Array, heads: number, pos: number, inv: Float64Array): void {
    const d = this.cfg.headDim;
    const half = d / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = pos * inv[i];
        const c = Math.cos(a);
        const s = Math.sin(a);
        const i0 = h * d + (this.ropeInterleaved ? 2 * i : i);
        const i1 = h * d + (this.ropeInterleaved ? 2 * i + 1 : i + half);
        const x0 = x[i0];
        const x1 = x[i1];
        x[i0] = x0 * c - x1 * s;
        x[i1] = x0 * s + x1 * c;
      }
    }
  }

  /** The gated MLP, or the mixture of experts: softmax over all router scores, top k, renormalized. */
  private mlp(w: DenseLayer, x: Float32Array): Float32Array {
    const { hiddenSize: H, hiddenAct } = this.cfg;
    const gated = (gate: Float32Array, up: Float32Array, down: Float32Array): Float32Array => {
      const F = gate.length / H;
      const g = matVec(gate, x, F, H);
      const u = matVec(up, x, F, H);
      for (let i = 0; i < F; i++) g[i] = activation(g[i], hiddenAct) * u[i];
      return matVec(down, g, H, F);
    };
    if (!w.experts) return gated(w.gate!, w.up!, w.down!);
    const E = w.experts.length;
    const scores = matVec(w.router!, x, E, H);
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => scores[b] - scores[a]);
    const chosen = order.slice(0, this.cfg.moe!.expertsPerToken);
    const m = scores[chosen[0]];
    const weights = chosen.map((e) => Math.exp(scores[e] - m));
    const total = weights.reduce((a, b) => a + b, 0);
    const out = new Float32Array(H);
    chosen.forEach((e, j) => {
      const y = gated(w.experts![e].gate, w.experts![e].up, w.experts![e].down);
      for (let i = 0; i < H; i++) out[i] += (weights[j] / total) * y[i];
    });
    return out;
  }

  /** Runs one token; returns its logits. */
  step(token: number): Float32Array {
    const { hiddenSize: H, numHeads, numKvHeads, headDim: D, rmsNormEps: eps } = this.cfg;
    const pos = this.position;
    const x = new Float32Array(H);
    dequantizeRow(this.embedding, token, x);
    if (this.cfg.embeddingScale !== undefined) for (let i = 0; i < H; i++) x[i] *= this.cfg.embeddingScale;
    const scale = attentionScale(this.cfg);
    this.layers.forEach((w, l) => {
      const xn = x.slice();
      rmsNormRef(xn, w.attnNorm, eps);
      const q = matVec(w.q, xn, numHeads * D, H, w.qBias);
      const k = matVec(w.k, xn, numKvHeads * D, H, w.kBias);
      const v = matVec(w.v, xn, numKvHeads * D, H, w.vBias);
      if (w.qNorm) for (let h = 0; h < numHeads; h++) rmsNormRef(q, w.qNorm, eps, h * D, D);
      if (w.kNorm) for (let h = 0; h < numKvHeads; h++) rmsNormRef(k, w.kNorm, eps, h * D, D);
      this.rope(q, numHeads, pos, this.invFreq[l]);
      this.rope(k, numKvHeads, pos, this.invFreq[l]);
      this.kCache[l].push(k);
      this.vCache[l].push(v);
      // Sliding layers see positions pos − window + 1 … pos.
      const first = isSlidingLayer(this.cfg, l) ? Math.max(0, pos - this.cfg.slidingWindow! + 1) : 0;
      const attn = new Float32Array(numHeads * D);
      const group = numHeads / numKvHeads;
      const scores = new Float64Array(pos + 1);
      for (let h = 0; h < numHeads; h++) {
        const kvh = Math.floor(h / group);
        let max = -Infinity;
        for (let t = first; t <= pos; t++) {
          const kt = this.kCache[l][t];
          let s = 0;
          for (let i = 0; i < D; i++) s += q[h * D + i] * kt[kvh * D + i];
          scores[t] = s * scale;
          max = Math.max(max, scores[t]);
        }
        let sum = 0;
        for (let t = first; t <= pos; t++) sum += scores[t] = Math.exp(scores[t] - max);
        for (let t = first; t <= pos; t++) {
          const vt = this.vCache[l][t];
          const p = scores[t] / sum;
          for (let i = 0; i < D; i++) attn[h * D + i] += p * vt[kvh * D + i];
        }
      }
      const o = matVec(w.o, attn, H, numHeads * D);
      if (w.attnPostNorm) rmsNormRef(o, w.attnPostNorm, eps);
      for (let i = 0; i < H; i++) x[i] += o[i];
      const xn2 = x.slice();
      rmsNormRef(xn2, w.ffnNorm, eps);
      const dn = this.mlp(w, xn2);
      if (w.ffnPostNorm) rmsNormRef(dn, w.ffnPostNorm, eps);
      for (let i = 0; i < H; i++) x[i] += dn[i];
    });
    rmsNormRef(x, this.outputNorm, eps);
    const logits = matVec(this.lmHead, x, this.lmHead.length / H, H);
    const cap = this.cfg.finalLogitSoftcap;
    if (cap) for (let i = 0; i < logits.length; i++) logits[i] = cap * Math.tanh(logits[i] / cap);
    return logits;
  }
}
