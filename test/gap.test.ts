import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { globalAvgPool } from '../kernels/gap.ts';
import { dotRef, globalAvgPoolRef, numericalGrad } from './reference.ts';
import { expectClose, pair, pick, randomArray, sampleIndices, withDeviceLimit } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

// 7×7 and 8×8 (NIN's last maps), odd 5×3, more than 32 channels (several channel workgroups),
// 40×40 = 1600 pixels (> 1024: the reduction splits and finishes in a second pass), and 41×41 =
// 1681 pixels (split in two of 841 rows, the second one row short).
const cases = [
  { N: 3, H: 7, W: 7, C: 5 },
  { N: 2, H: 8, W: 8, C: 7 },
  { N: 3, H: 5, W: 3, C: 5 },
  { N: 2, H: 6, W: 6, C: 37 },
  { N: 2, H: 40, W: 40, C: 3 },
  { N: 2, H: 41, W: 41, C: 3 },
];

/** globalAvgPool on a random [N, H, W, C] input: its output and input gradient against the float64 reference. */
async function expectGapMatchesReference([N, H, W, C]: number[], seed: number) {
  const x = pair([N, H, W, C], seed);
  param(x.gpu);
  const y = globalAvgPool(x.gpu);
  expect(y.shape).toEqual([N, C]);
  expectClose('gap forward', await y.toArray(), globalAvgPoolRef(x.ref).data, 1e-5);
  const r = randomArray(y.size, seed + 1);
  backward(dot(y, Tensor.fromArray(r, y.shape)));
  const idx = sampleIndices(x.ref.data.length, 80, seed + 2);
  expectClose('gap d/dx', pick(await x.gpu.grad!.toArray(), idx), numericalGrad(() => dotRef(globalAvgPoolRef(x.ref), r), x.ref, idx), 1e-5);
  x.gpu.dispose();
}

describe('globalAvgPool', () => {
  for (const c of cases) {
    it(`forward and gradient match the float64 reference: ${JSON.stringify(c)}`, () => expectGapMatchesReference([c.N, c.H, c.W, c.C], 41));
  }

  // A batch of 65,536 or more images has more (channel tile, image) workgroups than a grid
  // dimension holds: they fold over x and y. Shown with the device's limit lowered to 5, on 9
  // images with two channel tiles (18 workgroups; small maps, so that the backward's elementwise
  // grid still fits). It threw before.
  it('a batch past the per-dimension workgroup limit folds its grid', async () => {
    await withDeviceLimit('maxComputeWorkgroupsPerDimension', 5, () => expectGapMatchesReference([9, 3, 3, 37], 51));
  });

  it('rejects a non-NHWC input with a named error', () => {
    tidy(() => {
      expect(() => globalAvgPool(Tensor.empty([3, 10]))).toThrow(/globalAvgPool: input has shape \[3, 10\], expected rank 4/);
    });
  });

  it('rejects an i32 input instead of averaging its bits', () => {
    tidy(() => {
      expect(() => globalAvgPool(Tensor.fromArray([1, 2, 3, 4], [1, 2, 2, 1], 'i32'))).toThrow('globalAvgPool: input must be an f32 tensor, got i32');
    });
  });
});
