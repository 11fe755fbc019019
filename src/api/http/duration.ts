/** Longer than a timer can wait (2^31 - 1 ms, about 24.8 days) counts as forever. */
const MAX_TIMER_MS = 0x7fffffff;

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A keep-alive as Ollama takes it: a number of seconds, or a Go duration string ("5m", "1h30m",
 * "300ms", "0", "-1", "-1m"). Any negative value, or one longer than a timer can wait, means
 * forever (-1). Returns milliseconds, or undefined for anything else.
 */
export function parseKeepAlive(v: unknown): number | undefined {
  const ms = parse(v);
  return ms !== undefined && ms > MAX_TIMER_MS ? -1 : ms;
}

function parse(v: unknown): number | undefined {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return undefined;
    return v < 0 ? -1 : Math.round(v * 1000);
  }
  if (typeof v !== "string") return undefined;
  const s = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s) < 0 ? -1 : Math.round(Number(s) * 1000);
  const m = /^(-)?((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  if (m[1]) return -1;
  let ms = 0;
  for (const [, n, unit] of m[2]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNITS[unit!]!;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}
