// The subgroup-matrix GEMM (kernels/gemm-matrix.ts). On lavapipe its emulated form runs every
// convolution pass against the float64 reference (the tiling, both fragment layouts, split-K, the
// f16 rounding); the real form's WGSL is compiled by Dawn's null backend, which offers every
// feature; on an adapter with subgroup matrices (a lent GPU) the real form runs too.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { create } from 'webgpu';
import { closeGpu, getGpu, gpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { dot } from '../kernels/elementwise.ts';
import { setGemmCapture, type GemmDispatch, type GemmSpec } from '../kernels/gemm.ts';
import {
  checkedMatrixSettings,
  describeMatrixMode,
  EMULATED_MATRIX,
  forceMatrixMode,
  gemmMatrixKernel,
  matrixMode,
  matrixTile,
  matrixTileProblem,
  parseMatrixMode,
  type MatrixMode,
  type MatrixTile,
  withoutMatrixUnits,
} from '../kernels/gemm-matrix.ts';
import { forceTuning } from '../kernels/tuning.ts';
import { mlpconv } from '../kernels/mlpconv.ts';
import { conv2dRef, dotRef, mlpconvRef, numericalGrad, refTensor } from './reference.ts';
import { expectClose, mlpconvParams, pair, pick, randomArray, sampleIndices, withDeviceLimit } from './helpers.ts';

beforeAll(async () => {
  await getGpu();
});
afterEach(() => {
  forceMatrixMode(undefined);
  forceTuning({});
});
afterAll(() => closeGpu());

const emulated = (component: 'f32' | 'f16'): MatrixMode => ({ component, ...EMULATED_MATRIX, shape: { ...EMULATED_MATRIX.shape }, emulated: true });

/**
 * `data` rounded to f16 by the device as the f16 kernels round operands: stored into an f16
 * workgroup array and read back after a barrier. WGSL leaves the direction of an inexact conversion
 * to the implementation; and lavapipe drops an f32(f16(v)) round trip (pack2x16float's too) unless
 * a barrier sits between the store and the load.
 */
async function roundedToF16(data: ArrayLike<number>): Promise<Float64Array> {
  const x = Tensor.fromArray(data, [data.length]);
  const y = Tensor.empty([data.length]);
  const code = `enable f16;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
var<workgroup> h: array<f16, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * 64u + lid;
  h[lid] = f16(x[min(i, ${data.length - 1}u)]);
  workgroupBarrier();
  if (i < ${data.length}u) { y[i] = f32(h[lid]); }
}`;
  dispatch({ name: 'round_to_f16', code }, [x, y], [Math.ceil(data.length / 64)]);
  const out = Float64Array.from(await y.toArray());
  x.dispose();
  y.dispose();
  // Rounded (not copied), by at most one f16 step (2^-10 relative).
  expect(out.some((v, i) => v !== data[i])).toBe(true);
  for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - data[i])).toBeLessThanOrEqual(Math.abs(data[i]) * 2 ** -10);
  return out;
}

/**
 * A 3×3 convolution's forward pass and both gradients (A k-contiguous, B n-contiguous; B
 * k-contiguous; A m-contiguous, split-K) in the forced mode, against central differences on the
 * float64 reference. Odd sizes: M = 60, N = 9, K = 45, so every tile has partial edges.
 * All three GEMMs must be dispatched as matrix kernels with `tile`: the tiled or simd kernel, or
 * another tile, would match the reference as well.
 * f16Operands: the reference takes the GEMM operands (x, w and the output gradient) rounded to f16
 * as the kernel stages them, so only the f32 summation order differs from it.
 */
