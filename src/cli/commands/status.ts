import { linkList, nodeViews, type ClusterView, type NodeView } from "../../api/cluster-view.js";
import { DEFAULT_HTTP_PORT } from "../../cluster/options.js";
import { TesseraError } from "../../errors.js";
import { bytes, rate, table } from "../format.js";
import { FlagError, flag, parseFlags, usageText } from "../flags.js";
import type { InstanceView } from "../../instances/views.js";
import { formatInstances } from "./ps.js";
import type { Command } from "../main.js";

/**
 * Names to show for nodes: their own, and where two share one (two nodes on one host both default to
 * the hostname), the name plus the first 4 characters of the id.
 */
export function displayNames(nodes: Pick<NodeView, "id" | "name">[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const n of nodes) count.set(n.name, (count.get(n.name) ?? 0) + 1);
  return new Map(nodes.map((n) => [n.id, count.get(n.name)! > 1 ? `${n.name}~${n.id.slice(0, 4)}` : n.name]));
}

/** Human-readable cluster summary from GET /cluster (and GET /instances, when given). */
export function formatStatus(view: ClusterView, instances?: InstanceView[]): string {
  const { self, state } = view;
  const nodes = nodeViews(state, self.id);
  const name = displayNames(nodes);
  const out = [
    `cluster '${self.cluster}' (${self.mode === "open" ? "open LAN mode" : "secret"}), seen from ${self.name} (${self.id}); event index ${state.index}, term ${state.term}`,
    "",
  ];
  const rows = [["NAME", "ID", "ROLE", "MEMORY (avail/total)", "CPU", "DEVICE", "PROVIDERS", "MATMUL", "DECODE", "ADDRESS"]];
  for (const n of nodes) {
    const p = n.profile;
    rows.push([
      name.get(n.id)! + (n.self ? " *" : ""),
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
  const statics = self.staticPeers ?? [];
  if (statics.length) {
    const srows = [["--PEERS", "STATE", "SINCE", "DETAIL"]];
    for (const p of statics) {
      const detail = [p.dialing !== p.address ? `via ${p.dialing}` : "", p.nodeId && p.state === "connected" ? `node ${p.nodeId}` : "", p.reason ?? ""].filter(Boolean).join("; ");
      srows.push([p.address, p.state, new Date(p.since).toLocaleTimeString(), detail]);
    }
    out.push("", table(srows));
  }
  if (self.alone) {
    out.push("", statics.length ? "this node is alone: none of its --peers is reachable and discovery is off" : "this node is alone: discovery is off and no --peers were given");
  }
  if (instances) out.push("", instances.length ? formatInstances(instances) : "no instances");
  return out.join("\n");
}

/**
 * --url as people type it: http://host:port, host:port, host, or a port alone (this machine).
 * Returns the base URL without a trailing slash.
 */
export function nodeUrl(text: string, where = "--url"): string {
  let t = text.trim();
  if (/^\d+$/.test(t)) t = `127.0.0.1:${t}`;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) t = `http://${t}`;
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    throw new FlagError(`${where} must be host:port or http://host:port, got '${text}'`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new FlagError(`${where} must be an http:// or https:// address, got '${text}'`);
  if (!u.port && u.protocol === "http:" && !/:\d+/.test(t.replace(/^[a-z]+:\/\//i, ""))) u.port = String(DEFAULT_HTTP_PORT);
  return u.href.replace(/\/+$/, "");
}

const FLAGS = {
  url: flag.string({
    metavar: "HOST:PORT",
    default: `127.0.0.1:${DEFAULT_HTTP_PORT}`,
    help: "the node to ask: host:port, http://host:port, host (port 52480) or a port on this machine",
    convert: nodeUrl,
  }),
  json: flag.bool({ help: "print the node's whole view (GET /cluster) as JSON" }),
};

export const command: Command = {
  summary:
    "Prints the cluster a node sees: nodes (memory, device, master), links (RTT, bandwidth), and what became of each " +
    "of its --peers. Options also read TESSERA_<NAME> (TESSERA_URL).",
  usage: usageText("tessera status [options]", FLAGS),
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, { env: process.env, positionals: { max: 0, usage: "tessera status [--url HOST:PORT] [--json]" } });
    // The default is not parsed by the flag table; given values arrive normalized.
    const base = nodeUrl(values.url);
    let view: ClusterView;
    try {
      const res = await fetch(`${base}/cluster`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      view = (await res.json()) as ClusterView;
    } catch (e) {
      // fetch says "fetch failed"; the reason is in its cause.
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code === "ECONNREFUSED" ? "connection refused" : (cause?.code ?? cause?.message ?? (e as Error).message);
      throw new TesseraError(`no tessera node answers (${why}); is \`tessera start\` running there?`, base);
    }

    // a node of an older version has no /instances: show the cluster without them
    const instances = await fetch(`${base}/instances`, { signal: AbortSignal.timeout(5000) })
      .then((r) => (r.ok ? (r.json() as Promise<InstanceView[]>) : undefined))
      .catch(() => undefined);
    console.log(values.json ? JSON.stringify({ ...view, instances }, null, 2) : formatStatus(view, instances));
    return 0;
  },
};
