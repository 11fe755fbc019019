import { parentPort, workerData } from "node:worker_threads";
import { synthesize, type SynthOptions } from "../models/synth/synthesize.js";

// Worker thread of demo.ts: writes one synthetic model and says how it went.
synthesize(workerData as SynthOptions).then(
  () => parentPort!.postMessage({ ok: true }),
  (e: Error) => parentPort!.postMessage({ ok: false, error: e.message }),
);