async function convAgainstReference(label: string, tile: MatrixTile, tol: number, opts: { splitK?: number; f16Operands?: boolean } = {}) {
  const { splitK, f16Operands } = opts;
  const [N, H, W, Ci, Co, K] = [2, 5, 6, 5, 9, 3];
  const x = pair([N, H, W, Ci], 1);
  const w = pair([K, K, Ci, Co], 2, -0.3, 0.3);
  const b = pair([Co], 3);
  const r = randomArray(N * H * W * Co, 4);
  const [xRef, wRef, rRef] = f16Operands
    ? [refTensor(x.ref.shape, await roundedToF16(x.ref.data)), refTensor(w.ref.shape, await roundedToF16(w.ref.data)), await roundedToF16(r)]
    : [x.ref, w.ref, r];
  const f = () => conv2dRef(xRef, wRef, b.ref);
  const idxX = sampleIndices(x.ref.data.length, 12, 5);
  const idxW = sampleIndices(w.ref.data.length, 12, 6);
  const scalar = () => dotRef(f(), rRef);
  const xg = param(Tensor.fromArray(x.ref.data, x.ref.shape));
  const wg = param(Tensor.fromArray(w.ref.data, w.ref.shape));
  const seen: { name: string; splitK: number; used: GemmDispatch }[] = [];
  if (splitK) forceTuning({ table: { adapter: gpu().adapterName, date: 'x', gemm: {}, mlpconv: {}, splitK: { [`conv3x3_grad_weight ${K * K * Ci}x${Co}x${N * H * W}`]: splitK } } });
  setGemmCapture((s, _, used) => seen.push({ name: s.name, splitK: s.splitK ?? 1, used }));
  try {
    const y = conv2d(xg, wg, b.gpu);
    expectClose(`${label} forward`, await y.toArray(), f().data, tol);
    backward(dot(y, Tensor.fromArray(r, [N, H, W, Co])));
    expectClose(`${label} d/dx`, pick(await xg.grad!.toArray(), idxX), numericalGrad(scalar, xRef, idxX), tol);
    expectClose(`${label} d/dw`, pick(await wg.grad!.toArray(), idxW), numericalGrad(scalar, wRef, idxW), tol);
  } finally {
    setGemmCapture(null);
  }
  expect(seen.map((s) => s.name)).toEqual(['conv3x3_forward', 'conv3x3_grad_input', 'conv3x3_grad_weight']);
  for (const s of seen) expect(s.used, `${label}: ${s.name}`).toEqual({ style: 'matrix', tile });
  if (splitK) expect(seen[2].splitK).toBe(splitK);
}

