// Worker-thread versions of ZCA's heavy loops (the O(N·d²) covariance, split over examples, and
// the parallel parts of the eigen-decomposition) and of local contrast normalisation (split over
// images). On a 16-core machine they turn minutes into seconds. (Whitening a whole data set runs
// on the GPU: nin/preprocessing.ts whitenOnGpu.)
//
// The workers run the same kernels as the single-threaded path (linalg.ts, lcn.ts), shipped as source text:
// a worker cannot load a .ts module under tsx/vitest, and the kernels reference nothing outside
// themselves, so `fn.toString()` is enough. Inputs go to the workers once through a
// SharedArrayBuffer (no per-worker copies).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  GRAM_CHUNK,
  GramAccumulator,
  accumulateGramRows,
  applyRotationsToColumns,
  checkSymmetricInput,
  orthogonalRows,
  rotateColumns8,
  sortEigenpairs,
  tridiagonalEigenvalues,
  tridiagonalForm,
  type SymmetricEigen,
} from './linalg.ts';
import { blurSeparable, gaussianTaps, imageCount, lcnImages, MAXOUT_LCN, type ImageShape, type LcnOptions } from './lcn.ts';

const WORKER_SOURCE = `
const { parentPort, workerData: job } = require('node:worker_threads');
const accumulateGramRows = ${accumulateGramRows.toString()};
const orthogonalRows = ${orthogonalRows.toString()};
const rotateColumns8 = ${rotateColumns8.toString()};
const applyRotationsToColumns = ${applyRotationsToColumns.toString()};
const blurSeparable = ${blurSeparable.toString()};
const lcnImages = ${lcnImages.toString()};
switch (job.kind) {
  case 'gram': {
    const P = Math.ceil(job.dim / 4) * 4;
    const acc = new Float64Array(P * P);
    accumulateGramRows(job.data, job.begin, job.end, job.dim, job.offset, acc, new Float64Array(P * job.chunk), job.chunk);
    parentPort.postMessage(acc, [acc.buffer]);
    break;
  }
  case 'orthogonal':
    orthogonalRows(job.reduced, job.invH, job.n, job.begin, job.end, job.out);
    parentPort.postMessage(null);
    break;
  case 'rotate':
    applyRotationsToColumns(job.a, job.n, job.begin, job.end, job.sweeps, job.sweepCount, job.cs, job.sn);
    parentPort.postMessage(null);
    break;
  case 'lcn':
    lcnImages(job.data, job.data, job.begin, job.end, job.H, job.W, job.C, job.g, job.threshold);
    parentPort.postMessage(null);
    break;
  default:
    throw new Error('unknown job ' + job.kind);
}
`;

/** Default worker count: the machine's cores, at most 16. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(availableParallelism(), 16));
}

function runWorker<T>(job: Record<string, unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: job });
    let settled = false;
    worker.once('message', (m: T) => {
      settled = true;
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', (e) => {
      settled = true;
      reject(new Error(`preprocessing worker (${String(job.kind)}, rows ${String(job.begin)}..${String(job.end)}) failed: ${e.message}`));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`preprocessing worker (${String(job.kind)}) exited with code ${code} before finishing`));
    });
  });
}

/** `a` itself if it already lives in shared memory (and `copy` is false), else a shared copy. */
function shared<T extends Float32Array | Float64Array | Int32Array>(a: T, copy = false): T {
  if (!copy && a.buffer instanceof SharedArrayBuffer) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a as never);
  return out;
}

/** Row ranges for `workers` workers, none smaller than `minRows` (tiny inputs use fewer workers). */
function ranges(rows: number, workers: number, minRows: number): [number, number][] {
  const n = Math.max(1, Math.min(workers, Math.floor(rows / minRows)));
  const out: [number, number][] = [];
  for (let w = 0; w < n; w++) out.push([Math.floor((w * rows) / n), Math.floor(((w + 1) * rows) / n)]);
  return out;
}

/** GramAccumulator over `rows` rows of `data` (minus `offset`), computed by worker threads. */
export async function parallelGram(data: Float32Array | Float64Array, rows: number, dim: number, offset: Float64Array | null, workers = defaultWorkers()): Promise<GramAccumulator> {
  if (data.length < rows * dim) throw new RangeError(`parallelGram: ${rows} rows of ${dim} need ${rows * dim} values, got ${data.length}`);
  const g = new GramAccumulator(dim);
  const input = shared(data);
  const parts = await Promise.all(
    ranges(rows, workers, GRAM_CHUNK).map(([begin, end]) =>
      runWorker<Float64Array>({ kind: 'gram', data: input, begin, end, dim, offset, chunk: GRAM_CHUNK }).then((acc) => ({ acc, rows: end - begin })),
    ),
  );
  for (const p of parts) g.addPartial(p.acc, p.rows);
  return g;
}

