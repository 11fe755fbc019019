/**
 * A growable little-endian byte buffer for building headers in memory. Each writer reserves room before
 * touching `view`, since growing replaces the view.
 */
export class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.length + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const o = this.length;
    this.length += n;
    return o;
  }

  u8(v: number): void { const o = this.room(1); this.view.setUint8(o, v); }
  i8(v: number): void { const o = this.room(1); this.view.setInt8(o, v); }
  u16(v: number): void { const o = this.room(2); this.view.setUint16(o, v, true); }
  i16(v: number): void { const o = this.room(2); this.view.setInt16(o, v, true); }
  u32(v: number): void { const o = this.room(4); this.view.setUint32(o, v, true); }
  i32(v: number): void { const o = this.room(4); this.view.setInt32(o, v, true); }
  f32(v: number): void { const o = this.room(4); this.view.setFloat32(o, v, true); }
  f64(v: number): void { const o = this.room(8); this.view.setFloat64(o, v, true); }
  u64(v: bigint | number): void { const o = this.room(8); this.view.setBigUint64(o, BigInt(v), true); }
  i64(v: bigint | number): void { const o = this.room(8); this.view.setBigInt64(o, BigInt(v), true); }

  bytes(b: Uint8Array): void {
    const o = this.room(b.length);
    this.buf.set(b, o);
  }

  zeros(n: number): void {
    const o = this.room(n);
    this.buf.fill(0, o, o + n);
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}
