import { linkList, nodeViews, type ClusterView } from "../../api/cluster-view.js";
import type { InstanceView } from "../../instances/views.js";
import { baseUrl, getJson } from "../api-client.js";
import { parseCommandArgs } from "../args.js";
import { bytes, table } from "../format.js";
import { formatInstances } from "./ps.js";
import type { Command } from "../main.js";

function rate(bps: number): string {
  return bps >= 1e9 / 8 ? `${((bps * 8) / 1e9).toFixed(2)} Gbit/s` : `${((bps * 8) / 1e6).toFixed(1)} Mbit/s`;
}

/** Human-readable cluster summary from GET /cluster (and GET /instances, when given). */
export function formatStatus(view: ClusterView, instances?: InstanceView[]): string {
  const { self, state } = view;
  const nodes = nodeViews(state, self.id);
  const name = new Map(nodes.map((n) => [n.id, n.name]));
  const out = [
    `cluster '${self.cluster}' (${self.mode === "open" ? "open LAN mode" : "secret"}), seen from ${self.name} (${self.id}); event index ${state.index}, term ${state.term}`,
    "",
  ];
  const rows = [["NAME", "ID", "ROLE", "MEMORY (avail/total)", "CPU", "DEVICE", "PROVIDERS", "MATMUL", "DECODE", "ADDRESS"]];
  for (const n of nodes) {
    const p = n.profile;
    rows.push([
      n.name + (n.self ? " *" : ""),
      n.id,
      n.master ? "master" : p && !p.worker ? "coordinator" : "worker",
      p ? `${bytes(p.memory.availableBytes)} / ${bytes(p.memory.totalBytes)}` : "-",
      p ? `${p.cpu.cores}× ${p.cpu.model}` : "-",
      p?.device ?? "-",
      p?.providers.join(",") ?? "-",
      p?.matmulGflops != null ? `${p.matmulGflops} GFLOP/s` : "-",
      p?.decodeBytesPerSec != null ? `${(p.decodeBytesPerSec / 1e9).toFixed(1)} GB/s` : "-",
      `${n.host}:${n.httpPort}`,
    ]);
  }
  out.push(table(rows));
  const links = linkList(state);
  if (links.length) {
    const lrows = [["FROM", "TO", "RTT", "BANDWIDTH"]];
    for (const l of links) lrows.push([name.get(l.from) ?? l.from, name.get(l.to) ?? l.to, `${l.rttMs.toFixed(2)} ms`, rate(l.bandwidthBytesPerSec)]);
    out.push("", table(lrows));
  } else {
    out.push("", "no link measurements yet");
  }
  if (instances) out.push("", instances.length ? formatInstances(instances) : "no instances");
  return out.join("\n");
}

export const command: Command = {
  summary: "Print the cluster a node sees: nodes (memory, device, master), links (RTT, bandwidth) and instances.",
  usage: "tessera status [--json] [--url http://host:52480]   (TESSERA_URL also works)",
  async run(argv) {
    const { values } = parseCommandArgs(argv, { json: { type: "boolean" }, url: { type: "string" } }, { allowPositionals: false });
    const base = baseUrl(values.url);
    const view = (await getJson(base, "/cluster")) as ClusterView;
    // a node of an older version has no /instances: show the cluster without them
    const instances = (await getJson(base, "/instances").catch(() => undefined)) as InstanceView[] | undefined;
    console.log(values.json ? JSON.stringify({ ...view, instances }, null, 2) : formatStatus(view, instances));
    return 0;
  },
};
