import { TesseraError } from "../errors.js";
import { COMPRESSED_FLAG, DataOp, HEADER_BYTES, type FrameHeader } from "./frame.js";
import { wrongOpError, type FrameSink, type Link } from "./link.js";
import { compressedBytes, dequantizeInto, quantizeInto } from "./quantize.js";
import { addInto, mod, ringChunk, sumInRankOrder } from "./reduce.js";

/** What an operation needs from its group. */
export interface OpContext {
  readonly rank: number;
  readonly size: number;
  /** links[r] for every r ≠ rank. */
  readonly links: readonly (Link | undefined)[];
  readonly scratch: Scratch;
  /** Registers a running operation so a group failure can reject it. */
  start(op: Op): void;
  finished(op: Op): void;
}

/**
 * One collective in progress: a single promise, settled from inside the socket callbacks that
 * deliver its frames (no timers). Subclasses count the frames they still need.
 */
export abstract class Op implements FrameSink {
  readonly promise: Promise<void>;
  private resolveFn!: () => void;
  private rejectFn!: (e: TesseraError) => void;
  private settled = false;

  constructor(protected readonly ctx: OpContext) {
    this.promise = new Promise<void>((res, rej) => {
      this.resolveFn = res;
      this.rejectFn = rej;
    });
    ctx.start(this);
  }

  abstract deliver(link: Link, header: FrameHeader, payload: Uint8Array): void;

  protected finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.ctx.finished(this);
    this.resolveFn();
  }

  abort(err: TesseraError): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(err);
  }

  protected link(r: number): Link {
    return this.ctx.links[r]!;
  }
}

function checkOp(link: Link, h: FrameHeader, op: number, tag: number, compressed: boolean, elements: number): void {
  if ((h.flags & 0x7f) !== op || h.tag !== tag) throw wrongOpError(link, h, op, tag);
  if (((h.flags & COMPRESSED_FLAG) !== 0) !== compressed) {
    throw new TesseraError(
      `sent a ${compressed ? "raw" : "compressed"} tensor where this rank uses ${compressed ? "compression" : "none"}: every rank must pass the same compress option`,
      link.label,
    );
  }
  if (h.aux !== elements) {
    throw new TesseraError(`sent ${h.aux} values where this rank has ${elements}: the ranks disagree on the tensor size`, link.label);
  }
  const want = compressed ? compressedBytes(elements) : elements * 4;
  if (h.length !== want) throw new TesseraError(`sent a ${h.length}-byte payload for ${elements} values (expected ${want})`, link.label);
}

/**
 * Buffers reused across collectives: one float32 slot per rank (partials from the others), a float64
 * accumulator and a byte buffer for compression. Views are cached per size, so a decode loop that
 * reduces the same size every step allocates nothing.
 */
export class Scratch {
  private slots: Float32Array[];
  private slotViews: Float32Array[] = [];
  private slotBytes: Uint8Array[] = [];
  private viewN = -1;
  private acc = new Float64Array(0);
  private packed = new Uint8Array(0);

  constructor(private readonly size: number) {
    this.slots = Array.from({ length: size }, () => new Float32Array(0));
  }

  /** Float32 and byte views of rank r's slot, n floats long. */
  slot(r: number, n: number): { f32: Float32Array; bytes: Uint8Array } {
    if (n !== this.viewN) {
      for (let i = 0; i < this.size; i++) {
        if (this.slots[i]!.length < n) this.slots[i] = new Float32Array(Math.max(n, this.slots[i]!.length * 2));
        const s = this.slots[i]!;
        this.slotViews[i] = s.subarray(0, n);
        this.slotBytes[i] = new Uint8Array(s.buffer, 0, n * 4);
      }
      this.viewN = n;
    }
    return { f32: this.slotViews[r]!, bytes: this.slotBytes[r]! };
  }

  accumulator(n: number): Float64Array {
    if (this.acc.length < n) this.acc = new Float64Array(n);
    return this.acc;
  }

  packBuffer(bytes: number): Uint8Array {
    if (this.packed.length < bytes) this.packed = new Uint8Array(bytes);
    return this.packed;
  }
}

