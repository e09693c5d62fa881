// Readers for the raw dataset files: MNIST idx, CIFAR-10/100 binary, SVHN cropped-digit .mat.
//
// Output convention (all readers):
//   images  Float32Array, NHWC ([count, height, width, channels]), the raw byte values 0..255 as
//           floats (exact; no scaling). Scaling/standardisation is preprocessing's job (preprocess.ts),
//           so one preprocessing step owns the numbers the network sees.
//   labels  Int32Array of class indices 0..classes-1.
// Every file may be gzipped (detected by the gzip magic, not the name). A truncated or foreign file
// throws DataFormatError naming the file and what was expected vs found.
import { totalmem } from 'node:os';
import { DataFormatError, readDataFile } from './io.ts';
import { readMatV5 } from './matv5.ts';
import type { ImageStream } from './stream.ts';

export const MNIST_CLASSES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const SVHN_CLASSES: readonly string[] = MNIST_CLASSES;
export const CIFAR10_CLASSES: readonly string[] = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
/** CIFAR-100 fine labels in index order (fine_label_names.txt of the official release). */
export const CIFAR100_FINE_CLASSES: readonly string[] = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
];
/** CIFAR-100 coarse (superclass) labels in index order (coarse_label_names.txt). */
export const CIFAR100_COARSE_CLASSES: readonly string[] = [
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables',
  'household_electrical_devices', 'household_furniture', 'insects', 'large_carnivores', 'large_man-made_outdoor_things',
  'large_natural_outdoor_scenes', 'large_omnivores_and_herbivores', 'medium_mammals', 'non-insect_invertebrates', 'people',
  'reptiles', 'small_mammals', 'trees', 'vehicles_1', 'vehicles_2',
];

/** A labelled image set in memory. */
export interface ImageDataset {
  /** e.g. "cifar10/train". */
  name: string;
  /** NHWC float32, raw pixel values 0..255. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  classNames: readonly string[];
  /** CIFAR-100 only: superclass labels and names. */
  coarseLabels?: Int32Array;
  coarseClassNames?: readonly string[];
  /** Files the data came from. */
  sources: string[];
  /** Things the user should know (e.g. "partial test set: 1000 of 10000 records"). */
  notes: string[];
  /** Pictures of one's own (an image folder read as `nin predict` reads pictures): each picture
   * with notes, and its notes (nin/images.ts pictureNotes, less the path), in file order. */
  pictureNotes?: { image: string; notes: string[] }[];
  /** An image folder read batch by batch (`--stream`, nin/data/stream.ts): `images` is then empty,
   * and readStreamed reads the images of a batch. */
  stream?: ImageStream;
}

/** Called for non-fatal findings (e.g. a partial CIFAR test file). Defaults to console.warn. */
export type WarningSink = (message: string) => void;
const defaultWarn: WarningSink = (m) => console.warn(`warning: ${m}`);

/** Says (to `warn`, else the console) that `source` holds `count` of its official `expected`
 * records and that those are used; returns the note for the dataset's notes. */
function partialFileNote(source: string, count: number, expected: number, warn: WarningSink | undefined): string {
  const note = `${source}: partial file, ${count} of ${expected} records (using the ${count} present)`;
  (warn ?? defaultWarn)(note);
  return note;
}

/**
 * A Float32Array for `elements` pixel values (in shared memory if asked), or an error naming
 * `source` and the size: also where it is more than half the machine's memory (`memory`, default
 * os.totalmem()), which would swap or be killed part-way rather than fail here; `hint` says what
 * makes it smaller.
 */
export function allocImages(source: string, elements: number, opts: { shared?: boolean; hint?: string; memory?: number } = {}): Float32Array {
  const memory = opts.memory ?? totalmem();
  if (elements * 4 > memory / 2) {
    const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
    throw new DataFormatError(source, `its images need ${gb(elements * 4)} of memory as float32, more than half of this machine's ${gb(memory)}${opts.hint ? `: ${opts.hint}` : ''}`);
  }
  try {
    return opts.shared ? new Float32Array(new SharedArrayBuffer(elements * 4)) : new Float32Array(elements);
  } catch {
    throw new DataFormatError(source, `needs a ${elements}-element Float32Array (${(elements * 4) / 2 ** 30} GiB), more than this process can allocate`);
  }
}

