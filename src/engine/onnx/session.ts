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
    // onnxruntime's own log: failures reach us as exceptions, so by default only fatal lines (a probe of
    // a provider whose files are absent would otherwise print an error on every start).
    ort.env.logLevel = (process.env.TESSERA_ORT_LOG as typeof ort.env.logLevel | undefined) ?? "fatal";
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
  /** Log only fatal errors (probes that are expected to fail on machines without the device). */
  quiet?: boolean;
  /** onnxruntime's CPU memory arena (default on). */
  cpuMemArena?: boolean;
}

/**
 * Execution providers compiled into this onnxruntime build. Listed is not working: the Linux binaries
 * name webgpu and cuda with no GPU adapter or CUDA files present (devices.ts probes what really runs).
 */
export function compiledProviders(): Device[] {
  const names = loadBinding().binding.listSupportedBackends().map((b) => b.name);
  return (["cpu", "webgpu", "cuda"] as const).filter((d) => names.includes(d));
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
  if (!compiledProviders().includes(device)) {
    throw new TesseraError(
      `execution provider "${device}" is not in this onnxruntime build (it has: ${compiledProviders().join(", ")})`,
      "--device",
    );
  }
  // A GPU session must not quietly run some ops on the CPU (a "GPU" run that is slow): creation fails
  // instead. TESSERA_ALLOW_CPU_FALLBACK=1 allows it, for measuring what a provider lacks.
  const fallback: Record<string, string> = device === "cpu" || process.env.TESSERA_ALLOW_CPU_FALLBACK === "1" ? {} : { "session.disable_cpu_ep_fallback": "1" };
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: "all",
    extra: nestConfig({
      "session.intra_op.allow_spinning": settings.spinning === false ? "0" : "1",
      ...fallback,
      ...settings.sessionConfig,
    }),
    logSeverityLevel: settings.quiet ? 4 : 3,
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
