import type { ClusterState } from "../cluster/state.js";

/**
 * Prometheus text exposition format (version 0.0.4), as pure functions: a metric family is a name,
 * help, type and samples; formatMetrics writes HELP/TYPE lines and escaped label values.
 */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
  /** Appended to the family name: a histogram's `_bucket`, `_sum` and `_count` series. */
  suffix?: "_bucket" | "_sum" | "_count";
}

export interface MetricFamily {
  name: string;
  help: string;
  type: "gauge" | "counter" | "histogram";
  samples: Sample[];
}

/**
 * Cumulative histogram with fixed upper bounds, as Prometheus wants it: counts per bucket (each
 * counts every observation ≤ its bound), +Inf, sum and count.
 */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) this.counts[i]!++;
  }

  samples(labels: Record<string, string> = {}): Sample[] {
    return [
      ...this.bounds.map((b, i) => ({ suffix: "_bucket" as const, labels: { ...labels, le: formatValue(b) }, value: this.counts[i]! })),
      { suffix: "_bucket", labels: { ...labels, le: "+Inf" }, value: this.count },
      { suffix: "_sum", labels, value: this.sum },
      { suffix: "_count", labels, value: this.count },
    ];
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

export function formatMetrics(families: MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const l = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
      lines.push(`${f.name}${s.suffix ?? ""}${l} ${formatValue(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The cluster's metrics as one node sees them. */
export function clusterMetrics(state: ClusterState, self: { id: string; peers: number }): MetricFamily[] {
  const nodes = Object.values(state.nodes);
  const nodeLabels = (id: string, name: string) => ({ node: id, name });
  const withProfile = nodes.filter((n) => n.profile);
  const links = Object.values(state.links);
  return [
    { name: "tessera_cluster_nodes", help: "Nodes in the cluster state.", type: "gauge", samples: [{ value: nodes.length }] },
    { name: "tessera_event_index", help: "Index of the last applied cluster event.", type: "gauge", samples: [{ value: state.index }] },
    { name: "tessera_master_term", help: "Term of the current master.", type: "gauge", samples: [{ value: state.term }] },
    {
      name: "tessera_node_is_master",
      help: "1 for the master node, 0 for the others.",
      type: "gauge",
      samples: nodes.map((n) => ({ labels: nodeLabels(n.id, n.name), value: n.id === state.master ? 1 : 0 })),
    },
    { name: "tessera_peer_links", help: "Authenticated peer links of this node.", type: "gauge", samples: [{ labels: { node: self.id }, value: self.peers }] },
    {
      name: "tessera_node_memory_total_bytes",
      help: "Memory a node reports (after --memory-limit).",
      type: "gauge",
      samples: withProfile.map((n) => ({ labels: nodeLabels(n.id, n.name), value: n.profile!.memory.totalBytes })),
    },
    {
      name: "tessera_node_memory_available_bytes",
      help: "Memory a node reports as available.",
      type: "gauge",
      samples: withProfile.map((n) => ({ labels: nodeLabels(n.id, n.name), value: n.profile!.memory.availableBytes })),
    },
    {
      name: "tessera_node_matmul_gflops",
      help: "Measured float32 MatMul throughput of a node.",
      type: "gauge",
      samples: withProfile.filter((n) => n.profile!.matmulGflops !== null).map((n) => ({ labels: nodeLabels(n.id, n.name), value: n.profile!.matmulGflops! })),
    },
    {
      name: "tessera_node_decode_bytes_per_second",
      help: "Measured 4-bit GEMV throughput of a node (packed weight bytes per second): its decode speed.",
      type: "gauge",
      samples: withProfile.filter((n) => n.profile!.decodeBytesPerSec != null).map((n) => ({ labels: nodeLabels(n.id, n.name), value: n.profile!.decodeBytesPerSec! })),
    },
    {
      name: "tessera_link_rtt_seconds",
      help: "Median round trip of small frames on a directed link.",
      type: "gauge",
      samples: links.map((l) => ({ labels: { from: l.from, to: l.to }, value: l.rttMs / 1000 })),
    },
    {
      name: "tessera_link_bandwidth_bytes_per_second",
      help: "Measured bulk transfer rate on a directed link.",
      type: "gauge",
      samples: links.map((l) => ({ labels: { from: l.from, to: l.to }, value: l.bandwidthBytesPerSec })),
    },
  ];
}
