// The client side of proxy-host.ts: the delay proxies of one emulated cluster, in a child process, and
// the routing that sends every link between emulated machines through them.
import type { LaunchOptions } from "../../src/runner/launcher.js";
import { startChild, type LineChild } from "../parallel/children.js";

/** The delay proxies of one emulated cluster, hosted by a child process. */
export class ProxyHost {
  private constructor(private readonly c: LineChild) {}
  static start(): ProxyHost {
    return new ProxyHost(startChild("./proxy-host", import.meta.url, []));
  }
  /** A proxy to 127.0.0.1:port adding latencyUs one way (and clocking bytes out at bandwidth B/s each way, if given). */
  async open(port: number, latencyUs: number, bandwidthBytesPerSec?: number): Promise<number> {
    this.c.send(`open 127.0.0.1 ${port} ${latencyUs}${bandwidthBytesPerSec ? ` ${bandwidthBytesPerSec}` : ""}`);
    return Number((await this.c.line()).replace(/^port /, ""));
  }
  async lateness(): Promise<unknown> {
    this.c.send("lateness");
    return JSON.parse(await this.c.line());
  }
  close(): void {
    this.c.child.kill("SIGTERM");
  }
}

/**
 * Links between machines of the emulated cluster go through `host`'s proxies at `setUs`: each runner is
 * a machine, the driver shares world rank 1's, so only the link rank 1 → driver stays direct.
 */
export function emulatedLinks(host: ProxyHost, setUs: number, bandwidthBytesPerSec?: number): LaunchOptions["routeLink"] {
  return async (link, target) => {
    if (link.group === "world" && link.from === 1 && link.to === 0) return target;
    return { host: "127.0.0.1", port: await host.open(target.port, setUs, bandwidthBytesPerSec) };
  };
}

