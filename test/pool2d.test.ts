import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { pool } from '../engine/runtime.ts';
import { backward, noGrad, param } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { avgPool2d, maxPool2d, poolOutputSize } from '../kernels/pool2d.ts';
import { avgPool2dRef, dotRef, maxPool2dRef, numericalGrad, poolOutputSizeRef, refTensor } from './reference.ts';
import { expectClose, pair, pick, randomArray, sampleIndices } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

// Odd and even sizes: 9 and 7 tile exactly with k = 3, s = 2; 8, 6 and 5×3 leave a clipped last
// window (ceil rule); k = 2 / s = 2 and k = 3 / s = 1 cover other strides.
const cases = [
  { N: 3, H: 9, W: 9, C: 5, k: 3, s: 2 },
  { N: 2, H: 7, W: 7, C: 7, k: 3, s: 2 },
  { N: 2, H: 8, W: 8, C: 5, k: 3, s: 2 },
  { N: 3, H: 5, W: 3, C: 7, k: 3, s: 2 },
  { N: 2, H: 6, W: 7, C: 5, k: 2, s: 2 },
  { N: 1, H: 5, W: 6, C: 3, k: 3, s: 1 },
];

// Windows a config may ask for besides NIN's (a layer's kernel and stride are free): k = 5, s = 2,
// where a pixel lies in up to three windows a side at a stride over 1 (the first covering window
// ceil((i − k + 1)/s) rounds up), the last column's clipped; k = 2, s = 3, where pixels between
// windows get no gradient, and the last column's window is clipped to one pixel; and an image
// shorter than its window (H = 2 < k = 3: one window a column, clipped).
const moreWindows = [
  { N: 2, H: 9, W: 8, C: 3, k: 5, s: 2 },
  { N: 1, H: 5, W: 7, C: 5, k: 2, s: 3 },
  { N: 3, H: 2, W: 5, C: 7, k: 3, s: 2 },
];

const ops = [
  { name: 'maxPool2d', gpu: maxPool2d, ref: maxPool2dRef },
  { name: 'avgPool2d', gpu: avgPool2d, ref: avgPool2dRef },
] as const;

/** A max-pool of a [1, 5, 5, 2] input on the GPU, with and without gradients, checked against the
 * reference's output `ref` (NaNs and infinities included); returns the input's gradient of Σ k·y_k
 * (k = 1..8: each window's weight tells which window a gradient came from). */
async function maxPoolGradient(data: Float32Array, ref: ArrayLike<number>): Promise<Float32Array> {
  expect(Array.from(await noGrad(() => maxPool2d(Tensor.fromArray(data, [1, 5, 5, 2]))).toArray())).toEqual(Array.from(ref));
  const x = param(Tensor.fromArray(data, [1, 5, 5, 2]));
  const y = maxPool2d(x);
  expect(Array.from(await y.toArray())).toEqual(Array.from(ref));
  backward(dot(y, Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8], y.shape)));
  const dx = await x.grad!.toArray();
  x.dispose();
  return dx;
}

