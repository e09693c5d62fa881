import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, setKernelStyle, setSimdWidth, simdWidth, type KernelStyle } from '../engine/device.ts';
import { backward, noGrad, param, zeroGrad } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { setGemmCapture, simdGemmTiles } from '../kernels/gemm.ts';
import { fusedMlpconvKernel, mlpconv, mlpconvTile, mlpconvTileCandidates, mlpconvTileProblem, mlpconvUnfused } from '../kernels/mlpconv.ts';
import { pool, runtimeStats } from '../engine/runtime.ts';
import { noUnrollBound } from '../kernels/loop-bounds.ts';
import { invocationOrder } from '../engine/invocation-order.ts';
import { dotRef, mlpconvRef, numericalGrad, refTensor, type RefTensor } from './reference.ts';
import { expectClose, mlpconvParams, pair, pick, randomArray, sampleIndices, withDeviceLimit } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => { setKernelStyle(null); closeGpu(); });

interface Case { N: number; H: number; W: number; Ci: number; K: number; C1: number; C2: number; C3: number }

// Odd shapes: pixel counts not multiples of the 4..32-pixel tiles, channel counts on both sides of
// the 64 channel lanes.
const cases: Case[] = [
  { N: 3, H: 9, W: 9, Ci: 5, K: 3, C1: 7, C2: 5, C3: 3 },
  { N: 2, H: 7, W: 7, Ci: 7, K: 5, C1: 9, C2: 7, C3: 5 },
  { N: 1, H: 5, W: 6, Ci: 3, K: 5, C1: 70, C2: 66, C3: 10 },
  { N: 2, H: 4, W: 3, Ci: 4, K: 1, C1: 6, C2: 130, C3: 65 },
];

/** Each tensor's GPU gradient (60 sampled entries) against central differences of `scalar` on its float64 twin. */
async function expectGradients(tensors: Record<string, { gpu: Tensor; ref: RefTensor }>, scalar: () => number, seed: number): Promise<void> {
  for (const [name, v] of Object.entries(tensors)) {
    const idx = sampleIndices(v.ref.data.length, 60, seed);
    expectClose(`d/d${name}`, pick(await v.gpu.grad!.toArray(), idx), numericalGrad(scalar, v.ref, idx), 1e-5);
  }
}

/** A fused block (`workgroupStorage` bytes for its tile) on seeded data: forward and every gradient against the float64 reference. */
async function expectBlockMatchesReference(c: Case, workgroupStorage?: number): Promise<void> {
  const x = pair([c.N, c.H, c.W, c.Ci], 11);
  param(x.gpu);
  const { t, gpu } = mlpconvParams(c, 20);
  const y = mlpconv(x.gpu, gpu, { workgroupStorage });
  const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
  expectClose('forward', await y.toArray(), f().data, 1e-5);
  const r = randomArray(y.size, 7);
  backward(dot(y, Tensor.fromArray(r, y.shape)));
  await expectGradients({ x, ...t }, () => dotRef(f(), r), 9);
}

const styles: KernelStyle[] = ['tiled', 'simd']; // GPU and CPU-adapter kernels, both checked here

