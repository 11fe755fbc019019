import { execFileSync } from "node:child_process";

/**
 * A throwaway network for tests: a hub namespace holding a bridge, N node namespaces each with a
 * veth (eth0, 10.231.S.i/24) on that bridge, and a veth from the root namespace (10.231.S.254) so
 * the test can reach the nodes' HTTP ports. Names carry the test's pid so parallel runs do not
 * collide. destroy() removes everything (deleting a namespace deletes the veths in it).
 * Needs root and iproute2.
 */
export interface NetLab {
  /** Namespace of node i (1-based). */
  ns(i: number): string;
  /** Address of node i. */
  ip(i: number): string;
  /** Bridge port (in the hub) of node i's veth. */
  hubPort(i: number): string;
  hub: string;
  linkDown(i: number): void;
  linkUp(i: number): void;
  /** Caps traffic in both directions of node i's link with a token bucket filter. */
  capBandwidth(i: number, rate: string): void;
  destroy(): void;
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function tc(...args: string[]): void {
  execFileSync("tc", args, { stdio: ["ignore", "pipe", "pipe"] });
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error("the network-namespace tests need root (they create namespaces, veths and a bridge); run them as root, as CI (.ci/run) does");
  }
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
    execFileSync("tc", ["-V"], { stdio: "ignore" });
  } catch {
    throw new Error("the network-namespace tests need iproute2 (ip, tc); .ci/run installs it");
  }
}

function freeSubnet(): number {
  const used = ip("-4", "addr") + ip("-4", "route");
  for (let k = 0; k < 250; k++) {
    const s = (process.pid + k) % 250;
    if (!used.includes(`10.231.${s}.`)) return s;
  }
  throw new Error("no free 10.231.x.0/24 subnet for the test network");
}

export function createNetLab(nodes: number): NetLab {
  const tag = `ts${(process.pid % 1679616).toString(36)}`;
  const hub = `${tag}hub`;
  const nss = Array.from({ length: nodes }, (_, i) => `${tag}n${i + 1}`);
  const subnet = freeSubnet();
  const addr = (i: number) => `10.231.${subnet}.${i}`;
  const rootIf = `${tag}r`;
  const created: string[] = [];
  const lab: NetLab = {
    hub,
    ns: (i) => nss[i - 1]!,
    ip: addr,
    hubPort: (i) => `${tag}b${i}`,
    linkDown: (i) => void ip("-n", nss[i - 1]!, "link", "set", "eth0", "down"),
    linkUp: (i) => {
      ip("-n", nss[i - 1]!, "link", "set", "eth0", "up");
      // Routes of a downed interface are gone; mDNS needs its multicast route back.
      ip("-n", nss[i - 1]!, "route", "replace", "224.0.0.0/4", "dev", "eth0");
    },
    capBandwidth: (i, rate) => {
      tc("-n", nss[i - 1]!, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "32kb", "latency", "400ms");
      tc("-n", hub, "qdisc", "add", "dev", `${tag}b${i}`, "root", "tbf", "rate", rate, "burst", "32kb", "latency", "400ms");
    },
    destroy: () => {
      for (const ns of created.reverse()) {
        try {
          ip("netns", "del", ns);
        } catch {
          /* already gone */
        }
      }
      try {
        ip("link", "del", rootIf);
      } catch {
        /* went with the hub */
      }
    },
  };
  try {
    ip("netns", "add", hub);
    created.push(hub);
    ip("-n", hub, "link", "set", "lo", "up");
    ip("-n", hub, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0");
    ip("-n", hub, "link", "set", "br0", "up");
    for (let i = 1; i <= nodes; i++) {
      const ns = nss[i - 1]!;
      const a = `${tag}a${i}`;
      const b = `${tag}b${i}`;
      ip("netns", "add", ns);
      created.push(ns);
      ip("link", "add", a, "type", "veth", "peer", "name", b);
      ip("link", "set", a, "netns", ns);
      ip("link", "set", b, "netns", hub);
      ip("-n", ns, "link", "set", a, "name", "eth0");
      ip("-n", ns, "addr", "add", `${addr(i)}/24`, "dev", "eth0");
      ip("-n", ns, "link", "set", "lo", "up");
      ip("-n", ns, "link", "set", "eth0", "up");
      ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0");
      ip("-n", hub, "link", "set", b, "master", "br0");
      ip("-n", hub, "link", "set", b, "up");
    }
    ip("link", "add", rootIf, "type", "veth", "peer", "name", `${tag}rb`);
    ip("link", "set", `${tag}rb`, "netns", hub);
    ip("-n", hub, "link", "set", `${tag}rb`, "master", "br0");
    ip("-n", hub, "link", "set", `${tag}rb`, "up");
    ip("addr", "add", `${addr(254)}/24`, "dev", rootIf);
    ip("link", "set", rootIf, "up");
  } catch (e) {
    lab.destroy();
    throw e;
  }
  return lab;
}
