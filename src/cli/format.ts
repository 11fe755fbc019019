/** Plain-text formatting shared by the commands that print tables. */

/** Bytes in binary units, as placement's reasons write them. */
export { formatBytes as bytes } from "../placement/index.js";

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
