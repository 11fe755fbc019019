// A line chart as a standalone SVG string: no dependencies, readable in any browser or on GitHub.
// Axes are linear (x may be log2 / log10 when the data spans decades, e.g. latencies).

export interface Series {
  name: string;
  points: [number, number][];
  /** Dashed line (references such as llama.cpp). */
  dashed?: boolean;
  /** A line only (a model's curve sampled densely), no dot per point. */
  noMarkers?: boolean;
  /** Palette index, to draw a model's curve in the colour of the series it models. */
  color?: number;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** "log" spaces x by log10 (0 is drawn at the left edge as "0"). */
  xScale?: "linear" | "log";
  width?: number;
  height?: number;
}

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];
const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/** About five round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 380;
  const m = { l: 64, r: 200, t: 40, b: 52 };
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) throw new Error(`chart '${o.title}' has no points`);
  const log = o.xScale === "log";
  const xv = (x: number): number => (log ? Math.log10(Math.max(x, 1)) : x);
  const xs = pts.map(([x]) => xv(x));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const yMax = Math.max(...pts.map(([, y]) => y)) * 1.08;
  const yTicks = ticks(0, yMax);
  // the top gridline must sit above every point
  if (yTicks.length > 1 && yTicks[yTicks.length - 1]! < yMax) yTicks.push(Number((2 * yTicks[yTicks.length - 1]! - yTicks[yTicks.length - 2]!).toPrecision(12)));
  const y1 = yTicks[yTicks.length - 1]!;
  const px = (x: number): number => m.l + ((xv(x) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const py = (y: number): number => H - m.b - (y / (y1 || 1)) * (H - m.t - m.b);
  const distinct = [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b);
  const decades = Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => 10 ** (Math.ceil(x0) + i));
  const xTicks = log ? decades : distinct.length <= 10 && distinct.every(Number.isInteger) ? distinct : ticks(x0, x1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="14" font-weight="600">${esc(o.title)}</text>`,
  ];
  for (const t of yTicks) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end" fill="#374151">${fmt(t)}</text>`);
  }
  const xText = (t: number): string => (log && t <= 1 ? "loopback" : fmt(t));
  for (const t of xTicks) parts.push(`<text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle" fill="#374151">${xText(t)}</text>`);
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#9ca3af"/>`);
  parts.push(`<text x="${m.l + (W - m.l - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${m.t + (H - m.t - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[(s.color ?? i) % COLORS.length]!;
    const sorted = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = sorted.map(([x, y], j) => `${j ? "L" : "M"}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`);
    if (!s.noMarkers) for (const [x, y] of sorted) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${c}"/>`);
    const ly = m.t + 8 + i * 18;
    parts.push(`<line x1="${W - m.r + 12}" x2="${W - m.r + 32}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`);
    parts.push(`<text x="${W - m.r + 38}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
