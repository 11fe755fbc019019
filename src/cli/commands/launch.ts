import { TesseraError } from "../../errors.js";
import type { InstanceView } from "../../instances/views.js";
import { baseUrl, errorText, getJson, request } from "../api-client.js";
import { intOption, parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";
import { placementText } from "./ps.js";

const OPTIONS = {
  strategy: { type: "string" },
  nodes: { type: "string" },
  "min-nodes": { type: "string" },
  ctx: { type: "string" },
  parallel: { type: "string" },
  keep: { type: "boolean" },
  "no-wait": { type: "boolean" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  url: { type: "string" },
} as const;

/** One progress line: each rank's status (loading ones with their share loaded). */
function progressLine(i: InstanceView): string {
  return i.ranks.map((r) => `${r.role === "driver" ? "driver" : `rank ${r.rank}`}@${r.name} ${r.status === "loading" ? `loading ${Math.round(r.progress * 100)}%` : r.status}`).join(", ");
}

export const command: Command = {
  summary: "Place a model on the cluster and start it (pipeline, tensor parallel or both, as placement decides).",
  usage: `tessera launch MODEL [options]   (MODEL: a name from tessera models, or a path on the node asked)
  --strategy S        single, pipeline, tensor or hybrid (default: the best plan that fits)
  --nodes A,B         only these nodes (names or ids)
  --min-nodes N       use at least N nodes
  --ctx N             context (KV cache) in tokens per sequence (default: the model's, at most 4096)
  --parallel N        requests it decodes together (KV slots of --ctx each on every rank;
                      default: up to 4, as many as fit in 75 % of the nodes' free memory)
  --keep              a deployment: re-placed whenever it is not running, also after every node restarted
  --no-wait           return once placed, without waiting until it is ready
  --timeout S         seconds to wait until ready (default 600)
  --json              print the instance as JSON
  --url URL           the node to ask (default http://127.0.0.1:52480; TESSERA_URL also works)`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, OPTIONS, { envFallback: false });
    if (positionals.length !== 1) throw new TesseraError("tessera launch takes one MODEL (a name from tessera models, or a model file's path)");
    const url = values.url ?? process.env.TESSERA_URL;
    const base = baseUrl(url);
    const body: Record<string, unknown> = { model: positionals[0] };
    if (values.strategy) body.strategy = values.strategy;
    if (values.nodes) body.nodes = values.nodes.split(",").map((s) => s.trim()).filter(Boolean);
    if (values["min-nodes"] !== undefined) body.minNodes = intOption("min-nodes", values["min-nodes"], 1, 1);
    if (values.ctx !== undefined) body.ctx = intOption("ctx", values.ctx, 1, 1);
    if (values.parallel !== undefined) body.parallel = intOption("parallel", values.parallel, 1, 1);
    if (values.keep) body.keep = true;
    const timeoutMs = intOption("timeout", values.timeout, 600, 1) * 1000;
    const r = await request(base, "POST", "/instances", body);
    if (r.status !== 201) {
      const plans = (r.body?.error?.plans ?? []) as { strategy: string; nodeNames: string[]; reason?: string }[];
      const detail = plans.slice(0, 5).map((p) => `\n  ${p.strategy} on ${p.nodeNames.join(", ")}: ${p.reason}`).join("");
      throw new TesseraError(errorText(r) + detail);
    }
    let i = r.body as InstanceView;
    process.stderr.write(`instance ${i.id}: ${i.strategy} over ${placementText(i)}; predicted ${i.predicted.decodeTps.toFixed(1)} tok/s decode\n`);
    if (!values["no-wait"]) {
      const deadline = Date.now() + timeoutMs;
      let last = "";
      while (i.status !== "ready") {
        if (i.status === "failed" && i.retryAt === null) throw new TesseraError(`failed: ${i.reason}`, `instance ${i.id}`);
        if (Date.now() > deadline) throw new TesseraError(`not ready after ${timeoutMs / 1000} s (${progressLine(i)}); it keeps starting: see \`tessera ps\``, `instance ${i.id}`);
        const line = i.status === "starting" ? progressLine(i) : `${i.status}: ${i.reason}`;
        if (line !== last) process.stderr.write(`  ${line}\n`);
        last = line;
        await new Promise((res) => setTimeout(res, 500));
        i = (await getJson(base, `/instances/${i.id}`)) as InstanceView;
      }
      process.stderr.write(`instance ${i.id} ready${i.measured ? `, measured ${i.measured.decodeTps.toFixed(1)} tok/s decode` : ""}\n`);
    }
    console.log(values.json ? JSON.stringify(i, null, 2) : i.id);
    return 0;
  },
};
