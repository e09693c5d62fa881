// Input preprocessing with statistics from the training set only:
//   - per-channel standardisation (x − mean_c) / std_c;
//   - global contrast normalisation (GCN) per image, as pylearn2's global_contrast_normalize;
//   - ZCA whitening, as pylearn2's preprocessing.ZCA (what the NIN and maxout papers used for
//     CIFAR-10/100: GCN with scale 55, then ZCA with filter_bias 0.1);
//   - (local contrast normalisation, the SVHN pipeline's second step, is in lcn.ts.)
// Statistics are computed in float64 and are plain objects of typed arrays and numbers, so they can be
// stored in a checkpoint (see statsToTensors / statsFromTensors). Transforms write float32.
//
// Feature order: images are NHWC, so an image's feature vector is (h, w, c) with c fastest. pylearn2
// used CIFAR's (c, h, w) order; GCN and ZCA are equivariant under a fixed permutation of features,
// so the whitened images are the same pixels either way.
import { GramAccumulator, symmetricEigen, whitenRows } from './linalg.ts';
import { parallelGram, parallelSymmetricEigen } from './parallel.ts';
import type { TensorMap } from '../safetensors.ts';

// ---------------------------------------------------------------------------------------------
// Per-channel standardisation.

export interface ChannelStats {
  kind: 'channel';
  channels: number;
  mean: Float64Array;
  std: Float64Array;
  /** Pixels (images × height × width) the statistics were computed from. */
  count: number;
}

/** Per-channel mean and (population) standard deviation over all pixels of an NHWC set. */
export function computeChannelStats(images: Float32Array, channels: number): ChannelStats {
  return new ChannelStatsSum(channels).add(images).result();
}

/**
 * computeChannelStats over a set given in parts, in order (a streamed set's batches): the same
 * sums in the same order, so the same statistics as over the whole.
 */
export class ChannelStatsSum {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private shift: Float64Array | null = null;
  private pixels = 0;

  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
    this.sumSq = new Float64Array(channels);
  }

  add(images: Float32Array): this {
    const C = this.channels;
    if (images.length % C !== 0) throw new RangeError(`computeChannelStats: ${images.length} values is not a multiple of ${C} channels`);
    // Shift by the first pixel so the one-pass variance does not cancel catastrophically.
    const shift = (this.shift ??= Float64Array.from(images.subarray(0, C)));
    const pixels = images.length / C;
    for (let p = 0; p < pixels; p++) {
      for (let c = 0; c < C; c++) {
        const v = images[p * C + c] - shift[c];
        this.sum[c] += v;
        this.sumSq[c] += v * v;
      }
    }
    this.pixels += pixels;
    return this;
  }

  result(): ChannelStats {
    const C = this.channels;
    const mean = new Float64Array(C);
    const std = new Float64Array(C);
    const shift = this.shift ?? new Float64Array(C);
    for (let c = 0; c < C; c++) {
      const m = this.sum[c] / this.pixels;
      mean[c] = m + shift[c];
      std[c] = Math.sqrt(Math.max(this.sumSq[c] / this.pixels - m * m, 0));
    }
    return { kind: 'channel', channels: C, mean, std, count: this.pixels };
  }
}

