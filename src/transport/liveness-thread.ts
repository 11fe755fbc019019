// The liveness thread (see liveness.ts): its own sockets to every peer, heartbeats out, last-heard
// times in, so a process whose main thread is blocked in a long synchronous step still shows that
// it is alive, and still notices a peer that stopped.
import fs from "node:fs";
import net from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { livenessProof, nonce, sameProof } from "./auth.js";
import {
  BEAT,
  BYE,
  FAILED,
  HELLO_PREFIX,
  clockMs,
  type LivenessThreadData,
  type ToLivenessThread,
  type FromLivenessThread,
} from "./liveness-protocol.js";

const data = workerData as LivenessThreadData;
const key = Buffer.from(data.key, "hex");
const lastHeard = new Int32Array(data.lastHeard);
const tell = (m: FromLivenessThread): void => parentPort!.postMessage(m);
const beat = Buffer.of(BEAT);
const bye = Buffer.of(BYE);
const DIAL_RETRY_MS = 100;
/** A FAILED reason is cut here (it goes into one error line). */
const MAX_REASON = 4096;

interface Peer {
  id: number;
  label: string;
  socket: net.Socket | undefined;
  /** It said BYE: its going away is not a loss. */
  left: boolean;
  /** After FAILED: the reason so far (bytes up to "\n"). */
  failure: Buffer | undefined;
  lost: boolean;
}

const peers = new Map<number, Peer>();
let watching = false;
let closing = false;
let exitTimer: NodeJS.Timeout | undefined;

const heard = (id: number): void => void Atomics.store(lastHeard, id, clockMs(data.base));

function attach(peer: Peer, socket: net.Socket): void {
  if (peer.socket || peer.lost || closing) return void socket.destroy();
  peer.socket = socket;
  heard(peer.id);
  socket.on("data", (chunk: Buffer) => {
    heard(peer.id);
    if (!peer.failure) {
      const at = chunk.indexOf(FAILED);
      if (chunk.subarray(0, at < 0 ? chunk.length : at).includes(BYE)) peer.left = true;
      if (at < 0) return;
      peer.failure = Buffer.alloc(0);
      chunk = chunk.subarray(at + 1);
    }
    const nl = chunk.indexOf(0x0a);
    peer.failure = Buffer.concat([peer.failure, nl < 0 ? chunk : chunk.subarray(0, nl)]);
    if (nl >= 0 || peer.failure.length > MAX_REASON) lose(peer, `failed: ${peer.failure.subarray(0, MAX_REASON).toString("utf8")}`);
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    peer.socket = undefined;
    if (!peer.left) lose(peer, "closed its heartbeat link (the process is gone)");
  });
}

function lose(peer: Peer, what: string): void {
  if (peer.lost || peer.left || closing) return;
  peer.lost = true;
  peer.socket?.destroy();
  tell({ type: "lost", id: peer.id, message: what });
  // The owning thread answers with "taken" unless it is blocked in a synchronous call: then only
  // this thread can keep the promise that a lost peer ends every other rank within seconds.
  if (data.exitIfBlockedMs !== undefined && !exitTimer) {
    exitTimer = setTimeout(() => {
      fs.writeSync(2, `${data.owner}: ${peer.label} ${what}; this process was blocked in a step and exits\n`);
      process.kill(process.pid, "SIGKILL");
    }, data.exitIfBlockedMs);
  }
}

/** Accepted before "watch" arrived. */
const early: { id: number; socket: net.Socket; rest: Buffer }[] = [];

function accepted(id: number, socket: net.Socket, rest: Buffer): void {
  const peer = peers.get(id);
  if (!peer) return void socket.destroy();
  attach(peer, socket);
  if (rest.length) socket.emit("data", rest);
}

