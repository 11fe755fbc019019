// A process that hosts the delay proxies of one emulated cluster, so relaying bytes costs the driver's
// event loop nothing (in the driver's process a 5 µs proxy mostly measured the proxy itself).
// Line protocol on stdin/stdout:
//   open HOST PORT LATENCY_US [BYTES_PER_S]  → "port N" (a new proxy to HOST:PORT adding LATENCY_US one
//                              way, and clocking bytes out at BYTES_PER_S each way when given)
//   lateness                   → JSON: how late chunks left, over all proxies (worst median / p90)
import { createInterface } from "node:readline";
import { DelayProxy } from "../../src/transport/delay-proxy.js";

const proxies: DelayProxy[] = [];
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  void (async () => {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === "open") {
      const [host, port, latencyUs, bandwidth] = args;
      const shape = { latencyUs: Number(latencyUs), ...(bandwidth ? { bandwidthBytesPerSec: Number(bandwidth) } : {}) };
      const p = await DelayProxy.start({ target: { host: host!, port: Number(port) }, forward: shape });
      proxies.push(p);
      console.log(`port ${p.port}`);
    } else if (cmd === "lateness") {
      const l = proxies.map((p) => p.lateness()).filter((x) => x.chunks > 0);
      console.log(JSON.stringify({ proxies: l.length, worstMedianUs: Math.max(0, ...l.map((x) => x.medianUs)), worstP90Us: Math.max(0, ...l.map((x) => x.p90Us)) }));
    }
  })();
});
rl.on("close", () => process.exit(0));
