/**
 * Inputs and outputs of placement (place.ts). All plain data: the master feeds it from the
 * replicated cluster state, previews show it, instance events carry the chosen plan.
 */
export type Strategy = "single" | "pipeline" | "tensor" | "hybrid";
export const STRATEGIES: readonly Strategy[] = ["single", "pipeline", "tensor", "hybrid"];

export interface PlacementNode {
  id: string;
  name: string;
  /** Bytes placement may still give to new ranks on this node (its budget less what instances already reserve). */
  freeBytes: number;
  /** Measured MatMulNBits 4-bit GEMV throughput, bytes of packed weights per second; null = not measured. */
  decodeBytesPerSec: number | null;
  /** Measured float32 MatMul throughput (GFLOP/s); null = not measured. */
  matmulGflops: number | null;
}

export interface PlacementLink {
  from: string;
  to: string;
  rttMs: number;
  bandwidthBytesPerSec: number;
}

export interface PlacementCluster {
  /** Nodes that may run ranks (coordinator-only nodes are left out by the caller). */
  nodes: PlacementNode[];
  links: PlacementLink[];
}

export interface PlacementRequest {
  /** Only plans of this strategy are feasible. */
  strategy?: Strategy;
  /** Only these nodes (ids) may be used. */
  nodes?: string[];
  /** Plans with fewer nodes are rejected. */
  minNodes?: number;
  /** KV cache capacity in tokens for every rank (default: min(model context, DEFAULT_CTX)). */
  ctx?: number;
  /**
   * Sequences decoded together (KV slots of ctx each on every rank). Default: per plan, as many up
   * to DEFAULT_PARALLEL as its nodes hold within BATCH_MEMORY_SHARE of their free memory, else 1.
   */
  parallel?: number;
  /** Prompt length the TTFT prediction is for (default 128). */
  promptTokens?: number;
}

export interface PlanStage {
  /** Decoder layers [start, end). */
  layers: [number, number];
  /** Node of each tensor rank of the stage (one for a stage without tensor parallelism). */
  nodes: string[];
}

/** One runner of a plan: world rank (the driver is 0), where it runs and what it computes. */
export interface PlanRank {
  world: number;
  node: string;
  stage: number;
  tpRank: number;
  tpSize: number;
  layers: [number, number];
  /** Bytes this runner process needs (weights as held, KV for ctx × parallel, process base). */
  memoryBytes: number;
}

export interface Prediction {
  decodeTps: number;
  ttftMs: number;
}

export interface PlacementPlan {
  strategy: Strategy;
  /** Distinct nodes used, in stage order. */
  nodes: string[];
  stages: PlanStage[];
  ranks: PlanRank[];
  /** Node that runs the driver (the generation loop): the first rank's node. */
  home: string;
  /** Bytes needed per node: its ranks, plus the driver on the home node. */
  memoryBytes: Record<string, number>;
  ctx: number;
  /** KV slots of ctx tokens each that every rank holds (continuous batching). */
  parallel: number;
  predicted: Prediction;
  feasible: boolean;
  /** Why the plan was rejected (feasible plans have none). */
  reason?: string;
}
