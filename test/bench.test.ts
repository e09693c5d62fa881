// The benches' FLOP counts, against the network written out by hand: GFLOP/s and TFLOP/s in
// bench/RESULTS.md rest on them. And the accuracy study's reference and harness (below).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accuracyStudy, formatAccuracyRows, type AccuracyRow, gapReference, lossReference, mlpconvReference, poolReference, type BlockData, type BlockResult } from '../bench/accuracy.ts';
import { workingBytes, type BlockSpec } from '../bench/mlpconv.ts';
import { convolutionFlops } from '../bench/train-step.ts';
import { benchPictures } from '../bench/pictures.ts';
import { formatCarryOver, profileReps, timestampCarryOver } from '../bench/profile-reps.ts';
import { closeGpu, getGpu, kernelStyle } from '../engine/device.ts';
import { sync } from '../engine/runtime.ts';
import { sizeClass } from '../engine/pool.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { fill } from '../kernels/elementwise.ts';
import { mlpconv, mlpconvUnfused } from '../kernels/mlpconv.ts';
import { MODELS } from '../nin/model.ts';
import { avgPool2dRef, conv2dRef, dotRef, globalAvgPoolRef, maxPool2dRef, mlpconvRef, numericalGrad, refTensor, reluRef, softmaxCrossEntropyRef, type RefTensor } from './reference.ts';
import { runAsync } from './helpers.ts';
import { pick, randomArray, relErrNorm, sampleIndices } from './numeric.ts';

describe('bench FLOP counts', () => {
  it("the CIFAR-10 NIN's convolutions: forward, and a training step without the image's input gradient", () => {
    const mlpconv = (HW: number, K: number, Ci: number, [c1, c2, c3]: number[]) => 2 * HW * HW * (K * K * Ci * c1 + c1 * c2 + c2 * c3);
    const forward = mlpconv(32, 5, 3, [192, 160, 96]) + mlpconv(16, 5, 96, [192, 192, 192]) + mlpconv(8, 3, 192, [192, 192, 10]);
    const f = convolutionFlops(MODELS.cifar10);
    expect(f.forward).toBe(forward);
    expect(f.forward).toBe(444_973_056);
    expect(f.train).toBe(3 * forward - 2 * 32 * 32 * 5 * 5 * 3 * 192);
    // With a fully connected head its GEMM counts too (8·8·10 → 10).
    expect(convolutionFlops({ ...MODELS.cifar10, head: 'fc' }).forward).toBe(forward + 2 * 8 * 8 * 10 * 10);
  });
});

