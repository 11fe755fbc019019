import { open, type FileHandle } from "node:fs/promises";

/** Bytes, or a function that makes them when the writer reaches the tensor (so big models stream). */
export type TensorData = Uint8Array | (() => Uint8Array | Promise<Uint8Array>);

export async function resolveData(d: TensorData): Promise<Uint8Array> {
  return typeof d === "function" ? await d() : d;
}

/** A file written front to back; `put` loops until the whole buffer is out. */
export class OutputFile {
  private pos = 0;
  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string): Promise<OutputFile> {
    return new OutputFile(await open(path, "w"));
  }

  get position(): number {
    return this.pos;
  }

  async put(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) done += (await this.fh.write(b, done, b.length - done, this.pos + done)).bytesWritten;
    this.pos += b.length;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
