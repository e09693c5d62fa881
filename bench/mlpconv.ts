// Fused mlpconv vs the unfused conv + 1×1 + 1×1 chain, for the paper's CIFAR and MNIST blocks.
//   node --import tsx bench/mlpconv.ts [--batches 32,128,256] [--reps 20] [--blocks cifar1,mnist2] [--json out.json]
// First validates both variants against the float64 CPU reference on a small odd shape; then, per
// block and batch size, times forward and forward+backward: GPU time from timestamp queries (sum of
// the variant's kernels, median over reps), wall time (median, in a separate loop with the profiler
// off), GFLOP/s, the unfused/fused time ratio (> 1: fused faster). Forward+backward computes what the network's backward does:
// weight and bias gradients, and the input gradient except for a network's first block, whose input
// is the image (mlpconvBackward/conv2dBackward skip it unless the input requires a gradient).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backward, param, zeroGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu } from '../engine/device.ts';
import { pool, sync } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { mlpconv as mlpconvAuto, mlpconvUnfused, type MlpconvParams } from '../kernels/mlpconv.ts';

/** The fused kernel itself, also where a tuning table would run the block unfused. */
const mlpconv = (x: Tensor, p: MlpconvParams) => mlpconvAuto(x, p, { forceFused: true });
import { mlpconvRef, refTensor } from '../test/reference.ts';
import { median, randomArray, relErrNorm } from '../test/numeric.ts';
import { isMainModule } from '../nin/is-main.ts';
import { mlpconvPixelFlops } from '../nin/model.ts';
import { profileReps, repTotal, timestampsUnchecked } from './profile-reps.ts';

export interface BlockSpec {
  name: string;
  H: number;
  Ci: number;
  K: number;
  C: [number, number, number];
  /**
   * The block's input is the network's image (its first block): the network computes no input
   * gradient for it, so neither does the forward+backward timing.
   */
  imageInput?: boolean;
}

/** The paper's blocks at their input sizes (CIFAR 32×32 → 16 → 8; MNIST 28 → 14 → 7). */
export const BLOCKS: BlockSpec[] = [
  { name: 'cifar1', H: 32, Ci: 3, K: 5, C: [192, 160, 96], imageInput: true },
  { name: 'cifar2', H: 16, Ci: 96, K: 5, C: [192, 192, 192] },
  { name: 'cifar3', H: 8, Ci: 192, K: 3, C: [192, 192, 10] },
  { name: 'mnist1', H: 28, Ci: 1, K: 5, C: [96, 64, 48], imageInput: true },
  { name: 'mnist2', H: 14, Ci: 48, K: 5, C: [128, 96, 48] },
  { name: 'mnist3', H: 7, Ci: 48, K: 5, C: [128, 96, 10] },
];

export interface MlpconvBenchRow {
  block: string;
  batch: number;
  pass: 'forward' | 'forward+backward';
  /** forward+backward only: whether the input gradient was computed (not for a first block, see imageInput). */
  inputGrad?: boolean;
  fusedGpuMs: number;
  unfusedGpuMs: number;
  fusedWallMs: number;
  unfusedWallMs: number;
  gflop: number;
  fusedGflops: number;
  unfusedGflops: number;
  /** unfused / fused GPU time: > 1 means the fused kernel is faster. */
  speedup: number;
  /** Each variant's working memory (workingBytes): the adapter's kernel style decides what the
   * fused forward writes (the simd kernels pass h1, h2 through memory, the tiled ones only when a
   * gradient needs them). */
  fusedBytes: number;
  unfusedBytes: number;
}

/** The most bytes of tensors `run` had at once beyond those live before it, in the pool's size
 * classes (what it allocates): a pass's saved activations, gradients and scratch. */
export async function workingBytes(run: () => void): Promise<number> {
  await sync();
  const before = pool().stats.liveBytes;
  pool().resetPeaks();
  run();
  await sync();
  return pool().stats.peakLiveBytes - before;
}

