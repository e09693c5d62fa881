// The input pipeline's fixed transform, fitted on the training set only and stored with the model:
//   none         pixels / 255
//   standardize  per-channel (x − mean) / std
//   gcn-zca      the paper's for CIFAR: global contrast normalisation per image, then ZCA whitening
//   gcn-lcn      the paper's for SVHN (after the maxout paper): GCN, then local contrast
//                normalisation per image and channel (no statistics to fit)
import { noGrad } from '../engine/autograd.ts';
import { getGpu } from '../engine/device.ts';
import { trimPool } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { withoutMatrixUnits } from '../kernels/gemm-matrix.ts';
import type { ImageDataset } from './data/formats.ts';
import {
  applyZca,
  ChannelStatsSum,
  computeChannelStats,
  float32Copies,
  fitZcaParallel,
  globalContrastNormalize,
  MAXOUT_GCN,
  NIN_GCN,
  standardizeChannels,
  statsFromTensors,
  statsToTensors,
  type ChannelStats,
  type PreprocessStats,
  type ZcaStats,
  ZCA_EPSILON,
} from './data/preprocess.ts';
import { readZcaCache, writeZcaCache, zcaCacheKey } from './data/zca-cache.ts';
import { readStreamed } from './data/stream.ts';
import { localContrastNormalize, type ImageShape } from './data/lcn.ts';
import { parallelLocalContrastNormalize } from './data/parallel.ts';
import type { TensorMap } from './safetensors.ts';

export type PreprocessKind = 'none' | 'standardize' | 'gcn-zca' | 'gcn-lcn';
export const PREPROCESS_KINDS: readonly PreprocessKind[] = ['none', 'standardize', 'gcn-zca', 'gcn-lcn'];

/** Kinds a streamed set (`--stream`) takes: per pixel, batch by batch; the others work on the whole set in memory. */
export function batchwise(kind: PreprocessKind): boolean {
  return kind === 'none' || kind === 'standardize';
}

/** Kinds with statistics fitted on the training set (and stored in the checkpoint). */
const fitted = (kind: PreprocessKind): boolean => kind === 'standardize' || kind === 'gcn-zca';

export class Preprocessor {
  constructor(readonly kind: PreprocessKind, readonly stats: PreprocessStats | null) {}

  /** Transformed copy of `count` NHWC images of `shape` with raw 0..255 pixels. */
  apply(images: Float32Array, count: number, shape: ImageShape): Float32Array {
    return this.transform(new Float32Array(images), count, shape);
  }

  /** The transform of `values` (raw pixels, overwritten: the result is `values` except after ZCA on the CPU). */
  private transform(values: Float32Array, count: number, shape: ImageShape): Float32Array {
    if (values.length !== count * shape.height * shape.width * shape.channels) {
      throw new RangeError(`preprocessing: ${values.length} values are not ${count} images of ${shape.height}×${shape.width}×${shape.channels}`);
    }
    if (this.kind === 'gcn-lcn') {
      globalContrastNormalize(values, values.length / count, MAXOUT_GCN);
      return localContrastNormalize(values, shape);
    }
    if (this.kind === 'none') {
      for (let i = 0; i < values.length; i++) values[i] /= 255;
      return values;
    }
    if (this.kind === 'standardize') return standardizeChannels(values, this.stats as Extract<PreprocessStats, { kind: 'channel' }>);
    globalContrastNormalize(values, values.length / count, NIN_GCN);
    return applyZca(this.stats as Extract<PreprocessStats, { kind: 'zca' }>, values);
  }

  /**
   * A dataset with the transform applied (labels and metadata shared). Whitening a whole data set
   * is a [count × dim]·[dim × dim] product (CIFAR-10's training set: 4.7·10¹¹ multiply-adds), so
   * it runs on the GPU as a 1×1 convolution (whitenOnGpu); apply() does it on the CPU. LCN
   * (SVHN with extra: 606k images, 0.2 ms each) runs on worker threads. `inPlace`: the images
   * may be overwritten instead of copied (SVHN with extra: a 7.4 GB copy fewer).
   */
  async applyTo(ds: ImageDataset, opts: { inPlace?: boolean } = {}): Promise<ImageDataset> {
    if (ds.stream) {
      // Each batch is transformed as read (per pixel, so the same numbers as the whole set's).
      if (!batchwise(this.kind)) throw new RangeError(`${ds.name}: preprocessing '${this.kind}' works on the whole set, not a streamed one (batch by batch: none or standardize)`);
      const before = ds.stream.transform;
      const transform = (images: Float32Array, count: number) => {
        before?.(images, count);
        this.transform(images, count, ds);
      };
      return { ...ds, stream: { ...ds.stream, transform } };
    }
    const perImage = ds.images.length / ds.count;
    if (this.kind === 'gcn-lcn') {
      // LCN's worker threads share the images: GCN writes them to shared memory (in place when
      // they live there already and may be overwritten, as loadSplits's gathered sets do).
      const out = opts.inPlace && ds.images.buffer instanceof SharedArrayBuffer ? ds.images : new Float32Array(new SharedArrayBuffer(ds.images.byteLength));
      globalContrastNormalize(ds.images, perImage, MAXOUT_GCN, out);
      return { ...ds, images: await parallelLocalContrastNormalize(out, ds) };
    }
    const images = opts.inPlace ? ds.images : new Float32Array(ds.images);
    if (this.kind !== 'gcn-zca') return { ...ds, images: this.transform(images, ds.count, ds) };
    globalContrastNormalize(images, perImage, NIN_GCN);
    return { ...ds, images: await whitenOnGpu(this.stats as ZcaStats, images, ds.count) };
  }

