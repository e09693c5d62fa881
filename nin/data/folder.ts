// Images of one's own, one folder per class (as torchvision's ImageFolder), PNG or JPEG files:
//
//   DIR/train/<class>/*.png      the training set: its folders name the classes
//   DIR/test/<class>/*.jpg       the test set: folders of some or all of those classes (or
//                                DIR/val/<class>/ where there is no test/, as ImageNet's)
//
// Class k is the k-th training folder in code-point order (the same on every machine and locale).
// Names starting with "." (.DS_Store, .git) are skipped; in a class folder, any other file that is
// not a .png, .jpg or .jpeg is an error, so that a folder of GIFs is not read as an empty class (a
// file is then decoded by its bytes, not its name). The images of all classes are mixed in
// proportion to the classes' sizes, so that a --train-limit or a --val-from end takes each class in
// proportion.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { DataFormatError } from './io.ts';
import { listSome } from '../text.ts';
import { allocImages, type ImageDataset } from './formats.ts';
import { streamedDataset } from './stream.ts';
import { defaultWorkers } from './parallel.ts';
import { fewerNotes, ImageLoadError, loadImageForModel, noteText, pictureNotes, readImageHeader, type ModelInput } from '../images.ts';
import type { ClassList, ImageFolderOptions } from '../train.ts';

/** test: the test split (val/ where there is no test/); val: val/ beside test/, as the validation split (`--val folder`). */
export type FolderSplit = 'train' | 'test' | 'val';

/** A split of an image folder: its class names (the training folders') and its files with labels. */
export interface FolderScan {
  /** DIR/train or DIR/test, absolute. */
  dir: string;
  classNames: string[];
  files: { path: string; label: number }[];
}

const LAYOUT = 'an image folder holds train/<class>/ and test/<class>/ (or val/<class>/) folders of PNG or JPEG images';
/** The file names read as images. */
const IMAGE_NAME = /\.(png|jpe?g)$/i;
/** Pictures in formats not read (to convert, rather than to move out). */
const OTHER_PICTURE = /\.(gif|bmp|webp|tiff?|heic|heif|avif|ppm|pgm|pnm|jxl|jp2)$/i;
/** How many offending files an error lists before "and N more". */
const LISTED = 5;

const visible = (name: string) => !name.startsWith('.');

/** What a directory entry is, following links (a class folder may be a link); 'broken' where it cannot be followed. */
function kind(path: string): 'dir' | 'file' | 'broken' {
  try {
    return statSync(path).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'broken';
  }
}

/** Code-point order (UTF-8 bytes compare so; JavaScript's < compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A visible directory's entries in code-point order, each with its kind. */
function entries(dir: string): { name: string; path: string; kind: 'dir' | 'file' | 'broken' }[] {
  return readdirSync(dir)
    .filter(visible)
    .sort(byCodePoint)
    .map((name) => ({ name, path: join(dir, name), kind: kind(join(dir, name)) }));
}

/**
 * Lists one split of the image folder `root`. For `test`, `classNames` are the training set's (a
 * test folder of another class is an error); for `train` they are read from its folders, and when
 * given (a resume, or eval of a checkpoint) must be the same. Names are compared in Unicode's NFC
 * form (a folder copied from macOS may spell "É" as E + ´).
 */
export function scanImageFolder(root: string, split: FolderSplit, classNames?: readonly string[]): FolderScan {
  // The test split may be called val, as ImageNet lays it out (train/ and val/), where there is no test/.
  const dir = split === 'test' && kind(resolve(root, 'test')) !== 'dir' && kind(resolve(root, 'val')) === 'dir' ? resolve(root, 'val') : resolve(root, split);
  if (kind(resolve(root)) !== 'dir') throw new DataFormatError(resolve(root), `no such directory (${LAYOUT})`);
  if (kind(dir) !== 'dir') throw new DataFormatError(dir, `no such directory (${LAYOUT})`);
  return scanClassFolders(dir, split === 'train', classNames);
}

/**
 * Lists a directory of class folders of labelled pictures, not a run's (`nin eval --pictures DIR`):
 * folders of some or all of a model's classes, `classNames`. Its images are ordered as a test
 * split's.
 */
