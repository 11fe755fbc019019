import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import type { ClusterNode } from "../../cluster/node.js";
import type { ApiServer } from "../../api/server.js";
import { dashboardRoutes } from "../../api/dashboard-routes.js";
import { DEFAULT_HTTP_PORT, DEVICES, clusterNameProblem, defaultNodeName, parsePeers } from "../../cluster/options.js";
import { readSecretFile } from "../../cluster/secret.js";
import type { InstanceManager } from "../../instances/manager.js";
import type { ModelLibrary } from "../../library/library.js";
import type { NodeServing } from "../../api/node-serving.js";
import type { PeerModels } from "../../api/peer-models.js";
import type { AuthOptions } from "../../api/http/auth.js";
import type { Device } from "../../engine/types.js";
import { configDir } from "../../paths.js";
import { SERVE_FLAGS, serveFlags } from "./serve-flags.js";
import { TesseraError } from "../../errors.js";
import { dataDir } from "../../paths.js";
import { version } from "../../version.js";
import { FlagError, flag, parseFlags, usageText } from "../flags.js";
import type { Command } from "../main.js";

const FLAGS = {
  port: flag.port({ default: DEFAULT_HTTP_PORT, help: "HTTP API port (0: any free port)" }),
  "peer-port": flag.port({ help: "port other nodes connect to", defaultText: "--port + 1" }),
  host: flag.string({ metavar: "ADDR", default: "0.0.0.0", help: "address to listen on" }),
  "data-dir": flag.path({ kind: "dir", help: "identity, caches and models", defaultText: "$TESSERA_HOME or ~/.local/share/tessera" }),
  name: flag.string({ help: "node name shown in the cluster", defaultText: "the hostname" }),
  cluster: flag.string({
    metavar: "NAME",
    default: "default",
    defaultText: '"default"',
    help: "cluster name; nodes of other clusters are ignored",
    check: clusterNameProblem,
  }),
  secret: flag.string({
    metavar: "S",
    help: "cluster secret; without one the node runs in open LAN mode",
    emptyHint: "leave it out for open LAN mode, or create a secret with `tessera secret` and use --secret-file",
  }),
  "secret-file": flag.path({ kind: "file", help: "read the cluster secret from this file (`tessera secret` writes one)" }),
  peers: flag.string({ metavar: "H[:P],...", help: "static peers for other subnets and VPNs: host, host:port, or a node's HTTP host:port" }),
  "no-discovery": flag.bool({ help: "no mDNS: only --peers and the peers they tell about" }),
  "no-worker": flag.bool({ help: "coordinator only: run no model shards here" }),
  threads: flag.int({ min: 1, max: 4 * availableParallelism(), help: "threads per runner", defaultText: "all cores" }),
  device: flag.choice(DEVICES, { default: "auto", help: "execution provider" }),
  "memory-limit": flag.size({ help: "report at most this much memory, e.g. 8G" }),
  "measure-every": flag.number({ min: 1, default: 30, metavar: "SECONDS", help: "time between link measurements per peer" }),
  "models-dir": flag.string({ metavar: "DIR,...", help: "also list the models in these folders" }),
  "no-demo": flag.bool({ help: "do not write the demo model tessera-demo on first start" }),
  offline: flag.bool({ help: "never contact the Hugging Face hub: pulls come from peers only (also HF_HUB_OFFLINE=1)" }),
  ...SERVE_FLAGS,
};

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

