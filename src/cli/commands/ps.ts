import type { InstanceView } from "../../instances/views.js";
import { baseUrl, getJson } from "../api-client.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";
import { bytes, table } from "../format.js";

/** Where an instance runs, stage by stage: "n1 [0, 2) → n2+n3 [2, 4)". */
export function placementText(i: InstanceView): string {
  const name = new Map(i.ranks.map((r) => [r.node, r.name]));
  return i.plan.stages.map((s) => `${s.nodes.map((n) => name.get(n) ?? n).join("+")} [${s.layers[0]}, ${s.layers[1]})`).join(" → ");
}

function statusText(i: InstanceView): string {
  if (i.status !== "starting") return i.status;
  const loading = i.ranks.filter((r) => r.status !== "ready");
  const progress = loading.reduce((a, r) => a + r.progress, 0) / Math.max(1, loading.length);
  return `starting ${Math.round(progress * 100)}%`;
}

/** The instance table of `tessera ps` (and `tessera status`), with the reason under each that failed or waits. */
export function formatInstances(list: InstanceView[]): string {
  const rows = [["ID", "MODEL", "STRATEGY", "STATUS", "PLACEMENT", "MEMORY", "CTX × SEQS", "PREDICTED", "MEASURED", "KEEP"]];
  const notes: string[] = [];
  for (const i of list) {
    const mem = Object.values(i.plan.memoryBytes).reduce((a, b) => a + b, 0);
    rows.push([
      i.id,
      i.model.length > 40 ? `…${i.model.slice(-39)}` : i.model,
      i.strategy,
      statusText(i),
      placementText(i),
      bytes(mem),
      `${i.ctx} × ${i.parallel}`,
      `${i.predicted.decodeTps.toFixed(1)} tok/s`,
      i.measured ? `${i.measured.decodeTps.toFixed(1)} tok/s` : "-",
      i.keep ? "yes" : "",
    ]);
    if (i.reason) notes.push(`${i.id}: ${i.reason}${i.retryAt ? ` (next try ${new Date(i.retryAt).toLocaleTimeString()})` : ""}`);
  }
  return [table(rows), ...(notes.length ? ["", ...notes] : [])].join("\n");
}

export const command: Command = {
  summary: "List the cluster's instances: model, plan, status, predicted and measured decode speed.",
  usage: "tessera ps [--json] [--url http://host:52480]   (TESSERA_URL also works)",
  async run(argv) {
    const { values } = parseCommandArgs(argv, { json: { type: "boolean" }, url: { type: "string" } }, { allowPositionals: false });
    const list = (await getJson(baseUrl(values.url), "/instances")) as InstanceView[];
    console.log(values.json ? JSON.stringify(list, null, 2) : list.length ? formatInstances(list) : "no instances");
    return 0;
  },
};
