import { hostname } from "node:os";
import { TesseraError } from "../errors.js";

/** Parsers for `tessera start` values that are more than an integer. */

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1e3, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3, t: 1024 ** 4, tb: 1e12, tib: 1024 ** 4 };

/** "8G", "512MiB", "1.5gb", "1048576" → bytes (K/M/G/T alone are binary units). */
export function parseByteSize(name: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new TesseraError(`--${name} must be a size like 8G, 512MiB or a number of bytes, got '${text}'`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new TesseraError(`--${name} must be more than 0 bytes, got '${text}'`);
  return bytes;
}

/** "host:port,host:port" (IPv6 as [addr]:port) → addresses. */
export function parsePeers(text: string): { host: string; port: number }[] {
  const out: { host: string; port: number }[] = [];
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(part);
    const port = m ? Number(m[3]) : NaN;
    if (!m || !(port > 0 && port < 65536)) throw new TesseraError(`--peers wants host:port entries separated by commas, got '${part}'`);
    out.push({ host: (m[1] ?? m[2])!, port });
  }
  return out;
}

export const DEVICES = ["auto", "cpu", "webgpu", "cuda"] as const;

export function parseDevice(text: string | undefined): string {
  const d = (text ?? "auto").toLowerCase();
  if (!(DEVICES as readonly string[]).includes(d)) throw new TesseraError(`--device must be one of ${DEVICES.join(", ")}, got '${text}'`);
  return d;
}

export function parseClusterName(text: string | undefined): string {
  const c = text ?? "default";
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(c)) throw new TesseraError(`--cluster must be 1–64 letters, digits, '.', '_' or '-', got '${c}'`);
  return c;
}

export function defaultNodeName(): string {
  return hostname() || "tessera";
}
