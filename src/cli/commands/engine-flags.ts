import { existsSync } from "node:fs";
import { TesseraError } from "../../errors.js";
import { intOption } from "../args.js";
import type { Device } from "../../engine/types.js";
import { resolveDevice } from "../../engine/onnx/devices.js";

// Flags shared by `tessera run` and `tessera bench`: where the model runs.

export const ENGINE_FLAGS = {
  threads: { type: "string" },
  ctx: { type: "string" },
  device: { type: "string" },
  tp: { type: "string" },
} as const;

const DEVICES = ["auto", "cpu", "webgpu", "cuda"] as const;

export interface EngineFlags {
  threads?: number;
  contextLength?: number;
  device: Device;
  /** Tensor-parallel ranks (local runner processes) per pipeline stage. */
  tp: number;
}

/** Flags → options; `--device auto` is resolved here (a probe per GPU provider) and the choice said on stderr. */
export function engineFlags(values: Record<string, unknown>): EngineFlags {
  const asked = (values.device ?? "cpu") as (typeof DEVICES)[number];
  if (!DEVICES.includes(asked)) throw new TesseraError(`--device must be one of ${DEVICES.join(", ")}, got '${String(values.device)}'`);
  let device: Device = asked === "auto" ? "cpu" : asked;
  if (asked === "auto") {
    const r = resolveDevice("auto");
    device = r.device;
    console.error(`device: ${device} (${r.why})`);
  }
  return {
    threads: values.threads === undefined ? undefined : intOption("threads", values.threads, 1, 1),
    contextLength: values.ctx === undefined ? undefined : intOption("ctx", values.ctx, 1, 1),
    device,
    tp: intOption("tp", values.tp, 1, 1),
  };
}

export function modelArgument(positionals: string[], usage: string): string {
  const model = positionals[0];
  if (!model) throw new TesseraError(`missing MODEL\nusage: ${usage}`);
  if (!existsSync(model)) throw new TesseraError("no such file or folder", model);
  return model;
}
