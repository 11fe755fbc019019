import { stat } from "node:fs/promises";
import { join } from "node:path";
import { startModuleWorker } from "../spawn.js";
import type { SynthOptions } from "../models/synth/synthesize.js";

/**
 * The built-in demo model `tessera-demo`: a tiny qwen3 with random weights and the real Qwen3
 * tokenizer and chat template, written once into the data dir's models folder, so a fresh node has
 * something to run, offline. Deterministic (fixed seed): every node writes the same bytes, so every
 * node's copy has the same digest and the cluster lists one model held by all.
 * Written in a worker thread (about 2–7 s of CPU, mostly the 151k-token vocabulary), so the node's
 * event loop keeps answering its peers meanwhile.
 */
export const DEMO_NAME = "tessera-demo";
export const DEMO_FILE = `${DEMO_NAME}.gguf`;
export const DEMO_DESCRIPTION =
  "Tessera's built-in demo: a tiny qwen3 (2 layers, hidden 64) with RANDOM weights and the real Qwen3 tokenizer. " +
  "It proves the machinery (loading, sharding, serving, chat) works, not language: its replies are gibberish. " +
  "Pull a real model with `tessera pull` to chat for real.";

export function demoOptions(out: string): SynthOptions {
  return {
    arch: "qwen3",
    preset: "tiny",
    format: "gguf",
    quant: "q8_0",
    vocab: "qwen3",
    tied: true,
    seed: 20261204,
    out,
    name: DEMO_NAME,
    description: DEMO_DESCRIPTION,
  };
}

/** Writes the demo into `modelsDir` unless it is there; resolves with its path. */
export async function ensureDemoModel(modelsDir: string): Promise<{ path: string; written: boolean }> {
  const path = join(modelsDir, DEMO_FILE);
  if (await stat(path).then((s) => s.isFile(), () => false)) return { path, written: false };
  const worker = startModuleWorker("./demo-worker", import.meta.url, { workerData: demoOptions(path) });
  await new Promise<void>((resolve, reject) => {
    worker.once("message", (m: { ok: boolean; error?: string }) => (m.ok ? resolve() : reject(new Error(m.error))));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`demo writer exited with code ${code}`)));
  });
  await worker.terminate();
  return { path, written: true };
}