function makeParams(b: BlockSpec, seed: number): MlpconvParams {
  const [c1, c2, c3] = b.C;
  const t = (shape: number[], s: number, scale: number) => param(Tensor.fromArray(randomArray(shape.reduce((x, y) => x * y, 1), s, -scale, scale), shape));
  return {
    w1: t([b.K, b.K, b.Ci, c1], seed, 1 / Math.sqrt(b.K * b.K * b.Ci)),
    b1: t([c1], seed + 1, 0.1),
    w2: t([1, 1, c1, c2], seed + 2, 1 / Math.sqrt(c1)),
    b2: t([c2], seed + 3, 0.1),
    w3: t([1, 1, c2, c3], seed + 4, 1 / Math.sqrt(c2)),
    b3: t([c3], seed + 5, 0.1),
  };
}

/** Both variants against the float64 reference on a small odd shape; throws on a mismatch. */
export async function validate(): Promise<number> {
  const b: BlockSpec = { name: 'check', H: 9, Ci: 5, K: 5, C: [70, 33, 10] };
  const N = 3;
  const p = makeParams(b, 1);
  const xs = randomArray(N * b.H * b.H * b.Ci, 9);
  const x = Tensor.fromArray(xs, [N, b.H, b.H, b.Ci]);
  const ref = mlpconvRef(
    refTensor([N, b.H, b.H, b.Ci], xs),
    ...((await Promise.all(Object.values(p).map(async (t: Tensor) => refTensor([...t.shape], await t.toArray())))) as [never, never, never, never, never, never]),
  );
  let worst = 0;
  for (const [name, fn] of [['fused', mlpconv], ['unfused', mlpconvUnfused]] as const) {
    const err = relErrNorm(await fn(x, p).toArray(), ref.data);
    worst = Math.max(worst, err);
    if (!(err <= 1e-5)) throw new Error(`validation failed: ${name} mlpconv differs from the float64 reference by ${err}`);
  }
  return worst;
}

/**
 * Kernels of the harness's loss, not of the block: dot() ('mul' and its 'dot_sum' reduction, one or
 * two passes of the same name), backward()'s seed ('fill') and dot's backward ('scale_by');
 * kernels/elementwise.ts and engine/autograd.ts. Each must show up in a forward+backward profile
 * (checked), so a renamed kernel cannot silently count as the block's.
 */
const HARNESS_KERNELS = ['mul', 'dot_sum', 'fill', 'scale_by'];

async function timeVariant(fn: (x: Tensor, p: MlpconvParams) => Tensor, x: Tensor, p: MlpconvParams, r: Tensor | null, reps: number, what: string): Promise<{ gpu: number; wall: number; bytes: number }> {
  // x among them: where x requires a gradient (not a first block), x.grad is freed each rep, so no
  // rep's backward accumulates into the last one's (an add_inplace the network never runs).
  const leaves = [...Object.values(p), x];
  const run = () => {
    tidy(() => {
      const y = fn(x, p);
      if (r) backward(dot(y, r));
    });
    zeroGrad(leaves);
  };
  const bytes = await workingBytes(run); // (also compiles and warms up)
  // Wall time with the profiler off: it would give every dispatch its own compute pass and add
  // query resolves and copies, which costs the unfused variant (more dispatches) more.
  const wallMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    run();
    await sync();
    wallMs.push(performance.now() - t0);
  }
  const perRep = await profileReps(run, reps, what);
  if (r) {
    const missing = HARNESS_KERNELS.filter((k) => !perRep[0].has(k));
    if (missing.length) throw new Error(`${what}: the harness's loss kernels ${missing.join(', ')} are not in the profile (renamed?); bench/mlpconv.ts HARNESS_KERNELS must name them to leave them out`);
  }
  const gpuMs = perRep.map((rep) => repTotal(rep, (name) => !r || !HARNESS_KERNELS.includes(name)));
  return { gpu: median(gpuMs), wall: median(wallMs), bytes };
}

/** `onRow`: called with the rows so far after each one (run-all rewrites its report: a call cut off
 * mid-section still leaves the rows it finished). */
