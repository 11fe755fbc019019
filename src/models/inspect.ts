import { openModel } from "./open.js";
import { loadTokenizer } from "./tokenizer/index.js";
import type { ModelConfig, ModelSource, TensorInfo, Tokenizer } from "./types.js";

/** What `tessera inspect` reports about a model; also its --json output. */
export interface ModelReport {
  path: string;
  format: ModelSource["format"];
  architecture: string;
  parameters: number;
  /** Stored tensor bytes (MLX: packed values only, as TensorInfo.byteLength). */
  tensorBytes: number;
  tensorCount: number;
  /** per storage type: how many tensors, their elements and bytes */
  types: Record<string, { tensors: number; parameters: number; bytes: number }>;
  layers: number;
  contextLength: number;
  ropeInterleaved: boolean;
  config: ModelConfig;
  tokenizer: TokenizerReport | { error: string };
}

export interface TokenizerReport {
  kind: string;
  vocabSize: number;
  bos?: { id: number; piece: string };
  eos?: { id: number; piece: string };
  stop: { id: number; piece: string }[];
}

export function summarizeTensors(tensors: TensorInfo[]): Pick<ModelReport, "parameters" | "tensorBytes" | "tensorCount" | "types"> {
  const types: ModelReport["types"] = {};
  let parameters = 0;
  let tensorBytes = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    parameters += n;
    tensorBytes += t.byteLength;
    const entry = (types[t.type] ??= { tensors: 0, parameters: 0, bytes: 0 });
    entry.tensors++;
    entry.parameters += n;
    entry.bytes += t.byteLength;
  }
  return { parameters, tensorBytes, tensorCount: tensors.length, types };
}

function tokenizerReport(t: Tokenizer): TokenizerReport {
  const piece = (id: number) => ({ id, piece: t.idToPiece(id) });
  return {
    kind: (t as { kind?: string }).kind ?? "unknown",
    vocabSize: t.vocabSize,
    ...(t.bosId !== undefined ? { bos: piece(t.bosId) } : {}),
    ...(t.eosId !== undefined ? { eos: piece(t.eosId) } : {}),
    stop: t.stopIds.map(piece),
  };
}

export async function inspectModel(path: string): Promise<ModelReport> {
  const source = await openModel(path);
  try {
    let tokenizer: ModelReport["tokenizer"];
    try {
      tokenizer = tokenizerReport(await loadTokenizer(source));
    } catch (e) {
      tokenizer = { error: (e as Error).message };
    }
    const c = source.config;
    return {
      path: source.path,
      format: source.format,
      architecture: c.architecture,
      ...summarizeTensors(source.tensors()),
      layers: c.numLayers,
      contextLength: c.contextLength,
      ropeInterleaved: source.ropeInterleaved,
      config: c,
      tokenizer,
    };
  } finally {
    await source.close();
  }
}

function human(n: number, unit = ""): string {
  const steps = unit === "B" ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["", "K", "M", "B", "T"];
  const base = unit === "B" ? 1024 : 1000;
  let i = 0;
  while (n >= base && i < steps.length - 1) {
    n /= base;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(2)}${unit === "B" ? " " : ""}${steps[i]}`;
}

function features(c: ModelConfig): string {
  const f: string[] = [];
  if (c.qkvBias) f.push("q/k/v bias");
  if (c.qkNorm) f.push("q/k norm");
  if (c.slidingWindow !== undefined) {
    const n = c.slidingLayers?.filter((s) => s).length ?? c.numLayers;
    f.push(`sliding window ${c.slidingWindow} on ${n} of ${c.numLayers} layers`);
  }
  if (c.moe) f.push(`${c.moe.numExperts} experts, ${c.moe.expertsPerToken} per token, width ${c.moe.expertFfnSize}`);
  if (c.hiddenAct === "gelu_tanh") f.push("GELU");
  if (c.finalLogitSoftcap) f.push(`logit soft-cap ${c.finalLogitSoftcap}`);
  return f.length ? ` (${f.join(", ")})` : "";
}

export function formatReport(r: ModelReport): string {
  const c = r.config;
  const lines = [
    `${r.path}`,
    `  format        ${r.format}`,
    `  architecture  ${r.architecture}${features(c)}`,
    `  parameters    ${human(r.parameters)} (${r.parameters})`,
    `  layers        ${r.layers}, hidden ${c.hiddenSize}, FFN ${c.intermediateSize}`,
    `  attention     ${c.numHeads} heads, ${c.numKvHeads} KV heads, head dim ${c.headDim}`,
    `  rope          theta ${c.ropeTheta}${c.ropeScaling ? `, ${c.ropeScaling.kind} scaling ×${c.ropeScaling.factor}` : ""}${c.ropeThetaSliding !== undefined ? `, sliding layers theta ${c.ropeThetaSliding}` : ""}${r.ropeInterleaved ? ", q/k rows permuted for interleaved rope" : ""}`,
    `  context       ${r.contextLength}`,
    `  embeddings    vocab ${c.vocabSize}, ${c.tiedEmbeddings ? "tied" : "separate lm_head"}`,
    `  tensors       ${r.tensorCount}, ${human(r.tensorBytes, "B")}`,
  ];
  for (const [type, t] of Object.entries(r.types).sort((a, b) => b[1].bytes - a[1].bytes)) {
    lines.push(`    ${type.padEnd(6)} ${String(t.tensors).padStart(5)} tensors  ${human(t.parameters).padStart(8)} params  ${human(t.bytes, "B").padStart(10)}`);
  }
  const tk = r.tokenizer;
  if ("error" in tk) lines.push(`  tokenizer     unavailable: ${tk.error}`);
  else {
    const show = (x?: { id: number; piece: string }) => (x ? `${JSON.stringify(x.piece)} (${x.id})` : "none");
    lines.push(`  tokenizer     ${tk.kind}, vocab ${tk.vocabSize}, bos ${show(tk.bos)}, eos ${show(tk.eos)}`);
    lines.push(`    stop tokens ${tk.stop.map((s) => show(s)).join(", ") || "none"}`);
  }
  return lines.join("\n");
}
