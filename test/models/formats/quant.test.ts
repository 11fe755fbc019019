import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dequantize, quantize, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, LAYOUTS } from "../../../src/models/quant/index.js";
import { packScalesMins, unpackScaleMin } from "../../../src/models/quant/k-scales.js";
import type { TensorType } from "../../../src/models/types.js";
import { gaussian } from "./helpers.js";
import { BLOCK_BOUNDS } from "./bounds.js";

/** Blocks and dequantized values that ggml's own C code produced (see the file's "about"). */
const reference = JSON.parse(readFileSync(join(process.cwd(), "test/models/formats/fixtures/ggml-reference.json"), "utf8")) as {
  n: number;
  input: string;
  types: Record<string, { blocks: string; dequantized: string }>;
};
const bytesOf = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));

test("dequantize equals ggml's dequantize_row_* bit for bit, for blocks ggml made", () => {
  for (const [type, r] of Object.entries(reference.types)) {
    const ours = dequantize(type as TensorType, bytesOf(r.blocks), reference.n);
    assert.deepEqual(new Uint8Array(ours.buffer), bytesOf(r.dequantized), type);
  }
});

test("F16, Q4_0, Q4_1 and Q8_0 quantize exactly as ggml's reference quantizers", () => {
  const input = new Float32Array(bytesOf(reference.input).buffer);
  for (const type of ["F16", "Q4_0", "Q4_1", "Q8_0"] as const) {
    assert.deepEqual(quantize(type, input), bytesOf(reference.types[type]!.blocks), type);
  }
});

test("every half value survives f16 -> f32 -> f16; ties round to even", () => {
  for (let h = 0; h < 65536; h++) {
    const f = f16ToF32(h);
    if (Number.isNaN(f)) continue;
    assert.equal(f32ToF16(f), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // halfway between 1 and the next half: even (1) wins
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16(65520), 0x7c00); // rounds up past the largest half: infinity
  assert.equal(f32ToF16(2 ** -25), 0); // halfway to the smallest subnormal: even (0)
  assert.equal(f32ToF16(NaN) & 0x7e00, 0x7e00);
});

test("bf16 keeps the top 16 bits, rounding to nearest even", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie: even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(bf16ToF32(f32ToBf16(-3.140625)), -3.140625);
});

test("K-quant 6-bit scales and mins pack and unpack", () => {
  const sc = [0, 63, 17, 42, 5, 63, 33, 1];
  const m = [63, 0, 9, 31, 62, 48, 16, 2];
  const buf = new Uint8Array(14);
  packScalesMins(sc, m, buf, 2);
  for (let j = 0; j < 8; j++) assert.deepEqual(unpackScaleMin(buf, 2, j), [sc[j], m[j]]);
});

test("quantize -> dequantize stays within each format's error bound", () => {
  const values = gaussian(4096, 3, 0.05);
  values[100] = 0.9; // an outlier in one block
  for (const t of Object.keys(BLOCK_BOUNDS) as TensorType[]) {
    const back = dequantize(t, quantize(t, values), values.length);
    const bs = t.endsWith("_K") ? 256 : 32;
    let sq = 0;
    for (let b = 0; b < values.length; b += bs) {
      const block = values.subarray(b, b + bs);
      const limit = BLOCK_BOUNDS[t]!(block);
      for (let i = 0; i < bs; i++) {
        const err = Math.abs(back[b + i]! - block[i]!);
        sq += err * err;
        assert.ok(err <= limit, `${t}: element ${b + i} error ${err} > ${limit}`);
      }
    }
    assert.ok(Math.sqrt(sq / values.length) > 0 || t === "F32", `${t} should lose something`);
  }
});

test("dequantize rejects data shorter than its element count", () => {
  assert.throws(() => dequantize("Q8_0", new Uint8Array(33), 32), /needs 34 bytes/);
  assert.throws(() => quantize("Q4_K", new Float32Array(100)), /whole number of Q4_K blocks/);
  assert.equal(LAYOUTS.Q6_K.bytesPerBlock, 210);
});
