import { decode, encode } from "@msgpack/msgpack";

/**
 * Peer-link framing: each frame is a 4-byte big-endian length followed by that many bytes of one
 * msgpack value. A frame longer than the decoder's limit, or bytes that are not one msgpack value,
 * make the decoder throw a FrameError; the link then drops the peer.
 * Bulk probe data skips msgpack (it cost ~10 ms per MiB to encode and decode): a body that starts
 * with 0xc1 — a byte msgpack never uses — is [0xc1][u32 BE n][payload] and decodes to
 * { t: "bulk", n, data: payload }.
 */
const RAW_BULK = 0xc1;
export class FrameError extends Error {
  override readonly name = "FrameError";
}

export function encodeFrame(message: unknown): Buffer {
  const body = encode(message, { ignoreUndefined: true });
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** A bulk frame as two buffers (header, payload), so the payload is not copied. */
export function encodeBulkFrame(n: number, data: Uint8Array): [Buffer, Uint8Array] {
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(5 + data.length, 0);
  head[4] = RAW_BULK;
  head.writeUInt32BE(n, 5);
  return [head, data];
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length of the frame being read, or -1 while its header is not read yet. */
  private need = -1;

  constructor(public maxFrameBytes: number) {}

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; returns the messages of all frames completed so far. */
  push(data: Buffer): unknown[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const out: unknown[] = [];
    while (true) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        const length = this.take(4).readUInt32BE(0);
        if (length > this.maxFrameBytes) throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
        if (length === 0) throw new FrameError("empty frame");
        this.need = length;
      }
      if (this.buffered < this.need) break;
      const frame = this.take(this.need);
      this.need = -1;
      if (frame[0] === RAW_BULK) {
        if (frame.length < 5) throw new FrameError("truncated bulk frame");
        out.push({ t: "bulk", n: frame.readUInt32BE(1), data: frame.subarray(5) });
        continue;
      }
      try {
        out.push(decode(frame));
      } catch (e) {
        throw new FrameError(`malformed msgpack frame: ${(e as Error).message}`);
      }
    }
    return out;
  }

  /** Removes the next n buffered bytes; copies only when they span chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
