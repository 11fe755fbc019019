import { parseCommandArgs, numberOption } from "../../src/cli/args.js";
import { TesseraError, isTesseraError } from "../../src/errors.js";
import { DelayProxy, type LinkShape } from "../../src/transport/delay-proxy.js";

const USAGE = `usage: delay-proxy-cli --listen [HOST:]PORT --target HOST:PORT [--latency-us N] [--bandwidth-mbps N]
                       [--back-latency-us N] [--back-bandwidth-mbps N]

Relays TCP connections from --listen to --target, adding one-way latency (µs) and a bandwidth cap
(megabits per second, 0 = none) in each direction. The --back-* options shape target → client
differently (default: same as forward). Prints "listening HOST:PORT" once ready; stops on SIGINT/SIGTERM.`;

function parseHostPort(s: string, what: string, defaultHost?: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  const host = i < 0 ? defaultHost : s.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(i < 0 ? s : s.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TesseraError(`expected ${defaultHost ? "[HOST:]PORT" : "HOST:PORT"}, got '${s}'`, `--${what}`);
  }
  return { host, port };
}

function shape(latency: unknown, mbps: unknown, fallback?: LinkShape): LinkShape {
  const latencyUs = numberOption("latency-us", latency, fallback?.latencyUs ?? 0);
  const bw = numberOption("bandwidth-mbps", mbps, fallback ? (fallback.bandwidthBytesPerSec ?? 0) / 125_000 : 0);
  if (latencyUs < 0 || bw < 0) throw new TesseraError("latency and bandwidth must be ≥ 0");
  return { latencyUs, bandwidthBytesPerSec: bw * 125_000 };
}

async function runDelayProxyCli(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    {
      listen: { type: "string" },
      target: { type: "string" },
      "latency-us": { type: "string" },
      "bandwidth-mbps": { type: "string" },
      "back-latency-us": { type: "string" },
      "back-bandwidth-mbps": { type: "string" },
      help: { type: "boolean" },
    },
    { allowPositionals: false, envFallback: false },
  );
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.listen || !values.target) throw new TesseraError(`--listen and --target are required\n\n${USAGE}`);
  const listen = parseHostPort(values.listen, "listen", "127.0.0.1");
  const target = parseHostPort(values.target, "target");
  const forward = shape(values["latency-us"], values["bandwidth-mbps"]);
  const backward = shape(values["back-latency-us"], values["back-bandwidth-mbps"], forward);
  const proxy = await DelayProxy.start({ listenHost: listen.host, listenPort: listen.port, target, forward, backward });
  console.log(`listening ${proxy.host}:${proxy.port}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await proxy.close();
  return 0;
}

try {
  process.exitCode = await runDelayProxyCli(process.argv.slice(2));
} catch (e) {
  console.error(`delay-proxy: ${isTesseraError(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 2;
}
