// GPU check (issue 18), made to run in one go on a lent GPU machine (the device tool: 15 minutes in all):
//   1. providers: what this onnxruntime build lists, and what really starts (engine/onnx/devices.ts probes);
//   2. parity: greedy tokens on each GPU device that starts vs the CPU, on small synthetic models of each
//      supported family and quantization; where a model does not start with CPU fallback off, which
//      nodes onnxruntime would have put on the CPU (placement.ts in a child, verbose log);
//   3. speed on the `1b` Q4_0 model: decode tok/s and time to first token of a --prompt-tokens prompt, our
//      engine on each GPU device and on the CPU (all cores), beside llama.cpp (node-llama-cpp) on the same
//      GPU and on the CPU, paired rounds.
// The JSON is rewritten after every section, so a run cut short keeps what it measured.
// Usage: node dist/bench/gpu/gpu.js [--models DIR] [--rounds 5] [--tokens 32] [--prompt-tokens 256]
//          [--llama-gpu vulkan] [--out FILE]
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compiledProviders } from "../../src/engine/onnx/session.js";
import { probeDevice } from "../../src/engine/onnx/devices.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { argmax } from "../../src/engine/sampling/select.js";
import type { Device } from "../../src/engine/types.js";
import { openModel } from "../../src/models/open.js";
import { synthesize, type SynthOptions } from "../../src/models/synth/synthesize.js";
import { provenance } from "../provenance.js";
import { median, rotate, round2 as r2 } from "../stats.js";
import { PROMPT, singleConfig, type Config } from "../parallel/configs.js";
import { llamaConfig } from "../llama/llama-config.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: join(os.tmpdir(), "tessera-bench-models") },
    rounds: { type: "string", default: "5" },
    tokens: { type: "string", default: "32" },
    "prompt-tokens": { type: "string", default: "256" },
    "llama-gpu": { type: "string", default: "vulkan" },
    out: { type: "string" },
  },
});
const ROUNDS = Number(values.rounds);
const TOKENS = Number(values.tokens);
const PROMPT_TOKENS = Number(values["prompt-tokens"]);
const CORES = os.cpus().length;
const GPUS: Device[] = ["webgpu", "cuda"];
const started = performance.now();
const result: Record<string, unknown> = {
  ...provenance("gpu: providers, greedy parity with the CPU, decode and prefill vs CPU and llama.cpp", ["src", "bench/gpu"]),
  gpu: gpuName(),
};
const out = values.out ?? join("bench", "results", `gpu-${new Date().toISOString().slice(0, 10)}.json`);
function save(): void {
  result.run_seconds = Math.round((performance.now() - started) / 1000);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
}
function gpuName(): string {
  try {
    return execFileSync("nvidia-smi", ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown (no nvidia-smi)";
  }
}
const errorText = (e: unknown): string => ((e as Error).message ?? String(e)).split("\n").slice(0, 3).join(" | ").slice(0, 600);

// ---- 1. providers ----
const probes = Object.fromEntries(GPUS.map((d) => [d, probeDevice(d)]));
result.providers = { compiled: compiledProviders(), probes };
console.log(`providers compiled: ${compiledProviders().join(", ")}; probes: ${JSON.stringify(probes)}`);
save();
const devices = GPUS.filter((d) => probes[d]!.ok);

// ---- 2. parity ----
type Family = Omit<SynthOptions, "out" | "preset">;
const FAMILIES: Family[] = [
  { arch: "llama", format: "gguf", quant: "q4_0", vocab: "spm" },
  { arch: "llama", format: "gguf", quant: "q8_0", vocab: "spm" },
  { arch: "llama", format: "gguf", quant: "f16", vocab: "spm" },
  { arch: "qwen3", format: "gguf", quant: "q4_0" },
  { arch: "qwen2", format: "gguf", quant: "q8_0" },
  { arch: "qwen3", format: "mlx", quant: "mlx4" },
];
mkdirSync(values.models!, { recursive: true });

async function greedy(path: string, device: Device, n: number): Promise<{ tokens: number[]; firstLogits: Float32Array }> {
  const src = await openModel(path);
  const s = await createStepper(src, { device, threads: device === "cpu" ? Math.min(4, CORES) : 1, contextLength: 64 });
  try {
    const tokens: number[] = [];
    let logits = s.forward(Int32Array.from([300, 301, 302, 303, 304, 305]));
    const firstLogits = logits.slice();
    for (let i = 0; i < n; i++) {
      tokens.push(argmax(logits, s.vocabSize));
      logits = s.forward(Int32Array.of(tokens[i]!));
    }
    return { tokens, firstLogits };
  } finally {
    await s.dispose();
    await src.close();
  }
}

/** Which nodes onnxruntime puts on the CPU for this model on `device` (verbose log of a child). */
function placement(path: string, device: Device): string[] {
  const script = join(dirname(fileURLToPath(import.meta.url)), "placement.js");
  const r = spawnSync(process.execPath, [script, path, device], {
    env: { ...process.env, TESSERA_ORT_LOG: "verbose", TESSERA_ALLOW_CPU_FALLBACK: "1" },
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 256 * 2 ** 20,
  });
  const lines = `${r.stdout}\n${r.stderr}`.split("\n");
  const at = lines.findIndex((l) => /placed on \[CPUExecutionProvider\]/.test(l));
  const cpu = at < 0 ? ["no node placed on the CPU execution provider"] : lines.slice(at, at + 40);
  return [`exit ${r.status ?? r.signal}`, ...cpu, ...lines.filter((l) => /error|Error|fail/i.test(l)).slice(-10)];
}

const parity: Record<string, unknown>[] = [];
result.parity = parity;
for (const f of FAMILIES) {
  const name = `${f.arch}-${f.format}-${f.quant}`;
  const path = join(values.models!, `tiny-${name}${f.format === "gguf" ? ".gguf" : ""}`);
  if (!existsSync(path)) await synthesize({ ...f, preset: "small", out: path, seed: 7 });
  const cpu = await greedy(path, "cpu", 24);
  for (const d of devices) {
    const row: Record<string, unknown> = { model: name, device: d };
    try {
      const g = await greedy(path, d, 24);
      row.same_greedy_tokens = g.tokens.every((t, i) => t === cpu.tokens[i]);
      row.first_differing_step = g.tokens.findIndex((t, i) => t !== cpu.tokens[i]);
      row.max_abs_logit_diff = r2(Math.max(...Array.from(cpu.firstLogits, (v, i) => Math.abs(v - g.firstLogits[i]!))) * 1e4) / 1e4;
    } catch (e) {
      row.error = errorText(e);
      row.cpu_placed_nodes = placement(path, d);
    }
    console.log(JSON.stringify(row));
    parity.push(row);
    save();
  }
}

// ---- 3. speed on the 1b model ----
const big = join(values.models!, "1b-llama-q4_0.gguf");
if (!existsSync(big)) await synthesize({ arch: "llama", preset: "1b", format: "gguf", quant: "q4_0", vocab: "spm", out: big, seed: 1 });
const ctx = PROMPT_TOKENS + TOKENS + 64;
const prompt = Int32Array.from({ length: PROMPT_TOKENS }, (_, i) => 300 + ((i * 7919) % 30000));
const configs: Config[] = [];
const loadErrors: Record<string, string> = {};
async function tryLoad(name: string, load: () => Promise<Config>): Promise<void> {
  const t0 = performance.now();
  try {
    const c = await load();
    configs.push(c);
    console.log(`loaded ${name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    loadErrors[name] = errorText(e);
    console.log(`${name} did not load: ${loadErrors[name]}`);
  }
}
await tryLoad("ours-cpu", async () => ({ ...(await singleConfig(big, ctx, CORES)), name: "ours-cpu" }));
for (const d of devices) await tryLoad(`ours-${d}`, async () => ({ ...(await singleConfig(big, ctx, 1, d)), name: `ours-${d}` }));
await tryLoad("llama.cpp-cpu", () => llamaConfig({ name: "llama.cpp-cpu", path: big, threads: CORES, contextLength: ctx }, PROMPT));
await tryLoad(`llama.cpp-${values["llama-gpu"]}`, async () => {
  const c = await llamaConfig({ name: `llama.cpp-${values["llama-gpu"]}`, path: big, threads: 4, contextLength: ctx, gpu: values["llama-gpu"] }, PROMPT);
  if (c.gpu === "cpu") throw new Error(`node-llama-cpp fell back to the CPU instead of ${values["llama-gpu"]}`);
  return c;
});
result.load_errors = loadErrors;
save();

const decode: Record<string, number[]> = Object.fromEntries(configs.map((c) => [c.name, []]));
const ttft: Record<string, number[]> = Object.fromEntries(configs.map((c) => [c.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const c of rotate(configs, r)) {
    decode[c.name]!.push(1000 / (await c.block(TOKENS)).msPerToken);
    ttft[c.name]!.push(await c.ttft!(prompt));
  }
  console.log(`round ${r + 1}/${ROUNDS}: ${configs.map((c) => `${c.name} ${decode[c.name]![r]!.toFixed(1)} tok/s, TTFT ${ttft[c.name]![r]!.toFixed(0)} ms`).join("; ")}`);
}
const paired = (a: string, b: string, xs: Record<string, number[]>, inverse = false): number | undefined =>
  xs[a] && xs[b] ? r2(median(xs[a]!.map((x, i) => (inverse ? xs[b]![i]! / x : x / xs[b]![i]!)))) : undefined;
const llamaGpu = `llama.cpp-${values["llama-gpu"]}`;
result.speed = {
  model: "synthetic 1b llama Q4_0 (hidden 2048, 16 layers, 32/8 heads, FFN 8192, vocab 32000)",
  decode_tokens: TOKENS,
  prompt_tokens: PROMPT_TOKENS,
  rounds: ROUNDS,
  decode_tps: Object.fromEntries(Object.entries(decode).map(([k, v]) => [k, r2(median(v))])),
  ttft_ms: Object.fromEntries(Object.entries(ttft).map(([k, v]) => [k, r2(median(v))])),
  ratios: Object.fromEntries(
    devices.map((d) => [
      d,
      {
        decode_vs_llama_gpu: paired(`ours-${d}`, llamaGpu, decode),
        decode_vs_ours_cpu: paired(`ours-${d}`, "ours-cpu", decode),
        prefill_vs_llama_gpu: paired(`ours-${d}`, llamaGpu, ttft, true),
        prefill_vs_ours_cpu: paired(`ours-${d}`, "ours-cpu", ttft, true),
      },
    ]),
  ),
  cpu_decode_vs_llama_cpu: paired("ours-cpu", "llama.cpp-cpu", decode),
  target: "decode ≥ 0.8× llama.cpp on the same GPU",
};
save();
for (const c of configs) await c.close();
console.log(JSON.stringify(result.speed, null, 2));
console.log(`wrote ${out} (${result.run_seconds} s)`);
process.exit(0);