/**
 * symmetricEigen with its two parallel O(n³) parts on worker threads: forming the reduction's
 * orthogonal matrix (rows are independent given the reflectors) and applying the QL rotations
 * (columns are independent). The Householder reduction and the QL eigenvalue iteration stay on this
 * thread. Same arithmetic per entry as symmetricEigen, up to the order of the reflector updates.
 * `vectors` lives in a SharedArrayBuffer.
 */
export async function parallelSymmetricEigen(matrix: Float64Array, n: number, workers = defaultWorkers()): Promise<SymmetricEigen> {
  checkSymmetricInput(matrix, n);
  const reduced = shared(matrix, true);
  const { d, e, invH } = tridiagonalForm(reduced, n);
  const q = new Float64Array(new SharedArrayBuffer(n * n * 8));
  const invHShared = shared(invH);
  await Promise.all(
    balancedRowRanges(n, workers).map(([begin, end]) => runWorker<null>({ kind: 'orthogonal', reduced, invH: invHShared, n, begin, end, out: q })),
  );
  const rot = tridiagonalEigenvalues(n, d, e);
  const count = rot.sweeps.subarray(0, 2 * rot.sweepCount).reduce((acc, v, i) => (i % 2 ? acc + v : acc - v), 0);
  const sweeps = shared(rot.sweeps.subarray(0, 2 * rot.sweepCount), true);
  const cs = shared(rot.cs.subarray(0, count), true);
  const sn = shared(rot.sn.subarray(0, count), true);
  await Promise.all(
    columnRanges(n, workers).map(([begin, end]) => runWorker<null>({ kind: 'rotate', a: q, n, begin, end, sweeps, sweepCount: rot.sweepCount, cs, sn })),
  );
  sortEigenpairs(q, n, d);
  return { values: d, vectors: q };
}

/** Row ranges of equal work for orthogonalRows: row j costs about n² − j². */
function balancedRowRanges(n: number, workers: number): [number, number][] {
  const parts = Math.max(1, Math.min(workers, Math.ceil(n / 16)));
  const total = (j: number): number => n * n * j - (j * j * j) / 3; // ∫₀ʲ (n² − x²) dx
  const out: [number, number][] = [];
  let begin = 0;
  for (let w = 1; w <= parts; w++) {
    let end = begin;
    const target = (total(n) * w) / parts;
    while (end < n && total(end) < target) end++;
    if (w === parts) end = n;
    if (end > begin) out.push([begin, end]);
    begin = end;
  }
  return out;
}

/** Column ranges with boundaries on multiples of 8 (the rotation kernel's width). */
function columnRanges(n: number, workers: number): [number, number][] {
  const parts = Math.max(1, Math.min(workers, Math.ceil(n / 8)));
  const out: [number, number][] = [];
  let begin = 0;
  for (let w = 1; w <= parts; w++) {
    const end = w === parts ? n : Math.min(n, Math.round((n * w) / parts / 8) * 8);
    if (end > begin) out.push([begin, end]);
    begin = Math.max(begin, end);
  }
  return out;
}

/** Below this many images LCN runs on this thread: starting workers would cost more. */
const LCN_WORKER_MIN_IMAGES = 500;

/**
 * localContrastNormalize on worker threads, split over images. In place when `images` lives in a
 * SharedArrayBuffer; otherwise the result is a new shared array.
 */
export async function parallelLocalContrastNormalize(images: Float32Array, shape: ImageShape, opts: LcnOptions = {}, workers = defaultWorkers()): Promise<Float32Array> {
  const { kernelSize, sigma, threshold } = { ...MAXOUT_LCN, ...opts };
  const n = imageCount(images, shape, 'parallelLocalContrastNormalize');
  const g = gaussianTaps(kernelSize, sigma);
  const { height: H, width: W, channels: C } = shape;
  const data = shared(images);
  if (n < LCN_WORKER_MIN_IMAGES || workers <= 1) {
    lcnImages(data, data, 0, n, H, W, C, g, threshold);
    return data;
  }
  await Promise.all(ranges(n, workers, LCN_WORKER_MIN_IMAGES / 2).map(([begin, end]) => runWorker<null>({ kind: 'lcn', data, begin, end, H, W, C, g, threshold })));
  return data;
}
