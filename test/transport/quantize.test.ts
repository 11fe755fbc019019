import { test } from "node:test";
import assert from "node:assert/strict";
import { QUANT_BLOCK, compressedBytes, dequantizeInto, quantizeInto } from "../../src/transport/quantize.js";
import { randomFloats } from "./helpers.js";

function blockMax(x: Float32Array, i: number): number {
  const b = Math.floor(i / QUANT_BLOCK) * QUANT_BLOCK;
  let m = 0;
  for (let j = b; j < Math.min(b + QUANT_BLOCK, x.length); j++) m = Math.max(m, Math.abs(x[j]!));
  return m;
}

test("8-bit blocks: each value within max|block| / 254 of the original", () => {
  for (const n of [1, 63, 64, 65, 1000, 4099]) {
    const x = randomFloats(n, n, 3);
    // blocks of very different magnitude, an all-zero block, and exact extremes
    for (let i = 0; i < Math.min(n, QUANT_BLOCK); i++) x[i] = x[i]! * 1e-4;
    if (n > 2 * QUANT_BLOCK) x.fill(0, QUANT_BLOCK, 2 * QUANT_BLOCK);
    const bytes = new Uint8Array(compressedBytes(n) + 3);
    quantizeInto(x, bytes, 3);
    assert.equal(compressedBytes(n), 4 * Math.ceil(n / QUANT_BLOCK) + n);
    const y = new Float32Array(n);
    dequantizeInto(bytes.subarray(3), n, y);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const bound = blockMax(x, i) / 254;
      const err = Math.abs(y[i]! - x[i]!);
      assert.ok(err <= bound * (1 + 1e-6) + 1e-30, `n=${n} i=${i}: |${y[i]} - ${x[i]}| = ${err} > ${bound}`);
      worst = Math.max(worst, err / (bound || 1));
    }
    // the bound is tight enough to matter: some value uses a good part of it
    if (n >= 64) assert.ok(worst > 0.5, `worst error ratio ${worst}`);
  }
});

test("block maxima survive exactly and zeros stay zero", () => {
  const x = new Float32Array(QUANT_BLOCK * 2);
  x[5] = -2.5;
  x[7] = 1.25;
  const bytes = new Uint8Array(compressedBytes(x.length));
  quantizeInto(x, bytes, 0);
  const y = new Float32Array(x.length);
  dequantizeInto(bytes, x.length, y);
  assert.ok(Math.abs(y[5]! + 2.5) < 1e-6);
  assert.equal(y[0], 0);
  assert.deepEqual(Array.from(y.subarray(QUANT_BLOCK)), new Array(QUANT_BLOCK).fill(0));
});