// The accuracy study (bench/accuracy.ts): its float64 reference against test/reference.ts and
// central differences, then the whole study at a tiny odd shape, where every GPU result must sit
// within 1e-5 of float64 (a wrong kernel gives O(1); fp32 rounding gives about 1e-7 here).
describe('accuracy study', () => {
  beforeAll(async () => { await getGpu(); });
  afterAll(() => { closeGpu(); });

  // The shape of test/mlpconv.test.ts's second case (batch 2 too): its kernels are compiled already.
  const tiny: BlockSpec = { name: 'tiny', H: 7, Ci: 7, K: 5, C: [9, 7, 5] };

  it("its float64 reference: the mlpconv forward as mlpconvRef, every gradient as central differences, ReLU masks given or its own", () => {
    const N = 2;
    const [C1, C2, C3] = tiny.C;
    const { H, Ci, K } = tiny;
    const ws = { w1: [K, K, Ci, C1], b1: [C1], w2: [1, 1, C1, C2], b2: [C2], w3: [1, 1, C2, C3], b3: [C3] };
    const t = Object.fromEntries(Object.entries(ws).map(([k, s], i) => [k, refTensor(s, randomArray(s.reduce((a, b) => a * b), 30 + i, -0.5, 0.5))]));
    const x = refTensor([N, H, H, Ci], randomArray(N * H * H * Ci, 40));
    const r = randomArray(N * H * H * C3, 41);
    const f32 = (a: Float64Array) => Float32Array.from(a);
    const data: BlockData = { x: f32(x.data), w1: f32(t.w1.data), b1: f32(t.b1.data), w2: f32(t.w2.data), b2: f32(t.b2.data), w3: f32(t.w3.data), b3: f32(t.b3.data), r };
    const f = () => mlpconvRef(x, t.w1, t.b1, t.w2, t.b2, t.w3, t.b3);
    // Its backward with given ReLU masks: the forward's own give the same gradients, no flips; one
    // entry switched off is one flip and changes them.
    const h1 = reluRef(conv2dRef(x, t.w1, t.b1));
    const h2 = reluRef(conv2dRef(h1, t.w2, t.b2));
    const acts = { h1: h1.data, h2: h2.data, y: f().data };
    const flipped = { ...acts, h2: h2.data.map((v, i) => (i === h2.data.findIndex((u) => u > 0) ? 0 : v)) };
    const { results: [got, same, other], flips } = mlpconvReference(tiny, N, data, Float64Array, { masks: [acts, flipped] });
    expect(flips).toEqual([{ h1: 0, h2: 0, y: 0 }, { h1: 0, h2: 1, y: 0 }]);
    expect(relErrNorm(same.dw1, got.dw1)).toBeLessThan(1e-15);
    expect(relErrNorm(other.dw1, got.dw1)).toBeGreaterThan(1e-6);
    expect(relErrNorm(got.y, f().data)).toBeLessThan(1e-13);
    const scalar = () => dotRef(f(), r);
    for (const [name, ref, grad] of [['x', x, got.dx], ...['w1', 'b1', 'w2', 'b2', 'w3', 'b3'].map((k) => [k, t[k], got[`d${k}` as keyof BlockResult]])] as [string, RefTensor, Float64Array][]) {
      const idx = sampleIndices(ref.data.length, 40, 7);
      expect(relErrNorm(pick(grad, idx), numericalGrad(scalar, ref, idx)), `d/d${name}`).toBeLessThan(1e-7);
    }
  });

  it('its float64 reference: pooling, GAP and the loss as test/reference.ts, gradients as central differences', () => {
    const shape = [2, 7, 7, 3];
    const xs = randomArray(2 * 7 * 7 * 3, 50);
    const x = refTensor(shape, xs);
    for (const mode of ['max', 'avg'] as const) {
      const r = randomArray(2 * 3 * 3 * 3, 51);
      const got = poolReference(xs, r, shape, mode, Float64Array);
      const f = () => (mode === 'max' ? maxPool2dRef(x) : avgPool2dRef(x));
      expect(relErrNorm(got.y, f().data), `${mode} pool`).toBeLessThan(1e-13);
      expect(relErrNorm(got.dx, numericalGrad(() => dotRef(f(), r), x)), `${mode} pool dx`).toBeLessThan(1e-7);
    }
    const r = randomArray(2 * 3, 52);
    const gap = gapReference(xs, r, shape, Float64Array);
    expect(relErrNorm(gap.y, globalAvgPoolRef(x).data)).toBeLessThan(1e-13);
    expect(relErrNorm(gap.dx, numericalGrad(() => dotRef(globalAvgPoolRef(x), r), x))).toBeLessThan(1e-7);
    const z = refTensor([4, 5], randomArray(20, 53, -3, 3));
    const labels = [0, 4, 2, 2];
    const loss = lossReference(Float32Array.from(z.data), labels, 4, 5, Float64Array);
    expect(Math.abs(loss.loss[0] - softmaxCrossEntropyRef(z, labels))).toBeLessThan(1e-13);
    expect(relErrNorm(loss.dz, numericalGrad(() => softmaxCrossEntropyRef(z, labels), z))).toBeLessThan(1e-7);
  });

  it('the study at a tiny odd shape: every GPU result within 1e-5 of float64, as the naive fp32 one', async () => {
    const { rows } = await accuracyStudy({ batch: 2, blocks: [{ block: tiny, after: ['maxpool', 'avgpool', 'gap', 'loss'] }] });
    expect(rows.map((r) => `${r.op} ${r.quantity}`)).toEqual([
      ...['y', 'dx', 'dw1', 'db1', 'dw2', 'db2', 'dw3', 'db3'].map((q) => `mlpconv tiny ${q}`),
      'maxpool 3/2 y', 'maxpool 3/2 dx', 'avgpool 3/2 y', 'avgpool 3/2 dx', 'GAP y', 'GAP dx', 'softmax cross-entropy loss', 'softmax cross-entropy dlogits',
    ]);
    for (const r of rows) {
      const what = `${r.op} ${r.quantity}`;
      console.log(`${what}: GPU ${r.gpuRel.toExponential(1)}, floor ${r.floorRel.toExponential(1)}, naive ${r.naiveRel!.toExponential(1)}`);
      const checks: [keyof AccuracyRow, number][] = [['gpuRel', 1e-5], ['gpuMax', 1e-5], ['naiveRel', 1e-5], ['floorRel', 1e-7]];
      if (r.endToEndRel !== undefined) checks.push(['endToEndRel', 1e-5]);
      for (const [k, tol] of checks) {
        expect(r[k], `${what} ${k}`).toBeLessThan(tol); // NaN fails too
      }
    }
    expect(rows[0].maskFlips).toEqual({ h1: 0, h2: 0, y: 0 }); // none at this size
    expect(formatAccuracyRows(rows)).toContain('- mlpconv tiny, batch 2: h1 0, h2 0, y 0');
  });
});

