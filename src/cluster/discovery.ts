import { networkInterfaces } from "node:os";
import Bonjour from "bonjour-service";

type Service = Bonjour.Service;

/**
 * mDNS/DNS-SD discovery: advertises `_tessera._tcp` (TXT: id, cluster, http port, protocol) and
 * reports every other node of the same cluster name. The service and host names carry the node id:
 * namespaces or containers sharing one hostname would otherwise answer for each other's A records.
 * One responder per IPv4 interface (re-scanned every few seconds): a single mDNS socket sends only
 * on the default interface, and a second network (a Thunderbolt bridge, a VPN) would never hear us.
 * Browsing re-queries every few seconds so nodes that come back are seen again.
 */
export interface DiscoveredPeer {
  id: string;
  host: string;
  port: number;
}

export interface DiscoveryOptions {
  id: string;
  cluster: string;
  peerPort: number;
  httpPort: number;
  onPeer(peer: DiscoveredPeer): void;
  log(message: string): void;
}

const TYPE = "tessera";
const REQUERY_MS = 2000;
const RESCAN_MS = 10000;

export function pickAddress(svc: Pick<Service, "addresses" | "referer">): string | null {
  // The sender of the answer is the one address we know reaches it; A records may list others.
  const ref = svc.referer?.address;
  if (ref && svc.referer?.family === "IPv4") return ref;
  const v4 = (svc.addresses ?? []).filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  return v4[0] ?? (ref ? ref : null);
}

/** Non-internal IPv4 addresses, one per interface; empty on a machine with loopback only. */
export function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    const a = (list ?? []).find((x) => x.family === "IPv4" && !x.internal);
    if (a) out.push(a.address);
  }
  return out;
}

interface Responder {
  bonjour: Bonjour;
  browser: Bonjour.Browser;
}

export class Discovery {
  private readonly responders = new Map<string, Responder>();
  private readonly requery: NodeJS.Timeout;
  private readonly rescan: NodeJS.Timeout;

  constructor(private readonly opts: DiscoveryOptions) {
    this.scan();
    this.requery = setInterval(() => {
      for (const r of this.responders.values()) r.browser.update();
    }, REQUERY_MS);
    this.rescan = setInterval(() => this.scan(), RESCAN_MS);
  }

  private scan(): void {
    const wanted = interfaceAddresses();
    if (wanted.length === 0) wanted.push("default");
    for (const [addr, r] of this.responders) {
      if (!wanted.includes(addr)) {
        this.responders.delete(addr);
        void close(r);
      }
    }
    for (const addr of wanted) if (!this.responders.has(addr)) this.responders.set(addr, this.open(addr));
  }

  private open(addr: string): Responder {
    // multicast-dns options: send on this interface, but bind the wildcard address (a socket bound
    // to a unicast address receives no multicast on Linux).
    const mdnsOptions = addr === "default" ? undefined : ({ interface: addr, bind: "0.0.0.0" } as Record<string, unknown>);
    const bonjour = new Bonjour(mdnsOptions as never, (e: Error) => this.opts.log(`discovery (${addr}): ${e.message}`));
    bonjour.publish({
      name: `tessera-${this.opts.id}`,
      type: TYPE,
      port: this.opts.peerPort,
      host: `tessera-${this.opts.id}.local`,
      txt: { id: this.opts.id, cluster: this.opts.cluster, http: String(this.opts.httpPort), v: "1" },
      disableIPv6: true,
      // The name carries our id, so no one else can hold it; probing would see our other responders.
      probe: false,
    });
    const browser = bonjour.find({ type: TYPE });
    const seen = (svc: Service) => this.seen(svc);
    browser.on("up", seen);
    browser.on("srv-update", seen);
    browser.on("txt-update", seen);
    return { bonjour, browser };
  }

  private seen(svc: Service): void {
    const txt = (svc.txt ?? {}) as Record<string, unknown>;
    const id = String(txt.id ?? "");
    if (!/^[0-9a-f]{16}$/.test(id) || id === this.opts.id) return;
    if (String(txt.cluster ?? "") !== this.opts.cluster) return;
    const host = pickAddress(svc) ?? "127.0.0.1";
    this.opts.onPeer({ id, host, port: svc.port });
  }

  async stop(): Promise<void> {
    clearInterval(this.requery);
    clearInterval(this.rescan);
    await Promise.all([...this.responders.values()].map(close));
    this.responders.clear();
  }
}

function close(r: Responder): Promise<void> {
  r.browser.stop();
  return new Promise((resolve) => {
    const done = setTimeout(resolve, 1000);
    r.bonjour.unpublishAll(() => {
      r.bonjour.destroy();
      clearTimeout(done);
      resolve();
    });
  });
}
