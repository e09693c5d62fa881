// Shared test utilities: seeded data, float32 rounding, error norms, GPU↔reference plumbing.
import { expect } from 'vitest';
import { Tensor } from '../engine/tensor.ts';
import { refTensor, type RefTensor } from './reference.ts';
import { randomArray, relErrNorm } from './numeric.ts';

export { randomArray, relErrNorm, sampleIndices, pick } from './numeric.ts';

/** A GPU tensor and its float64 twin holding the same (float32) values. */
export function pair(shape: number[], seed: number, lo = -1, hi = 1): { gpu: Tensor; ref: RefTensor } {
  const data = randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi);
  return { gpu: Tensor.fromArray(data, shape), ref: refTensor(shape, data) };
}

/** Logs a measured error (so test output reports it) and asserts it is within `tol`. */
export function expectClose(label: string, gpu: ArrayLike<number>, ref: ArrayLike<number>, tol: number): number {
  const err = relErrNorm(gpu, ref);
  console.log(`${label}: relative error ${err.toExponential(2)} (tolerance ${tol})`);
  expect(err, label).toBeLessThanOrEqual(tol);
  expect(Number.isFinite(err), `${label} finite`).toBe(true);
  return err;
}