// NIN_KERNEL_DUMP (engine/runtime.ts) and bench/compile-times.ts, which times each dumped kernel's
// compile alone: how the cold suite's costs were found (bench/RESULTS.md, session 28).
describe('working memory (bench/mlpconv.ts)', () => {
  beforeAll(async () => { await getGpu(); });
  afterAll(() => { closeGpu(); });

  it('workingBytes: the most bytes of tensors a pass held at once beyond those live before it, in the pool\'s size classes', async () => {
    const kept = Tensor.empty([5000]); // live before: not counted
    expect(await workingBytes(() => tidy(() => { Tensor.empty([1000]); Tensor.empty([3000]); }))).toBe(sizeClass(4000) + sizeClass(12000));
    expect(await workingBytes(() => { tidy(() => void Tensor.empty([3000])); tidy(() => void Tensor.empty([3000])); })).toBe(sizeClass(12000)); // one after the other
    kept.dispose();
  });

  it('a block\'s forward holds its output, and where the kernels pass them through memory, h1 and h2: the fused kernel\'s as the chain\'s', async () => {
    // The shape of test/mlpconv.test.ts's second case (batch 2): its kernels are compiled already.
    const [N, H, Ci, K, [C1, C2, C3]] = [2, 7, 7, 5, [9, 7, 5]] as const;
    const t = (shape: number[], seed: number) => Tensor.fromArray(randomArray(shape.reduce((a, b) => a * b, 1), seed, -0.5, 0.5), shape);
    const p = { w1: t([K, K, Ci, C1], 1), b1: t([C1], 2), w2: t([1, 1, C1, C2], 3), b2: t([C2], 4), w3: t([1, 1, C2, C3], 5), b3: t([C3], 6) };
    const x = t([N, H, H, Ci], 7);
    const bytes = (C: number) => sizeClass(4 * N * H * H * C);
    const fused = await workingBytes(() => tidy(() => void mlpconv(x, p, { forceFused: true })));
    const unfused = await workingBytes(() => tidy(() => void mlpconvUnfused(x, p)));
    expect(unfused).toBe(bytes(C1) + bytes(C2) + bytes(C3)); // each conv2d's output, kept to the tidy's end
    // No gradient wanted: the tiled kernel keeps h1 and h2 in registers; the simd one passes them
    // through scratch tensors (kernels/mlpconv.ts), as the chain does.
    expect(fused).toBe(kernelStyle() === 'simd' ? unfused : bytes(C3));
    for (const v of [...Object.values(p), x]) v.dispose();
  });
});

describe('kernel dumps and their compile times', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  let dir = '';
  beforeAll(async () => {
    await getGpu();
    dir = mkdtempSync(join(tmpdir(), 'nin-kernels-'));
  });
  afterAll(() => {
    delete process.env.NIN_KERNEL_DUMP;
    closeGpu();
    rmSync(dir, { recursive: true, force: true });
  });

  it('NIN_KERNEL_DUMP writes each kernel compiled, once; compile-times compiles and times each alone', async () => {
    const t = Tensor.empty([5]);
    process.env.NIN_KERNEL_DUMP = join(dir, 'kernels');
    try {
      fill(t, 0.8125); // a value no other test fills with: a kernel compiled here first
      fill(t, 0.8125); // cached: not written again
      fill(t, 0.375);
    } finally {
      delete process.env.NIN_KERNEL_DUMP;
    }
    fill(t, 0.625); // the setting is off again
    expect(Array.from(await t.toArray())).toEqual([0.625, 0.625, 0.625, 0.625, 0.625]);
    t.dispose();
    const files = readdirSync(join(dir, 'kernels')).sort();
    expect(files).toHaveLength(2);
    for (const f of files) expect(f).toMatch(/^fill-[0-9a-f]{12}\.wgsl$/);
    const codes = files.map((f) => readFileSync(join(dir, 'kernels', f), 'utf8'));
    expect(codes.filter((c) => c.includes('y[i] = 0.8125;')).length).toBe(1);
    expect(codes.filter((c) => c.includes('y[i] = 0.375;')).length).toBe(1);

    const json = join(dir, 'times.json');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'bench/compile-times.ts', join(dir, 'kernels'), '--repeat', '2', '--json', json], { cwd: root, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/total: +\d+\.\d\d s for 2 kernels/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { kernels: { file: string; name: string; ms: number; runs: number[]; error?: string }[] };
    expect(report.kernels.map((k) => k.file)).toEqual(files);
    for (const k of report.kernels) {
      expect(k.name).toBe('fill');
      expect(k.error).toBeUndefined();
      expect(k.runs).toHaveLength(2);
      expect(k.ms).toBeGreaterThan(0);
      expect(k.ms).toBeCloseTo((k.runs[0] + k.runs[1]) / 2, 9); // the median of two (it reported the slower)
    }
  });

  it('a kernel that does not compile is named, and the script fails; bad arguments are a usage error', async () => {
    const bad = join(dir, 'bad');
    const t = Tensor.empty([2]);
    process.env.NIN_KERNEL_DUMP = bad;
    try {
      fill(t, 0.25);
    } finally {
      delete process.env.NIN_KERNEL_DUMP;
    }
    await sync();
    t.dispose();
    writeFileSync(join(bad, 'broken-000000000000.wgsl'), '@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'bench/compile-times.ts', bad], { cwd: root, timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not compiled: broken-000000000000\.wgsl: /);
    expect(r.stdout).toMatch(/total: .* for 1 kernels/);
    const usage = await runAsync(process.execPath, ['--import', 'tsx', 'bench/compile-times.ts', bad, '--top', '0'], { cwd: root, timeout: 60_000 });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^usage: /);
  });

  it('a directory it cannot write to is an error naming the setting', () => {
    const notADir = join(dir, 'a-file');
    writeFileSync(notADir, '');
    const t = Tensor.empty([3]);
    process.env.NIN_KERNEL_DUMP = notADir;
    try {
      expect(() => fill(t, 0.1875)).toThrow(new RegExp(`NIN_KERNEL_DUMP=${notADir}: cannot write`));
    } finally {
      delete process.env.NIN_KERNEL_DUMP;
      t.dispose();
    }
  });
});

