import { test } from "node:test";
import assert from "node:assert/strict";
import { ropeInvFreq, ropeTables } from "../../../src/engine/graph/rope.js";
import { LLAMA31_8B, dividedInvFreq, llama3InvFreq, plainInvFreq } from "./rope-reference.js";

const REL = 1e-12;

/** Pairs where `inv` is not within REL of `expected` (a Map of pinned values or a full array). */
function mismatches(inv: Float64Array, expected: Map<number, number> | Float64Array): number[] {
  const entries = expected instanceof Map ? [...expected] : [...expected.entries()];
  return entries.filter(([i, want]) => !(Math.abs(inv[i]! - want) <= REL * Math.abs(want))).map(([i]) => i);
}

const llama31 = {
  headDim: LLAMA31_8B.headDim,
  ropeTheta: LLAMA31_8B.theta,
  ropeScaling: { kind: "llama3" as const, ...LLAMA31_8B.scaling },
};

test("the tests' own llama3 formula gives Llama 3.1 8B's published frequencies", () => {
  assert.deepEqual(mismatches(llama3InvFreq(LLAMA31_8B.theta, LLAMA31_8B.headDim, LLAMA31_8B.scaling), LLAMA31_8B.invFreq), []);
});

test("llama3 rope scaling: Llama 3.1 8B's inverse frequencies, pair by pair", () => {
  const inv = ropeInvFreq(llama31);
  assert.equal(inv.length, 64);
  assert.deepEqual(mismatches(inv, LLAMA31_8B.invFreq), []);
  assert.deepEqual(mismatches(inv, llama3InvFreq(LLAMA31_8B.theta, LLAMA31_8B.headDim, LLAMA31_8B.scaling)), []);
  // Negative control: unscaled rope fails the same check on the blended and divided pairs only.
  const plain = ropeInvFreq({ ...llama31, ropeScaling: undefined });
  assert.deepEqual(mismatches(plain, LLAMA31_8B.invFreq), [29, 30, 31, 32, 33, 34, 35, 40, 63]);
});

test("llama3 scaling on a short original context (the decoder tests' shape) matches the formula", () => {
  const scaling = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 16 };
  const inv = ropeInvFreq({ headDim: 16, ropeTheta: 500000, ropeScaling: { kind: "llama3", ...scaling } });
  const want = llama3InvFreq(500000, 16, scaling);
  assert.deepEqual(mismatches(inv, want), []);
  // pair 0 is blended (wavelength 2π lies between 4 and 16), the others divided by 8
  assert.ok(want[0]! < 1 && want[0]! > 1 / 8);
  assert.deepEqual(mismatches(plainInvFreq(500000, 16), want), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test("GGUF rope_freqs factors divide each pair's frequency and replace the metadata scaling", () => {
  const factors = Float32Array.from({ length: 8 }, (_, i) => 1 + i * 0.75);
  const cfg = { headDim: 16, ropeTheta: 10000, ropeScaling: { kind: "llama3" as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 16 } };
  const want = dividedInvFreq(10000, 16, factors);
  assert.deepEqual(mismatches(ropeInvFreq(cfg, factors), want), []);
  // Negative control: ignoring the factors leaves every pair but the first (factor 1) wrong.
  assert.deepEqual(mismatches(ropeInvFreq({ ...cfg, ropeScaling: undefined }), want), [1, 2, 3, 4, 5, 6, 7]);
});

test("rope tables hold cos/sin of position × frequency", () => {
  const cfg = { headDim: 8, ropeTheta: 10000 };
  const { cos, sin } = ropeTables(cfg, 5);
  const inv = plainInvFreq(10000, 8);
  for (let p = 0; p < 5; p++) {
    for (let i = 0; i < 4; i++) {
      assert.ok(Math.abs(cos[p * 4 + i]! - Math.cos(p * inv[i]!)) < 1e-7);
      assert.ok(Math.abs(sin[p * 4 + i]! - Math.sin(p * inv[i]!)) < 1e-7);
    }
  }
});
