import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesize, type SynthQuant } from "../../src/models/synth/synthesize.js";
import type { Architecture, ModelConfig } from "../../src/models/types.js";
import type { PresetName } from "../../src/models/synth/presets.js";
import { openModel } from "../../src/models/open.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import { argmax } from "../../src/engine/sampling/select.js";

/**
 * Synthetic models for the runner tests, written once per test file into a temp dir, and the
 * single-process reference run of each (greedy, from the same prompt), computed once.
 */
export interface ModelSpec {
  arch: Architecture;
  preset: PresetName;
  quant: SynthQuant;
}

export const PROMPT = Int32Array.from([1, 300, 301, 302, 700, 1200, 33, 34]);
export const STEPS = 64;
export const CONTEXT = 96;

export interface Trace {
  /** Logits of every prompt position, [prompt × vocab]. */
  promptLogits: Float32Array;
  /** Greedy tokens and the logits each came from. */
  tokens: number[];
  logits: Float32Array[];
}

export async function configOf(path: string): Promise<ModelConfig> {
  const src = await openModel(path);
  await src.close();
  return src.config;
}

export class ModelFiles {
  private dir = "";
  private readonly paths = new Map<string, Promise<string>>();
  private readonly refs = new Map<string, Promise<Trace>>();

  async open(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "tessera-runner-"));
  }

  async close(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  path(s: ModelSpec): Promise<string> {
    const key = `${s.arch}-${s.preset}-${s.quant}`;
    let p = this.paths.get(key);
    if (!p) {
      const out = join(this.dir, `${key}.gguf`);
      p = synthesize({ ...s, format: "gguf", vocab: "spm", out, seed: 7 }).then(() => out);
      this.paths.set(key, p);
    }
    return p;
  }

  reference(s: ModelSpec): Promise<Trace> {
    const key = `${s.arch}-${s.preset}-${s.quant}`;
    let r = this.refs.get(key);
    if (!r) {
      r = this.path(s).then(async (path) => {
        const src = await openModel(path);
        const stepper = await createStepper(src, { threads: 1, contextLength: CONTEXT });
        try {
          return await trace((t, all) => Promise.resolve(stepper.forward(t, { allLogits: all })), stepper.vocabSize);
        } finally {
          await stepper.dispose();
          await src.close();
        }
      });
      this.refs.set(key, r);
    }
    return r;
  }
}

/** Prompt (all logits) then STEPS greedy tokens, each fed back. */
export async function trace(forward: (tokens: Int32Array, allLogits: boolean) => Promise<Float32Array>, vocab: number): Promise<Trace> {
  const promptLogits = (await forward(PROMPT, true)).slice();
  let last: Float32Array = promptLogits.subarray((PROMPT.length - 1) * vocab);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t = argmax(last, vocab);
    tokens.push(t);
    logits.push(last.slice());
    last = await forward(Int32Array.of(t), false);
  }
  return { promptLogits, tokens, logits };
}