describe('picture reading bench (bench/pictures.ts)', () => {
  it('times each stage of a folder\'s pictures: both JPEG decoders where the fast path takes the file, jpeg-js alone where not', () => {
    const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
    const paths = ['rgb420-q90-baseline.jpg', 'rgb420-q90-progressive.jpg', 'baseline/grey-13x7-restart-blocks-1.jpg'].map(fixture);
    const r = benchPictures(paths, { height: 9, width: 11 }, 2);
    expect([r.pictures, r.jpegs, r.fastPath]).toEqual([3, 3, 2]);
    for (const v of [r.planesJpegJs, r.planesFastPath, r.decode, r.channels, r.resize, r.whole]) expect(v).toBeGreaterThan(0);
    expect(r.picturesPerSecond).toBeCloseTo(1000 / r.whole, 9);
  });
});

// bench/profile-reps.ts: what runs before a timed rep must be finished before the rep is
// submitted (bench/bandwidth.ts's cache flush: recorded in the rep's submission, its tail was
// charged to the timed kernel where a pass's beginning is stamped at TOP_OF_PIPE).
describe('profiled reps (bench/profile-reps.ts)', () => {
  beforeAll(async () => { await getGpu(); });
  afterAll(() => { closeGpu(); });

  it("runs `before` to its end before the warm-up and each rep, its kernels outside the rep's times", async () => {
    const t = Tensor.empty([4096]);
    const u = Tensor.empty([4]);
    let flushed = false;
    let befores = 0;
    let runs = 0;
    const perRep = await profileReps(
      () => {
        expect(flushed, 'run recorded before `before` had finished').toBe(true);
        flushed = false;
        runs++;
        fill(u, 0.4375);
      },
      3,
      'profile-reps test',
      { before: async () => { befores++; fill(t, 0.5625); await sync(); flushed = true; } },
    );
    expect([befores, runs]).toEqual([4, 4]); // warm-up and 3 reps
    expect(perRep).toHaveLength(3);
    for (const rep of perRep) expect(rep.get('fill')).toBeGreaterThan(0); // both fills are 'fill': run's and before's
    t.dispose();
    u.dispose();
  });

  it('timestampCarryOver: a small kernel after a copy it waits for, against alone; on this adapter no carry-over', async () => {
    const c = await timestampCarryOver(4, 3);
    for (const v of [c.aloneMs, c.afterMs, c.bigMs]) expect(v).toBeGreaterThan(0);
    if (kernelStyle() === 'simd') expect(c.carries).toBe(false); // lavapipe runs one pass after another
    expect(c.carries).toBe(c.afterMs > c.aloneMs + 0.25 * c.bigMs);
    expect(formatCarryOver(c)).toMatch(c.carries ? /CARRIES OVER/ : /no carry-over$/);
    expect(formatCarryOver({ aloneMs: 0.002, afterMs: 0.05, bigMs: 0.045, carries: true })).toMatch(/reads 2\.0 µs alone, 50\.0 µs right after a 45\.0 µs copy .*CARRIES OVER/);
  });
});