describe('subgroup-matrix GEMM, emulated', () => {
  it('f32: the default tile and forced tiles of other shapes run as matrix kernels with that tile and match the float64 reference in all three passes', async () => {
    const tiles: (MatrixTile | undefined)[] = [
      undefined,
      { FM: 1, FN: 1, BK: 8 },
      { FM: 3, FN: 2, BK: 16 },
      { FM: 2, FN: 5, BK: 24 },
    ];
    for (const tile of tiles) {
      forceMatrixMode(emulated('f32'), tile);
      const t = tile ?? matrixTile(emulated('f32'));
      await convAgainstReference(`f32 ${t.FM}×${t.FN} fragments, BK ${t.BK}`, t, 1e-5);
    }
  });

  it('f32, fragments of other shapes (M, N, K all different): a fragment\'s rows and columns are not confused', async () => {
    // NIN_MATRIX's emulated shape is 8×8×8, where cM = cN; the emulation takes any cM×cN×cK with one
    // lane per result element. Several fragments each way, so every fragment offset is exercised.
    const shapes = [{ M: 8, N: 16, K: 4 }, { M: 16, N: 4, K: 8 }];
    for (const shape of shapes) {
      const mode: MatrixMode = { component: 'f32', shape, subgroupSize: shape.M * shape.N, emulated: true };
      forceMatrixMode(mode, { FM: 2, FN: 3, BK: 16 });
      await convAgainstReference(`f32 ${shape.M}×${shape.N}×${shape.K}, 2×3 fragments, BK 16`, { FM: 2, FN: 3, BK: 16 }, 1e-5);
    }
    // Fragments narrower than tall (4 columns), two a tile: N = 9 spans two column tiles, so a tile
    // width taken from the fragment's rows would leave columns unwritten.
    const narrow: MatrixMode = { component: 'f32', shape: { M: 16, N: 4, K: 8 }, subgroupSize: 64, emulated: true };
    forceMatrixMode(narrow, { FM: 1, FN: 2, BK: 8 });
    await convAgainstReference('f32 16×4×8, 1×2 fragments, BK 8', { FM: 1, FN: 2, BK: 8 }, 1e-5);
  });

  it('f32 with the weight gradient split over k (slices summed afterwards)', async () => {
    forceMatrixMode(emulated('f32'));
    await convAgainstReference('f32 split-K 3', matrixTile(emulated('f32')), 1e-5, { splitK: 3 });
  });

  it('f16 operands, f32 accumulation: all three passes match the float64 reference on the f16-rounded operands to f32 round-off', async (ctx) => {
    if (!gpu().features.has('shader-f16')) {
      // Without the feature the mode must be refused by name; the f16 arithmetic itself is untested here.
      expect(() => parseMatrixMode('f16-emulated', gpu())).toThrow(/no shader-f16/);
      return ctx.skip();
    }
    forceMatrixMode(emulated('f16'));
    // Against the unrounded reference any f16 kernel errs by ~2e-4, so the tolerance there must be
    // loose enough to pass sums kept in f16 too. With the operands rounded as the kernel rounds them,
    // a correct kernel errs by f32 round-off only (lavapipe: ≤ 1.3e-7), an f16 accumulator by
    // 7e-4 or more, operands left unrounded by 2e-4: 1e-5 sits 75× and 20× from either side.
    await convAgainstReference('f16', matrixTile(emulated('f16')), 1e-5, { f16Operands: true });
  });

  it('an mlpconv block runs as matrix GEMMs, forward and backward, with the float64 block\'s output and weight gradients', async () => {
    const c = { N: 2, H: 5, W: 5, Ci: 3, K: 3, C1: 8, C2: 6, C3: 5 };
    const x = pair([c.N, c.H, c.W, c.Ci], 21);
    const { t, gpu: p } = mlpconvParams(c, 21);
    const f = () => mlpconvRef(x.ref, t.w1.ref, t.b1.ref, t.w2.ref, t.b2.ref, t.w3.ref, t.b3.ref);
    const r = randomArray(c.N * c.H * c.W * c.C3, 22);
    const scalar = () => dotRef(f(), r);
    // A two-fragment tile: with the default's 32, lavapipe took about 30 s to compile these eight
    // GEMMs on a cold shader cache, against 4 s (the default tile runs in the tests above).
    const tile: MatrixTile = { FM: 2, FN: 1, BK: 16 };
    forceMatrixMode(emulated('f32'), tile);
    const seen: { name: string; used: GemmDispatch }[] = [];
    setGemmCapture((s, _, used) => seen.push({ name: s.name, used }));
    try {
      const y = mlpconv(x.gpu, p);
      expectClose('mlpconv on matrix GEMMs', await y.toArray(), f().data, 1e-5);
      backward(dot(y, Tensor.fromArray(r, y.shape)));
      // The 1×1 layers' gradient GEMMs (B k-contiguous, A m-contiguous) at other shapes than the 3×3's.
      for (const name of ['w1', 'w2', 'w3'] as const) {
        const idx = sampleIndices(t[name].ref.data.length, 24, 23);
        expectClose(`mlpconv on matrix GEMMs d/d${name}`, pick(await p[name].grad!.toArray(), idx), numericalGrad(scalar, t[name].ref, idx), 1e-5);
      }
    } finally {
      setGemmCapture(null);
    }
    expect(seen.map((s) => s.name)).toEqual([
      'conv3x3_forward', 'conv1x1_forward', 'conv1x1_forward',
      'conv1x1_grad_input', 'conv1x1_grad_weight', 'conv1x1_grad_input', 'conv1x1_grad_weight', 'conv3x3_grad_weight',
    ]);
    for (const s of seen) expect(s.used, s.name).toEqual({ style: 'matrix', tile });
  });
});

