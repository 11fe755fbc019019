import type { FastifyInstance } from "fastify";
import type { ClusterNode } from "../cluster/node.js";
import { clusterView, linkList, nodeViews } from "./cluster-view.js";
import { clusterMetrics, formatMetrics, type MetricFamily } from "./metrics.js";
import type { RouteModule } from "./server.js";

/**
 * GET /cluster, /cluster/nodes, /cluster/links, /cluster/events?since=N, /cluster/stream (SSE),
 * /healthz, /metrics. The stream sends `event: state` (whole ClusterView) on connect and whenever
 * the node resets to a snapshot, and `event: entry` (one LogEntry) for each applied event.
 */
const SSE_KEEPALIVE_MS = 15000;

export function clusterRoutes(node: ClusterNode, opts: { moreMetrics?: () => MetricFamily[] } = {}): RouteModule {
  return (app: FastifyInstance) => {
    app.get("/healthz", async () => ({ ok: true, id: node.id, master: node.masterId, index: node.replica.state.index }));

    app.get("/cluster", async () => clusterView(node));

    app.get("/cluster/nodes", async () => nodeViews(node.replica.state, node.id));

    app.get("/cluster/links", async () => linkList(node.replica.state));

    app.get("/cluster/events", async (req, reply) => {
      const raw = (req.query as Record<string, unknown>).since ?? "0";
      const since = Number(raw);
      if (!Number.isInteger(since) || since < 0) return reply.code(400).send({ error: `since must be an integer ≥ 0, got '${String(raw)}'` });
      const { first, entries } = node.replica.since(since);
      return { index: node.replica.state.index, first, truncated: since < first - 1, entries };
    });

    app.get("/metrics", async (_req, reply) => {
      const body = formatMetrics([...clusterMetrics(node.replica.state, { id: node.id, peers: node.livePeers.length }), ...(opts.moreMetrics?.() ?? [])]);
      return reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(body);
    });

    app.get("/cluster/stream", (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      send("state", clusterView(node));
      const offEntry = node.replica.onEntry((e) => send("entry", e));
      const offReset = node.replica.onReset(() => send("state", clusterView(node)));
      const keepalive = setInterval(() => res.write(": keepalive\n\n"), SSE_KEEPALIVE_MS);
      req.raw.once("close", () => {
        offEntry();
        offReset();
        clearInterval(keepalive);
      });
    });
  };
}
