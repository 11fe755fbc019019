/** Human-readable numbers and tables for command output. */

export { formatBytes as bytes } from "../units.js";

export function rate(bps: number): string {
  return bps >= 1e9 / 8 ? `${((bps * 8) / 1e9).toFixed(2)} Gbit/s` : `${((bps * 8) / 1e6).toFixed(1)} Mbit/s`;
}

/** 1234567 → "1.23M", 8e9 → "8.00B" (parameter counts). */
export function count(n: number): string {
  const steps = ["", "K", "M", "B", "T"];
  let i = 0;
  while (n >= 1000 && i < steps.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? String(n) : `${n.toFixed(2)}${steps[i]}`;
}

/** Rows of cells, the first row a header, columns padded to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
