import { bytes } from "./format.js";

/**
 * A download's progress on stderr: one line redrawn in place on a terminal
 * ("qwen3:8b  [#########...........]  45.2%  2.1 GiB / 4.7 GiB  52.3 MiB/s  ETA 48 s  from hub"),
 * a new line every 10 % otherwise (logs, pipes).
 */
export interface BarState {
  bytesDone: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaSec: number | null;
  from?: string;
}

const WIDTH = 24;

export function formatBar(label: string, s: BarState): string {
  const frac = s.bytesTotal > 0 ? Math.min(1, s.bytesDone / s.bytesTotal) : 0;
  const filled = Math.round(frac * WIDTH);
  const eta = s.etaSec === null ? "ETA -" : `ETA ${formatSeconds(s.etaSec)}`;
  const total = s.bytesTotal > 0 ? ` / ${bytes(s.bytesTotal)}` : "";
  return `${label}  [${"#".repeat(filled)}${".".repeat(WIDTH - filled)}]  ${(frac * 100).toFixed(1)}%  ${bytes(s.bytesDone)}${total}  ${bytes(s.bytesPerSec)}/s  ${eta}${s.from ? `  from ${s.from}` : ""}`;
}

export function formatSeconds(sec: number): string {
  if (sec < 60) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(sec / 3600)} h ${Math.round((sec % 3600) / 60)} min`;
}

export class ProgressBar {
  private lastTenth = -1;
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  update(s: BarState): void {
    const line = formatBar(this.label, s);
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line.slice(0, (this.out.columns || 200) - 1)}`);
      this.drawn = true;
      return;
    }
    const tenth = s.bytesTotal > 0 ? Math.floor((10 * s.bytesDone) / s.bytesTotal) : 0;
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.out.write(line + "\n");
    }
  }

  /** Ends the bar's line (before other output). */
  done(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
