import type { LocalModelView } from "../../api/model-routes.js";
import { localView } from "../../api/model-routes.js";
import { TesseraError } from "../../errors.js";
import type { ClusterDownload, ClusterModel } from "../../library/cluster-models.js";
import { CATALOG } from "../../models/catalog/catalog.js";
import { variantNames } from "../../models/catalog/reference.js";
import { ModelStore } from "../../models/registry/store.js";
import { dataDir } from "../../paths.js";
import { parseCommandArgs } from "../args.js";
import { bytes, count, table } from "../format.js";
import type { Command } from "../main.js";
import { callNode, nodeBase, NodeUnreachable } from "../node-client.js";

interface ModelList {
  models: ClusterModel[];
  downloads: ClusterDownload[];
}

const OPTIONS = {
  json: { type: "boolean" },
  url: { type: "string" },
  "data-dir": { type: "string" },
  name: { type: "string" },
} as const;

function describeLine(m: { id: string; description?: string; unsupported?: string }): string | undefined {
  const note = m.unsupported ? `cannot run here: ${m.unsupported}` : m.description;
  if (!note) return undefined;
  return `  ${m.id}: ${note.length > 160 ? note.slice(0, 159) + "…" : note}`;
}

export function formatModels(list: ModelList): string {
  if (list.models.length === 0 && list.downloads.length === 0) return "no models yet: `tessera pull NAME` fetches one, `tessera models add PATH` registers a file";
  const rows = [["ID", "FORMAT", "ARCH", "PARAMS", "QUANT", "SIZE", "CONTEXT", "DIGEST", "HELD BY"]];
  for (const m of list.models) {
    rows.push([
      m.id,
      m.format,
      m.architecture,
      count(m.parameters),
      m.quantization,
      bytes(m.bytes),
      m.contextLength ? String(m.contextLength) : "-",
      m.digest.slice(0, 12),
      m.holders.map((h) => h.nodeName + (h.complete ? "" : " (shard)")).join(", "),
    ]);
  }
  const out = [table(rows)];
  const notes = list.models.map(describeLine).filter((x): x is string => !!x);
  if (notes.length) out.push("", ...notes);
  if (list.downloads.length) {
    const d = [["DOWNLOAD", "NODE", "STATE", "DONE", "SPEED", "ETA", "FROM"]];
    for (const x of list.downloads) {
      const pct = x.bytesTotal ? `${((100 * x.bytesDone) / x.bytesTotal).toFixed(1)}% of ${bytes(x.bytesTotal)}` : bytes(x.bytesDone);
      d.push([x.id, x.nodeName, x.state + (x.error ? `: ${x.error}` : ""), pct, `${bytes(x.bytesPerSec)}/s`, x.etaSec === null ? "-" : `${Math.round(x.etaSec)} s`, x.from]);
    }
    out.push("", table(d));
  }
  return out.join("\n");
}

export function formatCatalog(): string {
  const rows = [["NAME", "ARCH", "PARAMS", "LAYERS", "HEADS/KV", "CONTEXT", "VARIANTS"]];
  for (const e of CATALOG) {
    const params = count(e.parameters) + (e.activeParameters ? ` (${count(e.activeParameters)} active)` : "");
    const variants = variantNames(e).map((v) => v.slice(e.name.length + 1));
    rows.push([e.name, e.architecture, params, String(e.layers), `${e.heads}/${e.kvHeads}`, String(e.contextLength), variants.join(" ")]);
  }
  return `${table(rows)}\n\npull one with \`tessera pull NAME\` (default: GGUF Q4_K_M where there is one), e.g. qwen3:8b, qwen3:8b-q8_0, qwen3:8b-mlx-8bit`;
}

function formatLocal(models: LocalModelView[]): string {
  const rows = [["ID", "FORMAT", "ARCH", "PARAMS", "QUANT", "SIZE", "ORIGIN", "PATH"]];
  for (const m of models) rows.push([m.id, m.meta.format, m.meta.architecture, count(m.meta.parameters), m.meta.quantization, bytes(m.meta.bytes), m.origin, m.path]);
  return table(rows);
}

export const command: Command = {
  summary: "List the cluster's models (every node's, with who holds them), register a model file, or remove one.",
  usage: `tessera models [--json]                 list every model in the cluster and running downloads
tessera models add PATH [--name NAME]   register a GGUF file or a safetensors/MLX folder on this node
tessera models rm ID                    remove this node's copy (deletes a downloaded model's files)
tessera models catalog [--json]         the well-known models \`tessera pull\` knows by name
  --url URL        the node to ask (default http://127.0.0.1:52480; TESSERA_URL)
  --data-dir DIR   with no node running, work on this machine's data dir directly`,

  async run(argv) {
    // No TESSERA_<FLAG> fallback: TESSERA_NAME is the node's name, not a model's.
    const { values, positionals } = parseCommandArgs(argv, OPTIONS, { envFallback: false });
    const [sub, ...rest] = positionals;
    const base = nodeBase(values.url ?? process.env.TESSERA_URL);
    const offline = () => new ModelStore(dataDir(values["data-dir"]));
    if (sub === undefined || sub === "ls" || sub === "list") {
      try {
        const list = await callNode<ModelList>(base, "GET", "/models");
        console.log(values.json ? JSON.stringify(list, null, 2) : formatModels(list));
      } catch (e) {
        if (!(e instanceof NodeUnreachable)) throw e;
        const store = offline();
        const local = (await store.scan()).map(localView);
        if (values.json) console.log(JSON.stringify({ models: local }, null, 2));
        else {
          console.error(`${e.message}\nmodels on this machine (${store.managedDir}):`);
          console.log(local.length ? formatLocal(local) : "none");
        }
      }
      return 0;
    }
    if (sub === "catalog") {
      console.log(values.json ? JSON.stringify(CATALOG, null, 2) : formatCatalog());
      return 0;
    }
    if (sub === "add") {
      if (rest.length !== 1) throw new TesseraError("usage: tessera models add PATH [--name NAME]");
      const path = rest[0]!;
      let added: LocalModelView;
      try {
        added = await callNode<LocalModelView>(base, "POST", "/models", { path: (await import("node:path")).resolve(path), name: values.name });
      } catch (e) {
        if (!(e instanceof NodeUnreachable)) throw e;
        added = localView(await offline().add(path, values.name));
      }
      console.log(values.json ? JSON.stringify(added, null, 2) : `added ${added.id} (${added.meta.format} ${added.meta.architecture}, ${added.meta.quantization}, digest ${added.digest.slice(0, 12)}) from ${added.path}`);
      return 0;
    }
    if (sub === "rm" || sub === "remove" || sub === "delete") {
      if (rest.length !== 1) throw new TesseraError("usage: tessera models rm ID");
      let removed: string;
      try {
        removed = (await callNode<{ removed: string }>(base, "DELETE", `/models/${encodeURIComponent(rest[0]!)}`)).removed;
      } catch (e) {
        if (!(e instanceof NodeUnreachable)) throw e;
        removed = (await offline().remove(rest[0]!)).id;
      }
      console.log(`removed ${removed}`);
      return 0;
    }
    throw new TesseraError(`unknown subcommand '${sub}' (use add, rm, or nothing to list)`);
  },
};
