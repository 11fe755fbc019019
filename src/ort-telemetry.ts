import { isMainThread } from "node:worker_threads";

/**
 * onnxruntime-node 1.30 on Linux runs Microsoft's telemetry: every process that creates a session
 * writes /tmp/mat-debug-<pid>.log (in TMPDIR) and keeps a device id and an event database under
 * ~/.cache/Microsoft/DeveloperTools/, and tries HTTPS uploads. A local-first tool must not do that
 * unasked. ORT_DISABLE_TELEMETRY=1 in the process environment before the first session stops it
 * (measured: set after the module loads but before a session is created also works).
 *
 * A worker thread's process.env is a copy that native code never sees, so this must run on a
 * process's main thread: importing this module does (first import of the ORT wrappers and of the
 * CLI), and startModuleWorker calls it before starting any worker; child processes inherit it.
 * An explicit ORT_DISABLE_TELEMETRY=0 from the user is left alone.
 */
export function disableOrtTelemetry(): void {
  if (isMainThread && process.env.ORT_DISABLE_TELEMETRY === undefined) process.env.ORT_DISABLE_TELEMETRY = "1";
}

disableOrtTelemetry();
