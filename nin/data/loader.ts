// Mini-batch iteration over an image set (in memory, or streamed: nin/data/stream.ts): seeded
// per-epoch shuffle, optional drop-last, per-batch preprocessing and augmentation, and one batch of
// look-ahead: when the trainer takes batch k, batch k+1 is prepared on a setImmediate (a streamed
// one read by worker threads), i.e. while the trainer awaits its GPU work.
//
// Reproducibility: epoch e's order depends only on (seed, e), and batch b's augmentation only on
// (seed, e, b), so a run resumed at epoch e sees exactly the batches of an uninterrupted run.
import { augmentBatch, type AugmentOptions } from './augment.ts';
import type { ImageDataset } from './formats.ts';
import { deriveSeed, permutation, Rng } from './rng.ts';
import { readStreamed } from './stream.ts';

/** The images to batch: in memory (`images`), or a streamed set (`stream`, nin/data/stream.ts), whose batches are read when prepared. */
export type LoaderSource = Pick<ImageDataset, 'images' | 'labels' | 'count' | 'height' | 'width' | 'channels'> & Partial<Pick<ImageDataset, 'name' | 'stream'>>;

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle every epoch (default true); false iterates in dataset order (evaluation). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /**
   * Per-batch preprocessing, in place on the gathered images, before augmentation (so augmentation's
   * zero padding is in preprocessed units). For whole-set transforms like ZCA, preprocess the set once instead.
   */
  preprocess?: (images: Float32Array, count: number) => void;
  /** Random translation / flip (training only). */
  augment?: AugmentOptions;
  /** Prepare the next batch ahead (default true). */
  prefetch?: boolean;
}

export interface Batch {
  /** [size, height, width, channels] float32, a fresh array the caller may keep. */
  images: Float32Array;
  labels: Int32Array;
  size: number;
  shape: [number, number, number, number];
  /** Positions of the batch's examples in the source set. */
  indices: Int32Array;
  epoch: number;
  /** Batch number within the epoch. */
  index: number;
}

const SHUFFLE_STREAM = 1;
const AUGMENT_STREAM = 2;

