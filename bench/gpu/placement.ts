// Child of gpu.ts: builds MODEL's engine on DEVICE so that onnxruntime's verbose log (TESSERA_ORT_LOG=verbose,
// TESSERA_ALLOW_CPU_FALLBACK=1, set by the parent) tells which nodes it would run on the CPU.
import { openModel } from "../../src/models/open.js";
import { createStepper } from "../../src/engine/session/stepper.js";
import type { Device } from "../../src/engine/types.js";

const [path, device] = process.argv.slice(2);
const src = await openModel(path!);
const s = await createStepper(src, { device: device as Device, threads: 1, contextLength: 64 });
s.forward(Int32Array.from([300, 301, 302]));
await s.dispose();
await src.close();
