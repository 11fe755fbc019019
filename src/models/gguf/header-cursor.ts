import { TesseraError } from "../../errors.js";
import type { RandomAccessFile } from "../source/random-access-file.js";

const CHUNK = 1 << 20;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Sequential little-endian reads over the start of a file, loaded a chunk at a time. `need(n)` must
 * be awaited before reading n bytes; it fails with a clear error when the file ends first, before
 * allocating anything for an untrusted length.
 */
export class HeaderCursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(private readonly file: RandomAccessFile) {}

  get remaining(): number {
    return this.file.size - this.pos;
  }

  async need(n: number, what: string): Promise<void> {
    if (this.pos + n <= this.bufStart + this.buf.length) return;
    if (n > this.remaining) {
      throw new TesseraError(`file is truncated: ${what} at byte ${this.pos} needs ${n} bytes, only ${this.remaining} left`, this.file.path);
    }
    const len = Math.min(Math.max(n, CHUNK), this.remaining);
    this.buf = await this.file.read(this.pos, len, what);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
  }

  private at(n: number): number {
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }

  u8(): number { return this.view.getUint8(this.at(1)); }
  i8(): number { return this.view.getInt8(this.at(1)); }
  u16(): number { return this.view.getUint16(this.at(2), true); }
  i16(): number { return this.view.getInt16(this.at(2), true); }
  u32(): number { return this.view.getUint32(this.at(4), true); }
  i32(): number { return this.view.getInt32(this.at(4), true); }
  f32(): number { return this.view.getFloat32(this.at(4), true); }
  f64(): number { return this.view.getFloat64(this.at(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.at(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.at(8), true); }

  /** A u64 that must fit a double exactly (counts, lengths, offsets). */
  count(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new TesseraError(`${what} ${v} at byte ${this.pos - 8} is absurdly large`, this.file.path);
    }
    return Number(v);
  }

  /** Bytes loaded and not yet consumed. */
  get buffered(): number {
    return this.bufStart + this.buf.length - this.pos;
  }

  /**
   * The next string when it is already loaded whole, else undefined (nothing consumed): lets array
   * reads skip an await per item.
   */
  bufferedString(what: string): string | undefined {
    if (this.buffered < 8) return undefined;
    const o = this.pos - this.bufStart;
    const len = this.view.getBigUint64(o, true);
    if (len > BigInt(this.buffered - 8)) return undefined;
    const n = Number(len);
    this.pos += 8 + n;
    try {
      return utf8.decode(this.buf.subarray(o + 8, o + 8 + n));
    } catch {
      throw new TesseraError(`${what} at byte ${this.pos - n} is not valid UTF-8`, this.file.path);
    }
  }

  /** GGUF string: u64 byte length, then UTF-8 bytes. */
  async string(what: string): Promise<string> {
    await this.need(8, `${what} length`);
    const len = this.count(`${what} length`);
    if (len > this.remaining) {
      throw new TesseraError(`${what} length ${len} at byte ${this.pos - 8} runs past the end of the file (${this.remaining} bytes left)`, this.file.path);
    }
    await this.need(len, what);
    const o = this.at(len);
    try {
      return utf8.decode(this.buf.subarray(o, o + len));
    } catch {
      throw new TesseraError(`${what} at byte ${this.pos - len} is not valid UTF-8`, this.file.path);
    }
  }
}
