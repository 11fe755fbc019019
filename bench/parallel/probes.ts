// Measures beside the decode rounds: the all-reduce of a decode-sized message vs a raw TCP round
// trip (bench/transport's worker processes), and lm_head's time per token.
import { openModel } from "../../src/models/open.js";
import { buildHeadGraph } from "../../src/engine/tp/head-graph.js";
import { SyncSession, ort } from "../../src/engine/onnx/session.js";
import { loadHead } from "../../src/engine/weights/load.js";
import type { Timings } from "../transport/worker.js";
import { startChild } from "./children.js";

export type { Timings };

const worker = (args: string[]) => startChild("../transport/worker", import.meta.url, args);
const portOf = async (line: () => Promise<string>): Promise<number> => Number((await line()).replace(/^port /, ""));

/**
 * Round trip of `bytes` bytes over loopback TCP (echo process ↔ ping process), µs; `poll`: both ends
 * spin on the socket instead of waiting on the event loop, as a busy-polled all-reduce does. `via`
 * puts something between them (bench/scaling: a delay proxy): it gets the echo's port, returns the
 * port the ping dials.
 */
export async function rawRtt(bytes: number, iters: number, poll = false, via?: (port: number) => Promise<number>): Promise<Timings> {
  const echo = worker([poll ? "echo-poll" : "echo"]);
  const echoPort = await portOf(echo.line);
  const port = via ? await via(echoPort) : echoPort;
  const ping = worker([poll ? "ping-poll" : "ping", String(port), String(iters), String(Math.ceil(iters / 5)), String(bytes)]);
  const t = JSON.parse(await ping.line()) as Timings;
  echo.child.kill("SIGTERM");
  return t;
}

/** All-reduce of `floats` floats among `size` processes, µs (mode "poll": busy-polled as decode steps are); rank 0's timings. */
export async function allReduce(floats: number, iters: number, mode = "auto", size = 2): Promise<Timings> {
  const id = `parallel-bench-${process.pid}-${Date.now()}`;
  const ranks = Array.from({ length: size }, (_, r) => worker(["rank", String(r), String(size), id, String(iters), String(Math.ceil(iters / 5)), String(floats), mode]));
  const ports = await Promise.all(ranks.map((r) => portOf(r.line)));
  for (const r of ranks) r.child.stdin!.end(JSON.stringify({ peers: ports.map((port) => ({ host: "127.0.0.1", port })) }) + "\n");
  const [t] = await Promise.all(ranks.map(async (r) => JSON.parse(await r.line()) as Timings));
  return t!;
}

/** lm_head (final norm + the whole matmul) time per decode token, one thread, ms. */
export async function headMs(path: string): Promise<number> {
  const src = await openModel(path);
  try {
    const h = await loadHead(src);
    const g = buildHeadGraph(src.config, h.norm, h.lmHead);
    const s = SyncSession.create(g.toBytes(), g.blobs, { threads: 1 });
    const feeds = {
      hidden_in: new ort.Tensor("float32", new Float32Array(src.config.hiddenSize).fill(0.1), [1, 1, src.config.hiddenSize]),
      logits_index: new ort.Tensor("int64", BigInt64Array.of(0n), [1]),
    };
    for (let i = 0; i < 5; i++) s.run(feeds, { logits: null });
    const t0 = performance.now();
    const n = 40;
    for (let i = 0; i < n; i++) s.run(feeds, { logits: null });
    const ms = (performance.now() - t0) / n;
    s.dispose();
    return ms;
  } finally {
    await src.close();
  }
}