export class BatchLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private readonly opts: LoaderOptions;

  constructor(
    readonly source: LoaderSource,
    opts: LoaderOptions,
  ) {
    const per = source.height * source.width * source.channels;
    const values = source.stream ? source.stream.paths.length * per : source.images.length;
    if (values !== source.count * per || source.labels.length !== source.count) {
      throw new RangeError(
        `BatchLoader: source claims ${source.count} images of ${source.height}×${source.width}×${source.channels}, but has ${source.stream ? `${source.stream.paths.length} pictures` : `${source.images.length} values`} and ${source.labels.length} labels`,
      );
    }
    if (!Number.isInteger(opts.batchSize) || opts.batchSize <= 0) throw new RangeError(`BatchLoader: batch size ${opts.batchSize} must be a positive integer`);
    this.opts = opts;
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? false;
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(`BatchLoader: ${source.count} examples give no batch of ${this.batchSize}${this.dropLast ? ' with dropLast' : ''}`);
    }
  }

  get batchesPerEpoch(): number {
    const n = this.source.count;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Example order of an epoch. */
  epochOrder(epoch: number): Int32Array {
    if (!this.shuffle) return Int32Array.from({ length: this.source.count }, (_, i) => i);
    return permutation(this.source.count, deriveSeed(this.seed, SHUFFLE_STREAM, epoch));
  }

  /** Builds batch `index` of `epoch` synchronously (gather, preprocess, augment); an in-memory source only. */
  makeBatch(epoch: number, index: number, order: Int32Array = this.epochOrder(epoch)): Batch {
    if (this.source.stream) throw new Error('BatchLoader: a streamed source is read asynchronously (makeBatchAsync)');
    const indices = this.batchIndices(index, order);
    const { images, height, width, channels } = this.source;
    const per = height * width * channels;
    const batchImages = new Float32Array(indices.length * per);
    for (let i = 0; i < indices.length; i++) batchImages.set(images.subarray(indices[i] * per, (indices[i] + 1) * per), i * per);
    return this.finishBatch(epoch, index, indices, batchImages);
  }

  /** Builds batch `index` of `epoch`, reading a streamed source's pictures (or as makeBatch). */
  async makeBatchAsync(epoch: number, index: number, order: Int32Array = this.epochOrder(epoch)): Promise<Batch> {
    if (!this.source.stream) return this.makeBatch(epoch, index, order);
    const indices = this.batchIndices(index, order);
    const { name = 'images', height, width, channels, stream } = this.source;
    const images = await readStreamed({ name, height, width, channels, stream }, indices);
    return this.finishBatch(epoch, index, indices, images);
  }

  /** The source positions of batch `index`'s examples. */
  private batchIndices(index: number, order: Int32Array): Int32Array {
    if (!(index >= 0 && index < this.batchesPerEpoch)) throw new RangeError(`BatchLoader: batch ${index} outside 0..${this.batchesPerEpoch - 1}`);
    const start = index * this.batchSize;
    return order.slice(start, start + Math.min(this.batchSize, this.source.count - start));
  }

  /** A batch from its gathered images: labels, then preprocessing and augmentation. */
  private finishBatch(epoch: number, index: number, indices: Int32Array, gathered: Float32Array): Batch {
    const { labels, height, width, channels } = this.source;
    const size = indices.length;
    let batchImages = gathered;
    const batchLabels = Int32Array.from(indices, (j) => labels[j]);
    this.opts.preprocess?.(batchImages, size);
    const aug = this.opts.augment;
    if (aug && ((aug.pad ?? 0) > 0 || aug.flip)) {
      const rng = new Rng(deriveSeed(this.seed, AUGMENT_STREAM, epoch, index));
      batchImages = augmentBatch(batchImages, { count: size, height, width, channels }, aug, rng);
    }
    return { images: batchImages, labels: batchLabels, size, shape: [size, height, width, channels], indices, epoch, index };
  }

  /** The batches of one epoch from batch `from` on (a run resumed within the epoch), as an async
   * iterator that keeps the next batch in preparation. */
  epoch(epoch: number, from = 0): EpochIterator {
    if (!(Number.isInteger(from) && from >= 0 && from <= this.batchesPerEpoch)) throw new RangeError(`BatchLoader: cannot start epoch ${epoch} at batch ${from} of ${this.batchesPerEpoch}`);
    return new EpochIterator(this, epoch, this.epochOrder(epoch), this.opts.prefetch ?? true, from);
  }
}

export class EpochIterator implements AsyncIterableIterator<Batch> {
  private nextIndex = 0;
  private pending: Promise<Batch> | null = null;
  private closed = false;

  constructor(
    private readonly loader: BatchLoader,
    readonly epoch: number,
    private readonly order: Int32Array,
    private readonly prefetch: boolean,
    from = 0,
  ) {
    this.nextIndex = from;
    if (prefetch) this.schedule();
  }

  /** Batches still to come in this epoch (including one being prepared). */
  get remaining(): number {
    return this.loader.batchesPerEpoch - this.nextIndex + (this.pending ? 1 : 0);
  }

  private schedule(): void {
    if (this.closed || this.nextIndex >= this.loader.batchesPerEpoch) {
      this.pending = null;
      return;
    }
    const index = this.nextIndex++;
    const p = new Promise<Batch>((resolve, reject) => {
      setImmediate(() => {
        if (this.closed) return reject(new Error('epoch iterator closed'));
        this.loader.makeBatchAsync(this.epoch, index, this.order).then(resolve, reject);
      });
    });
    p.catch(() => {}); // surfaced when the batch is taken, not as an unhandled rejection
    this.pending = p;
  }

  /** Resolves to the next batch and starts preparing the one after it. */
  async next(): Promise<IteratorResult<Batch, undefined>> {
    if (this.closed) return { done: true, value: undefined };
    if (!this.prefetch) {
      if (this.nextIndex >= this.loader.batchesPerEpoch) return { done: true, value: undefined };
      return { done: false, value: await this.loader.makeBatchAsync(this.epoch, this.nextIndex++, this.order) };
    }
    const p = this.pending;
    if (!p) return { done: true, value: undefined };
    const batch = await p;
    this.schedule();
    return { done: false, value: batch };
  }

  /** Stops early (e.g. `break` in for-await): nothing more is prepared. */
  async return(): Promise<IteratorResult<Batch, undefined>> {
    this.closed = true;
    this.pending = null;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