export const command: Command = {
  summary:
    "Runs a node: it finds the other nodes (mDNS and --peers), joins the cluster, measures the links and serves " +
    "the HTTP API: cluster, instances, models, /metrics and the OpenAI, Ollama and Anthropic APIs.",
  usage: usageText("tessera start [options]", FLAGS, ["Each option also reads the environment variable TESSERA_<NAME>, e.g. TESSERA_PORT=8080.", "Model downloads read HF_ENDPOINT (default https://huggingface.co) and HF_TOKEN (gated and private repos)."]),

  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, { env: process.env, positionals: { max: 0, usage: "tessera start [options]" } });
    const port = values.port;
    const peerPort = values["peer-port"] ?? (port === 0 ? 0 : port + 1);
    if (peerPort > 65535) throw new FlagError(`--peer-port would be --port + 1 = ${peerPort}: give --peer-port or a lower --port`);
    const host = values.host;
    const dir = dataDir(values["data-dir"]);
    const cluster = values.cluster;
    if (values.secret !== undefined && values["secret-file"] !== undefined) throw new FlagError("give --secret or --secret-file, not both");
    const name = values.name ?? defaultNodeName();
    const fromFile = values["secret-file"] !== undefined ? readSecretFile(values["secret-file"]) : undefined;
    const secret = fromFile?.secret ?? values.secret;
    const peers = values.peers !== undefined ? parsePeers(values.peers) : [];
    const threads = values.threads ?? availableParallelism();
    const measureEvery = values["measure-every"];
    const serve = serveFlags(values);
    if (serve.modelPaths.length && values["no-worker"]) throw new FlagError("--model and --no-worker: a coordinator-only node runs no models");

    // The node's modules (fastify, the cluster) load only once the options are known to be good.
    const [
      { clusterRoutes },
      { instanceRoutes },
      { InstanceManager },
      { HomeInstances },
      { modelRoutes },
      { ModelLibrary, servableModels },
      { clusterKey },
      { hubOptionsFromEnv },
      { startApiServer },
      { loadOrCreateIdentity },
      { ClusterNode },
      { acquirePidLock },
      { createNodeServing },
      { nodeToken, NODE_TOKEN_HEADER },
      { PeerModels },
      { servingRoutes },
      { loadOrCreateApiKey },
    ] = await Promise.all([
      import("../../api/cluster-routes.js"),
      import("../../api/instance-routes.js"),
      import("../../instances/manager.js"),
      import("../../instances/instance-backends.js"),
      import("../../api/model-routes.js"),
      import("../../library/library.js"),
      import("../../cluster/handshake.js"),
      import("../../models/download/hub.js"),
      import("../../api/server.js"),
      import("../../cluster/identity.js"),
      import("../../cluster/node.js"),
      import("../../cluster/pidlock.js"),
      import("../../api/node-serving.js"),
      import("../../api/internal-routes.js"),
      import("../../api/peer-models.js"),
      import("../../api/serving-routes.js"),
      import("../../api/api-key.js"),
    ]);
    const modelsDirs = (values["models-dir"] ?? "").split(",").map((d) => d.trim()).filter(Boolean).map((d) => resolve(d));
    const release = acquirePidLock(dir);
    let node: ClusterNode | null = null;
    let api: ApiServer | null = null;
    let instances: InstanceManager | null = null;
    let library: ModelLibrary | null = null;
    let serving: NodeServing | null = null;
    let peerModels: PeerModels | null = null;
    let keyNote: string | undefined;
    try {
      const identity = loadOrCreateIdentity(dir);
      node = new ClusterNode({
        identity,
        dataDir: dir,
        name,
        host,
        peerPort,
        httpPort: port,
        cluster,
        secret,
        peers,
        discovery: !values["no-discovery"],
        worker: !values["no-worker"],
        threads,
        device: values.device,
        memoryLimit: values["memory-limit"],
        measureEveryMs: measureEvery * 1000,
        heartbeatMs: 1000,
        silenceMs: 3000,
        version,
        log,
      });
      try {
        await node.listen();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOTFOUND" || code === "EADDRNOTAVAIL" || code === "EAI_AGAIN") {
          throw new TesseraError(`--host ${host} is not an address of this machine (${code}); 0.0.0.0 listens on all of them`);
        }
        const hint = code === "EADDRINUSE" ? " (the port is in use: another node? pick another with --peer-port)" : "";
        throw new TesseraError(`cannot listen for peers: ${(e as Error).message}${hint}`, `${host}:${peerPort}`);
      }
      library = new ModelLibrary(
        { dataDir: dir, modelsDirs, demo: !values["no-demo"], hub: hubOptionsFromEnv(process.env, values.offline), key: clusterKey(cluster, secret), log, onScan: (models) => serving?.local.setLibrary(servableModels(models)) },
        node,
      );
      instances = new InstanceManager(node, { log, files: library });
      const home = new HomeInstances(instances, {
        node: node.id,
        maxQueued: serve.maxQueued,
        onResult: (model, result) => serving?.serving.metrics.observe(model, result),
      });
      serving = createNodeServing({
        nodeId: node.id,
        modelPaths: serve.modelPaths,
        engine: { threads: values.threads, contextLength: serve.contextLength, device: values.device === "auto" ? undefined : (values.device as Device), slots: serve.parallel },
        aliases: serve.aliases,
        defaultModel: serve.defaultModel,
        autoLaunch: serve.autoLaunch,
        maxQueued: serve.maxQueued,
        keepAliveMs: serve.keepAliveMs,
        places: [home],
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
      const router = serving.router;
      api = await startApiServer({
        host,
        port,
        auth,
        routes: [
          clusterRoutes(node, { moreMetrics: () => metrics.families(router.models()) }),
          dashboardRoutes(),
          instanceRoutes(instances),
          modelRoutes(node, library),
          library.peerRoutes(),
          ...servingRoutes(serving.serving),
          serving.internalRoutes,
        ],
        onResponse: (route, method, status) => metrics.countRequest(route, method, status),
      });
      node.start(api.port);
      instances.start();
      await library.start();
      // Models of the other nodes: requests for them are forwarded to their node.
      const onPeers = serving;
      peerModels = new PeerModels({
        node,
        headers: { ...(token ? { [NODE_TOKEN_HEADER]: token } : {}), ...(serve.apiKey ? { authorization: `Bearer ${serve.apiKey}` } : {}) },
        onChange: (remotes) => onPeers.setRemote(remotes),
      });
      peerModels.start();
    } catch (e) {
      await peerModels?.stop();
      await library?.stop();
      await instances?.stop();
      await serving?.close();
      await node?.stop();
      release();
      throw e;
    }

    log(`node ${node.id} (${node.name}) in cluster '${cluster}', data dir ${dir}`);
    if (fromFile?.warning) log(`warning: ${fromFile.warning}`);
    if (!secret) log("open LAN mode: no --secret, so any tessera node on this network can join this cluster");
    if (values["no-discovery"]) log("discovery off: only --peers and peers they tell about");
    else if (/^(127\.|::1$|localhost$)/.test(host)) log(`--host ${host}: peers on other machines cannot reach this node`);
    log(`HTTP API on http://${host}:${api.port}, peer port ${node.peerPort}`);
    if (keyNote) log(keyNote);
    else if (serve.apiKey) log("every route but /healthz and the dashboard needs the API key (--api-key)");
    for (const c of serving.local.models()) log(`serving model ${c.id} (loaded on its first request)`);
    console.log(`ready ${JSON.stringify({ id: node.id, http: api.port, peer: node.peerPort })}`);

    const running = node;
    const server = api;
    const runners = instances;
    const models = library;
    const served = serving;
    const peered = peerModels;
    return await new Promise<number>((resolve) => {
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) {
          log(`${signal} again: exiting now`);
          process.exit(130);
        }
        stopping = true;
        log(`${signal}: shutting down`);
        // runners and drivers first: they must not outlive the node, and the others re-place their instances
        void runners
          .stop()
          .catch(() => {})
          .then(() => Promise.allSettled([peered.stop(), models.stop(), running.stop(), server.close(), served.close()]))
          .then(() => {
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