export function scanLabelledFolder(dir: string, classNames: readonly string[]): FolderScan {
  if (kind(resolve(dir)) !== 'dir') throw new DataFormatError(resolve(dir), 'no such directory (it holds one folder of PNG or JPEG images for each class it has, named as the model names its classes)');
  return scanClassFolders(resolve(dir), false, classNames, (unknown, names) => {
    // The model's classes in full (up to 20): the folders are to be named after them.
    const split = unknown.find((f) => ['train', 'test', 'val'].includes(f));
    const hint = split ? ` (an image folder's root? give its ${unknown.includes('test') ? 'test' : split}/)` : '';
    return `not among the model's classes${hint}: ${listSome(names, 20)}`;
  });
}

/** A name with what is not printable ASCII as code points: `caf\u{e9}`, `cafe\u{301}`. */
function codePoints(name: string): string {
  return name.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** scanImageFolder's listing of one split's directory `dir`: `training`, its folders name the
 * classes; else they are some of `classNames`, and `unknownClasses` says what other folders are
 * (default: not the training set's classes). */
function scanClassFolders(dir: string, training: boolean, classNames?: readonly string[], unknownClasses = (_unknown: string[], names: string[]) => `not among the training set's classes (${listSome(names)})`): FolderScan {
  const top = entries(dir);
  const broken = top.filter((e) => e.kind === 'broken').map((e) => e.path);
  const loose = top.filter((e) => e.kind === 'file' && IMAGE_NAME.test(e.name)).map((e) => e.path);
  if (loose.length) throw new DataFormatError(dir, `${loose.length} image${loose.length > 1 ? 's lie' : ' lies'} outside the class folders: ${listSome(loose)} (an image's folder is its class; other files beside the folders are ignored)`);
  // Each class: its name (NFC) and its folder as spelt on disk.
  const folders = top.filter((e) => e.kind === 'dir').map((e) => ({ name: e.name.normalize('NFC'), path: e.path })).sort((a, b) => byCodePoint(a.name, b.name));
  const folderNames = folders.map((f) => f.name);
  if (folders.length === 0) throw new DataFormatError(dir, `holds no class folders (${LAYOUT})`);
  // Two spellings of one name (é as one code point, and as e and an accent) are one class: the
  // folders would pour into it, and leave a class of that name with no images.
  const spellings = new Map<string, typeof folders>();
  for (const f of folders) spellings.set(f.name, [...(spellings.get(f.name) ?? []), f]);
  const twins = [...spellings.values()].filter((g) => g.length > 1).map((g) => g.map((f) => codePoints(basename(f.path))).sort().join(' and '));
  if (twins.length) throw new DataFormatError(dir, `class folders ${twins.join('; ')} are spelt differently but name one class (class names are compared in Unicode's NFC form): merge or rename them`);
  let names: string[];
  if (training) {
    if (folders.length < 2) throw new DataFormatError(dir, `holds one class folder (${folderNames[0]}): a classifier needs two or more`);
    const given = classNames?.map((n) => n.normalize('NFC'));
    if (given && folderNames.join('\0') !== given.join('\0')) {
      throw new DataFormatError(dir, `its class folders are ${listSome(folderNames)}; the checkpoint's classes are ${listSome(given)}`);
    }
    names = folderNames;
  } else {
    if (!classNames) throw new RangeError("scanImageFolder: a test split needs the training set's class names");
    names = classNames.map((n) => n.normalize('NFC'));
    const unknown = folderNames.filter((f) => !names.includes(f));
    if (unknown.length) throw new DataFormatError(dir, `class folder${unknown.length > 1 ? 's' : ''} ${listSome(unknown)} ${unknown.length > 1 ? 'are' : 'is'} ${unknownClasses(unknown, names)}`);
  }
  const perClass: string[][] = names.map(() => []);
  const notImage: string[] = [];
  const nested: string[] = [];
  for (const folder of folders) {
    for (const e of entries(folder.path)) {
      if (e.kind === 'broken') broken.push(e.path);
      else if (e.kind === 'dir') nested.push(e.path);
      else if (!IMAGE_NAME.test(e.name)) notImage.push(e.path);
      else perClass[names.indexOf(folder.name)].push(e.path);
    }
  }
  // Every kind of problem at once: fixing a folder one message at a time is slow.
  const problems: string[] = [];
  if (broken.length) problems.push(`${broken.length} entr${broken.length > 1 ? 'ies' : 'y'} cannot be read (a broken link?): ${listSome(broken)}`);
  if (nested.length) problems.push(`folders inside class folders are not read: ${listSome(nested)} (a class's images go straight in its folder)`);
  const otherFormats = notImage.filter((path) => OTHER_PICTURE.test(path));
  const notPictures = notImage.filter((path) => !OTHER_PICTURE.test(path));
  if (otherFormats.length) problems.push(`${otherFormats.length} file${otherFormats.length > 1 ? 's are' : ' is'} not .png, .jpg or .jpeg: ${listSome(otherFormats)} (only PNG and JPEG are read: convert them, e.g. with ImageMagick's \`mogrify -format png\`, or move them out)`);
  if (notPictures.length) problems.push(`${notPictures.length} file${notPictures.length > 1 ? 's are' : ' is'} not a picture: ${listSome(notPictures)} (move ${notPictures.length > 1 ? 'them' : 'it'} out of the class folders)`);
  if (problems.length) throw new DataFormatError(dir, problems.join('; '));
  const empty = folderNames.filter((f) => perClass[names.indexOf(f)].length === 0);
  if (training && empty.length) throw new DataFormatError(dir, `class folder${empty.length > 1 ? 's' : ''} ${listSome(empty)} ${empty.length > 1 ? 'hold' : 'holds'} no images (.png, .jpg, .jpeg): every class needs training images`);
  // The classes mixed in proportion to their sizes: image i of a class of n sits at (i + ½) / n of
  // the list, so that any first or last part of it (--train-limit, --val-from end) takes each class
  // in proportion too. Equal classes come in turn.
  const files = perClass
    .flatMap((paths, label) => paths.map((path, i) => ({ path, label, at: (i + 0.5) / paths.length })))
    .sort((a, b) => a.at - b.at || a.label - b.label)
    .map(({ path, label }) => ({ path, label }));
  if (files.length === 0) throw new DataFormatError(dir, 'holds no images (.png, .jpg, .jpeg)');
  return { dir, classNames: names, files };
}

/** The images (.png, .jpg, .jpeg) straight inside `dir`, in code-point order, its other files
 * and its folders (not read); hidden files and folders are skipped: `nin predict DIR`. */
export function imagesInDirectory(dir: string): { images: string[]; others: string[]; folders: string[] } {
  const all = entries(dir);
  const files = all.filter((e) => e.kind === 'file');
  return { images: files.filter((e) => IMAGE_NAME.test(e.name)).map((e) => e.path), others: files.filter((e) => !IMAGE_NAME.test(e.name)).map((e) => e.path), folders: all.filter((e) => e.kind === 'dir').map((e) => e.path) };
}

/**
 * A digest of a scan's list: each image's path within the split and its label, in order. A resume
 * compares it with the run's, so that an image added, removed, renamed or moved to another class
 * is found before it changes the training set, its order and the validation split unnoticed.
 */
export function folderListDigest(scan: FolderScan): string {
  const hash = createHash('sha256');
  for (const { path, label } of scan.files) hash.update(`${label}\t${relative(scan.dir, path).normalize('NFC')}\n`);
  return hash.digest('hex');
}

/** Each class's image count and the digest of its part of the list (folderListDigest's lines of
 * that class, 16 hex digits): recorded with a run, so that a changed folder is named by class. */
export function folderClassLists(scan: FolderScan): ClassList[] {
  const hashes = scan.classNames.map(() => createHash('sha256'));
  const counts = scan.classNames.map(() => 0);
  for (const { path, label } of scan.files) {
    hashes[label].update(`${label}\t${relative(scan.dir, path).normalize('NFC')}\n`);
    counts[label]++;
  }
  return hashes.map((hash, k) => ({ images: counts[k], list: hash.digest('hex').slice(0, 16) }));
}

/** What differs between a split as scanned and as recorded (folderClassLists), by class: e.g.
 * "red/ 41 now, 40 then; blue/ as many, other names". Empty where nothing was recorded. */
export function classesChanged(scan: FolderScan, recorded: readonly ClassList[] | undefined): string {
  if (!recorded || recorded.length !== scan.classNames.length) return '';
  const now = folderClassLists(scan);
  const changed = now.flatMap((c, k) => {
    const was = recorded[k];
    if (c.images === was.images && c.list === was.list) return [];
    return [`${scan.classNames[k]}/ ${c.images === was.images ? 'as many, other names' : `${c.images} now, ${was.images} then`}`];
  });
  const more = changed.length - LISTED;
  return changed.length ? `; ${changed.slice(0, LISTED).join('; ')}${more > 0 ? `; and ${more} more class${more === 1 ? '' : 'es'}` : ''}` : '';
}

/** Whether a checkpoint's saved `imageFolder` has every field, of its type. */
export function isImageFolderOptions(v: unknown): v is ImageFolderOptions {
  const f = v as ImageFolderOptions | undefined;
  const optional = (v: unknown, valid: (v: unknown) => boolean) => v === undefined || valid(v);
  return (
    typeof f?.dir === 'string' && Array.isArray(f.classNames) && f.classNames.length >= 2 && f.classNames.every((n) => typeof n === 'string') && Number.isInteger(f.trainImages) && f.trainImages > 0 && typeof f.trainList === 'string' &&
    (f.valList === undefined) === (f.valImages === undefined) && optional(f.valImages, (n) => Number.isInteger(n) && (n as number) > 0) && optional(f.valList, (d) => typeof d === 'string') &&
    optional(f.trainClasses, (c) => isClassLists(c, f.classNames.length)) && optional(f.valClasses, (c) => isClassLists(c, f.classNames.length))
  );
}

function isClassLists(v: unknown, classes: number): boolean {
  return Array.isArray(v) && v.length === classes && v.every((c: ClassList) => Number.isInteger(c?.images) && c.images >= 0 && typeof c.list === 'string');
}

/** A split of a run's image folder: where `dataDir` says, else where the run found it (moved: say so). */
export function scanRunFolder(folder: ImageFolderOptions, split: FolderSplit, dataDir: string | undefined): FolderScan {
  if (dataDir === undefined && !existsSync(folder.dir)) {
    throw new DataFormatError(folder.dir, `no such directory: the run's image folder is gone from there (moved? give --data-dir where it is now)`);
  }
  return scanImageFolder(dataDir ?? folder.dir, split, folder.classNames);
}

/** Why an image folder's val/ no longer holds a run's validation images (`--val folder`), or null
 * (also for a run from before they were recorded). */
export function folderValChanged(scan: FolderScan, folder: ImageFolderOptions): string | null {
  if (folder.valList === undefined || folderListDigest(scan) === folder.valList) return null;
  return `its images are not the run's validation images (${scan.files.length} now, ${folder.valImages} then${classesChanged(scan, folder.valClasses)}): an image added, removed, renamed or moved to another class would choose the best epoch on other images (start a new run on the folder as it is; --weights-from the checkpoint starts it from this run's weights)`;
}

/** Why a run's training folder no longer holds the run's training set, or null. */
export function folderChanged(scan: FolderScan, folder: ImageFolderOptions): string | null {
  if (folderListDigest(scan) === folder.trainList) return null;
  return `its training images are not the run's (${scan.files.length} now, ${folder.trainImages} then${classesChanged(scan, folder.trainClasses)}): an image added, removed, renamed or moved to another class would change the training set, its order and the validation split (start a new run on the folder as it is; --weights-from the checkpoint starts it from this run's weights)`;
}

/** The error naming a split's unreadable images (their errors' messages): a few, and how many more. */
function cannotRead(dir: string, messages: readonly string[], of: number): DataFormatError {
  const more = messages.length > LISTED ? `\n  and ${messages.length - LISTED} more` : '';
  return new DataFormatError(dir, `${messages.length} of ${of} images cannot be read:\n${messages.slice(0, LISTED).map((m) => `  ${m}`).join('\n')}${more}`);
}

type ImageHeader = { width: number; height: number; grey: boolean };

/** The headers folderImageShape read last, for the `--stream` read of the same training folder that
 * follows it in a new run (its files' first `limit`): taken once, so that a folder of a million
 * pictures has its headers read once, not twice, and not held after. */
let lastHeaders: { dir: string; paths: string[]; headers: ImageHeader[] } | null = null;

/** The headers of `files` (readImageHeader), in order, or an error naming the files of `dir` that
 * are not pictures (a few, and how many more). */
function readHeaders(dir: string, files: readonly { path: string }[]): ImageHeader[] {
  const last = lastHeaders;
  lastHeaders = null;
  if (last && last.dir === dir && files.length <= last.paths.length && files.every((f, i) => f.path === last.paths[i])) return last.headers.slice(0, files.length);
  const unreadable: string[] = [];
  const headers = files.flatMap(({ path }) => {
    try {
      return [readImageHeader(path)];
    } catch (e) {
      if (!(e instanceof ImageLoadError)) throw e;
      unreadable.push(e.message);
      return [];
    }
  });
  if (unreadable.length) throw cannotRead(dir, unreadable, files.length);
  return headers;
}

/** The note that `resized` of a set's `count` images were resized to `input`'s size (none where none were). */
function resizedNotes(name: string, resized: number, count: number, input: { width: number; height: number }): string[] {
  return resized ? [`${name}: ${resized} of ${count} images resized to ${input.width}×${input.height} (width×height)`] : [];
}

/**
 * The model input a training folder's images make as they are: their size (all must share it,
 * else `--image-size` chooses one; a JPEG's size as viewed, its EXIF orientation applied) and 1
 * channel where every file is grey (a PNG of colour type 0 or 4, a JPEG of one component), else 3.
 * Reads only the files' headers.
 */
export function folderImageShape(scan: FolderScan, size?: { height: number; width: number }): ModelInput {
  const sizes = new Map<string, { count: number; example: string }>();
  let grey = true;
  const headers = readHeaders(scan.dir, scan.files);
  lastHeaders = { dir: scan.dir, paths: scan.files.map((f) => f.path), headers };
  headers.forEach((header, i) => {
    const { width, height } = header;
    grey &&= header.grey;
    const key = `${width}×${height}`;
    const s = sizes.get(key) ?? { count: 0, example: scan.files[i].path };
    s.count++;
    sizes.set(key, s);
  });
  const channels = grey ? 1 : 3;
  if (size) return { ...size, channels };
  if (sizes.size > 1) {
    const found = [...sizes].sort((a, b) => b[1].count - a[1].count).map(([key, s]) => `${s.count} ${s.count === 1 ? 'is' : 'are'} ${key} (e.g. ${s.example})`);
    throw new DataFormatError(scan.dir, `its images differ in size (width×height): ${listSome(found)}; give --image-size WxH to resize them all`);
  }
  const [width, height] = [...sizes.keys()][0].split('×').map(Number);
  return { height, width, channels };
}

/**
 * What a network of `channels` makes of a training folder's pictures where they do not match, from
 * the headers of up to `sample` of them spread over the folder: grey pictures for a colour network
 * are read as 3 equal channels, colour ones for a grey network as their luma. Null where they match
 * (a built-in network takes the folder's own channels: folderImageShape).
 */
export function channelsNote(scan: FolderScan, channels: number, sample = 64): string | null {
  const n = scan.files.length;
  const k = Math.min(sample, n);
  const grey: boolean[] = [];
  for (let i = 0; i < k; i++) {
    try {
      grey.push(readImageHeader(scan.files[Math.floor((i * n) / k)].path).grey);
    } catch {
      // (unreadable: named when the folder is read)
    }
  }
  const colour = grey.filter((g) => !g).length;
  const checked = grey.length === n ? `all ${n}` : `${colour === 0 ? 'the ' : ''}${grey.length} checked`;
  if (channels === 3 && grey.length && colour === 0) return `${scan.dir}: its pictures are grey (${checked}), the network takes colour: each is read as 3 equal channels`;
  if (channels === 1 && colour) return `${scan.dir}: ${colour} of ${grey.length === n ? 'its' : 'the'} ${grey.length} pictures${grey.length === n ? '' : ' checked'} ${colour === 1 ? 'is' : 'are'} in colour, the network takes grey: colour pictures are read as grey (BT.601 luma)`;
  return null;
}

/** How pictures are read, beyond the model's input: `invert` as `nin predict --invert`, and
 * `notesFor` a model (of MNIST or not) to have each picture's notes (pictureNotes) made as it is
 * read (`resized: false`: without the resize notes). */
export interface PictureReading {
  invert?: boolean;
  notesFor?: { mnist: boolean; resized?: boolean };
}

/** What reading some images into place found: how many were resized, those that could not be read
 * and with `notesFor` each picture's notes (`index` into all the paths read); all in file order. */
export interface ImagesRead {
  resized: number;
  unreadable: { index: number; file: string; reason: string }[];
  notes: { index: number; line: string }[];
}

/**
 * Reads `paths` into `images` from image `first` on (raw 0..255 pixels at `input`'s size), each
 * converted and resized as `nin predict` does (nin/images.ts). The loop that readPictures runs,
 * in this thread or in worker threads (folder-worker.ts) over parts of one shared array.
 */
export function readImagesInto(paths: readonly string[], input: ModelInput, images: Float32Array, first: number, how: PictureReading = {}): ImagesRead {
  const per = input.height * input.width * input.channels;
  const read: ImagesRead = { resized: 0, unreadable: [], notes: [] };
  paths.forEach((path, k) => {
    try {
      const image = loadImageForModel(path, input, { invert: how.invert });
      if (image.originalSize[0] !== input.height || image.originalSize[1] !== input.width) read.resized++;
      if (how.notesFor) read.notes.push(...pictureNotes(path, image, input, { ...how.notesFor, invert: how.invert }).map((line) => ({ index: first + k, line })));
      const at = (first + k) * per;
      for (let i = 0; i < per; i++) images[at + i] = image.pixels[i] * 255;
    } catch (e) {
      // (any other error is a fault here, not in the file, but names the file it met)
      if (!(e instanceof ImageLoadError)) throw (e as Error).message?.includes(path) ? e : new Error(`${path}: ${(e as Error).message}`, { cause: e });
      read.unreadable.push({ index: first + k, file: e.file, reason: e.reason });
    }
  });
  return read;
}

/** Images a worker thread takes at the least: starting one (tsx, the codecs) costs about what
 * decoding a few hundred small images does. */
const IMAGES_PER_WORKER = 500;

/** The threads readPictures reads `count` images in: one a core up to 16 (defaultWorkers), at
 * least `imagesPerWorker` (500) images each. */
export function pictureWorkers(count: number, opts: { workers?: number; imagesPerWorker?: number } = {}): number {
  for (const [key, v] of Object.entries(opts)) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new RangeError(`reading images: ${key} must be a positive integer, got ${v}`);
  }
  return Math.max(1, Math.min(opts.workers ?? defaultWorkers(), Math.floor(count / (opts.imagesPerWorker ?? IMAGES_PER_WORKER))));
}

/**
 * Reads `paths` into one array of raw 0..255 pixels at `input`'s size (readImagesInto), in
 * `workers` threads, each over its part of one shared array: the same pixels as one thread reads.
 * The slots of pictures that cannot be read are left 0. `name` names the array in an
 * out-of-memory error.
 */
export async function readPictures(name: string, paths: readonly string[], input: ModelInput, workers: number, how: PictureReading = {}, hint?: string): Promise<{ images: Float32Array; read: ImagesRead }> {
  const images = allocImages(name, paths.length * input.height * input.width * input.channels, { shared: workers > 1, hint: hint ?? `${paths.length} images of ${input.height}×${input.width}×${input.channels} (height×width×channels) are read into memory` });
  if (workers === 1) return { images, read: readImagesInto(paths, input, images, 0, how) };
  const parts = Array.from({ length: workers }, (_, w) => [Math.floor((w * paths.length) / workers), Math.floor(((w + 1) * paths.length) / workers)]);
  const threads: Worker[] = [];
  let results: ImagesRead[];
  try {
    results = await Promise.all(parts.map(([begin, end]) => readInWorker({ paths: paths.slice(begin, end), input, images, first: begin, how }, threads)));
  } finally {
    // One failed: the others' work is lost, and running on they would keep the process from exiting.
    for (const thread of threads) void thread.terminate();
  }
  return { images, read: { resized: results.reduce((n, r) => n + r.resized, 0), unreadable: results.flatMap((r) => r.unreadable), notes: results.flatMap((r) => r.notes) } };
}

/**
 * A scan's first `limit` (default all) pictures as a streamed dataset (`--stream`,
 * nin/data/stream.ts): each batch read when used, as readImageFolder reads the whole folder.
 */
export function streamImageFolder(scan: FolderScan, input: ModelInput, opts: { limit?: number; note?: (line: string) => void } = {}): ImageDataset {
  const files = scan.files.slice(0, opts.limit);
  const name = `${basename(dirname(scan.dir))}/${basename(scan.dir)}`;
  // The headers now (cheap), as a whole read would find them: a file that is no picture is named
  // before training, not when its batch comes (a test picture: after an epoch), and resizing is said.
  const resized = readHeaders(scan.dir, files).filter((h) => h.width !== input.width || h.height !== input.height).length;
  const notes = resizedNotes(name, resized, files.length, input);
  const note = opts.note ?? ((m: string) => console.error(`note: ${m}`));
  for (const line of notes) note(line);
  const base = { name, ...input, classNames: scan.classNames, sources: [scan.dir], notes };
  return streamedDataset(base, files.map((f) => f.path), Int32Array.from(files, (f) => f.label));
}

/** A picture's resize note (nin/images.ts resizeNote). */
const RESIZE_NOTE = /: resized from \d+×\d+ to /;

/**
 * Reads the first `limit` (default all) images of a scan into a dataset of raw 0..255 pixels, each
 * converted and resized to `input` as `nin predict` does (nin/images.ts). Unreadable files are
 * named together, at most a few. `note` (default: stderr) is told how many were resized and, with
 * `notesFor` (`nin eval --pictures`), the pictures' other notes (fewerNotes), and each picture's
 * notes in full in the dataset's `pictureNotes`; `invert` as PictureReading's. Decoding is most of
 * the time (a 500×375 JPEG takes some 16 ms on a core of a 2-core VM), so a large folder is read by
 * `workers` threads (pictureWorkers). `streamable`: a run's split, which `--stream` could read instead
 * (said where the images are too many for memory).
 */
export async function readImageFolder(scan: FolderScan, input: ModelInput, opts: { limit?: number; note?: (line: string) => void; workers?: number; imagesPerWorker?: number; invert?: boolean; notesFor?: { mnist: boolean }; streamable?: boolean } = {}): Promise<ImageDataset> {
  lastHeaders = null; // (a whole read needs no headers: not held while it reads)
  const files = scan.files.slice(0, opts.limit);
  const { height, width, channels } = input;
  const name = `${basename(dirname(scan.dir))}/${basename(scan.dir)}`;
  const workers = pictureWorkers(files.length, { workers: opts.workers, imagesPerWorker: opts.imagesPerWorker });
  const note = opts.note ?? ((m: string) => console.error(`note: ${m}`));
  // Some seconds to minutes of decoding: said before, so that the wait has a reason.
  if (files.length >= 1000) note(`reading ${files.length} images of ${name}${workers > 1 ? ` in ${workers} threads` : ''}…`);
  const labels = Int32Array.from(files, (f) => f.label);
  // Too many for memory: what makes them fewer or smaller, and (a run's folder) --stream.
  const hint = `${files.length} images of ${height}×${width}×${channels} (height×width×channels) are read into memory: fewer with --train-limit or --test-limit, smaller with --image-size${opts.streamable ? ', or read batch by batch with --stream' : ''}`;
  const { images, read } = await readPictures(name, files.map((f) => f.path), input, workers, { invert: opts.invert, notesFor: opts.notesFor }, hint);
  if (read.unreadable.length) throw cannotRead(scan.dir, read.unreadable.map((u) => `${u.file}: ${u.reason}`), files.length);
  const notes = resizedNotes(name, read.resized, files.length, input);
  // On the terminal resizing is counted (above), not said picture by picture.
  for (const line of [...notes, ...fewerNotes(read.notes.map((n) => n.line).filter((l) => !RESIZE_NOTE.test(l)))]) note(line);
  if (!opts.notesFor) return { name, images, labels, count: files.length, height, width, channels, classNames: scan.classNames, sources: [scan.dir], notes };
  const notesOf = files.map((): string[] => []);
  for (const { index, line } of read.notes) notesOf[index].push(noteText(files[index].path, line));
  const pictureNotes = files.flatMap((f, i) => (notesOf[i].length ? [{ image: f.path, notes: notesOf[i] }] : []));
  return { name, images, labels, count: files.length, height, width, channels, classNames: scan.classNames, sources: [scan.dir], notes, pictureNotes };
}

/** readImagesInto in a worker thread (added to `threads`), which loads the TypeScript through tsx (ts-worker.mjs). */
function readInWorker(job: { paths: readonly string[]; input: ModelInput; images: Float32Array; first: number; how: PictureReading }, threads: Worker[]): Promise<ImagesRead> {
  return new Promise((resolvePromise, reject) => {
    const worker = new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { module: new URL('./folder-worker.ts', import.meta.url).href, job } });
    threads.push(worker);
    let settled = false;
    worker.once('message', (m: ImagesRead) => {
      settled = true;
      resolvePromise(m);
    });
    worker.once('error', (e) => {
      settled = true;
      reject(new Error(`image reading worker (images ${job.first}..${job.first + job.paths.length - 1}) failed: ${e.message}`));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`image reading worker (images ${job.first}..${job.first + job.paths.length - 1}) exited with code ${code} before finishing`));
    });
  });
}