/** Reads one line (up to "\n", at most 512 bytes) off a socket, then hands back what followed it. */
function readLine(socket: net.Socket, done: (line: string, rest: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(0x0a);
    if (nl < 0) {
      if (head.length > 512) socket.destroy();
      return;
    }
    socket.off("data", onData);
    done(head.subarray(0, nl).toString("latin1"), head.subarray(nl + 1));
  };
  socket.on("data", onData);
}

const server = net.createServer({ noDelay: true }, (socket) => {
  // CHALLENGE "TSL2 <nonce>\n" out; HELLO "TSL2 <id> <proof> <group id>\n" in, from a peer with a higher id.
  const challenge = nonce().toString("hex");
  socket.write(`${HELLO_PREFIX} ${challenge}\n`);
  readLine(socket, (line, rest) => {
    const [magic, idText, proof, ...group] = line.split(" ");
    const id = Number(idText);
    const groupId = group.join(" ");
    if (magic !== HELLO_PREFIX || groupId !== data.groupId || !Number.isInteger(id) || id <= data.self) return void socket.destroy();
    if (!proof || !sameProof(Buffer.from(proof, "latin1"), Buffer.from(livenessProof(key, groupId, id, challenge), "latin1"))) return void socket.destroy();
    // A peer may get the addresses (and dial) before this thread does: hold it until watch.
    if (!watching) early.push({ id, socket, rest });
    else accepted(id, socket, rest);
  });
  socket.on("error", () => {});
});
server.on("error", (e) => tell({ type: "error", message: e.message }));
server.listen({ host: data.host, port: 0, exclusive: true }, () => {
  tell({ type: "listening", port: (server.address() as net.AddressInfo).port });
});

function dial(peer: Peer, host: string, port: number): void {
  if (peer.socket || peer.lost || closing) return;
  const socket = net.connect({ host, port, noDelay: true });
  socket.once("error", () => setTimeout(() => dial(peer, host, port), DIAL_RETRY_MS).unref());
  socket.once("connect", () => {
    readLine(socket, (line, rest) => {
      const [magic, challenge] = line.split(" ");
      if (magic !== HELLO_PREFIX || !challenge) return void socket.destroy();
      socket.write(`${HELLO_PREFIX} ${data.self} ${livenessProof(key, data.groupId, data.self, challenge)} ${data.groupId}\n`);
      attach(peer, socket);
      if (rest.length) socket.emit("data", rest);
    });
  });
}

function tick(): void {
  const now = clockMs(data.base);
  for (const peer of peers.values()) {
    if (peer.lost || peer.left) continue;
    if (peer.socket && !peer.socket.destroyed) peer.socket.write(beat);
    const silent = now - Atomics.load(lastHeard, peer.id);
    if (silent >= data.lostAfterMs) {
      lose(peer, `sent no heartbeat for ${silent} ms (the process is stopped, or its host is unreachable)`);
    }
  }
}

parentPort!.on("message", (m: ToLivenessThread) => {
  if (m.type === "watch" && !watching) {
    watching = true;
    const now = clockMs(data.base);
    for (const p of m.peers) {
      const peer: Peer = { id: p.id, label: p.label, socket: undefined, left: false, failure: undefined, lost: false };
      peers.set(p.id, peer);
      Atomics.store(lastHeard, p.id, now);
      if (p.id < data.self) dial(peer, p.host, p.port);
    }
    for (const e of early.splice(0)) accepted(e.id, e.socket, e.rest);
    setInterval(tick, data.periodMs);
  } else if (m.type === "taken") {
    clearTimeout(exitTimer);
    exitTimer = undefined;
  } else if (m.type === "close") {
    closing = true;
    clearTimeout(exitTimer);
    server.close();
    const last = m.failure === undefined ? bye : Buffer.concat([Buffer.of(FAILED), Buffer.from(m.failure.replace(/\n/g, " ")), Buffer.of(0x0a)]);
    for (const peer of peers.values()) peer.socket?.end(last);
    // Let the last words leave before the thread goes.
    setTimeout(() => process.exit(0), 50);
  }
});
