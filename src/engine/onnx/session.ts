import { createRequire } from "node:module";
// Before onnxruntime loads: no telemetry (see ort-telemetry.ts).
import "../../ort-telemetry.js";
import * as ort from "onnxruntime-node";
import { TesseraError } from "../../errors.js";
import type { Device } from "../types.js";
import type { ExternalBlob } from "./builder.js";

/**
 * An onnxruntime session with a synchronous run. The public `InferenceSession.run` wraps the
 * native (blocking) call in setImmediate + Promise; the engine calls the native binding directly
 * so a step is one plain function call (it blocks either way: run it off the main event loop).
 */

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: ort.InferenceSession.SessionOptions): void;
  loadModel(path: string, options: ort.InferenceSession.SessionOptions): void;
  readonly inputMetadata: { name: string }[];
  readonly outputMetadata: { name: string }[];
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>, options: object): Record<string, ort.Tensor>;
  endProfiling(): void;
  dispose(): void;
}
interface NativeBinding {
  binding: {
    InferenceSession: new () => NativeSession;
    listSupportedBackends: () => { name: string; bundled: boolean }[];
  };
  initOrt: () => void;
}

const require = createRequire(import.meta.url);
let native: NativeBinding | undefined;
function loadBinding(): NativeBinding {
  if (!native) {
    // The package has no "exports" map; dist/binding.js is its native wrapper.
    native = require("onnxruntime-node/dist/binding.js") as NativeBinding;
    native.initOrt();
  }
  return native;
}

export interface SessionSettings {
  threads?: number;
  device?: Device;
  /** Spinning intra-op threads are fastest for one session per process; turn off when many share it. */
  spinning?: boolean;
  /** Write an onnxruntime profile (JSON trace) with this file prefix; see endProfiling(). */
  profilePrefix?: string;
  /** Extra onnxruntime session config entries ("session.disable_prepacking": "1", ...); diagnostics. */
  sessionConfig?: Record<string, string>;
  /** onnxruntime's CPU memory arena (default on). */
  cpuMemArena?: boolean;
}

/** Execution providers this onnxruntime build can use (CUDA only when its libraries were installed). */
export function availableDevices(): Device[] {
  const names = loadBinding().binding.listSupportedBackends().map((b) => b.name);
  const out: Device[] = ["cpu"];
  if (names.includes("webgpu")) out.push("webgpu");
  if (names.includes("cuda")) out.push("cuda");
  return out;
}

export class SyncSession {
  readonly inputNames: string[];
  readonly outputNames: string[];
  private disposed = false;

  private constructor(private readonly native: NativeSession) {
    this.inputNames = native.inputMetadata.map((m) => m.name);
    this.outputNames = native.outputMetadata.map((m) => m.name);
  }

  static create(model: Uint8Array, blobs: ExternalBlob[], settings: SessionSettings = {}): SyncSession {
    const options = sessionOptions(settings);
    options.externalData = blobs.map((b) => ({ path: b.path, data: b.data }));
    return SyncSession.load(settings, options, (s) => s.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options));
  }

  /** A session from a model file on disk; its external data files are resolved beside it. */
  static createFromFile(path: string, settings: SessionSettings = {}): SyncSession {
    const options = sessionOptions(settings);
    return SyncSession.load(settings, options, (s) => s.loadModel(path, options));
  }

  private static load(settings: SessionSettings, options: ort.InferenceSession.SessionOptions, load: (s: NativeSession) => void): SyncSession {
    const device = settings.device ?? "cpu";
    const s = new (loadBinding().binding.InferenceSession)();
    try {
      load(s);
    } catch (e) {
      const msg = (e as Error).message;
      if (device !== "cpu") {
        throw new TesseraError(`could not start execution provider "${device}": ${msg}`, "--device", { cause: e });
      }
      throw e;
    }
    return new SyncSession(s);
  }

  /** Stops profiling and writes the trace file (sessions created with profilePrefix). */
  endProfiling(): void {
    this.native.endProfiling();
  }

  /** Runs the graph; outputs given in `outputs` are written in place (pre-allocated), null ones are returned. */
  run(feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor | null>): Record<string, ort.Tensor> {
    if (this.disposed) throw new Error("session was disposed");
    return this.native.run(feeds, outputs, {});
  }

  dispose(): void {
    if (!this.disposed) {
      this.disposed = true;
      this.native.dispose();
    }
  }
}

function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  const device = settings.device ?? "cpu";
  if (!availableDevices().includes(device)) {
    throw new TesseraError(
      `execution provider "${device}" is not available in this onnxruntime build (available: ${availableDevices().join(", ")})`,
      "--device",
    );
  }
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: "all",
    extra: nestConfig({
      "session.intra_op.allow_spinning": settings.spinning === false ? "0" : "1",
      ...settings.sessionConfig,
    }),
    logSeverityLevel: 3,
  };
  if (settings.cpuMemArena === false) options.enableCpuMemArena = false;
  if (settings.profilePrefix) {
    options.enableProfiling = true;
    options.profileFilePrefix = settings.profilePrefix;
  }
  if (settings.threads) {
    options.intraOpNumThreads = settings.threads;
    options.interOpNumThreads = 1;
  }
  return options;
}

/** "session.a.b": "v" → { session: { a: { b: "v" } } }, the shape ORT's `extra` option takes. */
function nestConfig(flat: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

export { ort };
