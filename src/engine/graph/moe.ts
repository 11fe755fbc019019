import type { ModelConfig } from "../../models/types.js";
import type { GraphBuilder } from "../onnx/builder.js";
import type { MoeWeights } from "../weights/load.js";
import { emitGatedMlp, emitLinear } from "./blocks.js";

/**
 * Mixture of experts: routing in plain ops, then one `If` per expert whose branch runs only when
 * some token chose that expert, on just those tokens' rows. Each expert is an ordinary gated MLP
 * (MatMulNBits or Gemm, the dense path's exact weight conversion for every storage type), so a
 * decode step runs k experts and a prefill runs each chosen expert once on its tokens.
 *
 * Why not onnxruntime's MoE/QMoE kernels: measured on onnxruntime-node 1.30 CPU (32 experts of
 * 2048 → 512, 4 per token, one token), QMoE took 46 ms per layer at 4 bits and 4.7 ms at 8 bits —
 * it dequantizes instead of using MatMulNBits' int8 kernels — where the chosen experts' weights
 * stream in ~0.5 ms. Its CPU kernel also wants integer zero points (no K-quant or MLX experts).
 *
 * Routing (as llama.cpp and transformers do for Qwen3-MoE and Mixtral): scores = router·x;
 * the k best; their weights = softmax over those k scores (= softmax over all experts,
 * renormalized over the chosen). With S tokens and E experts:
 *   logits [S, E] → TopK → scores [S, k], experts [S, k] → weights [S, k]
 *   dense  [S, E]   weight of each expert for each token, 0 where not chosen
 *   used   [E]      bool: some token chose the expert
 *   acc    [S, H]   += weight · expert(x) on the chosen rows, expert by expert (ScatterND add)
 */
export function emitMoe(g: GraphBuilder, cfg: ModelConfig, l: number, w: MoeWeights, xn: string): string {
  const p = `blk.${l}.`;
  const H = cfg.hiddenSize;
  const E = w.experts.length;
  const k = cfg.moe!.expertsPerToken;
  const x2 = g.op("Reshape", [xn, g.constInt64([-1, H])]);
  const logits = g.op("Reshape", [emitLinear(g, xn, w.router, p + "ffn_gate_inp"), g.constInt64([-1, E])]);
  const [scores, chosen] = g.node("TopK", [logits, g.constInt64([k])], [g.fresh("scores"), g.fresh("chosen")], { axis: -1 });
  const weights = g.op("Softmax", [scores!], { axis: -1 });
  const zeros = g.op("ConstantOfShape", [g.op("Shape", [logits])]);
  const dense = g.op("ScatterElements", [zeros, chosen!, weights], { axis: 1 });
  const used = g.op("Greater", [g.op("ReduceMax", [dense], { axes: [0], keepdims: 0 }), g.weight(g.fresh("zero"), "float32", [1], Float32Array.of(0))]);
  let acc = g.op("ConstantOfShape", [g.op("Shape", [x2])]);
  for (let e = 0; e < E; e++) {
    const cond = g.op("Gather", [used, g.constInt64([e], [])], { axis: 0 });
    const then = g.subgraph(`${p}expert_${e}`);
    const we = then.op("Gather", [dense, then.constInt64([e], [])], { axis: 1 });
    const rows = then.op("Reshape", [then.op("NonZero", [then.op("Greater", [we, then.weight(then.fresh("zero"), "float32", [1], Float32Array.of(0))])]), then.constInt64([-1])]);
    const xe = then.op("Reshape", [then.op("Gather", [x2, rows], { axis: 0 }), then.constInt64([1, -1, H])]);
    const ye = then.op("Reshape", [emitGatedMlp(then, xe, w.experts[e]!, cfg.hiddenAct, `${p}ffn_exp${e}`), then.constInt64([-1, H])]);
    const scaled = then.op("Mul", [ye, then.op("Unsqueeze", [then.op("Gather", [we, rows], { axis: 0 }), then.constInt64([1])])]);
    const sum = then.op("ScatterND", [acc, then.op("Unsqueeze", [rows, then.constInt64([1])]), scaled], { reduction: "add" });
    then.output(sum, "float32", ["S", H]);
    const skip = g.subgraph(`${p}skip_${e}`);
    skip.output(skip.op("Identity", [acc]), "float32", ["S", H]);
    acc = g.op("If", [cond], { then_branch: { graph: then }, else_branch: { graph: skip } });
  }
  // back to the input's shape ([B, S, H])
  return g.op("Reshape", [acc, g.op("Shape", [xn])]);
}
