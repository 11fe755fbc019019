import { availableParallelism } from "node:os";
import { loadOrCreateApiKey } from "../../api/api-key.js";
import { clusterRoutes } from "../../api/cluster-routes.js";
import { createNodeServing, type NodeServing } from "../../api/node-serving.js";
import { nodeToken, NODE_TOKEN_HEADER } from "../../api/internal-routes.js";
import { PeerModels } from "../../api/peer-models.js";
import { clusterKey } from "../../cluster/handshake.js";
import { servingRoutes } from "../../api/serving-routes.js";
import { startApiServer } from "../../api/server.js";
import type { AuthOptions } from "../../api/http/auth.js";
import type { Device } from "../../engine/types.js";
import { loadOrCreateIdentity } from "../../cluster/identity.js";
import { ClusterNode } from "../../cluster/node.js";
import { defaultNodeName, parseByteSize, parseClusterName, parseDevice, parsePeers } from "../../cluster/options.js";
import { acquirePidLock } from "../../cluster/pidlock.js";
import { TesseraError } from "../../errors.js";
import { configDir, dataDir } from "../../paths.js";
import { version } from "../../version.js";
import { intOption, numberOption, parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";
import { SERVE_FLAGS, SERVE_USAGE, serveFlags } from "./serve-flags.js";

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
  ...SERVE_FLAGS,
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
${SERVE_USAGE}`,

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
    const serve = serveFlags(values);
    if (serve.modelPaths.length && values["no-worker"]) throw new TesseraError("--model and --no-worker: a coordinator-only node runs no models");
    const device = parseDevice(values.device);

    const release = acquirePidLock(dir);
    let node: ClusterNode | null = null;
    let api: Awaited<ReturnType<typeof startApiServer>> | null = null;
    let serving: NodeServing | null = null;
    let peers: PeerModels | null = null;
    let keyNote: string | undefined;
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
        device,
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
      serving = createNodeServing({
        nodeId: node.id,
        modelPaths: serve.modelPaths,
        engine: { threads: values.threads === undefined ? undefined : threads, contextLength: serve.contextLength, device: device === "auto" ? undefined : (device as Device) },
        aliases: serve.aliases,
        defaultModel: serve.defaultModel,
        autoLaunch: serve.autoLaunch,
        maxQueued: serve.maxQueued,
        keepAliveMs: serve.keepAliveMs,
        version,
        log,
      });
      const token = secret ? nodeToken(clusterKey(cluster, secret)) : undefined;
      let auth: AuthOptions = { key: serve.apiKey, nodeToken: token };
      if (!serve.apiKey && secret) {
        // secret mode: strangers on the network need a key; this machine does not
        const k = loadOrCreateApiKey(configDir());
        auth = { key: k.key, loopbackExempt: true, nodeToken: token };
        keyNote = k.created
          ? `generated an API key for callers on other machines (loopback needs none): ${k.key} (kept in ${k.path})`
          : `callers on other machines need the API key kept in ${k.path} (loopback needs none)`;
      }
      const metrics = serving.serving.metrics;
      const models = serving.router;
      api = await startApiServer({
        host,
        port,
        auth,
        routes: [clusterRoutes(node, { moreMetrics: () => metrics.families(models.models()) }), ...servingRoutes(serving.serving), serving.internalRoutes],
        onResponse: (route, method, status) => metrics.countRequest(route, method, status),
      });
      node.start(api.port);
      // Models of the other nodes: requests for them are forwarded to their node.
      const onPeers = serving;
      peers = new PeerModels({
        node,
        headers: { ...(token ? { [NODE_TOKEN_HEADER]: token } : {}), ...(serve.apiKey ? { authorization: `Bearer ${serve.apiKey}` } : {}) },
        onChange: (remotes) => onPeers.setRemote(remotes),
      });
      peers.start();
    } catch (e) {
      await peers?.stop();
      await node?.stop();
      await serving?.close();
      release();
      throw e;
    }

    log(`node ${node.id} (${node.name}) in cluster '${cluster}', data dir ${dir}`);
    if (!secret) log("open LAN mode: no --secret, so any tessera node on this network can join this cluster");
    if (values["no-discovery"]) log("discovery off: only --peers and peers they tell about");
    else if (/^(127\.|::1$|localhost$)/.test(host)) log(`--host ${host}: peers on other machines cannot reach this node`);
    log(`HTTP API on http://${host}:${api.port}, peer port ${node.peerPort}`);
    if (keyNote) log(keyNote);
    else if (serve.apiKey) log("every route but /healthz needs the API key (--api-key)");
    for (const c of serving.local.models()) log(`serving model ${c.id} (loaded on its first request)`);
    console.log(`ready ${JSON.stringify({ id: node.id, http: api.port, peer: node.peerPort })}`);

    const running = node;
    const server = api;
    const models = serving;
    const peerModels = peers;
    return await new Promise<number>((resolve) => {
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) {
          log(`${signal} again: exiting now`);
          process.exit(130);
        }
        stopping = true;
        log(`${signal}: shutting down`);
        void Promise.allSettled([peerModels.stop(), running.stop(), server.close(), models.close()]).then(() => {
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