describe('mlpconv (fused)', () => {
  for (const style of styles)
  for (const c of cases) {
    // The device's workgroup storage (large tiles) and just enough for the tiled kernel's smallest
    // tile (4 pixels). The simd kernel uses no workgroup storage: once.
    for (const storage of style === 'tiled' ? [undefined, 16 * (Math.max(c.C1, c.C2) + 18)] : [undefined]) {
      it(`${style} kernels: matches the float64 reference, forward and all gradients: ${JSON.stringify(c)} storage=${storage ?? 'device'}`, async () => {
        setKernelStyle(style);
        await expectBlockMatchesReference(c, storage);
      });
    }
  }

  // Other CPUs' widths: lavapipe's subgroup, and so the simd kernels' lane count, is 4 where SIMD
  // registers are 128 bits wide and 16 with LP_NATIVE_VECTOR_WIDTH=512 (AVX-512); 8 here. At 4
  // lanes, several columns a lane (9 channels: 3); at 16, fewer channels than lanes.
  for (const [lanes, c] of [[4, cases[1]], [16, cases[0]]] as const) {
    it(`simd kernels at ${lanes} lanes: forward and all gradients match the float64 reference: ${JSON.stringify(c)}`, async () => {
      setKernelStyle('simd');
      const adapterWidth = simdWidth();
      setSimdWidth(lanes);
      const gemms: number[] = [];
      setGemmCapture((g) => gemms.push(simdGemmTiles(g.M, g.N).L));
      try {
        await expectBlockMatchesReference(c);
        expect(gemms.length).toBeGreaterThan(0); // the gradients' GEMMs ran at this width too
        expect(new Set(gemms)).toEqual(new Set([lanes]));
      } finally {
        setGemmCapture(null);
        setSimdWidth(null);
      }
      expect(simdWidth()).toBe(adapterWidth);
    });
  }

  it('refuses a simd width that is not a whole number of lanes', () => {
    for (const bad of [0, 2.5, -4, NaN]) expect(() => setSimdWidth(bad)).toThrow(`simd width ${bad}: expected a whole number of lanes ≥ 1`);
  });

  // Hidden widths too wide for the tiled kernel's smallest tile in the workgroup storage given: the
  // block runs as its three convolutions (it threw before), forward and gradients still right.
  it('tiled kernels: hidden widths no tile fits run unfused, matching the float64 reference', async () => {
    setKernelStyle('tiled');
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 14);
    param(x.gpu);
    const { t, gpu } = mlpconvParams(c, 61);
    const seen: string[] = [];
    setGemmCapture((g) => seen.push(g.name));
    let y: Tensor;
    try {
      y = mlpconv(x.gpu, gpu, { workgroupStorage: 16 * (Math.max(c.C1, c.C2) + 18) - 4 });
    } finally {
      setGemmCapture(null);
    }
    expect(seen).toEqual(['conv3x3_forward', 'conv1x1_forward', 'conv1x1_forward']);
    // More than the device offers is refused by name (it failed later, as a shader that did not compile).
    const offered = (await getGpu()).limits.maxComputeWorkgroupStorageSize;
    expect(() => mlpconv(x.gpu, gpu, { workgroupStorage: offered + 16 })).toThrow(`mlpconv: workgroupStorage ${offered + 16} bytes: this device offers up to ${offered} (maxComputeWorkgroupStorageSize)`);
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
    expectClose('forward', await y.toArray(), f().data, 1e-5);
    const r = randomArray(y.size, 27);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    await expectGradients({ x, ...t }, () => dotRef(f(), r), 29);
  });

  // A device that binds fewer storage buffers a stage than the fused kernel's 8 (10 with h1 and
  // h2, which the simd kernel always writes): the block runs as its three convolutions (the fused
  // pipeline would fail to build). Shown with the engine's view of the limit lowered to 9.
  it('a device binding fewer storage buffers than the fused kernel needs runs the block unfused', async () => {
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 14);
    const { t, gpu } = mlpconvParams(c, 61);
    const want = mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref).data;
    const kernelsOf = async (style: KernelStyle, grad: boolean) => {
      setKernelStyle(style);
      for (const v of [x.gpu, ...Object.values(gpu)]) v.requiresGrad = grad;
      const seen: string[] = [];
      setGemmCapture((g) => seen.push(g.name));
      try {
        const y = await withDeviceLimit('maxStorageBuffersPerShaderStage', 9, () => mlpconv(x.gpu, gpu));
        expectClose(`${style}${grad ? ', with gradients' : ''}`, await y.toArray(), want, 1e-5);
        y.dispose();
      } finally {
        setGemmCapture(null);
      }
      return seen;
    };
    const chain = ['conv3x3_forward', 'conv1x1_forward', 'conv1x1_forward'];
    expect(await kernelsOf('tiled', false)).toEqual([]); // fused: 8 bindings
    expect(await kernelsOf('tiled', true)).toEqual(chain); // h1 and h2 too: 10
    expect(await kernelsOf('simd', false)).toEqual(chain);
    setKernelStyle(null);
  });

  // A network's first block: its input (the images) needs no gradient, its weights do. The fused
  // forward must still keep the hidden activations the weights' gradients are computed from.
  for (const style of styles)
  it(`${style} kernels: an input that needs no gradient (a first block): the weights' gradients match the float64 reference`, async () => {
    setKernelStyle(style);
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 14);
    const { t, gpu } = mlpconvParams(c, 61);
    const y = mlpconv(x.gpu, gpu);
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
    expectClose('forward', await y.toArray(), f().data, 1e-5);
    const r = randomArray(y.size, 18);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    expect(x.gpu.grad).toBeNull();
    await expectGradients(t, () => dotRef(f(), r), 20);
  });

  // Frozen weights (requiresGrad false, as in fine-tuning): no gradient for them, and a layer's
  // input gradient only where a layer below needs one; the others as the reference's. Both styles:
  // each its own fused forward (which must keep h1, h2) and backward GEMMs, cases[0]'s.
  for (const style of styles)
  it(`${style} kernels: frozen weights get no gradient, and the GEMMs only they needed are not run; the rest match the float64 reference`, async () => {
    setKernelStyle(style);
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 14); // the images: no gradient
    const { t, gpu } = mlpconvParams(c, 61);
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
    const r = randomArray(c.N * c.H * c.W * c.C3, 18);
    const all = [gpu.w1, gpu.b1, gpu.w2, gpu.b2, gpu.w3, gpu.b3];
    const backwardDispatches = async (trainable: Tensor[]) => {
      for (const p of all) p.requiresGrad = trainable.includes(p);
      zeroGrad(all);
      const y = mlpconv(x.gpu, gpu);
      const loss = dot(y, Tensor.fromArray(r, y.shape));
      await loss.item();
      const before = runtimeStats().dispatches;
      backward(loss);
      return runtimeStats().dispatches - before;
    };
    const whole = await backwardDispatches(all);
    const upper = await backwardDispatches([gpu.b2, gpu.w3, gpu.b3]);
    expect([gpu.w1.grad, gpu.b1.grad, gpu.w2.grad]).toEqual([null, null, null]);
    await expectGradients({ b2: t.b2, w3: t.w3, b3: t.b3 }, () => dotRef(f(), r), 20);
    const last = await backwardDispatches([gpu.w3]);
    expect([gpu.b2.grad, gpu.b3.grad]).toEqual([null, null]);
    await expectGradients({ w3: t.w3 }, () => dotRef(f(), r), 21);
    expect(whole).toBeGreaterThan(upper);
    expect(upper).toBeGreaterThan(last);
    // The middle layer frozen: the gradient still flows through it to the first layer's weights.
    await backwardDispatches([gpu.w1, gpu.b1, gpu.w3, gpu.b3]);
    expect([gpu.w2.grad, gpu.b2.grad]).toEqual([null, null]);
    await expectGradients({ w1: t.w1, b1: t.b1, w3: t.w3, b3: t.b3 }, () => dotRef(f(), r), 23);
    // Only the first layer's bias trainable: the gradient still flows down to it.
    await backwardDispatches([gpu.b1]);
    expect([gpu.w1.grad, gpu.w2.grad, gpu.b2.grad, gpu.w3.grad, gpu.b3.grad]).toEqual([null, null, null, null, null]);
    await expectGradients({ b1: t.b1 }, () => dotRef(f(), r), 24);
    // Nothing below the middle layer trainable: one input-gradient GEMM (into layer 2), none into layer 1.
    const gemms: string[] = [];
    setGemmCapture((g) => gemms.push(g.name));
    try {
      await backwardDispatches([gpu.b2, gpu.w3, gpu.b3]);
    } finally {
      setGemmCapture(null);
    }
    expect(gemms.filter((n) => n.endsWith('_grad_input'))).toEqual(['conv1x1_grad_input']);
    for (const p of all) p.requiresGrad = true;
  });

  // A K×K layer at another stride or padding (ImageNet's NIN: 11×11 at stride 4, no padding): the
  // unfused chain, its first convolution strided; an even kernel with padding too.
  // (Not rerun with scrambled invocations: conv2d.test.ts's strided cases say why.)
  for (const style of styles)
  for (const g of [{ K: 5, stride: 3, padding: 0 }, { K: 4, stride: 2, padding: 1 }])
  it.skipIf(invocationOrder() === 'scramble')(`${style} kernels: stride ${g.stride}, padding ${g.padding} (K ${g.K}) runs unfused and matches the float64 reference, forward and all gradients`, async () => {
    setKernelStyle(style);
    const c = { N: 2, H: 11, W: 10, Ci: 3, C1: 6, C2: 5, C3: 4, K: g.K };
    const x = pair([c.N, c.H, c.W, c.Ci], 15);
    param(x.gpu);
    const { t, gpu } = mlpconvParams(c, 62);
    const names: string[] = [];
    setGemmCapture((q) => names.push(q.name));
    const y = mlpconv(x.gpu, gpu, { stride: g.stride, padding: g.padding });
    setGemmCapture(null);
    expect(names[0]).toBe(`conv${g.K}x${g.K}_s${g.stride}_p${g.padding}_forward`);
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref, true, g);
    expect(y.shape).toEqual(f().shape);
    expectClose('forward', await y.toArray(), f().data, 1e-5);
    const r = randomArray(y.size, 21);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    await expectGradients({ x, ...t }, () => dotRef(f(), r), 22);
    expect(() => mlpconv(x.gpu, gpu, { stride: g.stride, padding: g.padding, forceFused: true })).toThrow(/^mlpconv: forceFused: the fused kernel keeps the input's size/);
    // Checked as conv2d checks them, and named as mlpconv's: a half padding made "same" for an
    // even kernel reached the fused kernel, whose WGSL failed to compile.
    expect(() => mlpconv(x.gpu, gpu, { padding: (g.K - 1) / 2 + 0.5 * (g.K % 2) })).toThrow(/^mlpconv: padding [\d.]+ must be an integer ≥ 0$/);
    expect(() => mlpconv(x.gpu, gpu, { stride: 0, padding: g.padding })).toThrow(/^mlpconv: stride 0 must be an integer ≥ 1$/);
    expect(() => mlpconv(x.gpu, gpu, { padding: 0, stride: 20 })).not.toThrow();
    // Linear class maps on the unfused chain too: no ReLU on its last convolution.
    const linear = await mlpconv(x.gpu, gpu, { stride: g.stride, padding: g.padding, relu3: false }).toArray();
    expect(linear.some((v) => v < 0), 'some outputs negative').toBe(true);
    expectClose('linear forward', linear, mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref, false, g).data, 1e-5);
  });

  // Linear class maps on a strided first layer (a config's linearOut with a stride): the unfused
  // chain's last convolution without its ReLU, in the gradient too (the test above checks only the
  // forward of this combination). The shapes of the first geometry above: no kernel compiles anew.
  for (const style of styles)
  it.skipIf(invocationOrder() === 'scramble')(`${style} kernels: stride 3, padding 0 (K 5) with relu3 false runs unfused; forward and all gradients match the float64 reference`, async () => {
    setKernelStyle(style);
    const g = { K: 5, stride: 3, padding: 0 };
    const c = { N: 2, H: 11, W: 10, Ci: 3, C1: 6, C2: 5, C3: 4, K: g.K };
    const x = pair([c.N, c.H, c.W, c.Ci], 16);
    param(x.gpu);
    const { t, gpu } = mlpconvParams(c, 63);
    const y = mlpconv(x.gpu, gpu, { stride: g.stride, padding: g.padding, relu3: false });
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref, false, g);
    const ya = await y.toArray();
    expect(ya.some((v) => v < 0), 'some outputs negative').toBe(true);
    expectClose('forward', ya, f().data, 1e-5);
    const r = randomArray(y.size, 23);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    await expectGradients({ x, ...t }, () => dotRef(f(), r), 24);
  });

  // Linear class maps (relu3: false, a config's linearOut): no ReLU on the output, none in its gradient.
  for (const style of styles)
  it(`${style} kernels: relu3 false (linear output) matches the float64 reference, forward and all gradients`, async () => {
    setKernelStyle(style);
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 13);
    param(x.gpu);
    const { t, gpu } = mlpconvParams(c, 60);
    const y = mlpconv(x.gpu, gpu, { relu3: false });
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref, false);
    const ya = await y.toArray();
    expect(ya.some((v) => v < 0), 'some outputs negative').toBe(true);
    expectClose('forward', ya, f().data, 1e-5);
    const r = randomArray(y.size, 17);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    const scalar = () => dotRef(f(), r);
    await expectGradients({ x, ...t }, scalar, 19);
  });

  // max(NaN, 0) is 0 on GPUs (lavapipe too): a ReLU that let a NaN activation vanish would hide a
  // broken layer from the loss's NaN check. The NaN must reach exactly the outputs the reference's.
  for (const style of styles)
  it(`${style} kernels: a NaN input reaches the outputs whose receptive field holds it, fused and unfused`, async () => {
    setKernelStyle(style);
    const c = cases[1]; // and an input that needs a gradient: the kernels of the fused-vs-unfused check below
    const data = randomArray(c.N * c.H * c.W * c.Ci, 51);
    data[((0 * c.H + 2) * c.W + 3) * c.Ci + 1] = NaN;
    const { t, gpu } = mlpconvParams(c, 52);
    const ref = mlpconvRef(refTensor([c.N, c.H, c.W, c.Ci], data), t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref).data;
    const nanAt = Array.from(ref, Number.isNaN);
    expect(nanAt.filter(Boolean).length).toBe(25 * c.C3); // the 5×5 pixels around it (all inside the 7×7 image), every channel
    const x = param(Tensor.fromArray(data, [c.N, c.H, c.W, c.Ci]));
    for (const [name, fn] of [['fused', mlpconv], ['unfused', mlpconvUnfused]] as const) {
      const y = await fn(x, gpu).toArray();
      expect(Array.from(y, Number.isNaN), name).toEqual(nanAt);
      expectClose(name, y.filter((_, i) => !nanAt[i]), ref.filter((_, i) => !nanAt[i]), 1e-5);
    }
  });

  for (const style of styles)
  it(`${style} kernels: equals the unfused conv + 1×1 chain in forward and every gradient`, async () => {
    setKernelStyle(style);
    const c = cases[1];
    const x = pair([c.N, c.H, c.W, c.Ci], 31);
    param(x.gpu);
    const { gpu } = mlpconvParams(c, 40);
    const params = [x.gpu, gpu.w1, gpu.b1, gpu.w2, gpu.b2, gpu.w3, gpu.b3];
    const r = Tensor.fromArray(randomArray(c.N * c.H * c.W * c.C3, 8), [c.N, c.H, c.W, c.C3]);
    const run = async (fn: typeof mlpconv) => {
      zeroGrad(params);
      const y = fn(x.gpu, gpu);
      backward(dot(y, r));
      return [await y.toArray(), ...(await Promise.all(params.map((p) => p.grad!.toArray())))];
    };
    const fused = await run(mlpconv);
    const unfused = await run(mlpconvUnfused);
    const names = ['y', 'dx', 'dw1', 'db1', 'dw2', 'db2', 'dw3', 'db3'];
    names.forEach((n, i) => expectClose(`fused vs unfused ${n}`, fused[i], unfused[i], 1e-6));
  });

  for (const style of styles)
  it(`${style} kernels: the hidden activations the backward reads outlive a tidy() around the forward`, async () => {
    setKernelStyle(style);
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 11);
    param(x.gpu);
    const { t, gpu } = mlpconvParams(c, 20);
    const y = tidy(() => mlpconv(x.gpu, gpu)); // h1 and h2 made inside: saved for the backward, not disposed
    const r = randomArray(y.size, 7);
    backward(dot(y, Tensor.fromArray(r, y.shape)));
    const f = (): RefTensor => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
    await expectGradients({ x, ...t }, () => dotRef(f(), r), 9);
  });

  it('simd kernels without autograd: the hidden activations the kernel writes are released with the call', async () => {
    setKernelStyle('simd');
    const c = cases[0];
    const x = pair([c.N, c.H, c.W, c.Ci], 12);
    const { gpu } = mlpconvParams(c, 21);
    await noGrad(() => mlpconv(x.gpu, gpu)).toArray(); // pipelines and uniforms made once
    const before = pool().stats.liveBuffers;
    const y = noGrad(() => mlpconv(x.gpu, gpu));
    await y.toArray();
    y.dispose();
    expect(pool().stats.liveBuffers).toBe(before);
  });

  it('picks its pixel tile from the workgroup storage limit', () => {
    const s = { N: 1, H: 8, W: 8, Ci: 96, K: 5, C1: 192, C2: 192, C3: 192 };
    expect(mlpconvTile(s, 16384)).toEqual({ TP: 16, CL: 64 });
    expect(mlpconvTile(s, 32768)).toEqual({ TP: 32, CL: 64 });
    // Narrower layers: fewer channel lanes (about 4 channels a thread), more pixels.
    expect(mlpconvTile({ ...s, C1: 32, C2: 32, C3: 32 }, 32768)).toEqual({ TP: 128, CL: 8 });
    expect(mlpconvTile({ ...s, C1: 16, C2: 16, C3: 10 }, 32768)).toEqual({ TP: 128, CL: 4 });
    expect(mlpconvTile({ ...s, C1: 100, C2: 70, C3: 10 }, 32768)).toEqual({ TP: 64, CL: 32 });
    // Storage for more: at most 256 pixels a workgroup, even at 4 channel lanes (8 pixels a lane would be 512).
    expect(mlpconvTile({ ...s, C1: 16, C2: 16, C3: 10 }, 1 << 20)).toEqual({ TP: 256, CL: 4 });
    // Too little storage for many pixel lanes: falls back to 64 channel lanes × 4 pixels.
    expect(mlpconvTile({ ...s, C1: 9, C2: 7 }, 16 * (9 + 18))).toEqual({ TP: 4, CL: 64 });
    // A tuned tile of no pixels (or fewer than the pixel lanes) is refused.
    expect(mlpconvTileProblem(s, { TP: 0, CL: 64 }, 1 << 20)).toMatch(/TP must be a multiple of the 4 pixel lanes/);
    expect(mlpconvTileProblem(s, { TP: 4, CL: 64 }, 1 << 20)).toBeNull();
    // The autotuner's candidates keep at most 64 accumulators a thread: at 192 channels, 16 channel
    // lanes with 4 pixels each (48) are one, with 8 pixels each (96) not.
    const candidates = mlpconvTileCandidates(s, 1 << 20);
    expect(candidates).toContainEqual({ TP: 64, CL: 16 });
    expect(candidates).not.toContainEqual({ TP: 128, CL: 16 });
  });

  // Small loop counts are hidden so that lavapipe does not unroll them (compile time, not speed);
  // the paper's widths must keep their literal bounds, as the GPU runs them.
  it("hides only small channel-loop counts from the compiler: the paper's blocks keep literal bounds", () => {
    expect([1, 2, 32, 33, 192].map(noUnrollBound)).toEqual(['1u', 'select(2u, 0u, nwg.z == 0u)', 'select(32u, 0u, nwg.z == 0u)', '33u', '192u']);
    const block1 = { N: 128, H: 32, W: 32, Ci: 3, K: 5, C1: 192, C2: 160, C3: 96 };
    const paper = fusedMlpconvKernel(block1, mlpconvTile(block1, 49152), true, true).code;
    expect(paper).toContain('for (var k = 0u; k < 192u; k++)');
    expect(paper).toContain('for (var k = 0u; k < 160u; k++)');
    expect(paper).not.toContain('nwg.z == 0u');
    const odd = { ...block1, C1: 21, C2: 17, C3: 11 };
    expect(fusedMlpconvKernel(odd, mlpconvTile(odd, 49152), true, true).code).toContain('for (var k = 0u; k < select(17u, 0u, nwg.z == 0u); k++)');
  });

  it('rejects mismatched shapes with named errors', () => {
    const c = cases[0];
    const { gpu } = mlpconvParams(c, 50);
    expect(() => mlpconv(Tensor.empty([1, 4, 4, c.Ci + 1]), gpu)).toThrow(/mlpconv: input has shape \[1, 4, 4, 6\] with 6 channels but w1/);
    expect(() => mlpconv(Tensor.empty([1, 4, 4, c.Ci]), { ...gpu, b2: Tensor.empty([c.C2 + 1]) })).toThrow(/mlpconv: b2 has shape \[6\], expected \[5\]/);
    expect(() => mlpconv(Tensor.empty([1, 4, 4, c.Ci]), { ...gpu, w3: Tensor.empty([1, 1, c.C2 + 2, c.C3]) })).toThrow(/mlpconv: w3 has shape/);
    // An even K×K layer has no "same" padding: refused unless padding is given.
    expect(() => mlpconv(Tensor.empty([1, 4, 4, c.Ci]), { ...gpu, w1: Tensor.empty([2, 2, c.Ci, c.C1]) })).toThrow(/mlpconv: w1 has shape \[2, 2, 5, 7\]; the kernel must be square with odd K/);
  });

  it('names a missing parameter and rejects i32 tensors', () => {
    const c = cases[0];
    const { gpu } = mlpconvParams(c, 51);
    const x = Tensor.empty([1, 4, 4, c.Ci]);
    const { b2: _, ...noB2 } = gpu;
    expect(() => mlpconv(x, noB2 as never)).toThrow('mlpconv: b2 is missing');
    expect(() => mlpconv(Tensor.empty([1, 4, 4, c.Ci], 'i32'), gpu)).toThrow('mlpconv: input must be an f32 tensor, got i32');
    expect(() => mlpconv(x, { ...gpu, b3: Tensor.empty([c.C3], 'i32') })).toThrow('mlpconv: b3 must be an f32 tensor, got i32');
  });
});
