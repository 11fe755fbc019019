import { linkList, nodeViews, type ClusterView } from "../../api/cluster-view.js";
import { TesseraError } from "../../errors.js";
import { bytes, rate, table } from "../format.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";

/** Human-readable cluster summary from GET /cluster. */
export function formatStatus(view: ClusterView): string {
  const { self, state } = view;
  const nodes = nodeViews(state, self.id);
  const name = new Map(nodes.map((n) => [n.id, n.name]));
  const out = [
    `cluster '${self.cluster}' (${self.mode === "open" ? "open LAN mode" : "secret"}), seen from ${self.name} (${self.id}); event index ${state.index}, term ${state.term}`,
    "",
  ];
  const rows = [["NAME", "ID", "ROLE", "MEMORY (avail/total)", "CPU", "DEVICE", "PROVIDERS", "MATMUL", "ADDRESS"]];
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
  return out.join("\n");
}

export const command: Command = {
  summary: "Print the cluster a node sees: nodes (memory, device, master) and links (RTT, bandwidth).",
  usage: "tessera status [--json] [--url http://host:52480]   (TESSERA_URL also works)",
  async run(argv) {
    const { values } = parseCommandArgs(argv, { json: { type: "boolean" }, url: { type: "string" } }, { allowPositionals: false });
    const base = (values.url ?? "http://127.0.0.1:52480").replace(/\/+$/, "");
    let view: ClusterView;
    try {
      const res = await fetch(`${base}/cluster`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      view = (await res.json()) as ClusterView;
    } catch (e) {
      throw new TesseraError(`no tessera node answers (${(e as Error).message}); is \`tessera start\` running there?`, base);
    }
    console.log(values.json ? JSON.stringify(view, null, 2) : formatStatus(view));
    return 0;
  },
};
