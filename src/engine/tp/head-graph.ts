import type { ModelConfig } from "../../models/types.js";
import { GraphBuilder } from "../onnx/builder.js";
import { emitHead } from "../graph/decoder.js";
import type { LinearWeight } from "../weights/linear.js";

/**
 * The last stage's tail when its layers run as tensor-parallel graphs: final RMSNorm and lm_head
 * on the positions named by logits_index.
 *   in  hidden_in    float32 [B, S, hidden]
 *   in  logits_index int64   [N]
 *   out logits       float32 [B, N, vocab]
 */
export function buildHeadGraph(cfg: ModelConfig, norm: Float32Array, lmHead: LinearWeight): GraphBuilder {
  const g = new GraphBuilder("tessera_tp_head");
  const x = g.input("hidden_in", "float32", ["B", "S", cfg.hiddenSize]);
  emitHead(g, cfg, x, norm, lmHead);
  return g;
}
