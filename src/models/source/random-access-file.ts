import { open, type FileHandle } from "node:fs/promises";
import { TesseraError } from "../../errors.js";

/**
 * A plain Uint8Array over memory that is not zeroed first (it is about to be overwritten by a read);
 * not a pooled Buffer, so the bytes own their ArrayBuffer.
 */
export function uninitializedBytes(length: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
}

/** One positional read may not exceed this (Node refuses reads past 2 GiB). */
const MAX_READ = 1 << 30;

/**
 * A file opened for positional reads. Every read is checked against the file size first, so a length
 * taken from an untrusted header never allocates before it is known to fit.
 */
export class RandomAccessFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<RandomAccessFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new TesseraError(code === "ENOENT" ? "file not found" : `cannot open (${code ?? String(e)})`, path, { cause: e });
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new TesseraError("not a regular file", path);
    }
    return new RandomAccessFile(path, fh, st.size);
  }

  /** Throws a clear error when [position, position + length) is not inside the file. */
  checkRange(position: number, length: number, what: string): void {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > this.size) {
      throw new TesseraError(
        `file is truncated or corrupt: ${what} needs bytes ${position}..${position + length} but the file has ${this.size}`,
        this.path,
      );
    }
  }

  /** A fresh buffer holding exactly [position, position + length). */
  async read(position: number, length: number, what = "data"): Promise<Uint8Array> {
    this.checkRange(position, length, what);
    const out = uninitializedBytes(length);
    await this.readInto(out, 0, length, position, what);
    return out;
  }

  async readInto(target: Uint8Array, offset: number, length: number, position: number, what = "data"): Promise<void> {
    this.checkRange(position, length, what);
    let done = 0;
    while (done < length) {
      const want = Math.min(MAX_READ, length - done);
      const { bytesRead } = await this.fh.read(target, offset + done, want, position + done);
      if (bytesRead === 0) {
        throw new TesseraError(`file is truncated: ${what} ends at byte ${position + length} but reading stopped at ${position + done}`, this.path);
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