  /** Checks that stored statistics fit a model's input and are usable numbers (a checkpoint may be damaged). */
  checkInput(input: ImageShape): void {
    const s = this.stats;
    if (!s) return;
    const finite = (name: string, values: Float64Array, min = -Infinity): void => {
      const bad = values.findIndex((v) => !(Number.isFinite(v) && v >= min));
      if (bad >= 0) throw new RangeError(`preprocessing statistics: ${name}[${bad}] is ${values[bad]}, expected a finite number${min > -Infinity ? ` ≥ ${min}` : ''}`);
    };
    if (s.kind === 'channel') {
      if (s.channels !== input.channels || s.std.length !== s.channels) {
        throw new RangeError(`preprocessing statistics: mean and std for ${s.channels} and ${s.std.length} channels, the model's input has ${input.channels}`);
      }
      finite('mean', s.mean);
      finite('std', s.std, 0);
      return;
    }
    const dim = input.height * input.width * input.channels;
    if (s.dim !== dim) throw new RangeError(`preprocessing statistics: ZCA over ${s.dim} features, the model's ${input.height}×${input.width}×${input.channels} input has ${dim}`);
    finite('mean', s.mean);
    finite('whitening', s.whitening);
  }

  toTensors(): { tensors: TensorMap; metadata: Record<string, string> } {
    const base = { 'preprocess.transform': this.kind };
    if (!this.stats) return { tensors: {}, metadata: base };
    const s = statsToTensors(this.stats);
    return { tensors: s.tensors, metadata: { ...s.metadata, ...base } };
  }

  static fromTensors(tensors: TensorMap, metadata: Record<string, string>): Preprocessor {
    const kind = metadata['preprocess.transform'] as PreprocessKind | undefined;
    if (!kind || !PREPROCESS_KINDS.includes(kind)) throw new Error(`unknown preprocessing '${kind}' (metadata "preprocess.transform"; known: ${PREPROCESS_KINDS.join(', ')})`);
    if (!fitted(kind)) return new Preprocessor(kind, null);
    const stats = statsFromTensors(tensors, metadata);
    const wanted = kind === 'standardize' ? 'channel' : 'zca';
    if (stats.kind !== wanted) throw new Error(`preprocessing '${kind}' needs ${wanted} statistics, the checkpoint holds ${stats.kind} statistics (metadata "preprocess.transform" and "preprocess.kind" disagree)`);
    return new Preprocessor(kind, stats);
  }
}

/**
 * ZCA whitening, (x − μ)·W, of `count` examples on the GPU, in place: the centring on the CPU,
 * the product as a 1×1 convolution over [count, 1, 1, dim] with W as its [1, 1, dim, dim] weight,
 * in chunks of at most 64 MiB. float32 sums where the CPU path (applyZca) sums in float64: the
 * results agree to about 10⁻⁶ relative.
 */
export async function whitenOnGpu(stats: ZcaStats, images: Float32Array, count: number, chunkBytes = 64 << 20): Promise<Float32Array> {
  const { dim } = stats;
  if (images.length !== count * dim) throw new RangeError(`whitenOnGpu: ${images.length} values are not ${count} examples of ${dim} features`);
  const g = await getGpu();
  const f32 = float32Copies(stats); // what applyZca uses too
  for (let i = 0; i < images.length; i++) images[i] -= f32.mean[i % dim];
  const w = Tensor.fromArray(f32.w, [1, 1, dim, dim]);
  const zero = Tensor.fromArray(new Float32Array(dim), [dim]);
  const chunk = Math.max(1, Math.floor(Math.min(chunkBytes, g.limits.maxStorageBufferBindingSize) / (4 * dim)));
  try {
    for (let s = 0; s < count; s += chunk) {
      const n = Math.min(chunk, count - s);
      const x = Tensor.fromArray(images.subarray(s * dim, (s + n) * dim), [n, 1, 1, dim]);
      // Never on f16 matrix units (NIN_MATRIX=f16): the data must not depend on the GEMM mode.
      const y = noGrad(() => withoutMatrixUnits(() => conv2d(x, w, zero)));
      images.set(await y.toArray(), s * dim);
      x.dispose();
      y.dispose();
    }
  } finally {
    w.dispose();
    zero.dispose();
  }
  trimPool(); // the chunks' buffers are of no use to training
  return images;
}

