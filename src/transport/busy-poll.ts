import fs from "node:fs";
import type { Socket } from "node:net";

/*
 * Synchronous reads from a link's socket for the decode hot loop. A decode-sized all-reduce over
 * loopback takes ~120 µs through the event loop (epoll wake-up, stream callbacks, promise) but
 * ~15 µs when the rank spins on a non-blocking read of the socket's fd (bench/transport/syncpoll.ts).
 * Reading the fd behind libuv's back is safe because libuv reads only during an event-loop turn,
 * and the busy-poll never yields one; whatever libuv read earlier already went through the link's
 * decoder (checked by canPoll).
 */

/** The socket's file descriptor, or undefined where Node does not expose one (Windows, pipes). */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/**
 * True when every byte libuv has received was already handed to the link's decoder and every byte
 * written has left for the kernel: only then can a collective run on the fd alone.
 */
export function canPoll(socket: Socket): boolean {
  return !socket.destroyed && socket.readableFlowing === true && socket.readableLength === 0 && socket.writableLength === 0 && socketFd(socket) !== undefined;
}

export type PollResult = number | "again" | "eof";

/** One non-blocking read: bytes read, "again" when nothing is there yet, "eof" when the peer closed. */
export function readNow(fd: number, into: Uint8Array): PollResult {
  try {
    const k = fs.readSync(fd, into, 0, into.length, null);
    return k === 0 ? "eof" : k;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EAGAIN" || code === "EWOULDBLOCK") return "again";
    throw e;
  }
}

/**
 * Calls `step` (one poll; true once done) until it says done or `budgetMs` have passed; returns
 * whether it finished. The budget bounds what spinning wastes when the peer is descheduled (more
 * runnable processes than cores): the caller then waits on the event loop instead, which sleeps
 * until data arrives. EAGAIN is thrown and caught on every empty poll: stack traces are off meanwhile.
 */
export function spinFor(step: () => boolean, budgetMs: number): boolean {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const t0 = performance.now();
    let spins = 0;
    while (!step()) {
      if ((++spins & 15) === 0 && performance.now() - t0 > budgetMs) return false;
    }
    return true;
  } finally {
    Error.stackTraceLimit = limit;
  }
}
