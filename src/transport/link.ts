import type { Socket } from "node:net";
import { TesseraError } from "../errors.js";
import { readNow } from "./busy-poll.js";
import {
  DATA_OP_NAMES,
  FrameDecoder,
  FrameKind,
  HEADER_BYTES,
  encodeFrame,
  roundUpPow2,
  writeHeader,
  type FrameHeader,
} from "./frame.js";

/** Something waiting for the next DATA frame of a link (a collective in progress). */
export interface FrameSink {
  deliver(link: Link, header: FrameHeader, payload: Uint8Array): void;
}

/** A send buffer: header + payload, reused once the socket has let go of it. */
export interface SendSlot {
  bytes: Buffer;
  busy: boolean;
  release: () => void;
}

/** A DATA frame that arrived before anyone asked for it, kept with a copy of its payload. */
interface Early extends FrameHeader {
  buf: Uint8Array;
}

const HEARTBEAT_FRAME = encodeFrame(FrameKind.HEARTBEAT);
/** Above this many bytes of frames nobody asked for yet, stop reading (TCP then slows the sender). */
const EARLY_LIMIT = 64 * 1024 * 1024;
/** Above this many unsent bytes, send() waits for 'drain'. */
export const WRITE_HIGH_WATER = 4 * 1024 * 1024;

/**
 * One TCP connection between two ranks: frames in and out, a FIFO of sinks waiting for DATA frames,
 * and a FIFO of frames that arrived first. Per link, both ends issue the same operations in the same
 * order, so the n-th DATA frame sent is the n-th one the other side expects.
 */
export class Link {
  peerRank = -1;
  /** e.g. "rank 2 (10.0.0.3:40123)"; set once the peer is known. */
  label: string;
  /** Set by the data handler, cleared by the group's monitor tick. */
  rxSinceTick = false;
  txSinceTick = false;
  lost: TesseraError | undefined;
  /** BYE received: the peer closed the group on purpose. */
  said: string | undefined;
  /** Until the handshake proved the peer (handshake.ts), a DATA frame fails the link unread. */
  proven = false;

  onControl: (kind: number, payload: Uint8Array) => void = () => {};
  onLost: (err: TesseraError) => void = () => {};

  private readonly decoder: FrameDecoder;
  private txSeq = 0;
  private rxSeq = 0;
  private readonly sinks: FrameSink[] = [];
  private sinkHead = 0;
  private readonly early: Early[] = [];
  private earlyHead = 0;
  private earlyBytes = 0;
  private readonly spareEarly: Early[] = [];
  private readonly slots: SendSlot[] = [];

  constructor(
    readonly socket: Socket,
    label: string,
    maxPayloadBytes: number,
  ) {
    this.label = label;
    socket.setNoDelay(true);
    this.decoder = new FrameDecoder(maxPayloadBytes, (h, p) => this.onFrame(h, p), () => this.label);
    socket.on("data", (chunk: Buffer) => {
      this.rxSinceTick = true;
      try {
        this.decoder.push(chunk);
      } catch (e) {
        this.fail(asTesseraError(e, this.label));
      }
    });
    socket.on("end", () => this.fail(this.lostError("closed the connection")));
    socket.on("error", (e: NodeJS.ErrnoException) => {
      const what = e.code === "ECONNRESET" ? "reset the connection" : e.code === "EPIPE" ? "closed the connection" : `failed: ${e.message}`;
      this.fail(this.lostError(what));
    });
    socket.on("close", () => this.fail(this.lostError("closed the connection")));
  }

  private lostError(what: string): TesseraError {
    return new TesseraError(this.said !== undefined ? `left the group (${this.said})` : what, this.label);
  }

  // ---- sending ----

  /** A free send buffer with room for `payloadBytes`; the payload goes at offset HEADER_BYTES. */
  acquire(payloadBytes: number): SendSlot {
    const need = HEADER_BYTES + payloadBytes;
    for (const s of this.slots) if (!s.busy && s.bytes.length >= need) return s;
    const slot: SendSlot = { bytes: Buffer.allocUnsafeSlow(roundUpPow2(need)), busy: false, release: () => {} };
    slot.release = () => {
      slot.busy = false;
    };
    this.slots.push(slot);
    return slot;
  }

  /** Sends a DATA frame whose payload is already in slot.bytes[HEADER_BYTES, HEADER_BYTES + payloadBytes). */
  sendData(slot: SendSlot, payloadBytes: number, flags: number, tag: number, aux: number): void {
    if (this.lost) return;
    writeHeader(slot.bytes, 0, payloadBytes, FrameKind.DATA, flags, tag, this.txSeq, aux);
    this.txSeq = (this.txSeq + 1) >>> 0;
    slot.busy = true;
    this.txSinceTick = true;
    this.socket.write(slot.bytes.subarray(0, HEADER_BYTES + payloadBytes), slot.release);
  }

  /** Copies `bytes` into a send buffer and sends it as a DATA frame. */
  sendBytes(bytes: Uint8Array, flags: number, tag: number, aux: number): void {
    const slot = this.acquire(bytes.length);
    slot.bytes.set(bytes, HEADER_BYTES);
    this.sendData(slot, bytes.length, flags, tag, aux);
  }

  sendControl(kind: number, payload?: Uint8Array): void {
    if (this.lost || this.socket.destroyed) return;
    this.txSinceTick = true;
    this.socket.write(kind === FrameKind.HEARTBEAT ? HEARTBEAT_FRAME : encodeFrame(kind, payload));
  }