/** Per-channel statistics of a streamed set: one pass over its pictures, in order (the same
 * numbers as over the set in memory), a few batches at a time. */
async function streamedChannelStats(train: ImageDataset, log: (m: string) => void): Promise<ChannelStats> {
  log(`reading the ${train.count} training images once for their per-channel statistics…`);
  const sum = new ChannelStatsSum(train.channels);
  const chunk = 256;
  // The next chunk is read while this one is summed.
  let next = readStreamed(train, range(0, Math.min(chunk, train.count)));
  for (let start = 0; start < train.count; start += chunk) {
    const images = await next;
    const after = start + chunk;
    if (after < train.count) next = readStreamed(train, range(after, Math.min(after + chunk, train.count)));
    sum.add(images);
  }
  return sum.result();
}

const range = (from: number, to: number): Int32Array => Int32Array.from({ length: to - from }, (_, i) => from + i);

/** Channels that vary by less than one level of 0..255 over the training images, but vary:
 * standardising scales them up past 1×, and a picture that differs there lands far outside the
 * training values (a test loss in the hundreds of thousands, seen). Null where there are none. */
export function faintChannels(stats: ChannelStats): string | null {
  const faint = [...stats.std.keys()].filter((c) => stats.std[c] > 0 && stats.std[c] < 1);
  if (!faint.length) return null;
  const list = faint.map((c) => `${stats.channels === 1 ? "the training images' one channel" : `channel ${c} of the training images`} varies by std ${stats.std[c].toPrecision(2)} on 0..255`).join('; ');
  return `${list}: standardising divides by that, so a picture that differs there lands far outside the training values (--preprocess none keeps them as they are)`;
}

/** How many of a set's images hold one value throughout (GCN makes each all zeros). */
export function flatImages(ds: Pick<ImageDataset, 'images' | 'count'>): number {
  const dim = ds.images.length / ds.count;
  let flat = 0;
  for (let i = 0; i < ds.count; i++) {
    const base = i * dim;
    const first = ds.images[base];
    let k = 1;
    while (k < dim && ds.images[base + k] === first) k++;
    if (k === dim) flat++;
  }
  return flat;
}

/**
 * Fits the transform on the training images only (ZCA's heavy loops on worker threads). `zcaCache`:
 * a directory of earlier ZCA fits (nin/data/zca-cache.ts), looked up by the training images, and
 * where a new fit is stored; training passes zcaCacheDir(), from $NIN_CACHE.
 */
export async function fitPreprocessor(
  kind: PreprocessKind,
  train: ImageDataset,
  log: (m: string) => void = () => {},
  opts: { zcaCache?: string | null } = {},
): Promise<Preprocessor> {
  if (kind === 'gcn-zca' || kind === 'gcn-lcn') {
    const flat = train.stream ? 0 : flatImages(train);
    if (flat) log(`note: ${flat === train.count ? `every one of the ${train.count}` : `${flat} of the ${train.count}`} training images ${flat === 1 || flat === train.count ? 'is' : 'are'} flat (one value throughout): global contrast normalisation subtracts each image's mean and makes ${flat === 1 ? 'it' : 'them'} all zeros${flat === train.count ? ', so the net sees one image for every class' : ''} (--preprocess standardize keeps their brightness)`);
  }
  if (!fitted(kind)) return new Preprocessor(kind, null);
  if (kind === 'standardize') {
    const stats = train.stream ? await streamedChannelStats(train, log) : computeChannelStats(train.images, train.channels);
    const faint = faintChannels(stats);
    if (faint) log(`note: ${faint}`);
    return new Preprocessor(kind, stats);
  }
  if (train.stream) throw new RangeError(`${train.name}: preprocessing '${kind}' is fitted on the whole set in memory, not a streamed one (none or standardize)`);
  const dim = train.height * train.width * train.channels;
  const gcn = globalContrastNormalize(new Float32Array(train.images), dim, NIN_GCN);
  const key = opts.zcaCache ? zcaCacheKey(gcn, dim, ZCA_EPSILON) : '';
  const hit = opts.zcaCache ? readZcaCache(opts.zcaCache, { key, dim, count: train.count, epsilon: ZCA_EPSILON }, log) : null;
  if (hit) {
    log(`ZCA whitening of these ${train.count} training images from the cache: ${hit.path} (NIN_CACHE=off fits afresh)`);
    return new Preprocessor(kind, hit.stats);
  }
  log(`fitting ZCA whitening on ${train.count} images of ${dim} features…`);
  const stats = await fitZcaParallel(gcn, dim, { log, epsilon: ZCA_EPSILON });
  if (opts.zcaCache) writeZcaCache(opts.zcaCache, key, stats, log);
  return new Preprocessor(kind, stats);
}
