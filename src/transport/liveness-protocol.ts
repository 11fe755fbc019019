import { performance } from "node:perf_hooks";

/*
 * Liveness links (liveness.ts): one TCP connection per pair of endpoints, besides the data links.
 * The endpoint with the higher id dials. The listener speaks first, one line HELLO_PREFIX + " <nonce,
 * 64 hex digits>\n"; the dialer answers HELLO_PREFIX + " <its id> <proof> <group id>\n", the proof
 * being auth.ts's livenessProof over the group, its id and that nonce (a dialer without the instance
 * key is dropped before its first byte counts as life). From then on each side writes one byte per period: BEAT (0x01); before it closes on purpose, BYE
 * (0x02), or FAILED (0x03) followed by the reason in UTF-8 up to "\n" when it gives up after an error.
 * Any byte counts as a sign of life.
 *
 * lastHeard (SharedArrayBuffer, Int32 per id): when this endpoint last heard from that id, in ms
 * since `base` (clockMs). Written by the liveness thread, read by the owner without a message.
 */
export const HELLO_PREFIX = "TSL2";
export const BEAT = 0x01;
export const BYE = 0x02;
export const FAILED = 0x03;

/** Milliseconds since `base` on a clock every thread of the process shares. */
export function clockMs(base: number): number {
  return Math.round(performance.timeOrigin + performance.now() - base);
}

export interface LivenessThreadData {
  host: string;
  /** The instance key, 64 hex digits (auth.ts). */
  key: string;
  self: number;
  groupId: string;
  /** Names this process in the message written when it ends itself. */
  owner: string;
  periodMs: number;
  lostAfterMs: number;
  exitIfBlockedMs: number | undefined;
  base: number;
  lastHeard: SharedArrayBuffer;
}

export interface WatchedPeer {
  id: number;
  host: string;
  port: number;
  label: string;
}

export type ToLivenessThread = { type: "watch"; peers: WatchedPeer[] } | { type: "taken" } | { type: "close"; failure?: string };

export type FromLivenessThread =
  | { type: "listening"; port: number }
  | { type: "error"; message: string }
  | { type: "lost"; id: number; message: string };
