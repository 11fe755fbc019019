import net from "node:net";
import { TesseraError } from "../errors.js";

/**
 * The listening socket of one rank. Open it before the peers are known (port 0 picks a free port,
 * which the runner then reports); connections that arrive before a group takes it over are held.
 */
export class GroupListener {
  private held: net.Socket[] = [];
  private handler: ((s: net.Socket) => void) | undefined;

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on("connection", (s) => {
      if (this.handler) this.handler(s);
      else {
        this.held.push(s);
        s.on("error", () => {});
        s.on("close", () => (this.held = this.held.filter((x) => x !== s)));
      }
    });
  }

  static open(host: string, port: number): Promise<GroupListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true });
      server.once("error", (e: NodeJS.ErrnoException) => {
        reject(new TesseraError(`cannot listen for peers: ${e.code ?? e.message}`, `${host}:${port}`, { cause: e }));
      });
      server.listen({ host, port, exclusive: true }, () => {
        server.removeAllListeners("error");
        server.on("error", () => {});
        const addr = server.address() as net.AddressInfo;
        resolve(new GroupListener(server, host, addr.port));
      });
    });
  }

  /** Routes every held and future connection to `handler`. */
  take(handler: (s: net.Socket) => void): void {
    this.handler = handler;
    const held = this.held;
    this.held = [];
    for (const s of held) {
      s.removeAllListeners("error");
      s.removeAllListeners("close");
      handler(s);
    }
  }

  close(): void {
    this.handler = undefined;
    this.server.close();
    for (const s of this.held) s.destroy();
    this.held = [];
  }
}
