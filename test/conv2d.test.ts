import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, setKernelStyle, type KernelStyle } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { invocationOrder } from '../engine/invocation-order.ts';
import { gemmTiles, setGemmCapture, simdGemmTiles } from '../kernels/gemm.ts';
import { dot } from '../kernels/elementwise.ts';
import { conv2dRef, dotRef, numericalGrad, reluRef } from './reference.ts';
import { expectClose, pair, pick, randomArray, sampleIndices, withDeviceLimit } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => { setKernelStyle(null); closeGpu(); });

// Odd shapes: nothing is a multiple of the 16/64 GEMM tiles.
const cases = [
  { N: 3, H: 9, W: 9, Ci: 5, Co: 7, K: 3 },
  { N: 2, H: 7, W: 7, Ci: 7, Co: 5, K: 5 },
  { N: 3, H: 5, W: 6, Ci: 5, Co: 9, K: 1 },
  { N: 1, H: 8, W: 8, Ci: 3, Co: 96, K: 5 }, // the first CIFAR layer's channels
  { N: 2, H: 7, W: 7, Ci: 20, Co: 33, K: 3 },
];

describe('conv2d', () => {
  // Both GEMM versions (kernels/gemm.ts): tiled (GPUs) and simd (CPU adapters).
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  for (const c of cases) {
    for (const relu of [false, true]) {
      it(`${style} kernels: forward and gradients match the float64 reference: ${JSON.stringify(c)} relu=${relu}`, async () => {
        setKernelStyle(style);
        const { N, H, W, Ci, Co, K } = c;
          const x = pair([N, H, W, Ci], 1);
          const w = pair([K, K, Ci, Co], 2, -0.3, 0.3);
          const b = pair([Co], 3);
          param(x.gpu); param(w.gpu); param(b.gpu);
          const y = conv2d(x.gpu, w.gpu, b.gpu, { relu });
          const f = () => { const z = conv2dRef(x.ref, w.ref, b.ref); return relu ? reluRef(z) : z; };
          expectClose('forward', await y.toArray(), f().data, 1e-5);
          // Upstream gradient r: loss = Σ y ⊙ r.
          const r = randomArray(y.size, 4);
          const rT = Tensor.fromArray(r, y.shape);
          const loss = dot(y, rT);
          backward(loss);
          const scalar = () => dotRef(f(), r);
          // Central differences at up to 80 coordinates per tensor (first and last always).
          for (const [name, t] of [['x', x], ['w', w], ['b', b]] as const) {
            const idx = sampleIndices(t.ref.data.length, 80, 5);
            expectClose(`d/d${name}`, pick(await t.gpu.grad!.toArray(), idx), numericalGrad(scalar, t.ref, idx), 1e-5);
          }
      });
    }
  }

  // Strides and paddings other than "same" (ImageNet's NIN starts 11×11 at stride 4, no padding):
  // odd sizes, strides that do not divide them, an even kernel, padding 0 and past "same".
  const geometries = [
    { N: 2, H: 11, W: 9, Ci: 3, Co: 5, K: 3, stride: 2, padding: 0 },
    { N: 2, H: 13, W: 14, Ci: 2, Co: 7, K: 5, stride: 4, padding: 1 }, // Ho 3, Wo 3: the last row and column reach past the image
    { N: 1, H: 8, W: 7, Ci: 4, Co: 6, K: 4, stride: 3, padding: 2 },
    { N: 3, H: 6, W: 5, Ci: 5, Co: 3, K: 1, stride: 2, padding: 0 },
    { N: 2, H: 5, W: 7, Ci: 3, Co: 4, K: 3, stride: 1, padding: 0 }, // "valid"
  ];
  // Not rerun with scrambled invocations: the strides and paddings change only each invocation's
  // own loads (shiftedRow), no workgroup sharing; the GEMMs are the cases' above (a cold suite's time).
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  for (const [i, c] of geometries.entries()) {
    const relu = i % 2 === 1;
    it.skipIf(invocationOrder() === 'scramble')(`${style} kernels: stride ${c.stride}, padding ${c.padding}: forward and gradients match the float64 reference: ${JSON.stringify(c)} relu=${relu}`, async () => {
      setKernelStyle(style);
      const { N, H, W, Ci, Co, K, stride, padding } = c;
      const x = pair([N, H, W, Ci], 11 + i);
      const w = pair([K, K, Ci, Co], 12 + i, -0.3, 0.3);
      const b = pair([Co], 13 + i);
      param(x.gpu); param(w.gpu); param(b.gpu);
      const names: string[] = [];
      setGemmCapture((g) => names.push(g.name));
      const y = conv2d(x.gpu, w.gpu, b.gpu, { relu, stride, padding });
      const f = () => { const z = conv2dRef(x.ref, w.ref, b.ref, { stride, padding }); return relu ? reluRef(z) : z; };
      expect(y.shape).toEqual(f().shape);
      expectClose('forward', await y.toArray(), f().data, 1e-5);
      const r = randomArray(y.size, 14 + i);
      backward(dot(y, Tensor.fromArray(r, y.shape)));
      setGemmCapture(null);
      expect(names).toEqual(expect.arrayContaining([`conv${K}x${K}_s${stride}_p${padding}_forward`, `conv${K}x${K}_s${stride}_p${padding}_grad_input`, `conv${K}x${K}_s${stride}_p${padding}_grad_weight`]));
      const scalar = () => dotRef(f(), r);
      for (const [name, t] of [['x', x], ['w', w], ['b', b]] as const) {
        const idx = sampleIndices(t.ref.data.length, 80, 15 + i);
        expectClose(`d/d${name}`, pick(await t.gpu.grad!.toArray(), idx), numericalGrad(scalar, t.ref, idx), 1e-5);
      }
    });
  }

  it('refuses a stride or padding that is not a whole number, and a kernel larger than the padded input', () => {
    const x = Tensor.fromArray(new Float32Array(2 * 5 * 5 * 3), [2, 5, 5, 3]);
    const w = Tensor.fromArray(new Float32Array(3 * 3 * 3 * 4), [3, 3, 3, 4]);
    const even = Tensor.fromArray(new Float32Array(2 * 2 * 3 * 4), [2, 2, 3, 4]);
    const b = Tensor.fromArray(new Float32Array(4), [4]);
    expect(() => conv2d(x, w, b, { stride: 0 })).toThrow('conv2d: stride 0 must be an integer ≥ 1');
    expect(() => conv2d(x, w, b, { stride: 1.5 })).toThrow('conv2d: stride 1.5 must be an integer ≥ 1');
    expect(() => conv2d(x, w, b, { padding: -1 })).toThrow('conv2d: padding -1 must be an integer ≥ 0');
    expect(() => conv2d(x, even, b)).toThrow('conv2d: weight has shape [2, 2, 3, 4]; an even kernel has no "same" padding: give padding');
    const big = Tensor.fromArray(new Float32Array(7 * 7 * 3 * 4), [7, 7, 3, 4]);
    expect(() => conv2d(x, big, b, { padding: 0 })).toThrow('conv2d: a 7×7 kernel with padding 0 does not fit the 5×5 input (height×width)');
    // One larger than the input: an output of 0 × 0 pixels, refused as well.
    const six = Tensor.fromArray(new Float32Array(6 * 6 * 3 * 4), [6, 6, 3, 4]);
    expect(() => conv2d(x, six, b, { padding: 0 })).toThrow('conv2d: a 6×6 kernel with padding 0 does not fit the 5×5 input (height×width)');
    six.dispose();
    expect(conv2d(x, even, b, { padding: 0, stride: 2 }).shape).toEqual([2, 2, 2, 4]);
    for (const t of [x, w, even, b, big]) t.dispose();
  });

  // max(NaN, 0) is 0 on GPUs: a fused ReLU must keep a NaN (reluKeepNan) so that a broken layer
  // reaches the loss's NaN check, in exactly the outputs whose receptive field holds it.
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  it(`${style} kernels: a NaN input reaches, through the fused ReLU, the outputs whose receptive field holds it`, async () => {
    setKernelStyle(style);
    const { N, H, W, Ci, Co, K } = cases[0]; // kernels the cases above compile
    const x = pair([N, H, W, Ci], 1);
    x.ref.data[((1 * H + 4) * W + 0) * Ci + 2] = NaN; // image 1, row 4, column 0 (the left border)
    const w = pair([K, K, Ci, Co], 2, -0.3, 0.3);
    const b = pair([Co], 3);
    const ref = reluRef(conv2dRef(x.ref, w.ref, b.ref)).data;
    const nanAt = Array.from(ref, Number.isNaN);
    expect(nanAt.filter(Boolean).length).toBe(3 * 2 * Co); // rows 3–5, columns 0–1, every channel
    const y = await conv2d(Tensor.fromArray(x.ref.data, x.ref.shape), w.gpu, b.gpu, { relu: true }).toArray();
    expect(Array.from(y, Number.isNaN)).toEqual(nanAt);
    expectClose('forward away from the NaN', y.filter((_, i) => !nanAt[i]), ref.filter((_, i) => !nanAt[i]), 1e-5);
  });

  // More output tiles than the device allows workgroups in one dimension (here the limit is lowered
  // below the forward's tile count; on a real device, about a million output rows in the simd
  // style): the GEMM folds its tiles over x and y, and workgroups past the last tile do nothing.
  // It threw before.
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  it(`${style} kernels: a GEMM grid folded past the per-dimension workgroup limit matches the float64 reference`, async () => {
    setKernelStyle(style);
    const [N, H, W, Ci, Co, K] = [2, 16, 17, 3, 5, 3];
    const { BM, BN } = style === 'simd' ? simdGemmTiles(N * H * W, Co) : gemmTiles(N * H * W, Co);
    const tiles = Math.ceil((N * H * W) / BM) * Math.ceil(Co / BN);
    const limit = Math.max(4, Math.ceil(Math.sqrt(tiles))); // 4: the elementwise kernels' grids still fit
    expect(tiles).toBeGreaterThan(limit);
    const grids: string[] = [];
    setGemmCapture((g) => grids.push(g.name));
    await withDeviceLimit('maxComputeWorkgroupsPerDimension', limit, async () => {
      const x = pair([N, H, W, Ci], 41);
      const w = pair([K, K, Ci, Co], 42, -0.3, 0.3);
      const b = pair([Co], 43);
      param(x.gpu); param(w.gpu); param(b.gpu);
      const y = conv2d(x.gpu, w.gpu, b.gpu);
      const r = randomArray(y.size, 44);
      backward(dot(y, Tensor.fromArray(r, y.shape)));
      expectClose('forward', await y.toArray(), conv2dRef(x.ref, w.ref, b.ref).data, 1e-5);
      const scalar = () => dotRef(conv2dRef(x.ref, w.ref, b.ref), r);
      for (const [name, t] of [['x', x], ['w', w]] as const) {
        const idx = sampleIndices(t.ref.data.length, 60, 45);
        expectClose(`d/d${name}`, pick(await t.gpu.grad!.toArray(), idx), numericalGrad(scalar, t.ref, idx), 1e-5);
      }
    }).finally(() => setGemmCapture(null));
    expect(grids).toEqual(['conv3x3_forward', 'conv3x3_grad_input', 'conv3x3_grad_weight']);
  });

  /** The weight and bias gradients of a convolution whose weight gradient is split over k, against
   * central differences on the float64 reference, at `samples` sampled weights; pair seeds from
   * `seed` on. Returns the split factors the weight-gradient GEMM was dispatched with, the output's
   * height and width, and the input (no gradient asked for). */
  async function splitWeightGradient(c: { N: number; H: number; W: number; Ci: number; Co: number; K: number }, geometry: { stride: number; padding: number } | undefined, seed: number, samples: number) {
    const { N, H, W, Ci, Co, K } = c;
    const x = pair([N, H, W, Ci], seed);
    const w = pair([K, K, Ci, Co], seed + 1, -0.3, 0.3);
    const b = pair([Co], seed + 2);
    param(w.gpu); param(b.gpu);
    const splits: number[] = [];
    setGemmCapture((s) => { if (s.name.endsWith('_grad_weight')) splits.push(s.splitK ?? 1); });
    const f = () => conv2dRef(x.ref, w.ref, b.ref, geometry);
    const [Ho, Wo] = [f().shape[1], f().shape[2]];
    const r = randomArray(N * Ho * Wo * Co, seed + 3);
    try {
      backward(dot(conv2d(x.gpu, w.gpu, b.gpu, geometry), Tensor.fromArray(r, [N, Ho, Wo, Co])));
    } finally {
      setGemmCapture(null);
    }
    const scalar = () => dotRef(f(), r);
    const idx = sampleIndices(w.ref.data.length, samples, seed + 4);
    expectClose('d/dw', pick(await w.gpu.grad!.toArray(), idx), numericalGrad(scalar, w.ref, idx), 1e-5);
    expectClose('d/db', await b.gpu.grad!.toArray(), numericalGrad(scalar, b.ref), 1e-5);
    return { splits, outSize: [Ho, Wo], x };
  }

  // Enough pixels (N·H·W = 1,573) that the weight gradient is split over k and the slices summed,
  // and the bias gradient sums 1,573 rows per channel.
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  it(`${style} kernels: the weight gradient runs split over k, and it and the bias gradient over 1,573 rows match the float64 reference`, async () => {
    setKernelStyle(style);
    // The split the weight-gradient GEMM was dispatched with (unsplit, it matches the reference too).
    const { splits } = await splitWeightGradient({ N: 13, H: 11, W: 11, Ci: 3, Co: 6, K: 3 }, undefined, 6, 40);
    expect(splits).toHaveLength(1);
    expect(splits[0]).toBeGreaterThan(1);
  });

  // The split weight gradient at a stride: each slice of k (the output pixels) reads the input
  // strided, the simd kernels through aColOff (on x itself without padding, on its zero-padded copy
  // with). An even kernel without padding, and an odd one with; 1,560 output pixels (10 × 13 × 12;
  // the first geometry leaves the last input row and column unread) make 3 splits in both styles.
  // Not rerun with scrambled invocations: the strided loads are each invocation's own (see the
  // geometries above), and the test above runs the split GEMMs scrambled.
  const splitGeometries = [
    { N: 10, H: 41, W: 38, Ci: 3, Co: 5, K: 4, stride: 3, padding: 0 },
    { N: 10, H: 25, W: 24, Ci: 3, Co: 5, K: 3, stride: 2, padding: 1 },
  ];
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  for (const [i, c] of splitGeometries.entries())
  it.skipIf(invocationOrder() === 'scramble')(`${style} kernels: the weight gradient split over k at stride ${c.stride}, padding ${c.padding} (${c.K}×${c.K}): it and the bias gradient match the float64 reference`, async () => {
    setKernelStyle(style);
    const { splits, outSize, x } = await splitWeightGradient(c, { stride: c.stride, padding: c.padding }, 51 + i, 60);
    expect(outSize).toEqual([13, 12]);
    expect(splits).toEqual([3]);
    expect(x.gpu.grad ?? null).toBeNull();
  });

  // The first layer's input (the images) needs no gradient: its backward runs no input-gradient GEMM.
  it('an input that needs no gradient gets none, and no input-gradient GEMM runs', async () => {
    const [N, H, W, Ci, Co, K] = [1, 5, 5, 2, 3, 3];
    const x = pair([N, H, W, Ci], 21);
    const w = pair([K, K, Ci, Co], 22, -0.3, 0.3);
    const b = pair([Co], 23);
    param(w.gpu); param(b.gpu);
    const names: string[] = [];
    setGemmCapture((g) => names.push(g.name));
    try {
      backward(dot(conv2d(x.gpu, w.gpu, b.gpu), Tensor.fromArray(randomArray(N * H * W * Co, 24), [N, H, W, Co])));
    } finally {
      setGemmCapture(null);
    }
    expect(names).toEqual(['conv3x3_forward', 'conv3x3_grad_weight']);
    expect(x.gpu.grad ?? null).toBeNull();
  });

  // A frozen weight or bias (requiresGrad false, as SGD's "freeze one"): it gets no gradient and
  // its GEMM or sum does not run, and the other two gradients are still right (each null slot
  // must leave the others in their places). cases[0]'s kernels: none compiles anew.
  for (const style of ['tiled', 'simd'] as KernelStyle[])
  it(`${style} kernels: a frozen weight or bias gets no gradient, and the other gradients match the float64 reference`, async () => {
    setKernelStyle(style);
    const { N, H, W, Ci, Co, K } = cases[0];
    for (const frozen of ['w', 'b'] as const) {
      const x = pair([N, H, W, Ci], 1);
      const w = pair([K, K, Ci, Co], 2, -0.3, 0.3);
      const b = pair([Co], 3);
      param(x.gpu);
      if (frozen !== 'w') param(w.gpu);
      if (frozen !== 'b') param(b.gpu);
      const names: string[] = [];
      setGemmCapture((g) => names.push(g.name));
      const r = randomArray(N * H * W * Co, 4);
      try {
        backward(dot(conv2d(x.gpu, w.gpu, b.gpu), Tensor.fromArray(r, [N, H, W, Co])));
      } finally {
        setGemmCapture(null);
      }
      expect(names).toEqual(frozen === 'w' ? ['conv3x3_forward', 'conv3x3_grad_input'] : ['conv3x3_forward', 'conv3x3_grad_input', 'conv3x3_grad_weight']);
      const scalar = () => dotRef(conv2dRef(x.ref, w.ref, b.ref), r);
      const trainable = ([['x', x], ['w', w], ['b', b]] as const).filter(([name]) => name !== frozen);
      expect((frozen === 'w' ? w : b).gpu.grad ?? null).toBeNull();
      for (const [name, t] of trainable) {
        const idx = sampleIndices(t.ref.data.length, 60, 25);
        expectClose(`frozen ${frozen}: d/d${name}`, pick(await t.gpu.grad!.toArray(), idx), numericalGrad(scalar, t.ref, idx), 1e-5);
      }
    }
  });

  it('rejects mismatched shapes with a named error', async () => {
    tidy(() => {
      const x = Tensor.empty([1, 4, 4, 3]);
      expect(() => conv2d(x, Tensor.empty([3, 3, 4, 8]), Tensor.empty([8]))).toThrow(/conv2d: input has shape \[1, 4, 4, 3\] with 3 channels but weight \[3, 3, 4, 8\]/);
      expect(() => conv2d(x, Tensor.empty([3, 3, 3, 8]), Tensor.empty([7]))).toThrow(/conv2d: bias has shape \[7\], expected \[8\]/);
      expect(() => conv2d(x, Tensor.empty([2, 2, 3, 8]), Tensor.empty([8]))).toThrow(/an even kernel has no "same" padding: give padding/);
      expect(() => conv2d(x, Tensor.empty([3, 2, 3, 8]), Tensor.empty([8]), { padding: 0 })).toThrow(/conv2d: weight has shape \[3, 2, 3, 8\]; the kernel must be square/);
      expect(() => conv2d(Tensor.empty([4, 4, 3]), Tensor.empty([3, 3, 3, 8]), Tensor.empty([8]))).toThrow(/expected rank 4/);
    });
  });

  it('rejects an i32 tensor (e.g. labels) instead of computing zeros from its bits', () => {
    tidy(() => {
      const ints = Tensor.fromArray([1, 2, 3, 4], [1, 2, 2, 1], 'i32');
      const w = Tensor.fromArray([1], [1, 1, 1, 1]), b = Tensor.fromArray([0], [1]);
      expect(() => conv2d(ints, w, b)).toThrow('conv2d: input must be an f32 tensor, got i32');
      expect(() => conv2d(Tensor.fromArray([1, 2, 3, 4], [1, 2, 2, 1]), w, Tensor.fromArray([0], [1], 'i32'))).toThrow('conv2d: bias must be an f32 tensor, got i32');
    });
  });
});