describe('subgroup-matrix GEMM, real', () => {
  // What a GEMM spec looks like to the kernel, for compiling without running.
  const spec = (aContiguous: 'm' | 'k', bContiguous: 'k' | 'n', splitK = 1): GemmSpec => ({
    name: 'compile_check',
    M: 100, N: 37, K: 75, splitK, aContiguous, bContiguous,
    bindings: `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;`,
    loadA: 'fn loadA(m: u32, k: u32) -> f32 { return a[m * K + k]; }',
    loadB: 'fn loadB(k: u32, n: u32) -> f32 { return b[k * N + n]; }',
    store: 'fn store(m: u32, n: u32, z: u32, v: f32) { c[(z * M + m) * N + n] = v; }',
  });

  it("Dawn's null backend (which offers every feature) compiles the real kernels: f32 and f16, both layouts, split-K", async () => {
    const instance = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await instance.requestAdapter();
    expect(adapter, 'null adapter').toBeTruthy();
    const device = await adapter!.requestDevice({ requiredFeatures: ['chromium-experimental-subgroup-matrix', 'subgroups', 'shader-f16'] as GPUFeatureName[] });
    // Dawn wants a subgroup-matrix workgroup's width a multiple of the adapter's largest subgroup.
    const subgroupSize = adapter!.info.subgroupMaxSize ?? 0;
    expect(subgroupSize).toBeGreaterThan(0);
    const modes: MatrixMode[] = [
      { component: 'f32', shape: { M: 8, N: 8, K: 8 }, subgroupSize, emulated: false },
      { component: 'f16', shape: { M: 16, N: 16, K: 16 }, subgroupSize, emulated: false },
      { component: 'f16', shape: { M: 16, N: 8, K: 16 }, subgroupSize, emulated: false },
      // M, N, K all different: a left/right/result type with rows and columns swapped would not
      // type-check in the multiply.
      { component: 'f32', shape: { M: 16, N: 8, K: 4 }, subgroupSize, emulated: false },
    ];
    const tiles: MatrixTile[] = [{ FM: 2, FN: 4, BK: 32 }, { FM: 1, FN: 1, BK: 16 }];
    let compiled = 0;
    try {
      for (const mode of modes) {
        for (const tile of tiles) {
          for (const [s, what] of [[spec('k', 'n'), 'A k-major'], [spec('m', 'k', 3), 'A m-major, split-K 3']] as const) {
            expect(matrixTileProblem(mode, tile, 48 * 1024, 1024)).toBeNull();
            const { kernel } = gemmMatrixKernel(s, mode, tile);
            device.pushErrorScope('validation');
            const module = device.createShaderModule({ code: kernel.code });
            const info = await module.getCompilationInfo();
            const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}: ${m.message}`);
            expect(errors, `${mode.component} ${mode.shape.M}×${mode.shape.N}×${mode.shape.K}, ${JSON.stringify(tile)}, ${what}`).toEqual([]);
            device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
            expect((await device.popErrorScope())?.message ?? null).toBeNull();
            compiled++;
          }
        }
      }
    } finally {
      device.destroy();
    }
    expect(compiled).toBe(16);
  });

  const offered = () => gpu().features.has('chromium-experimental-subgroup-matrix');
  it('on an adapter with subgroup matrices (NIN_MATRIX=f32 or f16 and allow_unsafe_apis): all three passes match the reference', async (ctx) => {
    if (!offered()) {
      console.log(`skipped: '${gpu().adapterName}' offers no subgroup matrices to this process`);
      return ctx.skip();
    }
    const checked: string[] = [];
    for (const component of ['f32', 'f16'] as const) {
      let mode: MatrixMode | null = null;
      try {
        mode = parseMatrixMode(component, gpu());
      } catch (e) {
        console.log(`${component}: ${(e as Error).message}`);
        continue;
      }
      forceMatrixMode(mode);
      // f16 loosely, against the unrounded reference: how closely a GPU's matrix units sum f16
      // products has not been measured (the emulated test above pins the kernel's own arithmetic).
      await convAgainstReference(`real ${component} ${mode!.shape.M}×${mode!.shape.N}×${mode!.shape.K}`, matrixTile(mode!), component === 'f16' ? 5e-3 : 1e-5);
      checked.push(component);
    }
    // The feature is offered: a form that none of our modes can use is a failure, not a pass.
    expect(checked.length, 'subgroup-matrix components checked').toBeGreaterThan(0);
  });
});

describe('NIN_MATRIX', () => {
  const g = (over: Partial<Parameters<typeof parseMatrixMode>[1]> = {}) => ({
    adapterName: 'Test GPU',
    features: new Set(['subgroups', 'shader-f16', 'chromium-experimental-subgroup-matrix']),
    subgroupSize: 32 as number | null,
    subgroupMatrixConfigs: [
      { M: 8, N: 8, K: 8, componentType: 'f32', resultComponentType: 'f32' },
      { M: 16, N: 16, K: 16, componentType: 'f16', resultComponentType: 'f32' },
      { M: 16, N: 16, K: 16, componentType: 'f16', resultComponentType: 'f16' },
    ],
    ...over,
  });

  it('picks the largest configuration with the asked operands and f32 results', () => {
    expect(parseMatrixMode(undefined, g())).toBeNull();
    expect(parseMatrixMode('off', g())).toBeNull();
    expect(parseMatrixMode('f32', g())).toEqual({ component: 'f32', shape: { M: 8, N: 8, K: 8 }, subgroupSize: 32, emulated: false });
    expect(parseMatrixMode('f16', g())).toEqual({ component: 'f16', shape: { M: 16, N: 16, K: 16 }, subgroupSize: 32, emulated: false });
    expect(parseMatrixMode('f16-emulated', g({ features: new Set(['shader-f16']) }))?.emulated).toBe(true);
  });

  it('says what the adapter lacks', () => {
    expect(() => parseMatrixMode('tf32', g())).toThrow(/NIN_MATRIX=tf32: expected off, f32, f16, f32-emulated or f16-emulated/);
    expect(() => parseMatrixMode('f32', g({ features: new Set(['subgroups']) }))).toThrow(/'Test GPU' offers no subgroup matrices.*allow_unsafe_apis/);
    expect(() => parseMatrixMode('f16', g({ features: new Set(['chromium-experimental-subgroup-matrix']) }))).toThrow(/no shader-f16/);
    expect(() => parseMatrixMode('f32', g({ subgroupSize: null }))).toThrow(/no fixed subgroup size/);
    expect(() => parseMatrixMode('f32', g({ subgroupMatrixConfigs: [{ M: 16, N: 16, K: 16, componentType: 'f16', resultComponentType: 'f32' }] })))
      .toThrow(/no f32→f32 subgroup-matrix configuration \(offered: 16×16×16 f16→f32\)/);
    // Only f32 results count, whatever is larger; among those the largest is taken, wherever it is listed.
    const cfg = (M: number, componentType: string, resultComponentType: string) => ({ M, N: M, K: M, componentType, resultComponentType });
    expect(() => parseMatrixMode('f16', g({ subgroupMatrixConfigs: [cfg(32, 'f16', 'f16')] }))).toThrow(/no f16→f32 subgroup-matrix configuration \(offered: 32×32×32 f16→f16\)/);
    expect(parseMatrixMode('f16', g({ subgroupMatrixConfigs: [cfg(32, 'f16', 'f16'), cfg(16, 'f16', 'f32'), cfg(8, 'f16', 'f32')] }))?.shape).toEqual({ M: 16, N: 16, K: 16 });
    expect(parseMatrixMode('f32', g({ subgroupMatrixConfigs: [cfg(8, 'f32', 'f32'), cfg(16, 'f32', 'f32')] }))?.shape).toEqual({ M: 16, N: 16, K: 16 });
  });

  it('NIN_MATRIX_TILE picks the tile, and a malformed or unfit one is an error naming it', () => {
    const mode = emulated('f32');
    const before = process.env.NIN_MATRIX_TILE;
    try {
      process.env.NIN_MATRIX_TILE = '3x2x16';
      expect(matrixTile(mode)).toEqual({ FM: 3, FN: 2, BK: 16 });
      process.env.NIN_MATRIX_TILE = '3x2';
      expect(() => matrixTile(mode)).toThrow(/NIN_MATRIX_TILE='3x2': expected FMxFNxBK/);
      process.env.NIN_MATRIX_TILE = '0x2x16';
      expect(() => matrixTile(mode)).toThrow(/NIN_MATRIX_TILE='0x2x16': expected FMxFNxBK/);
      process.env.NIN_MATRIX_TILE = '2x2x12';
      expect(() => matrixTile(mode)).toThrow(/NIN_MATRIX_TILE=2x2x12: BK = 12 is not a multiple of the matrix K = 8/);
      // A zero depth or zero fragments along N are malformed too (a depth of 0 would never advance k).
      for (const value of ['2x2x0', '2x0x16']) {
        process.env.NIN_MATRIX_TILE = value;
        expect(() => matrixTile(mode)).toThrow(`NIN_MATRIX_TILE='${value}': expected FMxFNxBK`);
      }
      // The tile is checked for each mode: one that fits the 8×8×8 mode need not fit another.
      process.env.NIN_MATRIX_TILE = '2x2x8';
      expect(matrixTile(mode)).toEqual({ FM: 2, FN: 2, BK: 8 });
      expect(() => matrixTile({ ...mode, shape: { M: 8, N: 8, K: 16 } })).toThrow(/NIN_MATRIX_TILE=2x2x8: BK = 8 is not a multiple of the matrix K = 16/);
      // NIN_MATRIX_TILE is checked with the mode before any work; without a mode it is said to be unused.
      process.env.NIN_MATRIX_TILE = '3x2';
      forceMatrixMode(mode);
      expect(() => checkedMatrixSettings()).toThrow(/NIN_MATRIX_TILE='3x2'/);
      forceMatrixMode(null);
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      try {
        expect(checkedMatrixSettings()).toBeNull();
        expect(warn).toHaveBeenCalledWith('[nin] NIN_MATRIX_TILE=3x2 is unused: NIN_MATRIX is off');
      } finally {
        warn.mockRestore();
      }
    } finally {
      if (before === undefined) delete process.env.NIN_MATRIX_TILE;
      else process.env.NIN_MATRIX_TILE = before;
    }
    expect(matrixTile(mode)).toEqual({ FM: 4, FN: 8, BK: 32 });
  });

  it('rejects tiles that do not fit, naming why', () => {
    const mode = emulated('f32');
    expect(matrixTileProblem(mode, { FM: 4, FN: 4, BK: 12 }, 32768, 256)).toMatch(/BK = 12 is not a multiple of the matrix K = 8/);
    expect(matrixTileProblem({ ...mode, subgroupSize: 512 }, { FM: 1, FN: 1, BK: 8 }, 32768, 256)).toMatch(/a 512-wide subgroup exceeds the device's 256 threads a workgroup/);
    expect(matrixTileProblem(mode, { FM: 16, FN: 16, BK: 32 }, 32768, 256)).toMatch(/needs 34048 bytes of workgroup storage, the device offers 32768/);
    expect(matrixTileProblem(mode, { FM: 4, FN: 8, BK: 32 }, 32768, 256)).toBeNull();
    // At the limits exactly: 4·32·(32 + 64 + 2·4) + 4·8·8 = 13568 bytes, 64 threads; f16 operands pad rows by 8 (16 bytes).
    expect(matrixTileProblem(mode, { FM: 4, FN: 8, BK: 32 }, 13568, 64)).toBeNull();
    expect(matrixTileProblem(mode, { FM: 4, FN: 8, BK: 32 }, 13567, 64)).toMatch(/needs 13568 bytes of workgroup storage, the device offers 13567/);
    expect(matrixTileProblem(emulated('f16'), { FM: 4, FN: 8, BK: 32 }, 7423, 64)).toMatch(/needs 7424 bytes/);
  });

  it('the default tile shrinks to fit the device: depth first (down to the matrix K), then fragments; none fitting is an error', async () => {
    const mode = emulated('f32');
    const storage = async (bytes: number) => withDeviceLimit('maxComputeWorkgroupStorageSize', bytes, () => matrixTile(mode));
    expect(await storage(13568)).toEqual({ FM: 4, FN: 8, BK: 32 });
    expect(await storage(6912)).toEqual({ FM: 4, FN: 8, BK: 16 });
    expect(await storage(3584)).toEqual({ FM: 4, FN: 8, BK: 8 });
    expect(await storage(2048)).toEqual({ FM: 2, FN: 4, BK: 8 });
    expect(await storage(1024)).toEqual({ FM: 1, FN: 1, BK: 8 });
    await expect(storage(1023)).rejects.toThrow('no subgroup-matrix tile fits this device: needs 1024 bytes of workgroup storage, the device offers 1023');
    // A matrix K deeper than 32 sets the depth.
    expect(matrixTile({ component: 'f16', shape: { M: 16, N: 16, K: 64 }, subgroupSize: 64, emulated: false }).BK).toBe(64);
  });

  it('an emulated mode needs one lane per result element', () => {
    const s = { name: 'lanes', M: 8, N: 8, K: 8, bindings: '', loadA: '', loadB: '', store: '', aContiguous: 'k', bContiguous: 'n' } as const;
    expect(() => gemmMatrixKernel(s, { ...emulated('f32'), subgroupSize: 32 }, { FM: 1, FN: 1, BK: 8 })).toThrow('emulated subgroup matrices need one lane per result element: 8×8 with 32 lanes');
  });

  it('withoutMatrixUnits turns the mode off for its work only, nested too', () => {
    forceMatrixMode(emulated('f32'));
    expect(withoutMatrixUnits(() => [matrixMode(), withoutMatrixUnits(() => matrixMode()), matrixMode()])).toEqual([null, null, null]);
    expect(matrixMode()).toEqual(emulated('f32'));
    expect(() => withoutMatrixUnits(() => { throw new Error('boom'); })).toThrow('boom');
    expect(matrixMode()).toEqual(emulated('f32'));
    expect(describeMatrixMode(emulated('f16'))).toBe('f16 subgroup matrices 8×8×8 (emulated)');
    expect(describeMatrixMode({ ...emulated('f32'), emulated: false })).toBe('f32 subgroup matrices 8×8×8');
  });
});