export async function benchMlpconv(opts: { batches: number[]; reps: number; blocks: string[]; onRow?: (rows: MlpconvBenchRow[]) => void }): Promise<MlpconvBenchRow[]> {
  const rows: MlpconvBenchRow[] = [];
  for (const b of BLOCKS.filter((x) => opts.blocks.includes(x.name))) {
    const p = makeParams(b, 7);
    const c3 = b.C[2];
    // FLOPs as nin/model.ts's summary counts them. Backward: each layer's weight gradient and input
    // gradient cost what its forward does, so 3× the forward, less the K×K layer's input gradient
    // where it is skipped (imageInput).
    const { forward: flopFwdPerPixel, inputGrad: flopInputGradPerPixel } = mlpconvPixelFlops(b.K, b.Ci, b.C);
    for (const N of opts.batches) {
      const x = param(Tensor.fromArray(randomArray(N * b.H * b.H * b.Ci, 3), [N, b.H, b.H, b.Ci]));
      const r = Tensor.fromArray(randomArray(N * b.H * b.H * c3, 4), [N, b.H, b.H, c3]);
      for (const pass of ['forward', 'forward+backward'] as const) {
        const withGrad = pass === 'forward+backward';
        const inputGrad = withGrad && !b.imageInput;
        x.requiresGrad = inputGrad;
        for (const t of Object.values(p)) t.requiresGrad = withGrad;
        const what = `mlpconv ${b.name} batch ${N} ${pass}`;
        const fused = await timeVariant(mlpconv, x, p, withGrad ? r : null, opts.reps, `${what}, fused`);
        const unfused = await timeVariant(mlpconvUnfused, x, p, withGrad ? r : null, opts.reps, `${what}, unfused`);
        const flopPerPixel = withGrad ? 3 * flopFwdPerPixel - (inputGrad ? 0 : flopInputGradPerPixel) : flopFwdPerPixel;
        const gflop = (flopPerPixel * N * b.H * b.H) / 1e9;
        rows.push({
          block: b.name,
          batch: N,
          pass,
          ...(withGrad ? { inputGrad } : {}),
          fusedGpuMs: fused.gpu,
          unfusedGpuMs: unfused.gpu,
          fusedWallMs: fused.wall,
          unfusedWallMs: unfused.wall,
          gflop,
          fusedGflops: gflop / (fused.gpu / 1000),
          unfusedGflops: gflop / (unfused.gpu / 1000),
          speedup: unfused.gpu / fused.gpu,
          fusedBytes: fused.bytes,
          unfusedBytes: unfused.bytes,
        });
        console.error(formatMlpconvRows(rows.slice(-1), false));
        opts.onRow?.(rows);
      }
      x.dispose();
      r.dispose();
    }
    for (const t of Object.values(p)) t.dispose();
  }
  if (rows.length && timestampsUnchecked()) {
    console.error('note: no profile had the 8 non-zero kernel durations needed to tell whether Dawn quantizes timestamps; GPU times unchecked');
  }
  return rows;
}

export function formatMlpconvRows(rows: MlpconvBenchRow[], header = true): string {
  const out = header ? ['| block | batch | pass | fused GPU ms | unfused GPU ms | fused wall ms | unfused wall ms | fused GFLOP/s | unfused GFLOP/s | unfused/fused | fused MiB | unfused MiB |', '|---|---|---|---|---|---|---|---|---|---|---|---|'] : [];
  const mib = (b: number) => (b / 2 ** 20).toFixed(2);
  for (const r of rows) {
    out.push(`| ${r.block} | ${r.batch} | ${r.pass}${r.inputGrad === false ? ' (no input grad)' : ''} | ${r.fusedGpuMs.toFixed(3)} | ${r.unfusedGpuMs.toFixed(3)} | ${r.fusedWallMs.toFixed(2)} | ${r.unfusedWallMs.toFixed(2)} | ${r.fusedGflops.toFixed(1)} | ${r.unfusedGflops.toFixed(1)} | ${r.speedup.toFixed(2)}× | ${mib(r.fusedBytes)} | ${mib(r.unfusedBytes)} |`);
  }
  return out.join('\n');
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      batches: { type: 'string', default: '32,128,256' },
      reps: { type: 'string', default: '20' },
      blocks: { type: 'string', default: BLOCKS.map((b) => b.name).join(',') },
      json: { type: 'string' },
    },
  });
  const gpu = await getGpu();
  const err = await validate();
  console.log(`adapter: ${gpu.adapterName}\nvalidation: fused and unfused match the float64 reference (worst relative error ${err.toExponential(2)})`);
  const rows = await benchMlpconv({ batches: values.batches!.split(',').map(Number), reps: Number(values.reps), blocks: values.blocks!.split(',') });
  console.log(formatMlpconvRows(rows));
  if (values.json) writeFileSync(values.json, JSON.stringify({ adapter: gpu.adapterName, date: new Date().toISOString(), rows }, null, 2));
  closeGpu();
}
