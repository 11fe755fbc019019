import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";

/**
 * This machine's memory: total, and available to a new allocation (Linux MemAvailable: free plus
 * reclaimable caches; elsewhere free memory). `limit` caps both (a node's --memory-limit).
 */
export function memoryInfo(limit?: number): { totalBytes: number; availableBytes: number } {
  let total = totalmem();
  let available = freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) available = Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  if (limit !== undefined) {
    total = Math.min(total, limit);
    available = Math.min(available, limit);
  }
  return { totalBytes: total, availableBytes: available };
}