/** Every rank sends its whole partial to every other and sums all partials locally in rank order. */
export class DirectAllReduce extends Op {
  private pending: number;
  private readonly parts: Float32Array[] = [];

  constructor(
    ctx: OpContext,
    private readonly data: Float32Array,
    private readonly compress: boolean,
  ) {
    super(ctx);
    const n = data.length;
    const { rank, size, scratch } = ctx;
    for (let r = 0; r < size; r++) this.parts.push(r === rank ? data : scratch.slot(r, n).f32);
    const flags = DataOp.ALL_REDUCE | (compress ? COMPRESSED_FLAG : 0);
    if (compress) {
      const bytes = compressedBytes(n);
      const packed = scratch.packBuffer(bytes);
      quantizeInto(data, packed, 0);
      // Sum what the others will see of this partial, so every rank adds the same numbers.
      const own = scratch.slot(rank, n).f32;
      dequantizeInto(packed, n, own);
      this.parts[rank] = own;
      const view = packed.subarray(0, bytes);
      for (let r = 0; r < size; r++) if (r !== rank) this.link(r).sendBytes(view, flags, 0, n);
    } else {
      const view = new Uint8Array(data.buffer, data.byteOffset, n * 4);
      for (let r = 0; r < size; r++) if (r !== rank) this.link(r).sendBytes(view, flags, 0, n);
    }
    this.pending = size - 1;
    for (let r = 0; r < size; r++) if (r !== rank) this.link(r).expect(this);
  }

  deliver(link: Link, h: FrameHeader, payload: Uint8Array): void {
    const n = this.data.length;
    checkOp(link, h, DataOp.ALL_REDUCE, 0, this.compress, n);
    const slot = this.ctx.scratch.slot(link.peerRank, n);
    if (this.compress) dequantizeInto(payload, n, slot.f32);
    else slot.bytes.set(payload);
    if (--this.pending === 0) {
      sumInRankOrder(this.parts, this.data, this.ctx.scratch.accumulator(n));
      this.finish();
    }
  }
}

/**
 * Ring all-reduce: N−1 reduce-scatter steps (chunk c is summed along the ring, ending at rank c−1),
 * then N−1 all-gather steps that pass each finished chunk around. Each chunk is summed once, by one
 * path, and copied everywhere else, so every rank ends with the same bits.
 */
export class RingAllReduce extends Op {
  private step = 0;
  private readonly left: Link;
  private readonly right: Link;
  private readonly steps: number;

  constructor(
    ctx: OpContext,
    private readonly data: Float32Array,
    private readonly compress: boolean,
  ) {
    super(ctx);
    const { rank, size } = ctx;
    this.left = this.link(mod(rank - 1, size));
    this.right = this.link(mod(rank + 1, size));
    this.steps = 2 * (size - 1);
    this.sendChunk(rank, DataOp.RING_REDUCE_SCATTER, 0);
    for (let s = 0; s < this.steps; s++) this.left.expect(this);
  }

  private chunk(c: number): Float32Array {
    const { start, end } = ringChunk(this.data.length, this.ctx.size, c);
    return this.data.subarray(start, end);
  }