/** (x − mean_c) / std_c, into `out` (default: in place). Channels with std 0 are only centred. */
export function standardizeChannels(images: Float32Array, stats: ChannelStats, out: Float32Array = images): Float32Array {
  const C = stats.channels;
  if (images.length % C !== 0 || out.length !== images.length) throw new RangeError(`standardizeChannels: ${images.length} values, ${C} channels, output ${out.length}`);
  const inv = Array.from(stats.std, (s) => (s > 0 ? 1 / s : 1));
  const mean = Array.from(stats.mean);
  for (let i = 0; i < images.length; i += C) {
    for (let c = 0; c < C; c++) out[i + c] = (images[i + c] - mean[c]) * inv[c];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Global contrast normalisation.

/**
 * pylearn2.expr.preprocessing.global_contrast_normalize, per image x (one row of `featureSize`):
 *   x ← x − mean(x)                                   (if subtractMean)
 *   s = sqrt(sqrtBias + Σ x²) / scale                   (useStd = false: the L2 norm)
 *   s = sqrt(sqrtBias + var(x, ddof = 1)) / scale       (useStd = true)
 *   s ← 1 if s < minDivisor;  x ← x / s
 * The NIN/maxout CIFAR pipeline used scale = 55, sqrtBias = 0, useStd = false: every image becomes
 * zero-mean with L2 norm 55 (≈ sqrt(3072), i.e. about unit RMS per feature). The result does not
 * depend on the input pixel scale (0..255 or 0..1) when sqrtBias = 0.
 */
export interface GcnOptions {
  scale?: number;
  sqrtBias?: number;
  useStd?: boolean;
  subtractMean?: boolean;
  minDivisor?: number;
}

export const NIN_GCN: Required<GcnOptions> = { scale: 55, sqrtBias: 0, useStd: false, subtractMean: true, minDivisor: 1e-8 };

export function globalContrastNormalize(images: Float32Array, featureSize: number, opts: GcnOptions = {}, out: Float32Array = images): Float32Array {
  const o = { ...NIN_GCN, ...opts };
  if (images.length % featureSize !== 0 || out.length !== images.length) {
    throw new RangeError(`globalContrastNormalize: ${images.length} values is not a whole number of ${featureSize}-feature images (output ${out.length})`);
  }
  const n = images.length / featureSize;
  for (let i = 0; i < n; i++) {
    const base = i * featureSize;
    let mean = 0;
    if (o.subtractMean) {
      for (let k = 0; k < featureSize; k++) mean += images[base + k];
      mean /= featureSize;
    }
    let ss = 0;
    for (let k = 0; k < featureSize; k++) {
      const v = images[base + k] - mean;
      ss += v * v;
    }
    const spread = o.useStd ? ss / Math.max(featureSize - 1, 1) : ss;
    let s = Math.sqrt(o.sqrtBias + spread) / o.scale;
    if (s < o.minDivisor) s = 1;
    const inv = 1 / s;
    for (let k = 0; k < featureSize; k++) out[base + k] = (images[base + k] - mean) * inv;
  }
  return out;
}

/** GCN as the maxout SVHN script ran it before LCN: pylearn2's defaults (scale 1, L2 norm). */
export const MAXOUT_GCN: Required<GcnOptions> = { scale: 1, sqrtBias: 0, useStd: false, subtractMean: true, minDivisor: 1e-8 };

// ---------------------------------------------------------------------------------------------
// ZCA whitening.

export interface ZcaStats {
  kind: 'zca';
  /** Features per example (3072 for 32×32×3). */
  dim: number;
  /** Added to the covariance's eigenvalues (pylearn2's filter_bias). */
  epsilon: number;
  /** Examples the statistics were computed from. */
  count: number;
  /** Per-feature mean, length dim. */
  mean: Float64Array;
  /** W = U·diag(1/sqrt(λ + ε))·Uᵀ, dim×dim row-major, symmetric. */
  whitening: Float64Array;
  /** Eigenvalues λ of the covariance (ε not included), descending. */
  eigenvalues: Float64Array;
}

/** ZCA's default regulariser: pylearn2's filter_bias, the paper's preprocessing. */
export const ZCA_EPSILON = 0.1;

export interface ZcaOptions {
  /** Regulariser added to every eigenvalue (default 0.1 = pylearn2's filter_bias). */
  epsilon?: number;
  /** Progress messages (the 3072-dim fit takes about a minute). */
  log?: (message: string) => void;
}

/**
 * Fits ZCA on `count` = images.length / dim training examples: mean μ, covariance
 * C = (X−μ)ᵀ(X−μ)/count (as pylearn2: divided by N), C + εI = U·diag(λ+ε)·Uᵀ, and the whitening
 * matrix W = U·diag(1/sqrt(λ+ε))·Uᵀ. All in float64, on one thread: the reference that the tests
 * hold fitZcaParallel (what training runs) to.
 */
export function fitZca(images: Float32Array, dim: number, opts: ZcaOptions = {}): ZcaStats {
  const { count, epsilon, log, mean } = zcaPrologue(images, dim, opts);
  const t0 = performance.now();
  const gram = new GramAccumulator(dim);
  gram.add(images, count, mean);
  log(`zca: covariance of ${count}×${dim} in ${seconds(t0)} s`);
  const cov = regularizedCovariance(gram, count, epsilon);
  const t1 = performance.now();
  const eig = symmetricEigen(cov, dim, { overwrite: true });
  log(`zca: eigen-decomposition of ${dim}×${dim} in ${seconds(t1)} s`);
  const { values, scaledVectors } = scaleEigenvectors(eig.values, eig.vectors, dim, count);
  const t2 = performance.now();
  const wAcc = new GramAccumulator(dim);
  wAcc.add(scaledVectors, dim);
  log(`zca: whitening matrix in ${seconds(t2)} s`);
  return zcaStats(dim, epsilon, count, mean, wAcc.result(), values);
}

/**
 * fitZca with the heavy loops on worker threads (`workers`, default: the cores, at most 16): the
 * covariance, the parallel parts of the eigen-decomposition, and W. Same result up to rounding order.
 */
export async function fitZcaParallel(images: Float32Array, dim: number, opts: ZcaOptions & { workers?: number } = {}): Promise<ZcaStats> {
  const { count, epsilon, log, mean } = zcaPrologue(images, dim, opts);
  const t0 = performance.now();
  const gram = await parallelGram(images, count, dim, mean, opts.workers);
  log(`zca: covariance of ${count}×${dim} in ${seconds(t0)} s`);
  const cov = regularizedCovariance(gram, count, epsilon);
  const t1 = performance.now();
  // Below ~128 features worker start-up costs more than it saves.
  const eig = dim >= 128 ? await parallelSymmetricEigen(cov, dim, opts.workers) : symmetricEigen(cov, dim, { overwrite: true });
  log(`zca: eigen-decomposition of ${dim}×${dim} in ${seconds(t1)} s`);
  const { values, scaledVectors } = scaleEigenvectors(eig.values, eig.vectors, dim, count);
  const t2 = performance.now();
  const wAcc = await parallelGram(scaledVectors, dim, dim, null, opts.workers);
  log(`zca: whitening matrix in ${seconds(t2)} s`);
  return zcaStats(dim, epsilon, count, mean, wAcc.result(), values);
}

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(1);
}

function zcaPrologue(images: Float32Array, dim: number, opts: ZcaOptions): { count: number; epsilon: number; log: (m: string) => void; mean: Float64Array } {
  const epsilon = opts.epsilon ?? ZCA_EPSILON;
  if (!(epsilon >= 0)) throw new RangeError(`fitZca: epsilon ${epsilon} must be ≥ 0`);
  if (!Number.isInteger(dim) || dim <= 0 || images.length % dim !== 0 || images.length === 0) {
    throw new RangeError(`fitZca: ${images.length} values is not a whole, non-zero number of ${dim}-feature examples`);
  }
  const count = images.length / dim;
  const mean = new Float64Array(dim);
  for (let i = 0; i < count; i++) for (let k = 0; k < dim; k++) mean[k] += images[i * dim + k];
  for (let k = 0; k < dim; k++) mean[k] /= count;
  return { count, epsilon, log: opts.log ?? (() => {}), mean };
}

/** C + εI with C = G / count. */
function regularizedCovariance(gram: GramAccumulator, count: number, epsilon: number): Float64Array {
  const cov = gram.result(1 / count);
  for (let k = 0; k < gram.dim; k++) cov[k * gram.dim + k] += epsilon;
  return cov;
}

/**
 * Checks C + εI is numerically positive definite and scales its eigenvectors (rows, in place) by
 * (λ+ε)^(-1/4), so that W = Σ_k v_k v_kᵀ is a Gram matrix of the scaled vectors.
 */
function scaleEigenvectors(values: Float64Array, vectors: Float64Array, dim: number, count: number): { values: Float64Array; scaledVectors: Float64Array } {
  // Eigenvalues below rounding level (relative to the largest) are numerically zero: 1/sqrt of them
  // would amplify noise by ~1e8, so such data needs ε > 0 (GCN'd data always has one zero direction).
  const tolerance = values[dim - 1] * dim * Number.EPSILON;
  if (!(values[0] > tolerance)) {
    throw new RangeError(
      `fitZca: covariance + ε·I is not positive definite (smallest eigenvalue ${values[0].toExponential(3)}, largest ${values[dim - 1].toExponential(3)}); use epsilon > 0 for rank-deficient data (${count} examples, ${dim} features)`,
    );
  }
  for (let k = 0; k < dim; k++) {
    const sc = values[k] ** -0.25;
    for (let i = 0; i < dim; i++) vectors[k * dim + i] *= sc;
  }
  return { values, scaledVectors: vectors };
}

function zcaStats(dim: number, epsilon: number, count: number, mean: Float64Array, whitening: Float64Array, valuesAscending: Float64Array): ZcaStats {
  const eigenvalues = new Float64Array(dim);
  for (let k = 0; k < dim; k++) eigenvalues[k] = valuesAscending[dim - 1 - k] - epsilon;
  return { kind: 'zca', dim, epsilon, count, mean, whitening, eigenvalues };
}

// float32 copies of W and μ per stats object (W is 37 MB in float32 for 3072 features); the stats
// are treated as immutable once fitted.
const float32Whitening = new WeakMap<ZcaStats, { w: Float32Array; mean: Float32Array }>();

export function float32Copies(stats: ZcaStats): { w: Float32Array; mean: Float32Array } {
  let cached = float32Whitening.get(stats);
  if (!cached) {
    cached = { w: Float32Array.from(stats.whitening), mean: Float32Array.from(stats.mean) };
    float32Whitening.set(stats, cached);
  }
  return cached;
}

/**
 * y = (x − μ)·W for every example, written as float32 into `out` (default: a new array; in place is
 * allowed). ~dim² multiply-adds per example (9.4 M for 3072: about 5 ms per image on one core), so
 * a whole dataset is whitened once up front on the GPU (nin/preprocessing.ts whitenOnGpu).
 */
export function applyZca(stats: ZcaStats, images: Float32Array, out?: Float32Array): Float32Array {
  const { dim } = stats;
  if (images.length % dim !== 0) throw new RangeError(`applyZca: ${images.length} values is not a whole number of ${dim}-feature examples`);
  const result = out ?? new Float32Array(images.length);
  if (result.length !== images.length) throw new RangeError(`applyZca: output has ${result.length} values, input ${images.length}`);
  const cached = float32Copies(stats);
  whitenRows(images, 0, images.length / dim, dim, cached.mean, cached.w, result, 0);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint (de)serialisation.

export type PreprocessStats = ChannelStats | ZcaStats;

/**
 * Tensors + metadata for a safetensors checkpoint, under `prefix` (e.g. "preprocess.zca."). The
 * metadata records the kind and scalar fields, so statsFromTensors can rebuild the object.
 */
export function statsToTensors(stats: PreprocessStats, prefix = 'preprocess.'): { tensors: TensorMap; metadata: Record<string, string> } {
  if (stats.kind === 'channel') {
    return {
      tensors: {
        [`${prefix}mean`]: { dtype: 'F64', shape: [stats.channels], data: stats.mean },
        [`${prefix}std`]: { dtype: 'F64', shape: [stats.channels], data: stats.std },
      },
      metadata: { [`${prefix}kind`]: 'channel', [`${prefix}count`]: String(stats.count) },
    };
  }
  return {
    tensors: {
      [`${prefix}mean`]: { dtype: 'F64', shape: [stats.dim], data: stats.mean },
      [`${prefix}whitening`]: { dtype: 'F64', shape: [stats.dim, stats.dim], data: stats.whitening },
      [`${prefix}eigenvalues`]: { dtype: 'F64', shape: [stats.dim], data: stats.eigenvalues },
    },
    metadata: { [`${prefix}kind`]: 'zca', [`${prefix}count`]: String(stats.count), [`${prefix}epsilon`]: String(stats.epsilon) },
  };
}

export function statsFromTensors(tensors: TensorMap, metadata: Record<string, string>, prefix = 'preprocess.'): PreprocessStats {
  const kind = metadata[`${prefix}kind`];
  const f64 = (name: string): Float64Array => {
    const t = tensors[`${prefix}${name}`];
    if (!t) throw new Error(`preprocessing statistics: tensor "${prefix}${name}" missing`);
    if (t.data instanceof Float64Array) return t.data;
    if (t.data instanceof Float32Array) return Float64Array.from(t.data);
    throw new Error(`preprocessing statistics: tensor "${prefix}${name}" is ${t.dtype}, expected F64 or F32`);
  };
  const countText = metadata[`${prefix}count`];
  const count = /^\d+$/.test(countText ?? '') ? Number(countText) : NaN;
  if (!(count >= 1)) throw new Error(`preprocessing statistics: metadata "${prefix}count" (the images they were fitted on) must be a whole number ≥ 1, found ${JSON.stringify(countText ?? null)}`);
  if (kind === 'channel') {
    const mean = f64('mean');
    return { kind, channels: mean.length, mean, std: f64('std'), count };
  }
  if (kind === 'zca') {
    const mean = f64('mean');
    const whitening = f64('whitening');
    if (whitening.length !== mean.length * mean.length) throw new Error(`preprocessing statistics: whitening has ${whitening.length} values, expected ${mean.length}²`);
    // (saved again with every checkpoint: a wrong length was found only then, the epoch lost)
    const eigenvalues = f64('eigenvalues');
    if (eigenvalues.length !== mean.length) throw new Error(`preprocessing statistics: eigenvalues has ${eigenvalues.length} values, expected ${mean.length}`);
    return { kind, dim: mean.length, epsilon: Number(metadata[`${prefix}epsilon`]), count, mean, whitening, eigenvalues };
  }
  throw new Error(`preprocessing statistics: metadata "${prefix}kind" is ${JSON.stringify(kind)}, expected "channel" or "zca"`);
}
