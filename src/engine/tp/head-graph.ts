import type { ModelConfig } from "../../models/types.js";
import { GraphBuilder } from "../onnx/builder.js";
import { emitLinear, rmsNorm } from "../graph/blocks.js";
import type { LinearWeight } from "../weights/linear.js";

/**
 * The last stage's tail when its layers run as tensor-parallel graphs: final RMSNorm and lm_head
 * on the positions named by logits_index.
 *   in  hidden_in    float32 [1, S, hidden]
 *   in  logits_index int64   [N]
 *   out logits       float32 [1, N, vocab]
 */
export function buildHeadGraph(cfg: ModelConfig, norm: Float32Array, lmHead: LinearWeight): GraphBuilder {
  const g = new GraphBuilder("tessera_tp_head");
  const x = g.input("hidden_in", "float32", [1, "S", cfg.hiddenSize]);
  const idx = g.input("logits_index", "int64", ["N"]);
  const sel = g.op("Gather", [x, idx], { axis: 1 });
  const xn = rmsNorm(g, sel, norm, cfg.rmsNormEps, "output_norm");
  g.node("Identity", [emitLinear(g, xn, lmHead, "output")], ["logits"]);
  g.output("logits", "float32", [1, "N", lmHead.n]);
  return g;
}
