import { closeSync, openSync, writeSync } from "node:fs";
import { TesseraError } from "../../errors.js";

/**
 * Initializer bytes written to one file that onnxruntime reads as external data, so a graph's
 * weights need not sit in memory while the session is created (see staging.ts).
 *
 * Layout: blobs one after another, each starting at a multiple of ALIGN bytes; the gaps are
 * never written (holes). onnxruntime maps external data into memory instead of reading it into a
 * buffer only when its offset is a multiple of the allocation granularity (4 KiB on Linux, 64 KiB
 * on Windows); mapped, the pages it packs are dropped again once packing is done.
 */
export class WeightFile {
  static readonly ALIGN = 65536;
  private fd: number | undefined;
  private end = 0;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "w");
    } catch (e) {
      throw new TesseraError(`cannot create the weight staging file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, path, { cause: e });
    }
  }

  /** Bytes the file spans so far. */
  get size(): number {
    return this.end;
  }

  /** Appends `bytes` at the next aligned offset; returns that offset. */
  append(bytes: Uint8Array): number {
    if (this.fd === undefined) throw new Error(`${this.path}: append after close`);
    const offset = Math.ceil(this.end / WeightFile.ALIGN) * WeightFile.ALIGN;
    let done = 0;
    try {
      while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, offset + done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "ENOSPC" ? "the disk is full" : (code ?? String(e));
      throw new TesseraError(`cannot write the weight staging file: ${why}`, this.path, { cause: e });
    }
    this.end = offset + bytes.byteLength;
    return offset;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
