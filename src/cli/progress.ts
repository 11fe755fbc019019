import type { LoadProgress } from "../engine/types.js";

/**
 * Progress of long work (loading a model, writing one): on a terminal, one bar redrawn in place;
 * otherwise (a log file, a pipe, a node's log) a plain line every 10 %, and only for work of at
 * least `minBytes`, so small models stay quiet.
 *
 *   const p = progress("loading tiny.gguf");
 *   engine = await EngineWorker.start(path, { onProgress: (x) => p.update(x) });
 *   p.done();
 *
 * A node writes through its log: progress("loading model", { write: (s) => log(s.trimEnd()) }).
 */
export interface ProgressOutput {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** Plain-line mode stays silent below this many bytes (default 64 MiB, as `tessera synth`). */
  minBytes?: number;
  now?: () => number;
}

export interface Progress {
  update(p: LoadProgress | { done: number; total: number; phase?: LoadProgress["phase"]; note?: string }): void;
  /** Clears the bar (terminal) or says how long it took (lines, if any were written). */
  done(): void;
}

const MIB = 2 ** 20;
const REDRAW_MS = 100;

function mib(n: number): string {
  return (n / MIB).toFixed(n < 10 * MIB ? 1 : 0);
}

/** One bar line: "loading x [#####.....]  52%  312 / 600 MiB". */
export function renderBar(label: string, done: number, total: number, width: number, note = ""): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const cells = Math.max(10, Math.min(40, width - label.length - 40));
  const full = Math.round(frac * cells);
  const bar = "#".repeat(full) + ".".repeat(cells - full);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `${label} [${bar}] ${pct}  ${mib(done)} / ${mib(total)} MiB${note ? `  ${note}` : ""}`;
}

export function progress(label: string, out: ProgressOutput = process.stderr, opts: ProgressOptions = {}): Progress {
  const now = opts.now ?? (() => performance.now());
  const minBytes = opts.minBytes ?? 64 * MIB;
  const started = now();
  const tty = out.isTTY === true;
  let drawnAt = -Infinity;
  let drawn = false;
  let lastStep = -1;
  let lastPhase: string | undefined;
  let finished = false;

  return {
    update(p) {
      if (finished) return;
      const phase = p.phase ?? "weights";
      const note = "note" in p && p.note ? p.note : phase === "session" ? "building the onnxruntime session" : "";
      if (tty) {
        const t = now();
        if (t - drawnAt < REDRAW_MS && phase === lastPhase && p.done < p.total) return;
        drawnAt = t;
        lastPhase = phase;
        drawn = true;
        out.write(`\r\x1b[K${renderBar(label, p.done, p.total, out.columns ?? 80, note)}`);
        return;
      }
      if (p.total < minBytes) return;
      const step = Math.floor((10 * Math.min(p.done, p.total)) / p.total);
      if (step === lastStep && phase === lastPhase) return;
      lastStep = step;
      lastPhase = phase;
      drawn = true;
      out.write(`${label}: ${step * 10}% (${mib(p.done)} / ${mib(p.total)} MiB)${note ? ` ${note}` : ""}\n`);
    },
    done() {
      if (finished) return;
      finished = true;
      if (!drawn) return;
      if (tty) out.write("\r\x1b[K");
      else out.write(`${label}: done in ${((now() - started) / 1000).toFixed(1)} s\n`);
    },
  };
}
