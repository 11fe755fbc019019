import { TesseraError } from "../errors.js";

/*
 * Frame layout on every data-plane link (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     payload length in bytes (not counting this 16-byte header)
 *   4       1     kind      (FrameKind: CHALLENGE, HELLO, WELCOME, REFUSE, DATA, HEARTBEAT, BYE, ABORT)
 *   5       1     flags     (DATA: DataOp in the low 7 bits, bit 7 = payload is 8-bit compressed)
 *   6       2     tag       (DATA: the caller's tag for send/recv, the step for ring all-reduce)
 *   8       4     seq       (DATA: per-link, per-direction sequence number, starts at 0; others: 0)
 *   12      4     aux       (DATA: element count of the tensor the payload carries)
 *   16      len   payload
 *
 * Control payloads (the handshake of handshake.ts; proofs in auth.ts):
 *   CHALLENGE (listener → dialer, first)  u32 magic "TSR2", 32-byte nonce
 *   HELLO   (dialer → listener)  u32 magic, u32 rank, u32 size, 32-byte nonce, 32-byte proof, then the group id as UTF-8
 *   WELCOME (listener → dialer)  u32 magic, u32 rank, u32 size, 32-byte proof
 *   REFUSE, BYE, ABORT           a UTF-8 reason
 *   HEARTBEAT                    empty
 */
export const HEADER_BYTES = 16;
export const PROTOCOL_MAGIC = 0x32525354; // "TSR2" read as a little-endian u32

export const FrameKind = {
  HELLO: 1,
  WELCOME: 2,
  REFUSE: 3,
  DATA: 4,
  HEARTBEAT: 5,
  BYE: 6,
  ABORT: 7,
  CHALLENGE: 8,
} as const;

/** What a DATA frame belongs to, so a rank that calls collectives in another order is caught at once. */
export const DataOp = {
  ALL_REDUCE: 1,
  RING_REDUCE_SCATTER: 2,
  RING_ALL_GATHER: 3,
  SEND: 4,
  BROADCAST: 5,
  BARRIER: 6,
} as const;
export const COMPRESSED_FLAG = 0x80;

export const DATA_OP_NAMES: Record<number, string> = {
  1: "all-reduce",
  2: "all-reduce (ring reduce-scatter)",
  3: "all-reduce (ring all-gather)",
  4: "send",
  5: "broadcast",
  6: "barrier",
};

/** A decoded header. The decoder reuses one instance: read it during the callback, never keep it. */
export interface FrameHeader {
  length: number;
  kind: number;
  flags: number;
  tag: number;
  seq: number;
  aux: number;
}

export function writeHeader(
  into: Uint8Array,
  offset: number,
  length: number,
  kind: number,
  flags: number,
  tag: number,
  seq: number,
  aux: number,
): void {
  writeU32(into, offset, length);
  into[offset + 4] = kind;
  into[offset + 5] = flags;
  into[offset + 6] = tag & 0xff;
  into[offset + 7] = (tag >>> 8) & 0xff;
  writeU32(into, offset + 8, seq);
  writeU32(into, offset + 12, aux);
}

export function readHeader(from: Uint8Array, offset: number, into: FrameHeader): void {
  into.length = readU32(from, offset);
  into.kind = from[offset + 4]!;
  into.flags = from[offset + 5]!;
  into.tag = from[offset + 6]! | (from[offset + 7]! << 8);
  into.seq = readU32(from, offset + 8);
  into.aux = readU32(from, offset + 12);
}

export function writeU32(into: Uint8Array, offset: number, v: number): void {
  into[offset] = v & 0xff;
  into[offset + 1] = (v >>> 8) & 0xff;
  into[offset + 2] = (v >>> 16) & 0xff;
  into[offset + 3] = (v >>> 24) & 0xff;
}

export function readU32(from: Uint8Array, offset: number): number {
  return (from[offset]! | (from[offset + 1]! << 8) | (from[offset + 2]! << 16) | (from[offset + 3]! << 24)) >>> 0;
}

/** One whole frame as a fresh buffer: for control frames and tests, not for the hot path. */
export function encodeFrame(kind: number, payload: Uint8Array = EMPTY, flags = 0, tag = 0, seq = 0, aux = 0): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  writeHeader(out, 0, payload.length, kind, flags, tag, seq, aux);
  out.set(payload, HEADER_BYTES);
  return out;
}

const EMPTY = new Uint8Array(0);

export type FrameHandler = (header: FrameHeader, payload: Uint8Array) => void;

/**
 * Turns a byte stream back into frames. A frame that lies whole inside one chunk is handed over as a
 * view into that chunk (no copy); one split across chunks is assembled in a buffer the decoder keeps
 * and reuses. The payload view is valid only during the callback.
 */
export class FrameDecoder {
  private readonly header: FrameHeader = { length: 0, kind: 0, flags: 0, tag: 0, seq: 0, aux: 0 };
  private readonly headBytes = new Uint8Array(HEADER_BYTES);
  private headFill = 0;
  /** -1 while reading a header; otherwise payload bytes assembled so far. */
  private bodyFill = -1;
  private body = new Uint8Array(0);

  constructor(
    /** Frames with a longer payload fail the stream (raised once a link's handshake is done). */
    public maxPayloadBytes: number,
    private readonly onFrame: FrameHandler,
    /** Names the sender in errors, e.g. "rank 2 (10.0.0.3:40123)". */
    private readonly source: () => string,
  ) {}

  /** Feeds bytes; calls onFrame for every complete frame. Throws TesseraError on an oversized frame. */
  push(chunk: Uint8Array): void {
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      if (this.bodyFill < 0) {
        if (this.headFill === 0 && end - off >= HEADER_BYTES) {
          readHeader(chunk, off, this.header);
          off += HEADER_BYTES;
        } else {
          const take = Math.min(HEADER_BYTES - this.headFill, end - off);
          this.headBytes.set(chunk.subarray(off, off + take), this.headFill);
          this.headFill += take;
          off += take;
          if (this.headFill < HEADER_BYTES) return;
          readHeader(this.headBytes, 0, this.header);
          this.headFill = 0;
        }
        const len = this.header.length;
        if (len > this.maxPayloadBytes) {
          throw new TesseraError(
            `sent a frame of ${len} bytes, over the limit of ${this.maxPayloadBytes} bytes (not a Tessera data link, or mismatched versions)`,
            this.source(),
          );
        }
        if (end - off >= len) {
          const payload = chunk.subarray(off, off + len);
          off += len;
          this.onFrame(this.header, payload);
          continue;
        }
        if (this.body.length < len) this.body = new Uint8Array(roundUpPow2(len));
        this.bodyFill = 0;
      }
      const len = this.header.length;
      const take = Math.min(len - this.bodyFill, end - off);
      this.body.set(chunk.subarray(off, off + take), this.bodyFill);
      this.bodyFill += take;
      off += take;
      if (this.bodyFill === len) {
        this.bodyFill = -1;
        this.onFrame(this.header, this.body.subarray(0, len));
      }
    }
  }
}

export function roundUpPow2(n: number): number {
  let p = 64;
  while (p < n) p *= 2;
  return p;
}
