import { test } from "node:test";
import assert from "node:assert/strict";
import { FrameDecoder, FrameKind, HEADER_BYTES, encodeFrame, type FrameHeader } from "../../src/transport/frame.js";
import { TesseraError } from "../../src/errors.js";
import { randomFloats } from "./helpers.js";

interface Got {
  header: FrameHeader;
  payload: Uint8Array;
}

function decoder(max = 1 << 20): { dec: FrameDecoder; got: Got[] } {
  const got: Got[] = [];
  const dec = new FrameDecoder(max, (h, p) => got.push({ header: { ...h }, payload: Uint8Array.from(p) }), () => "test peer");
  return { dec, got };
}

function sampleFrames(): { bytes: Buffer; expect: Got[] } {
  const payloads = [0, 1, 15, 16, 17, 4096, 70_000].map((n, i) => {
    const f = randomFloats(Math.ceil(n / 4), i + 7);
    return new Uint8Array(f.buffer, 0, n);
  });
  const expect: Got[] = payloads.map((p, i) => ({
    header: { length: p.length, kind: FrameKind.DATA, flags: 0x80 | i, tag: 0xfff0 + i, seq: 0xfffffff0 + i, aux: i * 1000 },
    payload: p,
  }));
  const bytes = Buffer.concat(expect.map((e) => encodeFrame(e.header.kind, e.payload, e.header.flags, e.header.tag, e.header.seq, e.header.aux)));
  return { bytes, expect };
}

test("frames coalesced into one chunk decode one by one", () => {
  const { bytes, expect } = sampleFrames();
  const { dec, got } = decoder();
  dec.push(bytes);
  assert.deepEqual(got, expect);
});

test("frames split at every byte decode the same", () => {
  const { bytes, expect } = sampleFrames();
  const { dec, got } = decoder();
  for (let i = 0; i < bytes.length; i++) dec.push(bytes.subarray(i, i + 1));
  assert.deepEqual(got, expect);
});

test("frames split at random places (headers and payloads cut) decode the same", () => {
  const { bytes, expect } = sampleFrames();
  for (let seed = 1; seed <= 20; seed++) {
    const { dec, got } = decoder();
    const cuts = randomFloats(40, seed).map((x) => Math.floor(Math.abs(x) * bytes.length));
    const points = [0, ...Array.from(cuts).sort((a, b) => a - b), bytes.length];
    for (let i = 1; i < points.length; i++) dec.push(bytes.subarray(points[i - 1]!, points[i]!));
    assert.deepEqual(got, expect, `seed ${seed}`);
  }
});

test("a frame over the size limit is refused with a clear error", () => {
  const { dec, got } = decoder(1000);
  dec.push(encodeFrame(FrameKind.DATA, new Uint8Array(1000)));
  assert.equal(got.length, 1);
  const big = encodeFrame(FrameKind.DATA, new Uint8Array(1001));
  assert.throws(
    () => dec.push(big.subarray(0, HEADER_BYTES)),
    (e: unknown) => e instanceof TesseraError && /^test peer: sent a frame of 1001 bytes, over the limit of 1000 bytes/.test(e.message),
  );
});