  private sendChunk(c: number, op: number, tag: number): void {
    const chunk = this.chunk(c);
    const flags = op | (this.compress ? COMPRESSED_FLAG : 0);
    if (this.compress) {
      const bytes = compressedBytes(chunk.length);
      const slot = this.right.acquire(bytes);
      quantizeInto(chunk, slot.bytes, HEADER_BYTES);
      this.right.sendData(slot, bytes, flags, tag, chunk.length);
    } else {
      this.right.sendBytes(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length * 4), flags, tag, chunk.length);
    }
  }

  deliver(link: Link, h: FrameHeader, payload: Uint8Array): void {
    const { rank, size } = this.ctx;
    const s = this.step++;
    if (s < size - 1) {
      // reduce-scatter: add the left neighbour's running sum of chunk (rank − s − 1) to ours
      const c = mod(rank - s - 1, size);
      const chunk = this.chunk(c);
      checkOp(link, h, DataOp.RING_REDUCE_SCATTER, s, this.compress, chunk.length);
      const recv = this.ctx.scratch.slot(rank, chunk.length);
      if (this.compress) dequantizeInto(payload, chunk.length, recv.f32);
      else recv.bytes.set(payload);
      addInto(chunk, recv.f32);
      if (s < size - 2) {
        this.sendChunk(c, DataOp.RING_REDUCE_SCATTER, s + 1);
      } else {
        // chunk c is complete here; with compression, keep exactly what the others will receive
        if (this.compress) this.roundTripCompressed(chunk);
        this.sendChunk(c, DataOp.RING_ALL_GATHER, 0);
      }
    } else {
      const t = s - (size - 1);
      const c = mod(rank - t, size);
      const chunk = this.chunk(c);
      checkOp(link, h, DataOp.RING_ALL_GATHER, t, this.compress, chunk.length);
      if (this.compress) dequantizeInto(payload, chunk.length, chunk);
      else new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length * 4).set(payload);
      if (t < size - 2) this.sendChunk(c, DataOp.RING_ALL_GATHER, t + 1);
    }
    if (this.step === this.steps) this.finish();
  }

  private roundTripCompressed(chunk: Float32Array): void {
    const packed = this.ctx.scratch.packBuffer(compressedBytes(chunk.length));
    quantizeInto(chunk, packed, 0);
    dequantizeInto(packed, chunk.length, chunk);
  }
}

type Bytes = Uint8Array | Float32Array | Int32Array | Uint32Array | Float64Array | Int8Array | Int16Array | Uint16Array;

export function bytesOf(a: Bytes): Uint8Array {
  return a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Receives one SEND frame from `from` into `into`; resolves with the number of bytes received. */
export class Recv extends Op {
  received = 0;
  constructor(
    ctx: OpContext,
    from: number,
    private readonly into: Uint8Array,
    private readonly tag: number,
  ) {
    super(ctx);
    this.link(from).expect(this);
  }

  deliver(link: Link, h: FrameHeader, payload: Uint8Array): void {
    if ((h.flags & 0x7f) !== DataOp.SEND || h.tag !== this.tag) throw wrongOpError(link, h, DataOp.SEND, this.tag);
    if (payload.length > this.into.length) {
      throw new TesseraError(`sent ${payload.length} bytes (tag ${this.tag}) but the receive buffer holds ${this.into.length}`, link.label);
    }
    this.into.set(payload);
    this.received = payload.length;
    this.finish();
  }
}

/** Broadcast from `root`: the root has nothing to wait for; the others receive into `data` in place. */
export class BroadcastRecv extends Op {
  constructor(
    ctx: OpContext,
    root: number,
    private readonly data: Uint8Array,
  ) {
    super(ctx);
    this.link(root).expect(this);
  }

  deliver(link: Link, h: FrameHeader, payload: Uint8Array): void {
    if ((h.flags & 0x7f) !== DataOp.BROADCAST) throw wrongOpError(link, h, DataOp.BROADCAST, 0);
    if (payload.length !== this.data.length) {
      throw new TesseraError(`broadcast ${payload.length} bytes where this rank expected ${this.data.length}`, link.label);
    }
    this.data.set(payload);
    this.finish();
  }
}

/** Every rank tells every other that it got here, then waits to hear the same from all. */
export class Barrier extends Op {
  private pending: number;
  constructor(ctx: OpContext) {
    super(ctx);
    const empty = new Uint8Array(0);
    for (let r = 0; r < ctx.size; r++) if (r !== ctx.rank) this.link(r).sendBytes(empty, DataOp.BARRIER, 0, 0);
    this.pending = ctx.size - 1;
    for (let r = 0; r < ctx.size; r++) if (r !== ctx.rank) this.link(r).expect(this);
  }

  deliver(link: Link, h: FrameHeader): void {
    if ((h.flags & 0x7f) !== DataOp.BARRIER) throw wrongOpError(link, h, DataOp.BARRIER, 0);
    if (--this.pending === 0) this.finish();
  }
}
