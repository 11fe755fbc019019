import { availableParallelism } from "node:os";
import { FlagError, flag } from "../flags.js";
import type { Sharding } from "../../runner/cli.js";
import type { Device } from "../../engine/types.js";

/** Flags shared by `tessera run` and `tessera bench`: where and how the model runs. */
export const ENGINE_FLAGS = {
  threads: flag.int({ min: 1, max: 4 * availableParallelism(), help: "compute threads (per runner process when sharded)", defaultText: "physical cores, shared out among runners" }),
  ctx: flag.int({ min: 1, help: "context length in tokens: the KV cache is allocated for this many", defaultText: "the model's, at most 4096" }),
  device: flag.choice(["auto", "cpu", "webgpu", "cuda"], { default: "cpu", help: "execution provider (auto: the best one whose probe passes)" }),
  stages: flag.int({ min: 1, default: 1, help: "pipeline stages: split the layers over this many local runner processes" }),
  tp: flag.int({ min: 1, default: 1, help: "tensor-parallel ranks per pipeline stage (local runner processes)" }),
  "compress-activations": flag.bool({ help: "8-bit partial sums between tensor-parallel ranks (needs --tp 2 or more)" }),
};

/** The sharding asked for by these flags, checked. */
export function shardingFlags(values: { "compress-activations"?: boolean }, pp: number, tp: number): Sharding {
  const compressActivations = values["compress-activations"] === true;
  if (compressActivations && tp < 2) {
    throw new FlagError("--compress-activations needs --tp 2 or more: it compresses the partial sums that tensor-parallel ranks exchange");
  }
  return { pp, tp, compressActivations };
}

/** `--device` → the device to run on: `auto` probes the GPU providers (engine/onnx/devices.ts) and says on stderr what it took. */
export async function deviceFlag(asked: string): Promise<Device> {
  const { resolveDevice } = await import("../../engine/onnx/devices.js");
  if (asked !== "auto") return asked as Device;
  const r = resolveDevice("auto");
  console.error(`device: ${r.device} (${r.why})`);
  return r.device;
}
