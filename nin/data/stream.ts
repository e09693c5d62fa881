// Image folders read batch by batch (`--stream`): a streamed dataset holds its pictures' paths, not
// their pixels, and each batch is decoded when the loader asks for it, by a pool of worker threads
// that lives as long as the process. The pixels are the ones readImageFolder reads (readImagesInto,
// picture by picture), so a streamed run trains on the same numbers as one that read the folder
// into memory, in memory of a few batches instead of the folder's (602 KB a 224×224 image).
import { Worker } from 'node:worker_threads';
import type { ModelInput } from '../images.ts';
import type { ImageDataset } from './formats.ts';
import type { ImagesRead } from './folder.ts';
import { DataFormatError } from './io.ts';
import { defaultWorkers } from './parallel.ts';

/** A streamed dataset's source: `ImageDataset.stream`. */
export interface ImageStream {
  /** The pictures' paths, in the dataset's order. */
  paths: readonly string[];
  /** What is done to a batch's raw pixels once read (preprocessing: Preprocessor.applyTo). */
  transform?: (images: Float32Array, count: number) => void;
}

/** A dataset whose images are read when used (`images` is empty): `stream` says from where. */
export function streamedDataset(base: Omit<ImageDataset, 'images' | 'labels' | 'count' | 'stream'>, paths: readonly string[], labels: Int32Array): ImageDataset {
  if (paths.length !== labels.length) throw new RangeError(`${base.name}: ${paths.length} paths, ${labels.length} labels`);
  return { ...base, images: new Float32Array(0), labels, count: paths.length, stream: { paths } };
}

/** The images at `indices` of a streamed dataset, raw 0..255 pixels then its transform, NHWC. */
export async function readStreamed(ds: Pick<ImageDataset, 'name' | 'height' | 'width' | 'channels' | 'stream'>, indices: ArrayLike<number>): Promise<Float32Array> {
  const stream = ds.stream;
  if (!stream) throw new Error(`${ds.name}: not a streamed dataset`);
  const paths = Array.from(indices, (i) => {
    if (!(Number.isInteger(i) && i >= 0 && i < stream.paths.length)) throw new RangeError(`${ds.name}: image ${i} outside 0..${stream.paths.length - 1}`);
    return stream.paths[i];
  });
  const images = await picturePool().read(paths, { height: ds.height, width: ds.width, channels: ds.channels as 1 | 3 });
  stream.transform?.(images, paths.length);
  return images;
}

/** A picture reading thread that failed or died (a picture it could not read is a DataFormatError). */
export class StreamReadError extends Error {
  override name = 'StreamReadError';
}

/** Images a worker decodes at least per request (fewer requests for a small batch). */
const MIN_PER_WORKER = 4;

/**
 * Worker threads that decode pictures (folder.ts readImagesInto) on request; they keep the process
 * alive only while they have work. One pool a process, made on first use.
 */
class PicturePool {
  private readonly workers: ({ thread: Worker; outstanding: number } | undefined)[] = [];
  private readonly waiting = new Map<number, { worker: number; resolve: (r: { images: Float32Array; read: ImagesRead }) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private next = 0;

  constructor(private readonly size: number) {}

  /** `paths` read at `input`'s size, in order, into one array; an unreadable picture is an error naming it. */
  async read(paths: readonly string[], input: ModelInput): Promise<Float32Array> {
    const per = input.height * input.width * input.channels;
    const parts = Math.max(1, Math.min(this.size, Math.floor(paths.length / MIN_PER_WORKER)));
    const bounds = Array.from({ length: parts + 1 }, (_, k) => Math.floor((k * paths.length) / parts));
    const results = await Promise.all(Array.from({ length: parts }, (_, k) => this.request(paths.slice(bounds[k], bounds[k + 1]), input)));
    const unreadable = results.flatMap((r) => r.read.unreadable);
    if (unreadable.length) {
      const [first, ...more] = unreadable;
      const others = more.length ? `; ${more.length} more in this batch: ${more.slice(0, 3).map((u) => u.file).join(', ')}${more.length > 3 ? ', …' : ''}` : '';
      throw new DataFormatError(first.file, `cannot be read (${first.reason})${others}`);
    }
    const images = new Float32Array(paths.length * per);
    results.forEach((r, k) => images.set(r.images, bounds[k] * per));
    return images;
  }

  private request(paths: string[], input: ModelInput): Promise<{ images: Float32Array; read: ImagesRead }> {
    const id = this.nextId++;
    const k = this.next++ % this.size;
    const w = this.worker(k);
    // Held while it has work (the process waits for a batch being read), let go when idle.
    if (w.outstanding++ === 0) w.thread.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { worker: k, resolve, reject });
      w.thread.postMessage({ id, paths, input });
    });
  }

  /** Worker k, started on first use. */
  private worker(k: number): { thread: Worker; outstanding: number } {
    const existing = this.workers[k];
    if (existing) return existing;
    const thread = new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { module: new URL('./stream-worker.ts', import.meta.url).href } });
    const w = { thread, outstanding: 0 };
    thread.on('message', (m: { id: number; images: Float32Array; read: ImagesRead } | { id: number; error: string }) => {
      const job = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (--w.outstanding === 0) thread.unref();
      if ('error' in m) job?.reject(new StreamReadError(`picture reading worker ${k}: ${m.error}`));
      else job?.resolve(m);
    });
    thread.on('error', (e) => this.fail(k, thread, new StreamReadError(`picture reading worker ${k} failed: ${e.message}`)));
    thread.on('exit', (code) => this.fail(k, thread, new StreamReadError(`picture reading worker ${k} exited with code ${code}`)));
    thread.unref();
    this.workers[k] = w;
    return w;
  }

  /** A worker that died fails the requests it had and is replaced on next use. */
  private fail(k: number, thread: Worker, e: Error): void {
    if (this.workers[k]?.thread !== thread) return; // (its error and its exit: said once)
    this.workers[k] = undefined;
    for (const [id, job] of this.waiting) {
      if (job.worker !== k) continue;
      this.waiting.delete(id);
      job.reject(e);
    }
  }
}

let pool: PicturePool | null = null;
function picturePool(): PicturePool {
  return (pool ??= new PicturePool(defaultWorkers()));
}
