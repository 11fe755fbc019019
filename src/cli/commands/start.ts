import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { clusterRoutes } from "../../api/cluster-routes.js";
import { modelRoutes } from "../../api/model-routes.js";
import { ModelLibrary } from "../../library/library.js";
import { clusterKey } from "../../cluster/handshake.js";
import { hubOptionsFromEnv } from "../../models/download/hub.js";
import { startApiServer } from "../../api/server.js";
import { loadOrCreateIdentity } from "../../cluster/identity.js";
import { ClusterNode } from "../../cluster/node.js";
import { defaultNodeName, parseByteSize, parseClusterName, parseDevice, parsePeers } from "../../cluster/options.js";
import { acquirePidLock } from "../../cluster/pidlock.js";
import { TesseraError } from "../../errors.js";
import { dataDir } from "../../paths.js";
import { version } from "../../version.js";
import { intOption, numberOption, parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";

const OPTIONS = {
  port: { type: "string" },
  "peer-port": { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  name: { type: "string" },
  cluster: { type: "string" },
  secret: { type: "string" },
  peers: { type: "string" },
  "no-discovery": { type: "boolean" },
  "no-worker": { type: "boolean" },
  threads: { type: "string" },
  device: { type: "string" },
  "memory-limit": { type: "string" },
  "measure-every": { type: "string" },
  "models-dir": { type: "string", multiple: true },
  "no-demo": { type: "boolean" },
  offline: { type: "boolean" },
} as const;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

export const command: Command = {
  summary: "Run a node: it finds the other nodes (mDNS and --peers), joins the cluster, measures the links and serves the HTTP API.",
  usage: `tessera start [options]   (each option also reads TESSERA_<NAME>, e.g. TESSERA_SECRET)
  --port N            HTTP API and dashboard port (default 52480)
  --peer-port N       cluster peer port (default: --port + 1)
  --host ADDR         address to listen on (default 0.0.0.0)
  --data-dir DIR      identity, caches and models (default $TESSERA_HOME or ~/.local/share/tessera)
  --name NAME         node name shown in the cluster (default: hostname)
  --cluster NAME      cluster name; nodes of other clusters are ignored (default "default")
  --secret S          cluster secret; without it the node runs in open LAN mode
  --peers H:P,...     static peers (their peer ports) for other subnets and VPNs
  --no-discovery      no mDNS; only --peers
  --no-worker         coordinator only: run no model shards here
  --threads N         threads per runner (default: all cores)
  --device D          auto, cpu, webgpu or cuda (default auto)
  --memory-limit SIZE report at most this much memory (e.g. 8G)
  --measure-every S   seconds between link measurements per peer (default 30)
  --models-dir DIR    also list the models in DIR (repeatable; TESSERA_MODELS_DIR takes DIR,DIR...)
  --no-demo           do not write the demo model tessera-demo on first start
  --offline           never contact the Hugging Face hub (pulls come from peers only; also HF_HUB_OFFLINE=1)
  model downloads read HF_ENDPOINT (default https://huggingface.co) and HF_TOKEN (gated and private repos)`,

  async run(argv) {
    const { values } = parseCommandArgs(argv, OPTIONS, { allowPositionals: false });
    const port = intOption("port", values.port, 52480);
    if (port > 65535) throw new TesseraError(`--port must be ≤ 65535, got ${port}`);
    const peerPort = intOption("peer-port", values["peer-port"], port === 0 ? 0 : port + 1);
    if (peerPort > 65535) throw new TesseraError(`--peer-port must be ≤ 65535, got ${peerPort}`);
    const host = values.host ?? "0.0.0.0";
    const dir = dataDir(values["data-dir"]);
    const cluster = parseClusterName(values.cluster);
    const secret = values.secret || undefined;
    const threads = intOption("threads", values.threads, availableParallelism(), 1);
    const measureEvery = numberOption("measure-every", values["measure-every"], 30);
    if (measureEvery < 1) throw new TesseraError(`--measure-every must be at least 1 second, got ${measureEvery}`);

    const modelsDirs = modelsDirList(values["models-dir"]);
    const release = acquirePidLock(dir);
    let node: ClusterNode | null = null;
    let library: ModelLibrary | null = null;
    let api: Awaited<ReturnType<typeof startApiServer>> | null = null;
    try {
      const identity = loadOrCreateIdentity(dir);
      node = new ClusterNode({
        identity,
        dataDir: dir,
        name: values.name || defaultNodeName(),
        host,
        peerPort,
        httpPort: port,
        cluster,
        secret,
        peers: values.peers ? parsePeers(values.peers) : [],
        discovery: !values["no-discovery"],
        worker: !values["no-worker"],
        threads,
        device: parseDevice(values.device),
        memoryLimit: values["memory-limit"] ? parseByteSize("memory-limit", values["memory-limit"]) : undefined,
        measureEveryMs: measureEvery * 1000,
        heartbeatMs: 1000,
        silenceMs: 3000,
        version,
        log,
      });
      try {
        await node.listen();
      } catch (e) {
        throw new TesseraError(`cannot listen for peers: ${(e as Error).message} (pick another with --peer-port)`, `${host}:${peerPort}`);
      }
      library = new ModelLibrary(
        { dataDir: dir, modelsDirs, demo: !values["no-demo"], hub: hubOptionsFromEnv(process.env, values.offline === true), key: clusterKey(cluster, secret), log },
        node,
      );
      api = await startApiServer({ host, port, routes: [clusterRoutes(node), modelRoutes(node, library), library.peerRoutes()] });
      node.start(api.port);
      await library.start();
    } catch (e) {
      await library?.stop();
      await node?.stop();
      release();
      throw e;
    }

    log(`node ${node.id} (${node.name}) in cluster '${cluster}', data dir ${dir}`);
    if (!secret) log("open LAN mode: no --secret, so any tessera node on this network can join this cluster");
    if (values["no-discovery"]) log("discovery off: only --peers and peers they tell about");
    else if (/^(127\.|::1$|localhost$)/.test(host)) log(`--host ${host}: peers on other machines cannot reach this node`);
    log(`HTTP API on http://${host}:${api.port}, peer port ${node.peerPort}`);
    console.log(`ready ${JSON.stringify({ id: node.id, http: api.port, peer: node.peerPort })}`);

    const running = node;
    const server = api;
    const models = library;
    return await new Promise<number>((resolve) => {
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) {
          log(`${signal} again: exiting now`);
          process.exit(130);
        }
        stopping = true;
        log(`${signal}: shutting down`);
        void Promise.allSettled([models.stop(), running.stop(), server.close()]).then(() => {
          release();
          resolve(0);
          // Sockets of mDNS or slow peers must not keep the process alive after a clean stop.
          setTimeout(() => process.exit(0), 200).unref();
        });
      };
      process.on("SIGINT", () => shutdown("SIGINT"));
      process.on("SIGTERM", () => shutdown("SIGTERM"));
    });
  },
};

/** --models-dir given several times, or TESSERA_MODELS_DIR as a comma-separated list. */
function modelsDirList(v: string | boolean | string[] | undefined): string[] {
  if (v === undefined || typeof v === "boolean") return [];
  const list = Array.isArray(v) ? v : v.split(",");
  return list.map((d) => d.trim()).filter(Boolean).map((d) => resolve(d));
}
