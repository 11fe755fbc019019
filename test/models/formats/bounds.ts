import assert from "node:assert/strict";
import { LAYOUTS } from "../../../src/models/quant/index.js";
import type { TensorType } from "../../../src/models/types.js";

const max = (b: Float32Array) => b.reduce((a, v) => Math.max(a, v), -Infinity);
const min = (b: Float32Array) => b.reduce((a, v) => Math.min(a, v), Infinity);
const maxAbs = (b: Float32Array) => b.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

/**
 * Largest error each storage type may make on one block (or MLX group), from the block's own values:
 * what its quantizer's rounding allows, derived from the format, not measured. F32 is exact.
 */
export const BLOCK_BOUNDS: Partial<Record<TensorType, (block: Float32Array) => number>> = {
  F32: () => 0,
  // ggml's Q4_0 maps the largest magnitude to -8, so the other side can lose one full step.
  Q4_0: (b) => maxAbs(b) / 8 * 1.01 + 1e-6,
  Q4_1: (b) => (max(b) - min(b)) / 15 / 2 + maxAbs(b) * 2 ** -10 + 1e-6,
  // Half a step, plus the f16 rounding of d felt at |q| = 127.
  Q8_0: (b) => (maxAbs(b) / 127) * (0.5 + 127 * 2 ** -11) + 1e-7,
  Q4_K: (b) => (max(b) - Math.min(0, min(b))) / 15 * 0.52 + Math.abs(Math.min(0, min(b))) / 126 * 1.01 + 1e-6,
  Q5_K: (b) => (max(b) - Math.min(0, min(b))) / 31 * 0.52 + Math.abs(Math.min(0, min(b))) / 126 * 1.01 + 1e-6,
  Q6_K: (b) => maxAbs(b) / 62 * 1.02 + 1e-7,
  F16: (b) => maxAbs(b) * 2 ** -11,
  BF16: (b) => maxAbs(b) * 2 ** -8,
};

/** Relative rounding of an MLX scale or bias stored as `scaleType`. */
const SCALE_EPS: Record<string, number> = { F32: 2 ** -24, F16: 2 ** -11, BF16: 2 ** -8 };

/**
 * MLX affine groups: scale = (max − min) / (2^bits − 1) and bias = min, both rounded to the scale
 * type; half a step, plus what the rounded scale moves the top level (levels × Δscale) and the rounded bias.
 */
export function mlxBound(bits: 4 | 8, scaleType: string): (group: Float32Array) => number {
  const levels = 2 ** bits - 1;
  const eps = SCALE_EPS[scaleType];
  assert.ok(eps !== undefined, `unknown MLX scale type ${scaleType}`);
  return (g) => {
    const range = max(g) - min(g);
    return range / levels / 2 + (range + Math.abs(min(g))) * eps * 1.01 + 1e-7;
  };
}

/**
 * Checks `got` (the values read back) against `want` (the values written) block by block along each
 * row of `rowLength`: every element within its block's bound, and exactly equal where the bound is 0.
 * Returns the largest error seen, for messages.
 */
export function assertWithinBlocks(
  got: Float32Array,
  want: Float32Array,
  opts: { rowLength: number; blockSize: number; bound: (block: Float32Array) => number; label: string },
): number {
  assert.equal(got.length, want.length, `${opts.label}: length`);
  const { rowLength, blockSize, bound, label } = opts;
  assert.equal(rowLength % blockSize, 0, `${label}: rows of ${rowLength} are not whole blocks of ${blockSize}`);
  let worst = 0;
  for (let b = 0; b < want.length; b += blockSize) {
    const block = want.subarray(b, b + blockSize);
    const limit = bound(block);
    for (let i = 0; i < block.length; i++) {
      const err = Math.abs(got[b + i]! - block[i]!);
      worst = Math.max(worst, err);
      if (limit === 0) assert.equal(got[b + i], block[i], `${label}: element ${b + i} is ${got[b + i]}, written ${block[i]} (F32 is exact)`);
      else assert.ok(err <= limit, `${label}: element ${b + i} error ${err} > its block's bound ${limit}`);
    }
  }
  return worst;
}

/** The bound and block size a stored type is checked with. */
export function boundOf(type: TensorType, opts: { groupSize?: number; scaleType?: string } = {}): { blockSize: number; bound: (b: Float32Array) => number } {
  if (type === "MLX4" || type === "MLX8") {
    assert.ok(opts.groupSize && opts.scaleType, `${type} needs its group size and scale type`);
    return { blockSize: opts.groupSize, bound: mlxBound(type === "MLX4" ? 4 : 8, opts.scaleType) };
  }
  const bound = BLOCK_BOUNDS[type];
  assert.ok(bound, `no error bound for ${type}`);
  if (type === "F32") return { blockSize: 1, bound };
  // Half floats: relative to the largest of 32 neighbours, so values in the subnormal range are covered.
  return { blockSize: LAYOUTS[type].blockSize === 1 ? 32 : LAYOUTS[type].blockSize, bound };
}
