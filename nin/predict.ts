// `nin predict` (top-5 classes of PNG or JPEG images) and `nin visualize` (the paper's Figure 4 and the
// run's curves).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { noGrad } from '../engine/autograd.ts';
import { getGpu } from '../engine/device.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { softmax } from '../kernels/softmax-cross-entropy.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { classNamesOf, loadTestSet } from './datasets.ts';
import { ImageLoadError, invertNote } from './images.ts';
import { pictureWorkers, readPictures } from './data/folder.ts';
import { makeDirectory } from './data/io.ts';
import { mapScaleText, renderFeatureMapGrid, renderTrainingCurves } from './plot.ts';
import { historyOfCheckpoint, logOfCheckpoint } from './run-directory.ts';
import { batchTooLarge, classMapsOf, largestBatch, type ModelConfig, type NinModel } from './model.ts';
import { argmax, padded } from './train.ts';

/**
 * One line per image: its top-5 classes with probabilities. Each picture not of the model's input
 * size is resized, and `note` (default: stderr) is told so; so is a colour picture for a model of
 * grey images, a picture for an MNIST model whose border is light, and one that is blank as the
 * model sees it (pictureNotes). `invert`: the
 * pictures are dark strokes on a light or transparent background (composited over white and
 * inverted, see nin/images.ts).
 */
export async function predict(checkpointPath: string, images: string[], note?: (line: string) => void, opts: { invert?: boolean } = {}): Promise<string[]> {
  return formatPredictions(await predictProbabilities(checkpointPath, images, note, opts));
}

export interface Predictions {
  /** The pictures predicted, in the order named. */
  images: string[];
  /** The model's class names (indices where the data set has none). */
  classNames: string[];
  /** Softmax probabilities, images × classes, row-major. */
  probabilities: Float32Array;
  /** With `skipUnreadable`: the pictures that could not be read (not in `images`), each with why. */
  unreadable: { image: string; reason: string }[];
  /** Each picture's notes (pictureNotes), as `note` was told them: one list per image of `images`. */
  notes: string[][];
}

/** One line per image: its top-5 classes with probabilities. */
export function formatPredictions(r: Predictions): string[] {
  return r.images.map((path, i) => `${path}: ${topClasses(r, i, 5).map(({ name, probability }) => `${name} ${(100 * probability).toFixed(1)}%`).join(', ')}`);
}

