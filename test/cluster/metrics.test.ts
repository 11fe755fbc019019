import { test } from "node:test";
import assert from "node:assert/strict";
import { clusterMetrics, formatMetrics } from "../../src/api/metrics.js";
import { formatStatus } from "../../src/cli/commands/status.js";
import { emptyState, type ClusterState } from "../../src/cluster/state.js";
import { parsePrometheus } from "./prometheus-parser.js";

const A = "aaaaaaaaaaaaaaaa";
const B = "bbbbbbbbbbbbbbbb";

function state(): ClusterState {
  const profile = (gflops: number | null) => ({
    memory: { totalBytes: 16 * 1024 ** 3, availableBytes: 8 * 1024 ** 3 },
    cpu: { model: 'Odd "CPU" \\ name', cores: 8 },
    providers: ["cpu", "cuda"],
    device: "auto",
    threads: 8,
    worker: true,
    matmulGflops: gflops,
    decodeBytesPerSec: gflops === null ? null : gflops * 1e8,
    platform: "linux",
    arch: "x64",
  });
  return {
    ...emptyState(),
    index: 9,
    term: 2,
    master: A,
    nodes: {
      [A]: { id: A, name: 'box "one"\nlab', host: "10.0.0.1", httpPort: 52480, peerPort: 52481, startedAt: 1, version: "0.1.0", profile: profile(120.5) },
      [B]: { id: B, name: "two", host: "10.0.0.2", httpPort: 52480, peerPort: 52481, startedAt: 2, version: "0.1.0", profile: profile(null) },
    },
    links: { [`${A}>${B}`]: { from: A, to: B, rttMs: 0.25, bandwidthBytesPerSec: 117e6, measuredAt: 3 } },
  };
}

test("cluster metrics round-trip through a strict Prometheus text parser, escapes included", () => {
  const m = parsePrometheus(formatMetrics(clusterMetrics(state(), { id: A, peers: 1 })));
  assert.equal(m.get("tessera_cluster_nodes")!.samples[0]!.value, 2);
  assert.equal(m.get("tessera_cluster_nodes")!.type, "gauge");
  const master = m.get("tessera_node_is_master")!.samples;
  assert.deepEqual(master.map((s) => [s.labels.node, s.labels.name, s.value]), [
    [A, 'box "one"\nlab', 1],
    [B, "two", 0],
  ]);
  assert.equal(m.get("tessera_node_matmul_gflops")!.samples.length, 1, "unmeasured nodes have no sample");
  assert.deepEqual(m.get("tessera_node_decode_bytes_per_second")!.samples.map((s) => s.value), [120.5e8]);
  assert.equal(m.get("tessera_link_rtt_seconds")!.samples[0]!.value, 0.00025);
  assert.deepEqual(m.get("tessera_link_bandwidth_bytes_per_second")!.samples[0]!.labels, { from: A, to: B });
  assert.equal(m.get("tessera_event_index")!.samples[0]!.value, 9);
});

test("the test's Prometheus parser is strict", () => {
  assert.throws(() => parsePrometheus("x 1\n"), /undeclared/);
  assert.throws(() => parsePrometheus("# TYPE x gauge\nx{a=b} 1\n"), /quoted/);
  assert.throws(() => parsePrometheus("# TYPE x gauge\nx 1 2 3\n"), /not a sample/);
  assert.throws(() => parsePrometheus('# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'), /duplicate series/);
  assert.throws(() => parsePrometheus('# TYPE x gauge\nx{a="\\t"} 1\n'), /bad escape/);
  assert.throws(() => parsePrometheus("# TYPE x gauge\nx one\n"), /bad value/);
  assert.throws(() => parsePrometheus("# TYPE x gauge\nx 1"), /newline/);
});

test("tessera status prints nodes (memory, device, master) and links (RTT, bandwidth)", () => {
  const text = formatStatus({
    self: { id: B, name: "two", cluster: "lab", mode: "secret", master: A, peers: [A], httpPort: 52480, peerPort: 52481, startedAt: 2 },
    state: state(),
  });
  const lines = text.split("\n");
  assert.match(lines[0]!, /cluster 'lab' \(secret\), seen from two \(bbbbbbbbbbbbbbbb\); event index 9, term 2/);
  const one = lines.find((l) => l.includes(A))!;
  assert.match(one, /master\s+8\.0 GiB \/ 16\.0 GiB\s+8× Odd "CPU" \\ name\s+auto\s+cpu,cuda\s+120\.5 GFLOP\/s\s+12\.1 GB\/s\s+10\.0\.0\.1:52480/);
  assert.match(lines.find((l) => l.startsWith("two *"))!, /worker/);
  assert.match(text, /two\s+0\.25 ms\s+936\.0 Mbit\/s/);
});
