import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { backward, noGrad, param } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { labelTensor, softmax, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
import { numericalGrad, refTensor, softmaxCrossEntropyRef, softmaxRef } from './reference.ts';
import { expectClose, pair, pick, randomArray, sampleIndices } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

function labelsFor(N: number, C: number, seed: number): number[] {
  return Array.from(randomArray(N, seed, 0, C), (v) => Math.min(Math.floor(v), C - 1));
}

// C = 10 (CIFAR), 7 (odd), 100 (more classes than the 64-thread workgroup), 1000 (ImageNet).
const cases = [
  { N: 3, C: 10, scale: 3 },
  { N: 5, C: 7, scale: 3 },
  { N: 3, C: 100, scale: 3 },
  { N: 2, C: 1000, scale: 3 },
  { N: 4, C: 10, scale: 30, shift: 1000 }, // large logits: needs the max subtraction
  // Confident rows: one logit 200 above the rest (e^200 overflows float32), last, first and in the
  // middle of its row: the maximum subtracted must be the whole row's, not one thread's share.
  { N: 3, C: 10, scale: 3, spikes: [9, 0, 4] },
  // Rows far apart: each row's max must come from that row alone (threads past C read no other row).
  { N: 4, C: 10, scale: 3, rowShifts: [0, 1000, -1000, 500] },
];

describe('softmaxCrossEntropy', () => {
  for (const c of cases) {
    it(`loss, dloss/dlogits and softmax match the float64 reference: ${JSON.stringify(c)}`, async () => {
      const { N, C, scale } = c;
      const shift = c.shift ?? 0;
      const data = randomArray(N * C, 61, shift - scale, shift + scale);
      c.rowShifts?.forEach((s, n) => { for (let k = 0; k < C; k++) data[n * C + k] += s; }); // rounded to float32, as the GPU holds them
      c.spikes?.forEach((k, n) => { data[n * C + k] += 200; });
      const z = { gpu: Tensor.fromArray(data, [N, C]), ref: refTensor([N, C], data) };
      const labels = labelsFor(N, C, 62);
      param(z.gpu);
      const loss = softmaxCrossEntropy(z.gpu, labelTensor(labels, C));
      expect(loss.shape).toEqual([1]);
      const f = () => softmaxCrossEntropyRef(z.ref, labels);
      expectClose('loss', [await loss.item()], [f()], 1e-5);
      // An upstream scalar ≠ 1 checks that backward scales by it.
      const up = 1.7;
      backward(dot(loss, Tensor.fromArray([up], [1])));
      const idx = sampleIndices(N * C, 80, 63);
      expectClose('dloss/dlogits', pick(await z.gpu.grad!.toArray(), idx), numericalGrad(() => up * f(), z.ref, idx), 1e-5);
      // Not differentiable: refused where a gradient would flow through it (it was cut silently).
      expect(() => softmax(z.gpu)).toThrow('softmax: the logits need a gradient, and softmax has no backward: call it under noGrad() (for predictions), or use softmaxCrossEntropy for a loss');
      const p = await noGrad(() => softmax(z.gpu)).toArray();
      expectClose('softmax', p, softmaxRef(z.ref).data, 1e-5);
      z.gpu.dispose();
    });
  }

  it('an out-of-range label that bypassed labelTensor gives a NaN loss and NaN gradients for its row, not wrong numbers', async () => {
    const z = pair([3, 10], 71);
    param(z.gpu);
    const loss = softmaxCrossEntropy(z.gpu, Tensor.fromArray([3, 10, -1], [3], 'i32'));
    expect(Number.isNaN(await loss.item())).toBe(true);
    backward(loss);
    // Label C alone (one past the last class; it would read the next row's first logit) makes the loss NaN too.
    const labelC = Tensor.fromArray([3, 10, 4], [3], 'i32');
    const lossC = noGrad(() => softmaxCrossEntropy(z.gpu, labelC));
    expect(await lossC.item()).toBeNaN();
    lossC.dispose();
    labelC.dispose();
    const g = await z.gpu.grad!.toArray();
    // Row 0 (label 3) is the finite gradient of its own loss term; rows 1 and 2 are NaN (they were
    // finite, as if no class were the true one).
    const rows = [0, 1, 2].map((n) => Array.from(g.subarray(10 * n, 10 * n + 10)));
    expect(rows[0].every(Number.isFinite)).toBe(true);
    expect(rows[1].every(Number.isNaN)).toBe(true);
    expect(rows[2].every(Number.isNaN)).toBe(true);
    const p0 = softmaxRef(refTensor([1, 10], z.ref.data.subarray(0, 10))).data;
    expectClose('row 0', rows[0], Array.from(p0, (p, c) => (p - (c === 3 ? 1 : 0)) / 3), 1e-5);
    z.gpu.dispose();
  });

  it('validates labels and shapes with named errors', () => {
    tidy(() => {
      expect(() => labelTensor([0, 3, 10], 10)).toThrow(/labelTensor: label 10 at index 2 is not an integer in \[0, 10\)/);
      expect(() => labelTensor([0, -1], 10)).toThrow(/labelTensor: label -1 at index 1/);
      expect(() => labelTensor([0, 1.5], 10)).toThrow(/labelTensor: label 1.5 at index 1/);
      const z = Tensor.empty([3, 10]);
      expect(() => softmaxCrossEntropy(z, labelTensor([1, 2], 10))).toThrow(/softmaxCrossEntropy: labels has shape \[2\], expected \[3\]/);
      expect(() => softmaxCrossEntropy(z, Tensor.fromArray([1, 2, 3], [3]))).toThrow(/softmaxCrossEntropy: labels must be an i32 tensor/);
      expect(() => softmaxCrossEntropy(z, labelTensor([1, 2, 3], 100))).toThrow(/softmaxCrossEntropy: labels were checked against 100 classes but logits have shape \[3, 10\]/);
      expect(() => softmaxCrossEntropy(z, labelTensor([1, 2, 3], 11))).toThrow('softmaxCrossEntropy: labels were checked against 11 classes but logits have shape [3, 10]');
      expect(() => softmaxCrossEntropy(Tensor.empty([3, 1, 1, 10]), labelTensor([1, 2, 3], 10))).toThrow(/softmaxCrossEntropy: logits has shape \[3, 1, 1, 10\], expected rank 2/);
      expect(() => softmax(Tensor.empty([30]))).toThrow(/softmax: logits has shape \[30\], expected rank 2/);
    });
  });

  it('labels disposed before backward() are an error, not gradients from whatever reused their buffer', () => {
    tidy(() => {
      const z = param(Tensor.fromArray(randomArray(8, 73), [2, 4]));
      const labels = labelTensor([0, 3], 4);
      const loss = softmaxCrossEntropy(z, labels);
      labels.dispose();
      Tensor.fromArray([2, 1], [2], 'i32'); // likely takes the labels' buffer
      expect(() => backward(loss)).toThrow(new RegExp(`softmaxCrossEntropy backward: labels \\(tensor #${labels.id}, \\[2\\]\\) was disposed before backward\\(\\)`));
      expect(z.grad).toBeNull();
    });
  });
});