describe('pool2d', () => {
  it('output size follows Caffe: ceil((H − k)/s) + 1', () => {
    for (const [H, want] of [[32, 16], [16, 8], [8, 4], [9, 4], [7, 3], [5, 2], [3, 1], [2, 1], [1, 1]]) {
      expect(poolOutputSize(H, 3, 2), `H = ${H}`).toBe(want);
      expect(poolOutputSizeRef(H, 3, 2)).toBe(want);
    }
  });

  for (const op of ops) {
    for (const c of [...cases, ...moreWindows]) {
      it(`${op.name} forward and gradient match the float64 reference: ${JSON.stringify(c)}`, async () => {
        const { N, H, W, C, k, s } = c;
        const x = pair([N, H, W, C], 11);
        param(x.gpu);
        const y = op.gpu(x.gpu, { k, s });
        expect(y.shape).toEqual([N, poolOutputSizeRef(H, k, s), poolOutputSizeRef(W, k, s), C]);
        const f = () => op.ref(x.ref, k, s);
        expectClose(`${op.name} forward`, await y.toArray(), f().data, 1e-5);
        const r = randomArray(y.size, 12);
        backward(dot(y, Tensor.fromArray(r, y.shape)));
        const idx = sampleIndices(x.ref.data.length, 80, 13);
        expectClose(`${op.name} d/dx`, pick(await x.gpu.grad!.toArray(), idx), numericalGrad(() => dotRef(f(), r), x.ref, idx), 1e-5);
        x.gpu.dispose();
      });
    }
  }

  it('maxPool2d backward sends each window\'s gradient to exactly one element, ties included', async () => {
    // Constant input: every window is one big tie; the gradient must still be conserved.
    const x = param(Tensor.fromArray(new Float32Array(2 * 8 * 8 * 3).fill(0.5), [2, 8, 8, 3]));
    const y = maxPool2d(x);
    const r = randomArray(y.size, 21, 0.5, 1.5);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    const dx = await x.grad!.toArray();
    const sum = (a: ArrayLike<number>) => Array.from(a).reduce((p, q) => p + q, 0);
    expect(Math.abs(sum(dx) - sum(r)) / sum(r)).toBeLessThan(1e-6);
    // The first maximum in row-major window order wins: window (0, 0) of channel 0 goes to pixel (0, 0).
    expect(dx[0]).toBeCloseTo(r[0], 6);
    x.dispose();
  });

  it('a NaN in a max-pool window is the window\'s output, wherever it sits, and gets its gradient', async () => {
    // [1, 5, 5, 2] → 2×2 windows of 3×3 at stride 2. Channel 0: a NaN inside window (0, 0) only,
    // not its first element (where a plain `v > best` scan would skip it). Channel 1: a NaN at
    // pixel (2, 2), which all four windows share, and an infinity in window (1, 1).
    const data = randomArray(50, 41);
    data[(1 * 5 + 1) * 2 + 0] = NaN;
    data[(2 * 5 + 2) * 2 + 1] = NaN;
    data[(4 * 5 + 4) * 2 + 1] = Infinity;
    const ref = maxPool2dRef(refTensor([1, 5, 5, 2], data)).data;
    expect(Array.from(ref, Number.isNaN)).toEqual([true, true, false, true, false, true, false, true]);
    const dx = await maxPoolGradient(data, ref);
    expect(dx[(1 * 5 + 1) * 2 + 0]).toBe(1); // window (0, 0), channel 0
    expect(dx[(2 * 5 + 2) * 2 + 1]).toBe(2 + 4 + 6 + 8); // every window of channel 1
    expect(dx[(4 * 5 + 4) * 2 + 1]).toBe(0); // the infinity lost to the NaN
  });

  // Infinities are no NaNs: a −∞ as a window's first element (where the scan starts) must not stop
  // the scan as a NaN does, and a +∞ before a NaN must not keep the NaN out; a NaN, once found,
  // keeps the window (and its gradient) against a later NaN.
  it('an infinity in a max-pool window is an ordinary value: −∞ first does not stop the scan, +∞ does not hide a later NaN; of two NaNs the first wins', async () => {
    // [1, 5, 5, 2] → 2×2 windows. Channel 0: −∞ at pixel (0, 0), window (0, 0)'s first element.
    // Channel 1: +∞ at pixel (0, 2), the first element of window (0, 1), and a NaN at (1, 3) after it.
    const data = randomArray(50, 43);
    data[0] = -Infinity;
    data[(0 * 5 + 2) * 2 + 1] = Infinity;
    data[(1 * 5 + 3) * 2 + 1] = NaN;
    data[(1 * 5 + 4) * 2 + 1] = NaN; // a second NaN in window (0, 1): the first one keeps the window
    const ref = maxPool2dRef(refTensor([1, 5, 5, 2], data)).data;
    expect(ref[0]).toBeGreaterThan(-1); // window (0, 0), channel 0: its largest finite value
    expect(Number.isNaN(ref[3])).toBe(true); // window (0, 1), channel 1
    const dx = await maxPoolGradient(data, ref);
    expect(dx[(1 * 5 + 3) * 2 + 1]).toBe(4); // window (0, 1), channel 1: its first NaN
    expect(dx[(1 * 5 + 4) * 2 + 1]).toBe(0);
  });

  it('without a gradient, maxPool2d (index-free variant) records nothing and still agrees', async () => {
    const x = pair([2, 7, 5, 3], 31);
    const y = maxPool2d(x.gpu);
    expect(y.requiresGrad).toBe(false);
    expectClose('maxPool2d no-grad forward', await y.toArray(), maxPool2dRef(x.ref).data, 1e-5);
    // Index-free: at its peak the forward held its output and no argmax beside it.
    const live = pool().stats.liveBytes;
    pool().resetPeaks();
    const z = maxPool2d(x.gpu);
    expect(pool().stats.peakLiveBytes - live).toBe(pool().stats.liveBytes - live);
    z.dispose();
  });

  it('rejects bad shapes and windows with named errors', () => {
    tidy(() => {
      expect(() => maxPool2d(Tensor.empty([4, 4, 3]))).toThrow(/maxPool2d: input has shape \[4, 4, 3\], expected rank 4/);
      expect(() => avgPool2d(Tensor.empty([1, 4, 4, 3]), { k: 0 })).toThrow(/avgPool2d: window k = 0 and stride s = 2 must be positive integers/);
      expect(() => maxPool2d(Tensor.empty([1, 5, 5, 3]), { k: 1, s: 3 })).toThrow(/maxPool2d: input has shape \[1, 5, 5, 3\]; window k = 1 with stride s = 3 leaves the last window outside/);
      // The last window starting exactly at the image's edge (4 = (OH − 1)·s, OH = ceil(2/4) + 1) is empty too.
      expect(() => maxPool2d(Tensor.empty([1, 4, 4, 1]), { k: 2, s: 4 })).toThrow('maxPool2d: input has shape [1, 4, 4, 1]; window k = 2 with stride s = 4 leaves the last window outside the image');
      // Either axis alone: a tall image whose rows leave it, a wide one whose columns do.
      expect(() => maxPool2d(Tensor.empty([1, 4, 5, 1]), { k: 2, s: 4 })).toThrow('maxPool2d: input has shape [1, 4, 5, 1]; window k = 2 with stride s = 4 leaves the last window outside the image');
      expect(() => maxPool2d(Tensor.empty([1, 5, 4, 1]), { k: 2, s: 4 })).toThrow('maxPool2d: input has shape [1, 5, 4, 1]; window k = 2 with stride s = 4 leaves the last window outside the image');
      expect(() => avgPool2d(Tensor.empty([1, 4, 4, 3]), { k: 1.5 })).toThrow(/avgPool2d: window k = 1.5 and stride s = 2 must be positive integers/);
    });
  });

  it('rejects an i32 input instead of pooling its bits', () => {
    tidy(() => {
      const ints = Tensor.fromArray([1, 2, 3, 4], [1, 2, 2, 1], 'i32');
      expect(() => maxPool2d(ints, { k: 2, s: 2 })).toThrow('maxPool2d: input must be an f32 tensor, got i32');
      expect(() => avgPool2d(ints, { k: 2, s: 2 })).toThrow('avgPool2d: input must be an f32 tensor, got i32');
    });
  });
});
