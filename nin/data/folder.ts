// Images of one's own, one folder per class (as torchvision's ImageFolder), PNG files:
//
//   DIR/train/<class>/*.png      the training set: its folders name the classes
//   DIR/test/<class>/*.png       the test set: folders of some or all of those classes
//
// Class k is the k-th training folder in code-point order (the same on every machine and locale).
// Names starting with "." (.DS_Store, .git) are skipped; any other file that is not a .png is an
// error, so that a folder of JPEGs is not read as an empty class. Images are listed class by class
// in turn (the first of each class, then the second of each, …), so that a --train-limit or a
// --val-from end takes every class alike.
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DataFormatError } from './io.ts';
import { allocImages, type ImageDataset } from './formats.ts';
import { ImageLoadError, loadImageForModel, readPngHeader, type ModelInput } from '../images.ts';

export type FolderSplit = 'train' | 'test';

/** A split of an image folder: its class names (the training folders') and its files with labels. */
export interface FolderScan {
  /** DIR/train or DIR/test, absolute. */
  dir: string;
  classNames: string[];
  files: { path: string; label: number }[];
}

const LAYOUT = 'an image folder holds train/<class>/*.png and test/<class>/*.png';
/** How many offending files an error lists before "and N more". */
const LISTED = 5;

function listSome(items: readonly string[]): string {
  return items.slice(0, LISTED).join(', ') + (items.length > LISTED ? ` and ${items.length - LISTED} more` : '');
}

const visible = (name: string) => !name.startsWith('.');

/**
 * Lists one split of the image folder `root`. For `test`, `classNames` are the training set's (a
 * test folder of another class is an error); for `train` they are read from its folders, and when
 * given (a resume, or eval of a checkpoint) must be the same.
 */
export function scanImageFolder(root: string, split: FolderSplit, classNames?: readonly string[]): FolderScan {
  const dir = resolve(root, split);
  if (!isDirectory(resolve(root))) throw new DataFormatError(resolve(root), `no such directory (${LAYOUT})`);
  if (!isDirectory(dir)) throw new DataFormatError(dir, `no such directory (${LAYOUT})`);
  const folders = readdirSync(dir, { withFileTypes: true })
    .filter((e) => visible(e.name) && isDirectory(join(dir, e.name)))
    .map((e) => e.name)
    .sort(byCodePoint);
  if (folders.length === 0) throw new DataFormatError(dir, `holds no class folders (${LAYOUT})`);
  let names: string[];
  if (split === 'train') {
    if (folders.length < 2) throw new DataFormatError(dir, `holds one class folder (${folders[0]}): a classifier needs two or more`);
    if (classNames && folders.join('\0') !== classNames.join('\0')) {
      throw new DataFormatError(dir, `its class folders are ${listSome(folders)}; the checkpoint's classes are ${listSome([...classNames])}`);
    }
    names = folders;
  } else {
    if (!classNames) throw new RangeError('scanImageFolder: a test split needs the training set\'s class names');
    const unknown = folders.filter((f) => !classNames.includes(f));
    if (unknown.length) throw new DataFormatError(dir, `class folder${unknown.length > 1 ? 's' : ''} ${listSome(unknown)} ${unknown.length > 1 ? 'are' : 'is'} not among the training set's classes (${listSome([...classNames])})`);
    names = [...classNames];
  }
  const perClass: string[][] = names.map(() => []);
  const notPng: string[] = [];
  const nested: string[] = [];
  for (const folder of folders) {
    const label = names.indexOf(folder);
    const classDir = join(dir, folder);
    for (const entry of readdirSync(classDir, { withFileTypes: true }).filter((e) => visible(e.name)).sort((a, b) => byCodePoint(a.name, b.name))) {
      const path = join(classDir, entry.name);
      if (isDirectory(path)) nested.push(path);
      else if (!/\.png$/i.test(entry.name)) notPng.push(path);
      else perClass[label].push(path);
    }
  }
  if (nested.length) throw new DataFormatError(dir, `folders inside class folders are not read: ${listSome(nested)} (a class's images go straight in its folder)`);
  if (notPng.length) throw new DataFormatError(dir, `${notPng.length} file${notPng.length > 1 ? 's are' : ' is'} not .png: ${listSome(notPng)} (only PNG is read: convert them, e.g. with ImageMagick's \`mogrify -format png\`, or move them out)`);
  const empty = folders.filter((f) => perClass[names.indexOf(f)].length === 0);
  if (split === 'train' && empty.length) throw new DataFormatError(dir, `class folder${empty.length > 1 ? 's' : ''} ${listSome(empty)} ${empty.length > 1 ? 'hold' : 'holds'} no .png files: every class needs training images`);
  const files: FolderScan['files'] = [];
  const longest = Math.max(...perClass.map((p) => p.length));
  for (let i = 0; i < longest; i++) perClass.forEach((paths, label) => i < paths.length && files.push({ path: paths[i], label }));
  if (files.length === 0) throw new DataFormatError(dir, 'holds no .png files');
  return { dir, classNames: names, files };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory(); // follows links: a class folder may be a link
  } catch {
    return false;
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The model input a training folder's images make as they are: their size (all must share it,
 * else `--image-size` chooses one) and 1 channel where every file is a grey PNG (colour types
 * 0 and 4), else 3. Reads only the files' headers.
 */
export function folderImageShape(scan: FolderScan, size?: { height: number; width: number }): ModelInput {
  const sizes = new Map<string, { count: number; example: string }>();
  let grey = true;
  for (const { path } of scan.files) {
    const { width, height, colorType } = readPngHeader(path);
    grey &&= colorType === 0 || colorType === 4;
    const key = `${width}×${height}`;
    const s = sizes.get(key) ?? { count: 0, example: path };
    s.count++;
    sizes.set(key, s);
  }
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
 * Reads the first `limit` (default all) images of a scan into a dataset of raw 0..255 pixels, each
 * converted and resized to `input` as `nin predict` does (nin/images.ts). Unreadable files are
 * named together, at most a few. `note` (default: stderr) is told how many were resized.
 */
export function readImageFolder(scan: FolderScan, input: ModelInput, opts: { limit?: number; note?: (line: string) => void } = {}): ImageDataset {
  const files = scan.files.slice(0, opts.limit);
  const { height, width, channels } = input;
  const per = height * width * channels;
  const name = `${basename(dirname(scan.dir))}/${basename(scan.dir)}`;
  const images = allocImages(name, files.length * per);
  const labels = new Int32Array(files.length);
  const unreadable: string[] = [];
  let resized = 0;
  files.forEach(({ path, label }, i) => {
    try {
      const image = loadImageForModel(path, input);
      if (image.originalSize[0] !== height || image.originalSize[1] !== width) resized++;
      for (let k = 0; k < per; k++) images[i * per + k] = image.pixels[k] * 255;
    } catch (e) {
      if (!(e instanceof ImageLoadError)) throw e;
      unreadable.push(e.message);
    }
    labels[i] = label;
  });
  if (unreadable.length) {
    throw new DataFormatError(scan.dir, `${unreadable.length} of ${files.length} images cannot be read:\n${unreadable.slice(0, LISTED).map((m) => `  ${m}`).join('\n')}${unreadable.length > LISTED ? `\n  and ${unreadable.length - LISTED} more` : ''}`);
  }
  const notes = resized ? [`${name}: ${resized} of ${files.length} images resized to ${width}×${height} (width×height)`] : [];
  for (const line of notes) (opts.note ?? ((m: string) => console.error(`note: ${m}`)))(line);
  return { name, images, labels, count: files.length, height, width, channels, classNames: scan.classNames, sources: [scan.dir], notes };
}

