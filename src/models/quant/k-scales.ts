/**
 * The 12-byte scale field shared by Q4_K and Q5_K: eight 6-bit scales sc[j] and eight 6-bit mins m[j].
 *   j < 4:  sc[j] = q[j] & 63,                          m[j] = q[j+4] & 63
 *   j >= 4: sc[j] = (q[j+4] & 15) | (q[j-4] >> 6) << 4,  m[j] = (q[j+4] >> 4) | (q[j] >> 6) << 4
 * (the top two bits of the j >= 4 values ride in the spare top bits of bytes 0..7).
 */
export function unpackScaleMin(q: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >>> 6) << 4), (q[o + j + 4]! >>> 4) | ((q[o + j]! >>> 6) << 4)];
}

export function packScalesMins(sc: ArrayLike<number>, m: ArrayLike<number>, out: Uint8Array, o: number): void {
  for (let j = 0; j < 12; j++) out[o + j] = 0;
  for (let j = 0; j < 4; j++) {
    out[o + j] = sc[j]! & 63;
    out[o + j + 4] = m[j]! & 63;
  }
  for (let j = 4; j < 8; j++) {
    out[o + j + 4] = (sc[j]! & 0xf) | ((m[j]! & 0xf) << 4);
    out[o + j - 4]! |= (sc[j]! >>> 4) << 6;
    out[o + j]! |= (m[j]! >>> 4) << 6;
  }
}