/** Image i's `k` most probable classes, most probable first. */
export function topClasses(r: Predictions, i: number, k: number): { index: number; name: string; probability: number }[] {
  const C = r.classNames.length;
  return Array.from(r.probabilities.subarray(i * C, (i + 1) * C), (probability, index) => ({ index, name: r.classNames[index], probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}

export interface PredictOptions {
  /** The pictures are dark strokes on a light or transparent background (see predict). */
  invert?: boolean;
  /** Predict the pictures that can be read and list the others in `unreadable`, rather than throw. */
  skipUnreadable?: boolean;
  /** Threads to read in, and pictures each takes at the least (pictureWorkers). */
  workers?: number;
  imagesPerWorker?: number;
  /** Told at once what a long read will be (default: `note`). */
  progress?: (line: string) => void;
  /** With skipUnreadable: pictures a chunk at the most (default: as many as 256 MiB of pixels hold). */
  chunk?: number;
}

/** Pixels, in bytes, of one chunk of pictures that predictChunks reads and predicts at a time
 * (preprocessing copies them: about twice this in memory). */
const CHUNK_BYTES = 2 ** 28;

/**
 * predict()'s probabilities, for library callers (predictChunks, joined; `nin predict` calls
 * predictChunks, to hold one chunk of pictures at a time).
 * Pictures that cannot be read are all named in one error, before any GPU work; with
 * `skipUnreadable` the others are predicted and those are listed in `unreadable` (a directory of
 * photos with one damaged file; where none can be read, nothing is predicted).
 */
export async function predictProbabilities(checkpointPath: string, images: string[], note: (line: string) => void = (line) => console.error(`note: ${line}`), opts: PredictOptions = {}): Promise<Predictions> {
  const parts: Predictions[] = [];
  for await (const part of predictChunks(checkpointPath, images, note, opts)) parts.push(part);
  const probabilities = new Float32Array(parts.reduce((n, p) => n + p.probabilities.length, 0));
  let at = 0;
  for (const part of parts) {
    probabilities.set(part.probabilities, at);
    at += part.probabilities.length;
  }
  return { images: parts.flatMap((p) => p.images), classNames: parts[0].classNames, probabilities, unreadable: parts.flatMap((p) => p.unreadable), notes: parts.flatMap((p) => p.notes) };
}

/**
 * The pictures' predictions a chunk at a time, each chunk yielded as it is done: with
 * `skipUnreadable`, chunks of at most 256 MiB of pixels, so that any number of pictures fits in
 * memory and `nin predict` prints lines as they are made; without it, one chunk, so that every
 * picture that cannot be read is named before any GPU work. A chunk of 1,000 pictures or more is
 * read in worker threads (readPictures), and `progress` is told so first.
 */
export async function* predictChunks(checkpointPath: string, images: string[], note: (line: string) => void = (line) => console.error(`note: ${line}`), opts: PredictOptions = {}): AsyncGenerator<Predictions> {
  const c = loadCheckpoint(checkpointPath);
  const { height, width, channels } = c.config.input;
  if (channels !== 1 && channels !== 3) throw new Error(`${checkpointPath}: model input has ${channels} channels; pictures make 1 or 3`);
  const names = classNamesOf(c.options);
  const classNames = Array.from({ length: c.config.classes }, (_, k) => names[k] ?? String(k));
  const input = { height, width, channels } as const;
  const pixelsPerImage = height * width * channels;
  if (opts.chunk !== undefined && !(Number.isInteger(opts.chunk) && opts.chunk >= 1)) throw new RangeError(`predict: chunk must be a positive integer, got ${opts.chunk}`);
  const perChunk = opts.skipUnreadable ? Math.max(1, Math.min(opts.chunk ?? Infinity, Math.floor(CHUNK_BYTES / (4 * pixelsPerImage)))) : Math.max(1, images.length);
  const threads = { workers: opts.workers, imagesPerWorker: opts.imagesPerWorker };
  const inverting = opts.invert ? invertNote(channels) : null;
  if (inverting) note(inverting);
  if (images.length >= 1000) {
    const workers = pictureWorkers(Math.min(perChunk, images.length), threads);
    (opts.progress ?? note)(`reading ${images.length} pictures${perChunk < images.length ? `, ${perChunk} at a time` : ''}${workers > 1 ? `, in ${workers} threads` : ''}…`);
  }
  let model: NinModel | undefined;
  try {
    for (let start = 0; start === 0 || start < images.length; start += perChunk) { // (no pictures: one empty chunk)
      const part = images.slice(start, start + perChunk);
      const { images: pixels, read } = await readPictures(`${part.length} pictures`, part, input, pictureWorkers(part.length, threads), { invert: opts.invert, notesFor: { mnist: c.options.dataset === 'mnist' } });
      for (const { line } of read.notes) note(line);
      const unreadable = read.unreadable.map((u) => new ImageLoadError(u.file, u.reason)); // every bad picture named at once, not one per attempt
      if (unreadable.length && !opts.skipUnreadable) {
        if (unreadable.length === 1) throw unreadable[0];
        throw new ImageLoadError(unreadable.map((e) => e.file).join(', '), `${unreadable.length} of ${images.length} images cannot be read:\n${unreadable.map((e) => `  ${e.message}`).join('\n')}`);
      }
      // The pictures read, their pixels moved up over the slots of those that could not be.
      const skipped = new Set(read.unreadable.map((u) => u.index));
      const notesOf = part.map((): string[] => []);
      for (const { index, line } of read.notes) notesOf[index].push(line);
      const predicted: string[] = [];
      const notes: string[][] = [];
      part.forEach((path, i) => {
        if (skipped.has(i)) return;
        if (predicted.length !== i) pixels.copyWithin(predicted.length * pixelsPerImage, i * pixelsPerImage, (i + 1) * pixelsPerImage);
        predicted.push(path);
        notes.push(notesOf[i]);
      });
      const unread = unreadable.map((e) => ({ image: e.file, reason: e.reason }));
      if (predicted.length === 0) {
        yield { images: [], classNames, probabilities: new Float32Array(0), unreadable: unread, notes }; // (no GPU work)
        continue;
      }
      const x = c.preprocessor.apply(pixels.subarray(0, predicted.length * pixelsPerImage), predicted.length, c.config.input);
      if (!model) {
        await getGpu(); // building the model needs the device, which a fresh `nin predict` has not opened
        model = c.buildModel();
      }
      yield { images: predicted, classNames, probabilities: await probabilitiesOf(model, x, predicted.length, c.config), unreadable: unread, notes };
    }
  } finally {
    model?.dispose(); // also where the caller stops early, or a read or the forward fails
  }
}

/**
 * Softmax probabilities (count × classes) of preprocessed pictures `x`, in batches the device can
 * bind (largestBatch), however many there are. Kernels are compiled per shape, so each batch runs
 * at one of a few sizes, padded with blank pictures (a picture's probabilities do not depend on the
 * others in its batch): the full batch, or under it the next power of two. Each new count compiled
 * the whole forward pass again (lavapipe, mnist-small: 993 pictures took 20 s, now 991 take 3).
 */
async function probabilitiesOf(model: NinModel, x: Float32Array, count: number, config: ModelConfig): Promise<Float32Array> {
  const { height, width, channels } = config.input;
  const per = height * width * channels;
  const p = new Float32Array(count * config.classes);
  const batch = largestBatch(config, 256);
  const size = count >= batch ? batch : Math.min(batch, 2 ** Math.ceil(Math.log2(count)));
  for (let start = 0; start < count; start += size) {
    const n = Math.min(size, count - start);
    const real = x.subarray(start * per, (start + n) * per);
    const xs = n < size ? padded(real, size * per) : real; // as evaluate() pads its last batch
    const probs = noGrad(() => tidy(() => softmax(model.forward(Tensor.fromArray(xs, [size, height, width, channels]), { train: false }))));
    const all = await probs.toArray().finally(() => probs.dispose()); // a library caller may predict many times in one process
    p.set(all.subarray(0, n * config.classes), start * config.classes);
  }
  return p;
}

/** Writes the class-map grid for `count` test images and the run's curves; returns the files. */
export async function visualize(checkpointPath: string, o: { count: number; dataDir?: string; outDir?: string }): Promise<string[]> {
  const c = loadCheckpoint(checkpointPath);
  const outDir = o.outDir ?? dirname(checkpointPath);
  const written: string[] = [];
  const test = await loadTestSet(c.options, o.dataDir, o.count);
  const n = Math.min(o.count, test.count);
  const { height, width, channels } = c.config.input;
  await getGpu();
  const tooLarge = batchTooLarge(c.config, n);
  if (tooLarge) throw new Error(`--images ${n}: ${tooLarge}`);
  const model = c.buildModel();
  const raw = test.images.subarray(0, n * height * width * channels);
  const x = c.preprocessor.apply(raw, n, c.config.input);
  let mapData: Float32Array, logitData: Float32Array, mapShape: readonly number[];
  try {
    const { maps, logits } = noGrad(() =>
      tidy(() => {
        const m = model.features(Tensor.fromArray(x, [n, height, width, channels]), { train: false });
        return { maps: m, logits: model.head(m, { train: false }) };
      }),
    );
    mapShape = maps.shape;
    [mapData, logitData] = await Promise.all([maps.toArray(), logits.toArray()]).finally(() => {
      maps.dispose();
      logits.dispose();
    });
  } finally {
    model.dispose(); // also when the forward or a read fails: a library caller goes on with the device
  }
  const C = c.config.classes;
  const [, H, W, M] = mapShape;
  const names = classNamesOf(c.options);
  // Under GAP, map k is class k's evidence (its mean is the logit); under an FC head the maps feed
  // a learnt mix, so map k is no class's, even when there are as many maps as classes.
  const classMaps = c.config.head === 'gap' && M === C;
  // Linear class maps (no ReLU on the last mlpconv) go negative, and their negative parts lower the
  // logit: drawn on a signed scale, where clipped at 0 the predicted class's map could look dim
  // beside a losing class's bright one.
  const colormap = classMapsOf(c.config) === 'linear' ? 'signed' : 'gray';
  const featurePath = join(outDir, 'feature-maps.png');
  makeDirectory(outDir); // only now: a data or device error leaves no empty directory behind
  writeFileSync(
    featurePath,
    renderFeatureMapGrid({
      images: raw.map((v) => v / 255),
      imageShape: [height, width, channels],
      maps: mapData,
      mapShape: [H, W, M],
      classNames: classMaps ? [...names] : Array.from({ length: M }, (_, k) => `map ${k}`),
      labels: classMaps ? Array.from(test.labels.subarray(0, n)) : undefined,
      predicted: classMaps ? Array.from({ length: n }, (_, i) => argmax(logitData, i * C, C)) : undefined,
      colormap,
      means: classMaps,
      ...(classMaps ? {} : { title: `last mlpconv feature maps, ${M} maps feeding the ${c.config.head} head (${mapScaleText(colormap)})` }),
    }),
  );
  written.push(featurePath);
  // The log of the checkpoint's own run: after --overwrite, metrics.jsonl is another run's.
  const log = logOfCheckpoint(dirname(checkpointPath), c.runId);
  if (log) {
    // From a forked run's first epoch; a superseded checkpoint's own line, not the run's current one.
    const records = historyOfCheckpoint(log, c);
    const curvesPath = join(outDir, 'curves.png');
    writeFileSync(curvesPath, renderTrainingCurves(records));
    written.push(curvesPath);
  }
  return written;
}
