import type { DownloadStatus } from "../../cluster/model-events.js";
import { TesseraError } from "../../errors.js";
import { HubClient, hubOptionsFromEnv } from "../../models/download/hub.js";
import { AbortedError } from "../../models/download/http.js";
import { planPull, runPull } from "../../models/download/pull.js";
import { ModelStore } from "../../models/registry/store.js";
import { dataDir } from "../../paths.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";
import { callNode, nodeBase, NodeUnreachable } from "../node-client.js";
import { ProgressBar } from "../progress-bar.js";

const OPTIONS = {
  name: { type: "string" },
  quant: { type: "string" },
  format: { type: "string" },
  offline: { type: "boolean" },
  url: { type: "string" },
  "data-dir": { type: "string" },
  json: { type: "boolean" },
} as const;

const POLL_MS = 300;

export const command: Command = {
  summary: "Download a model: a catalog name, a Hugging Face repo or a URL; from peers on the LAN first when they hold it.",
  usage: `tessera pull MODEL [--name NAME] [--quant Q] [--format gguf|mlx] [--offline]
  MODEL            qwen3:8b, qwen3:8b-q8_0, qwen3:8b-mlx-8bit (\`tessera models catalog\`),
                   hf.co/ORG/REPO[:QUANT or FILE], https://huggingface.co/ORG/REPO/resolve/main/FILE,
                   a plain https URL of a .gguf file, or a model another node of the cluster holds
  --name NAME      the id it gets here (default: the catalog name or the file name)
  --quant Q        the GGUF quantization (Q4_K_M, Q8_0, ...) or MLX bits (4bit, 8bit)
  --format F       gguf or mlx, for catalog entries that have both
  --offline        never contact the hub (only peers; without a node: fails)
  --url URL        the node that downloads (default http://127.0.0.1:52480; TESSERA_URL); Ctrl-C
                   cancels there and keeps the partial files, so pulling again resumes
  --data-dir DIR   with no node running, download into this data dir directly
Reads HF_ENDPOINT and HF_TOKEN (gated and private repos).`,

  async run(argv) {
    // No TESSERA_<FLAG> fallback: TESSERA_NAME is the node's name.
    const { values, positionals } = parseCommandArgs(argv, OPTIONS, { envFallback: false });
    if (positionals.length !== 1) throw new TesseraError("usage: tessera pull MODEL (see tessera pull --help)");
    const model = positionals[0]!;
    const format = values.format;
    if (format !== undefined && format !== "gguf" && format !== "mlx") throw new TesseraError(`--format must be gguf or mlx, got '${format}'`);
    const req = { model, name: values.name, quant: values.quant, format: format as "gguf" | "mlx" | undefined };
    const base = nodeBase(values.url ?? process.env.TESSERA_URL);
    let started: { id: string; status?: DownloadStatus };
    try {
      started = await callNode(base, "POST", "/models/pull", req, 60_000);
    } catch (e) {
      if (!(e instanceof NodeUnreachable)) throw e;
      if (values.url) throw e;
      return pullHere(req, values.offline === true, values["data-dir"]);
    }
    return follow(base, started.id);
  },
};

/** Shows a node's pull until it ends; Ctrl-C cancels it there. */
async function follow(base: string, id: string): Promise<number> {
  const bar = new ProgressBar(id);
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.on("SIGINT", onSigint);
  try {
    for (;;) {
      if (interrupted) {
        await callNode(base, "DELETE", `/downloads/${encodeURIComponent(id)}`).catch(() => {});
        bar.done();
        console.error(`cancelled; the partial files stay on the node, so \`tessera pull\` again resumes`);
        return 130;
      }
      let s: DownloadStatus;
      try {
        s = await callNode<DownloadStatus>(base, "GET", `/downloads/${encodeURIComponent(id)}`);
      } catch (e) {
        bar.done();
        throw e;
      }
      if (s.state === "downloading" || s.state === "done") bar.update(s);
      if (s.state === "done") {
        bar.done();
        console.log(`pulled ${id}`);
        return 0;
      }
      if (s.state === "failed" || s.state === "cancelled") {
        bar.done();
        throw new TesseraError(s.state === "failed" ? (s.error ?? "the download failed") : "the download was cancelled on the node");
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** No node running: download into the data dir from this process. */
async function pullHere(req: { model: string; name?: string; quant?: string; format?: "gguf" | "mlx" }, offline: boolean, dir: string | undefined): Promise<number> {
  const store = new ModelStore(dataDir(dir));
  const hub = new HubClient(hubOptionsFromEnv(process.env, offline));
  console.error(`no node answers: downloading here, into ${store.managedDir}`);
  const plan = await planPull(req.model, store.managedDir, hub, req);
  const bar = new ProgressBar(plan.name);
  const ac = new AbortController();
  const onSigint = () => ac.abort(new AbortedError("interrupted"));
  process.on("SIGINT", onSigint);
  try {
    await runPull(plan, hub, { signal: ac.signal, onProgress: (p, from) => bar.update({ ...p, from }), onNote: (m) => (bar.done(), console.error(m)) });
  } catch (e) {
    bar.done();
    if (e instanceof AbortedError) {
      console.error("stopped; pulling again resumes from the partial files");
      return 130;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
  bar.done();
  console.log(`pulled ${plan.name} into ${plan.dir}`);
  return 0;
}