  get writeBacklog(): number {
    return this.socket.writableLength;
  }

  // ---- receiving ----

  /** Hands the next DATA frame of this link to `sink`: now if one is waiting, else when it arrives. */
  expect(sink: FrameSink): void {
    if (this.earlyHead < this.early.length) {
      const e = this.early[this.earlyHead]!;
      this.early[this.earlyHead++] = undefined as unknown as Early;
      if (this.earlyHead === this.early.length) this.early.length = this.earlyHead = 0;
      this.earlyBytes -= e.length;
      if (this.earlyBytes < EARLY_LIMIT / 2 && this.socket.isPaused()) this.socket.resume();
      try {
        sink.deliver(this, e, e.buf.subarray(0, e.length));
      } catch (err) {
        this.fail(asTesseraError(err, this.label));
      } finally {
        this.spareEarly.push(e);
      }
      return;
    }
    this.sinks.push(sink);
    // the peer left earlier without failing the group (Group.lost): waiting on it is the failure
    if (this.lost) this.onLost(this.lost);
  }

  /** True while some operation waits for this link's next DATA frame. */
  get awaiting(): boolean {
    return this.sinkHead < this.sinks.length;
  }

  /**
   * Busy-poll path (busy-poll.ts): reads what the socket holds right now straight from its fd and
   * feeds it to the decoder, as the 'data' handler would. False when nothing was there.
   */
  pollRead(fd: number, buf: Uint8Array): boolean {
    if (this.lost) return true;
    let r;
    try {
      r = readNow(fd, buf);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.fail(this.lostError(code === "ECONNRESET" ? "reset the connection" : `failed: ${(e as Error).message}`));
      return true;
    }
    if (r === "again") return false;
    if (r === "eof") {
      this.fail(this.lostError("closed the connection"));
      return true;
    }
    this.rxSinceTick = true;
    try {
      this.decoder.push(buf.subarray(0, r));
    } catch (e) {
      this.fail(asTesseraError(e, this.label));
    }
    return true;
  }

  private onFrame(h: FrameHeader, payload: Uint8Array): void {
    if (h.kind !== FrameKind.DATA) {
      if (h.kind !== FrameKind.HEARTBEAT) this.onControl(h.kind, payload);
      return;
    }
    if (!this.proven) throw new TesseraError("sent data before the handshake", this.label);
    if (h.seq !== this.rxSeq) {
      throw new TesseraError(`sent frame #${h.seq} where #${this.rxSeq} was due (corrupt stream)`, this.label);
    }
    this.rxSeq = (this.rxSeq + 1) >>> 0;
    if (this.sinkHead < this.sinks.length) {
      const sink = this.sinks[this.sinkHead]!;
      this.sinks[this.sinkHead++] = undefined as unknown as FrameSink;
      if (this.sinkHead === this.sinks.length) this.sinks.length = this.sinkHead = 0;
      sink.deliver(this, h, payload);
      return;
    }
    this.keepEarly(h, payload);
  }

  private keepEarly(h: FrameHeader, payload: Uint8Array): void {
    let e = this.spareEarly.pop();
    if (!e || e.buf.length < payload.length) {
      const buf = new Uint8Array(roundUpPow2(payload.length));
      e = { length: 0, kind: 0, flags: 0, tag: 0, seq: 0, aux: 0, buf };
    }
    e.length = h.length;
    e.kind = h.kind;
    e.flags = h.flags;
    e.tag = h.tag;
    e.seq = h.seq;
    e.aux = h.aux;
    e.buf.set(payload);
    this.early.push(e);
    this.earlyBytes += e.length;
    if (this.earlyBytes > EARLY_LIMIT) this.socket.pause();
  }

  /** Drops every waiting sink (the group rejects their operations itself). */
  clearSinks(): void {
    this.sinks.length = this.sinkHead = 0;
  }

  /** The handshake is done: full-size frames from now on. */
  setMaxPayload(bytes: number): void {
    this.proven = true;
    this.decoder.maxPayloadBytes = bytes;
  }

  heartbeat(): void {
    this.sendControl(FrameKind.HEARTBEAT);
  }

  fail(err: TesseraError): void {
    if (this.lost) return;
    this.lost = err;
    this.socket.destroy();
    this.onLost(err);
  }

  /** Closes on purpose: tells the peer why, then ends the connection. */
  close(reason: string): void {
    if (this.lost) return;
    this.lost = new TesseraError("closed by this rank", this.label);
    if (!this.socket.destroyed) {
      this.socket.end(encodeFrame(FrameKind.BYE, Buffer.from(reason)));
      // A peer that never reads would keep the socket open forever.
      setTimeout(() => this.socket.destroy(), 2000).unref();
    }
  }
}

/** The error for a DATA frame of the wrong operation: the ranks called collectives in different orders. */
export function wrongOpError(link: Link, got: FrameHeader, wantOp: number, wantTag: number): TesseraError {
  const gotOp = DATA_OP_NAMES[got.flags & 0x7f] ?? `op ${got.flags & 0x7f}`;
  const want = DATA_OP_NAMES[wantOp] ?? `op ${wantOp}`;
  return new TesseraError(
    `sent ${gotOp} (tag ${got.tag}) where this rank expected ${want} (tag ${wantTag}): the ranks called collectives in different orders`,
    link.label,
  );
}

export function asTesseraError(e: unknown, subject: string): TesseraError {
  if (e instanceof TesseraError) return e;
  return new TesseraError(`protocol error: ${e instanceof Error ? e.message : String(e)}`, subject, { cause: e });
}