function checkLabels(labels: ArrayLike<number>, classes: number, source: string, what = 'label'): void {
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i] >= 0 && labels[i] < classes)) {
      throw new DataFormatError(source, `record ${i}: ${what} ${labels[i]} outside the expected range 0..${classes - 1} (not a file of this dataset?)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MNIST idx (http://yann.lecun.com/exdb/mnist/): big-endian header, magic 0x00000803 (ubyte, 3
// dims) for images and 0x00000801 (ubyte, 1 dim) for labels, then the bytes.

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

/** Parses an idx ubyte file, checking magic and the exact byte count. Returns the dimensions and the payload. */
export function parseIdx(bytes: Uint8Array, source: string, expectedMagic: number): { dims: number[]; data: Uint8Array } {
  const ndim = expectedMagic & 0xff;
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < 4) throw new DataFormatError(source, `truncated idx file: ${bytes.length} bytes, the header alone needs ${headerBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    throw new DataFormatError(source, `bad idx magic: expected 0x${hex8(expectedMagic)}, found 0x${hex8(magic)}`);
  }
  if (bytes.length < headerBytes) {
    throw new DataFormatError(source, `truncated idx file: ${bytes.length} bytes, the header alone needs ${headerBytes}`);
  }
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = headerBytes + dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== expected) {
    throw new DataFormatError(
      source,
      `size mismatch: header says [${dims.join(', ')}], so expected ${expected} bytes (${headerBytes} header + ${expected - headerBytes} data), found ${bytes.length}`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}

/** Reads an idx3 image file (e.g. train-images-idx3-ubyte[.gz]) → NHWC float32 with C = 1. */
export function readMnistImages(path: string, expectedRecords?: number): { images: Float32Array; count: number; height: number; width: number } {
  const most = expectedRecords === undefined ? undefined : { bytes: 16 + expectedRecords * 28 * 28, of: `a 16-byte header and ${expectedRecords} images of 28×28` };
  const { dims, data } = parseIdx(readDataFile(path, most), path, IDX_IMAGES_MAGIC);
  const [count, height, width] = dims;
  // A partial test file is used as it is; one with no records would pass until the first evaluation.
  if (count === 0) throw new DataFormatError(path, 'holds no images (the header says 0)');
  const images = allocImages(path, data.length);
  for (let i = 0; i < data.length; i++) images[i] = data[i];
  return { images, count, height, width };
}

/** Reads an idx1 label file (e.g. train-labels-idx1-ubyte[.gz]). */
export function readMnistLabels(path: string, expectedRecords?: number): Int32Array {
  const most = expectedRecords === undefined ? undefined : { bytes: 8 + expectedRecords, of: `an 8-byte header and ${expectedRecords} labels` };
  const { data } = parseIdx(readDataFile(path, most), path, IDX_LABELS_MAGIC);
  checkLabels(data, 10, path);
  return Int32Array.from(data);
}

export interface MnistReadOptions {
  name?: string;
  /** Records the official files hold: more is an error; fewer is an error when requireComplete, else a warning and a note. */
  expectedRecords?: number;
  requireComplete?: boolean;
  warn?: WarningSink;
}

/** Reads an MNIST image file and its label file into one dataset, checking their counts agree and the images are 28×28. */
export function readMnist(imagesPath: string, labelsPath: string, opts: MnistReadOptions = {}): ImageDataset {
  const img = readMnistImages(imagesPath, opts.expectedRecords);
  if (img.height !== 28 || img.width !== 28) {
    throw new DataFormatError(imagesPath, `MNIST images are 28×28, the header says ${img.height}×${img.width}`);
  }
  const labels = readMnistLabels(labelsPath, opts.expectedRecords);
  if (labels.length !== img.count) {
    throw new DataFormatError(labelsPath, `holds ${labels.length} labels, but ${imagesPath} holds ${img.count} images`);
  }
  const notes: string[] = [];
  const expected = opts.expectedRecords;
  if (expected !== undefined && img.count !== expected) {
    if (img.count > expected) throw new DataFormatError(imagesPath, `holds ${img.count} images, the official file ${expected}`);
    if (opts.requireComplete) {
      throw new DataFormatError(imagesPath, `truncated: holds ${img.count} of the official ${expected} images; a training file must be complete`);
    }
    notes.push(partialFileNote(imagesPath, img.count, expected, opts.warn));
  }
  return {
    name: opts.name ?? 'mnist',
    images: img.images,
    labels,
    count: img.count,
    height: img.height,
    width: img.width,
    channels: 1,
    classNames: MNIST_CLASSES,
    sources: [imagesPath, labelsPath],
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 / CIFAR-100 binary versions (https://www.cs.toronto.edu/~kriz/cifar.html): fixed-size
// records of label byte(s) followed by 1024 R, 1024 G, 1024 B bytes (32×32 planes, row-major).

export const CIFAR_PIXELS = 3072;
export const CIFAR10_RECORD_BYTES = 1 + CIFAR_PIXELS;
export const CIFAR100_RECORD_BYTES = 2 + CIFAR_PIXELS;
/** Records in each official CIFAR-10 data_batch_N.bin / test_batch.bin. */
export const CIFAR10_RECORDS_PER_FILE = 10000;

export interface CifarReadOptions {
  /** Records the official file has; a whole-record file with fewer is accepted with a warning (unless requireComplete). */
  expectedRecords?: number;
  /** A file with fewer than expectedRecords records is an error: training files must be whole; a test set may be partial. */
  requireComplete?: boolean;
  warn?: WarningSink;
}

/** Planar CHW bytes of `count` records → NHWC floats (pixels start `labelBytes` into each record). */
function cifarPixelsToNhwc(bytes: Uint8Array, count: number, recordBytes: number, labelBytes: number, source: string): Float32Array {
  const images = allocImages(source, count * CIFAR_PIXELS);
  for (let r = 0; r < count; r++) {
    const rec = r * recordBytes + labelBytes;
    const dst = r * CIFAR_PIXELS;
    for (let p = 0; p < 1024; p++) {
      images[dst + 3 * p] = bytes[rec + p];
      images[dst + 3 * p + 1] = bytes[rec + 1024 + p];
      images[dst + 3 * p + 2] = bytes[rec + 2048 + p];
    }
  }
  return images;
}

function cifarRecordCount(bytes: Uint8Array, recordBytes: number, source: string, opts: CifarReadOptions): number {
  const expected = opts.expectedRecords;
  const expectText = expected ? `${expected * recordBytes} bytes (${expected} records of ${recordBytes})` : `a whole number of ${recordBytes}-byte records`;
  if (bytes.length === 0 || bytes.length % recordBytes !== 0) {
    throw new DataFormatError(
      source,
      `size mismatch: expected ${expectText}, found ${bytes.length} bytes (${Math.floor(bytes.length / recordBytes)} records + ${bytes.length % recordBytes} stray bytes)`,
    );
  }
  const count = bytes.length / recordBytes;
  if (expected !== undefined && count !== expected) {
    if (count > expected) throw new DataFormatError(source, `size mismatch: expected ${expectText}, found ${bytes.length} bytes (${count} records)`);
    if (opts.requireComplete) {
      throw new DataFormatError(source, `truncated: expected ${expectText}, found ${bytes.length} bytes (${count} records); a training file must be complete`);
    }
    partialFileNote(source, count, expected, opts.warn);
  }
  return count;
}

/** Parses CIFAR-10 binary records (1 label byte + 3072 pixel bytes each). */
export function parseCifar10(bytes: Uint8Array, source: string, opts: CifarReadOptions = {}): { images: Float32Array; labels: Int32Array; count: number } {
  const count = cifarRecordCount(bytes, CIFAR10_RECORD_BYTES, source, opts);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) labels[r] = bytes[r * CIFAR10_RECORD_BYTES];
  checkLabels(labels, 10, source);
  return { images: cifarPixelsToNhwc(bytes, count, CIFAR10_RECORD_BYTES, 1, source), labels, count };
}

/** Reads CIFAR-10 batch files (data_batch_N.bin, test_batch.bin; gzipped or not) into one dataset, in the given order. */
export function readCifar10(paths: readonly string[], opts: CifarReadOptions & { name?: string } = {}): ImageDataset {
  const parts = paths.map((p) => {
    const notes: string[] = [];
    const warn: WarningSink = (m) => {
      notes.push(m);
      (opts.warn ?? defaultWarn)(m);
    };
    const records = opts.expectedRecords ?? CIFAR10_RECORDS_PER_FILE;
    const bytes = readDataFile(p, { bytes: records * CIFAR10_RECORD_BYTES, of: `${records} records of ${CIFAR10_RECORD_BYTES} bytes` });
    return { ...parseCifar10(bytes, p, { expectedRecords: records, requireComplete: opts.requireComplete, warn }), notes };
  });
  const merged = concatParts(parts, CIFAR_PIXELS);
  return {
    name: opts.name ?? 'cifar10',
    images: merged.images,
    labels: merged.labels,
    count: merged.count,
    height: 32,
    width: 32,
    channels: 3,
    classNames: CIFAR10_CLASSES,
    sources: [...paths],
    notes: parts.flatMap((p) => p.notes),
  };
}

/** Parses CIFAR-100 binary records (coarse label byte, fine label byte, 3072 pixel bytes). */
export function parseCifar100(
  bytes: Uint8Array,
  source: string,
  opts: CifarReadOptions = {},
): { images: Float32Array; labels: Int32Array; coarseLabels: Int32Array; count: number } {
  const count = cifarRecordCount(bytes, CIFAR100_RECORD_BYTES, source, opts);
  const coarseLabels = new Int32Array(count);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    coarseLabels[r] = bytes[r * CIFAR100_RECORD_BYTES];
    labels[r] = bytes[r * CIFAR100_RECORD_BYTES + 1];
  }
  checkLabels(coarseLabels, 20, source, 'coarse label');
  checkLabels(labels, 100, source, 'fine label');
  return { images: cifarPixelsToNhwc(bytes, count, CIFAR100_RECORD_BYTES, 2, source), labels, coarseLabels, count };
}

/** Reads CIFAR-100 train.bin / test.bin (gzipped or not). `labels` are the fine labels. */
export function readCifar100(path: string, opts: CifarReadOptions & { name?: string } = {}): ImageDataset {
  const notes: string[] = [];
  const warn: WarningSink = (m) => {
    notes.push(m);
    (opts.warn ?? defaultWarn)(m);
  };
  const records = opts.expectedRecords;
  const bytes = readDataFile(path, records === undefined ? undefined : { bytes: records * CIFAR100_RECORD_BYTES, of: `${records} records of ${CIFAR100_RECORD_BYTES} bytes` });
  const r = parseCifar100(bytes, path, { expectedRecords: records, requireComplete: opts.requireComplete, warn });
  return {
    name: opts.name ?? 'cifar100',
    images: r.images,
    labels: r.labels,
    coarseLabels: r.coarseLabels,
    count: r.count,
    height: 32,
    width: 32,
    channels: 3,
    classNames: CIFAR100_FINE_CLASSES,
    coarseClassNames: CIFAR100_COARSE_CLASSES,
    sources: [path],
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// SVHN cropped digits (http://ufldl.stanford.edu/housenumbers/): MAT v5 with X uint8 [32,32,3,N]
// (column-major: row, column, channel, image) and y [N,1] with labels 1..10, where 10 means digit 0.

export interface SvhnReadOptions {
  /** Records the official file holds: more is an error; fewer is an error when requireComplete, else a warning and a note. */
  expectedRecords?: number;
  requireComplete?: boolean;
  warn?: WarningSink;
  /** Write the images here (exactly count × 32 × 32 × 3 values) instead of a new array. */
  into?: Float32Array;
}

/** Parses an SVHN *_32x32.mat (already read into memory). Labels are remapped so that digit d → d. */
export function parseSvhnMat(bytes: Uint8Array, source: string, opts: SvhnReadOptions = {}): { images: Float32Array; labels: Int32Array; count: number; notes: string[] } {
  const vars = readMatV5(bytes, source, new Set(['X', 'y']));
  const X = vars.get('X');
  const y = vars.get('y');
  if (!X || !y) throw new DataFormatError(source, `expected variables X and y, found ${[...vars.keys()].join(', ') || 'none'}`);
  if (X.dims.length !== 4 || X.dims[0] !== 32 || X.dims[1] !== 32 || X.dims[2] !== 3) {
    throw new DataFormatError(source, `X: expected dimensions [32, 32, 3, N], found [${X.dims.join(', ')}]`);
  }
  if (X.className !== 'uint8') throw new DataFormatError(source, `X: expected a uint8 array of pixels, found class ${X.className}`);
  const count = X.dims[3];
  if (count === 0) throw new DataFormatError(source, 'X holds no images (dimensions [32, 32, 3, 0])');
  const yCount = y.dims.reduce((a, b) => a * b, 1);
  if (y.dims.length !== 2 || Math.min(...y.dims) !== 1 || yCount !== count) {
    throw new DataFormatError(source, `y: expected dimensions [${count}, 1], found [${y.dims.join(', ')}]`);
  }
  const notes: string[] = [];
  const expected = opts.expectedRecords;
  if (expected !== undefined && count !== expected) {
    if (count > expected || opts.requireComplete) {
      throw new DataFormatError(source, `expected ${expected} images, found ${count}${count < expected ? '; a training file must be complete' : ''}`);
    }
    notes.push(partialFileNote(source, count, expected, opts.warn));
  }
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = y.data[i];
    if (!(Number.isInteger(v) && v >= 1 && v <= 10)) throw new DataFormatError(source, `y[${i}] = ${v}, expected an integer label 1..10`);
    labels[i] = v === 10 ? 0 : v;
  }
  // Column-major [r, c, ch, n] → NHWC [n, r, c, ch]; the source is walked in storage order.
  const src = X.data;
  if (opts.into && opts.into.length !== count * CIFAR_PIXELS) {
    throw new RangeError(`${source}: holds ${count} images (${count * CIFAR_PIXELS} values), but the array to read them into has ${opts.into.length} values`);
  }
  const images = opts.into ?? allocImages(source, count * CIFAR_PIXELS);
  for (let n = 0; n < count; n++) {
    const base = n * CIFAR_PIXELS;
    for (let ch = 0; ch < 3; ch++) {
      for (let c = 0; c < 32; c++) {
        let s = base + ch * 1024 + c * 32;
        for (let r = 0; r < 32; r++) images[base + (r * 32 + c) * 3 + ch] = src[s++];
      }
    }
  }
  return { images, labels, count, notes };
}

/** Reads an SVHN train_32x32.mat / test_32x32.mat / extra_32x32.mat (gzipped or not). */
export function readSvhn(path: string, opts: SvhnReadOptions & { name?: string } = {}): ImageDataset {
  const r = parseSvhnMat(readDataFile(path), path, opts);
  return {
    name: opts.name ?? 'svhn',
    images: r.images,
    labels: r.labels,
    count: r.count,
    height: 32,
    width: 32,
    channels: 3,
    classNames: SVHN_CLASSES,
    sources: [path],
    notes: r.notes,
  };
}

// ---------------------------------------------------------------------------------------------

function concatParts(parts: { images: Float32Array; labels: Int32Array; count: number }[], perImage: number): { images: Float32Array; labels: Int32Array; count: number } {
  if (parts.length === 1) return parts[0];
  const count = parts.reduce((a, p) => a + p.count, 0);
  const images = new Float32Array(count * perImage);
  const labels = new Int32Array(count);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * perImage);
    labels.set(p.labels, at);
    at += p.count;
  }
  return { images, labels, count };
}

/** Concatenates datasets of the same image shape (e.g. SVHN train + extra). */
export function concatDatasets(sets: readonly ImageDataset[], name?: string): ImageDataset {
  if (sets.length === 0) throw new RangeError('concatDatasets: no datasets given');
  const [first] = sets;
  for (const s of sets) {
    if (s.height !== first.height || s.width !== first.width || s.channels !== first.channels) {
      throw new RangeError(`concatDatasets: ${s.name} has images ${s.height}×${s.width}×${s.channels}, ${first.name} has ${first.height}×${first.width}×${first.channels}`);
    }
  }
  const merged = concatParts(sets as ImageDataset[], first.height * first.width * first.channels);
  let coarse: Int32Array | undefined;
  if (sets.every((s) => s.coarseLabels)) {
    coarse = new Int32Array(merged.count);
    let at = 0;
    for (const s of sets) {
      coarse.set(s.coarseLabels!, at);
      at += s.count;
    }
  }
  return {
    ...first,
    name: name ?? sets.map((s) => s.name).join('+'),
    images: merged.images,
    labels: merged.labels,
    count: merged.count,
    coarseLabels: coarse,
    sources: sets.flatMap((s) => s.sources),
    notes: sets.flatMap((s) => s.notes),
  };
}
