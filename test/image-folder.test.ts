// Training on images of one's own (`nin train --dataset folder`): the folder reader (class order,
// labels, errors that name the file), the network fitted to the folder's images and classes, the
// CLI's checks before any GPU work, and a short run end to end (train, evaluate, predict, resume
// from a moved folder).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { main, parseTrainArgs, UsageError } from '../nin/cli.ts';
import { loadCheckpoint } from '../nin/checkpoint.ts';
import { writeSafetensors } from '../nin/safetensors.ts';
import { comparisonTable, readRuns } from '../nin/compare.ts';
import { channelsNote, classesChanged, folderClassLists, folderImageShape, isImageFolderOptions, readImageFolder, scanImageFolder, scanLabelledFolder, streamImageFolder, type FolderScan } from '../nin/data/folder.ts';
import { readStreamed, streamedDataset } from '../nin/data/stream.ts';
import { loadSplits, loadTestSet } from '../nin/datasets.ts';
import { encodePng, invertNote } from '../nin/images.ts';
import { fitToData, modelConfig, MODELS, parameterSpecs, plan } from '../nin/model.ts';
import { predictProbabilities, topClasses } from '../nin/predict.ts';
import { evaluate, train, type TrainOptions } from '../nin/train.ts';
import { dryRun } from '../nin/dry-run.ts';
import { runAsync, withDeviceLimit } from './helpers.ts';
import { shellWord } from '../nin/text.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-folder-'));
afterAll(() => {
  closeGpu();
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes an RGBA (colour type 6) PNG of `width`×`height`, or a grey one (colour type 0, or 4 with
 * alpha; from R); returns its path. */
function writePng(path: string, width: number, height: number, pixel: (x: number, y: number) => [number, number, number], grey: false | 0 | 4 = false): string {
  mkdirSync(resolve(path, '..'), { recursive: true });
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgba.set([...pixel(x, y), 255], (y * width + x) * 4);
  if (grey === false) {
    writeFileSync(path, encodePng(width, height, rgba));
  } else {
    const png = new PNG({ width, height });
    png.data = Buffer.from(rgba);
    writeFileSync(path, PNG.sync.write(png, { colorType: grey, inputColorType: 6 }));
  }
  return path;
}

/** A folder of `perClass` [train, test] noisy pictures per class, class k's channel 2 − k bright: blue, green, red. */
function colourFolder(root: string, perClass: [number, number], size = { width: 12, height: 10 }): string {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  (['train', 'test'] as const).forEach((split, s) => {
    ['blue', 'green', 'red'].forEach((name, k) => {
      for (let i = 0; i < perClass[s]; i++) {
        writePng(join(root, split, name, `${i}.png`), size.width, size.height, () => [0, 1, 2].map((c) => Math.round(255 * Math.min(1, 0.3 * rnd() + (c === 2 - k ? 0.5 : 0.1)))) as [number, number, number]);
      }
    });
  });
  return root;
}

const dot = () => [128, 128, 128] as [number, number, number];

describe('image folder reader', () => {
  it('lists classes in code-point order, skips hidden entries and files beside the classes, and mixes the classes in proportion', () => {
    const root = join(tmp, 'order');
    for (const [cls, n] of [['b', 1], ['B', 2], ['a', 3]] as const) for (let i = 0; i < n; i++) writePng(join(root, 'train', cls, `${i}.png`), 2, 2, dot);
    writePng(join(root, 'train', 'a', '3.PNG'), 2, 2, dot); // any case of .png
    writeFileSync(join(root, 'train', 'a', '.DS_Store'), 'junk');
    writeFileSync(join(root, 'train', 'README.txt'), 'about the classes');
    mkdirSync(join(root, 'train', '.cache'), { recursive: true });
    writePng(join(root, 'test', 'b', '0.png'), 2, 2, dot);
    mkdirSync(join(root, 'test', 'a'), { recursive: true }); // a test class with no images is no error
    const train = scanImageFolder(root, 'train');
    expect(train.classNames).toEqual(['B', 'a', 'b']); // code points: 'B' < 'a' in every locale
    // Image i of a class of n at (i + ½) / n: a 1/8, 3/8, 5/8, 7/8; B 1/4, 3/4; b 1/2.
    const listed = () => train.files.map((f) => `${basename(resolve(f.path, '..'))}/${basename(f.path)}`);
    expect(listed()).toEqual(['a/0.png', 'B/0.png', 'a/1.png', 'b/0.png', 'a/2.png', 'B/1.png', 'a/3.PNG']);
    expect(train.files.map((f) => f.label)).toEqual([1, 0, 1, 2, 1, 0, 1]);
    // A test set of some of the classes keeps the training set's labels and names.
    const test = scanImageFolder(root, 'test', train.classNames);
    expect(test.classNames).toEqual(['B', 'a', 'b']);
    expect(test.files.map((f) => f.label)).toEqual([2]);
    // Classes of 40, 8 and 8: the last 7 images (--val-from end) hold 5, 1 and 1 of them.
    const big = join(tmp, 'proportion');
    for (const [cls, n] of [['cat', 40], ['dog', 8], ['eel', 8]] as const) for (let i = 0; i < n; i++) writePng(join(big, 'train', cls, `${String(i).padStart(2, '0')}.png`), 1, 1, dot);
    const last = scanImageFolder(big, 'train').files.slice(-7).map((f) => f.label);
    expect([0, 1, 2].map((k) => last.filter((l) => l === k).length)).toEqual([5, 1, 1]);
  });

  it('sorts class names by code point and compares them in NFC form', () => {
    const root = join(tmp, 'unicode');
    // U+FF21 (fullwidth A) before U+1F600 (an emoji), though UTF-16 puts the emoji's first unit (0xD83D) first.
    for (const cls of ['\u{1F600}', '\uFF21', 'E\u0301clair']) writePng(join(root, 'train', cls, '0.png'), 1, 1, dot);
    const scan = scanImageFolder(root, 'train');
    expect(scan.classNames).toEqual(['\u00C9clair', '\uFF21', '\u{1F600}']); // the decomposed É is read as U+00C9
    expect(scanImageFolder(root, 'train', ['\u00C9clair', '\uFF21', '\u{1F600}']).files).toHaveLength(3);
    writePng(join(root, 'test', 'E\u0301clair', '0.png'), 1, 1, dot);
    expect(scanImageFolder(root, 'test', ['\u00C9clair', '\uFF21', '\u{1F600}']).files.map((f) => f.label)).toEqual([0]);
    // Both spellings as folders of one split: one class, refused (they were poured into the first,
    // leaving the second a class of no images that no check saw).
    for (const split of ['train', 'test'] as const) {
      writePng(join(root, split, '\u00C9clair', '1.png'), 1, 1, dot);
      const twins = `${join(root, split)}: class folders E\\u{301}clair and \\u{c9}clair are spelt differently but name one class (class names are compared in Unicode's NFC form): merge or rename them`;
      expect(() => scanImageFolder(root, split, split === 'test' ? ['\u00C9clair', '\uFF21', '\u{1F600}'] : undefined)).toThrow(twins);
    }
  });

  it('names what is wrong with a folder, and where', () => {
    const root = join(tmp, 'bad');
    const base = () => {
      rmSync(root, { recursive: true, force: true });
      for (const cls of ['cat', 'dog']) writePng(join(root, 'train', cls, '0.png'), 2, 2, dot);
    };
    base();
    expect(() => scanImageFolder(join(tmp, 'absent'), 'train')).toThrow(`${join(tmp, 'absent')}: no such directory (an image folder holds train/<class>/ and test/<class>/ (or val/<class>/) folders of PNG or JPEG images)`);
    expect(() => scanImageFolder(root, 'test', ['cat', 'dog'])).toThrow(`${join(root, 'test')}: no such directory`);
    // ImageNet's layout: val/ is the test split where there is no test/ (and only then).
    writePng(join(root, 'val', 'dog', '0.png'), 2, 2, dot);
    expect(scanImageFolder(root, 'test', ['cat', 'dog'])).toMatchObject({ dir: join(root, 'val'), files: [{ label: 1 }] });
    writePng(join(root, 'test', 'cat', '0.png'), 2, 2, dot);
    expect(scanImageFolder(root, 'test', ['cat', 'dog'])).toMatchObject({ dir: join(root, 'test'), files: [{ label: 0 }] });
    expect(() => scanImageFolder(root, 'train', ['cat', 'cow'])).toThrow(`${join(root, 'train')}: its class folders are cat, dog; the checkpoint's classes are cat, cow`);
    rmSync(join(root, 'train', 'dog'), { recursive: true });
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: holds one class folder (cat): a classifier needs two or more`);
    base();
    mkdirSync(join(root, 'train', 'eel'));
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: class folder eel holds no images (.png, .jpg, .jpeg): every class needs training images`);
    base();
    for (let i = 0; i < 7; i++) writeFileSync(join(root, 'train', 'dog', `${i}.gif`), 'x');
    expect(() => scanImageFolder(root, 'train')).toThrow(
      `${join(root, 'train')}: 7 files are not .png, .jpg or .jpeg: ${[0, 1, 2, 3, 4].map((i) => join(root, 'train', 'dog', `${i}.gif`)).join(', ')} and 2 more (only PNG and JPEG are read`,
    );
    base();
    writePng(join(root, 'train', 'dog', 'puppies', '0.png'), 2, 2, dot);
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: folders inside class folders are not read: ${join(root, 'train', 'dog', 'puppies')}`);
    base();
    writePng(join(root, 'test', 'cow', '0.png'), 2, 2, dot);
    expect(() => scanImageFolder(root, 'test', ['cat', 'dog'])).toThrow(`${join(root, 'test')}: class folder cow is not among the training set's classes (cat, dog)`);
    base();
    writePng(join(root, 'train', 'stray.png'), 2, 2, dot);
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: 1 image lies outside the class folders: ${join(root, 'train', 'stray.png')} (an image's folder is its class; other files beside the folders are ignored)`);
    base();
    symlinkSync(join(tmp, 'nowhere'), join(root, 'train', 'ghost'));
    symlinkSync(join(tmp, 'nowhere.png'), join(root, 'train', 'dog', 'gone.png'));
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: 2 entries cannot be read (a broken link?): ${join(root, 'train', 'ghost')}, ${join(root, 'train', 'dog', 'gone.png')}`);
    // Every kind of problem in one message; a file that is no picture is to be moved out, not converted.
    writeFileSync(join(root, 'train', 'dog', 'notes.txt'), 'x');
    writeFileSync(join(root, 'train', 'dog', 'photo.webp'), 'x');
    expect(() => scanImageFolder(root, 'train')).toThrow(
      `${join(root, 'train')}: 2 entries cannot be read (a broken link?): ${join(root, 'train', 'ghost')}, ${join(root, 'train', 'dog', 'gone.png')}; ` +
        `1 file is not .png, .jpg or .jpeg: ${join(root, 'train', 'dog', 'photo.webp')} (only PNG and JPEG are read: convert them, e.g. with ImageMagick's \`mogrify -format png\`, or move them out); ` +
        `1 file is not a picture: ${join(root, 'train', 'dog', 'notes.txt')} (move it out of the class folders)`,
    );
    // Files that cannot be read, though named .png, are found by their bytes when the folder is sized up: all of them.
    base();
    writeFileSync(join(root, 'train', 'dog', '1.png'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46]));
    writeFileSync(join(root, 'train', 'dog', '2.png'), 'GIF89a');
    expect(() => folderImageShape(scanImageFolder(root, 'train'))).toThrow(
      new RegExp(`^${join(root, 'train')}: 2 of 4 images cannot be read:\n  ${join(root, 'train', 'dog', '1.png')}: corrupt JPEG: the file ends at byte 8 .*\n  ${join(root, 'train', 'dog', '2.png')}: not a PNG or JPEG file: .*which looks like GIF$`),
    );
  });

  it("sizes the images up from their headers: one size or --image-size's, 1 channel only where every PNG is grey", () => {
    const root = join(tmp, 'shape');
    writePng(join(root, 'train', 'a', '0.png'), 12, 10, dot, 0);
    writePng(join(root, 'train', 'b', '0.png'), 12, 10, dot, 4); // grey with alpha is grey
    expect(folderImageShape(scanImageFolder(root, 'train'))).toEqual({ height: 10, width: 12, channels: 1 });
    writePng(join(root, 'train', 'b', '1.png'), 12, 10, dot); // RGBA, though grey in content: the file says colour
    expect(folderImageShape(scanImageFolder(root, 'train'))).toEqual({ height: 10, width: 12, channels: 3 });
    writePng(join(root, 'train', 'b', '2.png'), 8, 8, dot, 0);
    expect(() => folderImageShape(scanImageFolder(root, 'train'))).toThrow(
      `${join(root, 'train')}: its images differ in size (width×height): 3 are 12×10 (e.g. ${join(root, 'train', 'b', '0.png')}), 1 is 8×8 (e.g. ${join(root, 'train', 'b', '2.png')}); give --image-size WxH to resize them all`,
    );
    expect(folderImageShape(scanImageFolder(root, 'train'), { height: 6, width: 7 })).toEqual({ height: 6, width: 7, channels: 3 });
  });

  it('reads raw 0..255 pixels with labels, resizes and converts to the model input, and names unreadable files', async () => {
    const root = join(tmp, 'read');
    const value = (x: number, y: number, k: number): [number, number, number] => [10 * x + y + 50 * k, 3 * x + 7, 200 - y - k];
    // 4 wide, 2 high: read at that size, none is resized.
    for (let k = 0; k < 2; k++) for (let i = 0; i < 2; i++) writePng(join(root, 'train', `c${k}`, `${i}.png`), 4, 2, (x, y) => value(x, y, k + i));
    const scan = scanImageFolder(root, 'train');
    const notes: string[] = [];
    const ds = await readImageFolder(scan, { height: 2, width: 4, channels: 3 }, { note: (l) => notes.push(l) });
    expect({ name: ds.name, count: ds.count, shape: [ds.height, ds.width, ds.channels], labels: [...ds.labels], classNames: ds.classNames }).toEqual({ name: 'read/train', count: 4, shape: [2, 4, 3], labels: [0, 1, 0, 1], classNames: ['c0', 'c1'] });
    expect(notes).toEqual([]);
    // Image 1 is c1/0.png (equal classes come in turn): k + i = 1.
    for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) for (let c = 0; c < 3; c++) expect(ds.images[24 + (y * 4 + x) * 3 + c]).toBeCloseTo(value(x, y, 1)[c], 3);
    // Halved: each output pixel is the mean of a 2×2 block; 1 channel: BT.601 luma.
    const small = await readImageFolder(scan, { height: 1, width: 2, channels: 1 }, { limit: 3, note: (l) => notes.push(l) });
    expect(small.count).toBe(3);
    expect(notes).toEqual(['read/train: 3 of 3 images resized to 2×1 (width×height)']);
    const luma = (x: number, y: number) => { const [r, g, b] = value(x, y, 0); return 0.299 * r + 0.587 * g + 0.114 * b; };
    expect(small.images[1]).toBeCloseTo((luma(2, 0) + luma(3, 0) + luma(2, 1) + luma(3, 1)) / 4, 3);
    // In worker threads, each over its part of one shared array: the same dataset, the same notes.
    const inThreads: string[] = [];
    const threaded = await readImageFolder(scan, { height: 1, width: 2, channels: 1 }, { limit: 3, note: (l) => inThreads.push(l), workers: 2, imagesPerWorker: 1 });
    expect(threaded.images.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect({ ...threaded, images: [...threaded.images] }).toEqual({ ...small, images: [...small.images] });
    expect(inThreads).toEqual(['read/train: 3 of 3 images resized to 2×1 (width×height)']);
    writeFileSync(join(root, 'train', 'c1', '0.png'), encodePng(4, 2, new Uint8Array(32)).subarray(0, 40));
    writeFileSync(join(root, 'train', 'c1', '1.png'), 'GIF89a');
    const cannot = new RegExp(`^${join(root, 'train')}: 2 of 4 images cannot be read:\\n  ${join(root, 'train', 'c1', '0.png')}: .*\\n  ${join(root, 'train', 'c1', '1.png')}: not a PNG or JPEG file`);
    await expect(readImageFolder(scanImageFolder(root, 'train'), { height: 2, width: 4, channels: 3 })).rejects.toThrow(cannot);
    await expect(readImageFolder(scanImageFolder(root, 'train'), { height: 2, width: 4, channels: 3 }, { workers: 3, imagesPerWorker: 1 })).rejects.toThrow(cannot); // in file order
    // A failure that is not an unreadable image (here a bad model input) fails the read, in a worker too.
    const bad = { height: 2, width: 4, channels: 2 as 3 };
    await expect(readImageFolder(scan, bad)).rejects.toThrow('model input channels must be 1 or 3, found 2');
    await expect(readImageFolder(scan, bad, { workers: 2, imagesPerWorker: 1 })).rejects.toThrow(/^image reading worker \(images [02]\.\.[13]\) failed: .*model input channels must be 1 or 3, found 2/);
    await expect(readImageFolder(scan, bad, { workers: 2.5 })).rejects.toThrow('reading images: workers must be a positive integer, got 2.5');
    await expect(readImageFolder(scan, bad, { imagesPerWorker: 0 })).rejects.toThrow('reading images: imagesPerWorker must be a positive integer, got 0');
  });

  it('reads a large folder in threads by default where it is given them, and a small one in one', async () => {
    const root = join(tmp, 'many');
    const png = encodePng(2, 2, new Uint8Array(16).fill(255));
    for (let i = 0; i < 1000; i++) {
      mkdirSync(join(root, 'train', `c${i % 2}`), { recursive: true });
      writeFileSync(join(root, 'train', `c${i % 2}`, `${i}.png`), png);
    }
    const scan = scanImageFolder(root, 'train');
    const input = { height: 2, width: 2, channels: 1 as const };
    const said: string[] = [];
    const two = await readImageFolder(scan, input, { workers: 2, note: (line) => said.push(line) }); // 500 images a thread at the least
    expect(two.images.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(said).toEqual(['reading 1000 images of many/train in 2 threads…']); // said before the wait (and none resized)
    expect(two.images.every((v) => v === 255)).toBe(true);
    expect((await readImageFolder(scan, input, { workers: 2, limit: 999, note: () => {} })).images.buffer).not.toBeInstanceOf(SharedArrayBuffer); // fewer than 2 × 500
    expect((await readImageFolder(scan, input, { workers: 4, imagesPerWorker: 400, note: () => {} })).images.buffer).toBeInstanceOf(SharedArrayBuffer); // 2 threads of 500
  });
});

describe('image folder reader: plurals, counts and samples', () => {
  it('names two stray images, counts past five unreadable ones, and counts a picture resized along one axis', async () => {
    const root = join(tmp, 'counts');
    for (const cls of ['a', 'b']) writePng(join(root, 'train', cls, '0.png'), 4, 2, dot);
    for (const stray of ['x.png', 'y.png']) writePng(join(root, 'train', stray), 4, 2, dot);
    expect(() => scanImageFolder(root, 'train')).toThrow(`${join(root, 'train')}: 2 images lie outside the class folders: ${join(root, 'train', 'x.png')}, ${join(root, 'train', 'y.png')} (an image's folder is its class`);
    for (const stray of ['x.png', 'y.png']) rmSync(join(root, 'train', stray));
    // Only the width differs (4×2 pictures for a 2-high, 3-wide input), then only the height.
    const scan = scanImageFolder(root, 'train');
    const said: string[] = [];
    await readImageFolder(scan, { height: 2, width: 3, channels: 1 }, { note: (l) => said.push(l) });
    streamImageFolder(scan, { height: 3, width: 4, channels: 1 }, { note: (l) => said.push(l) });
    expect(said).toEqual(['counts/train: 2 of 2 images resized to 3×2 (width×height)', 'counts/train: 2 of 2 images resized to 4×3 (width×height)']);
    // Headers taken over from the sizing pass only for the same files: here the list is another.
    writePng(join(root, 'train', 'b', '1.png'), 3, 2, dot);
    const three = scanImageFolder(root, 'train');
    expect(folderImageShape(three, { height: 2, width: 4 })).toEqual({ height: 2, width: 4, channels: 3 });
    const narrow = three.files.filter((f) => f.path.endsWith('1.png'));
    const streamed: string[] = [];
    streamImageFolder({ ...three, files: narrow }, { height: 2, width: 4, channels: 3 }, { note: (l) => streamed.push(l) });
    expect(streamed).toEqual(['counts/train: 1 of 1 images resized to 4×2 (width×height)']);
    for (let i = 0; i < 7; i++) writeFileSync(join(root, 'train', 'a', `bad${i}.png`), 'GIF89a');
    const bad = scanImageFolder(root, 'train');
    expect(() => folderImageShape(bad)).toThrow(new RegExp(`^${join(root, 'train')}: 7 of 10 images cannot be read:\n(  .*: not a PNG or JPEG file.*\n){5}  and 2 more$`));
  });

  it('channelsNote: sampled evenly over the folder, saying how many it checked; none where no picture could be checked', () => {
    const root = join(tmp, 'channels');
    for (let i = 0; i < 4; i++) {
      writePng(join(root, 'train', 'a', `${i}.png`), 2, 2, dot, 0); // grey
      writePng(join(root, 'train', 'b', `${i}.png`), 2, 2, dot); // RGBA: colour
    }
    const scan = scanImageFolder(root, 'train'); // a0 b0 a1 b1 a2 b2 a3 b3
    const dir = join(root, 'train');
    expect(channelsNote(scan, 1)).toBe(`${dir}: 4 of its 8 pictures are in colour, the network takes grey: colour pictures are read as grey (BT.601 luma)`);
    expect(channelsNote(scan, 1, 2)).toBeNull(); // files 0 and 4: a0, a2
    expect(channelsNote(scan, 1, 3)).toBe(`${dir}: 1 of the 3 pictures checked is in colour, the network takes grey: colour pictures are read as grey (BT.601 luma)`); // a0, a1, b2
    const greyScan: FolderScan = { ...scan, files: scan.files.filter((f) => f.label === 0) };
    expect(channelsNote(greyScan, 3, 3)).toBe(`${dir}: its pictures are grey (the 3 checked), the network takes colour: each is read as 3 equal channels`);
    for (let i = 0; i < 4; i++) writeFileSync(join(root, 'train', 'a', `${i}.png`), 'GIF89a');
    expect(channelsNote(greyScan, 3)).toBeNull();
  });

  it('classesChanged: by class, five at the most and how many more; nothing where the classes were not recorded as many; isImageFolderOptions', () => {
    const names = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const scanOf = (per: number[]): FolderScan => ({ dir: '/d', classNames: names, files: per.flatMap((n, label) => Array.from({ length: n }, (_, i) => ({ path: `/d/${names[label]}/${i}.png`, label }))) });
    const then = folderClassLists(scanOf([1, 1, 1, 1, 1, 1, 1]));
    expect(classesChanged(scanOf([2, 2, 2, 2, 2, 2, 2]), then)).toBe('; c0/ 2 now, 1 then; c1/ 2 now, 1 then; c2/ 2 now, 1 then; c3/ 2 now, 1 then; c4/ 2 now, 1 then; and 2 more classes');
    expect(classesChanged(scanOf([2, 2, 2, 2, 2, 2, 1]), then)).toBe('; c0/ 2 now, 1 then; c1/ 2 now, 1 then; c2/ 2 now, 1 then; c3/ 2 now, 1 then; c4/ 2 now, 1 then; and 1 more class');
    const renamed = scanOf([1, 1, 1, 1, 1, 1, 1]);
    renamed.files[0] = { path: '/d/c0/other.png', label: 0 };
    expect(classesChanged(renamed, then)).toBe('; c0/ as many, other names');
    expect(classesChanged(scanOf([2, 2, 2, 2, 2, 2, 2]), then.slice(0, 6))).toBe('');
    const o = { dir: '/d', classNames: ['a', 'b'], trainImages: 4, trainList: 'f00d' };
    expect(isImageFolderOptions(o)).toBe(true);
    expect(isImageFolderOptions({ ...o, classNames: ['a'] })).toBe(false);
    expect(isImageFolderOptions({ ...o, valList: 'beef' })).toBe(false); // a list without its count
    expect(isImageFolderOptions({ ...o, valList: 'beef', valImages: 2 })).toBe(true);
  });
});

describe('a network fitted to an image folder', () => {
  it('keeps the layers, takes the images and emits one class map per folder', () => {
    const c = fitToData(MODELS.cifar10, { height: 20, width: 24, channels: 1 }, 5);
    expect(c.layers.at(-1)).toMatchObject({ type: 'mlpconv', channels: [192, 192, 5] });
    expect(c.layers.slice(0, -1)).toEqual(MODELS.cifar10.layers.slice(0, -1));
    expect(parameterSpecs(c).find((p) => p.name === 'block1.w1')!.shape).toEqual([5, 5, 1, 192]);
    expect(plan(c).at(-1)).toMatchObject({ name: 'global average pool', output: [5] });
    expect(plan(c)[1].output).toEqual([10, 12, 96]); // Caffe's ceil: (20 − 3) / 2 → 9 + 1
    expect(MODELS.cifar10.classes).toBe(10); // the built-in is not changed
    // A last layer that is not one map a class (a config made for an FC head) keeps its width.
    const fc = { ...MODELS['mnist-small'], head: 'fc' as const, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv' as const, kernel: 3, channels: [48, 32, 24] as [number, number, number] }] };
    expect(fitToData(fc, { height: 28, width: 28, channels: 1 }, 3).layers.at(-1)).toMatchObject({ channels: [48, 32, 24] });
  });
});

describe('nin train --dataset folder: options and checks before any GPU work', () => {
  const root = colourFolder(join(tmp, 'colours'), [20, 4]);
  it('fits the model to the folder and takes the folder recipe', () => {
    const { options: o } = parseTrainArgs(['--dataset', 'folder', '--data-dir', root]);
    expect(o).toMatchObject({ dataset: 'folder', model: 'cifar10', imageFolder: { dir: resolve(root), classNames: ['blue', 'green', 'red'], trainImages: 60 } });
    // The recipe's batch is 64: under 128 images, one or two equal batches (the last partial one would be dropped).
    expect(o).toMatchObject({ preprocess: 'standardize', augment: false, epochs: 30, batchSize: 60, lr: 0.02, schedule: 'cosine', warmupEpochs: 0.3 });
    expect(parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--val', '12']).options.batchSize).toBe(48);
    expect(o.config).toMatchObject({ name: 'cifar10', input: { height: 10, width: 12, channels: 3 }, classes: 3 });
    expect(o.outDir).toMatch(/^runs[/\\]colours-cifar10/);
    expect(modelConfig(o).layers.at(-1)).toMatchObject({ channels: [192, 192, 3], linearOut: true });
    // A CPU-sized model keeps the folder's recipe, not its data set's shorter one.
    const small = parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--image-size', '16x8']).options;
    expect(small).toMatchObject({ model: 'mnist-small', epochs: 30, batchSize: 60, config: { input: { height: 8, width: 16, channels: 3 }, classes: 3 } });
  });

  it('refuses what cannot work, naming it', async () => {
    const folder = ['--dataset', 'folder', '--data-dir', root];
    const usage = (args: string[], message: string | RegExp) => expect(() => parseTrainArgs(args)).toThrow(typeof message === 'string' ? new UsageError(message) : message);
    usage(['--dataset', 'folder'], '--dataset folder trains on images of your own: give --data-dir DIR, where DIR holds train/<class>/ and test/<class>/ folders of PNG or JPEG images');
    // (no val/ here: --val folder would be refused)
    usage([...folder, '--val', 'paper'], '--val paper holds out what the papers held out of their data sets; for an image folder give --val N');
    usage(['--dataset', 'cifar10', '--val', 'folder'], "--val folder validates on an image folder's val/ (--dataset folder); cifar10 has none: give --val N or --val paper");
    usage([...folder, '--val', 'folders'], "--val must be a number of images, 'paper' or 'folder', got 'folders'");
    // Where there is no test/, val/ is the test split: it cannot validate too.
    const imagenet = join(tmp, 'imagenet-layout');
    cpSync(join(root, 'train'), join(imagenet, 'train'), { recursive: true });
    cpSync(join(root, 'test'), join(imagenet, 'val'), { recursive: true });
    expect(parseTrainArgs(['--dataset', 'folder', '--data-dir', imagenet, '--test-limit', '12']).options.testLimit).toBe(12);
    const said: string[] = [];
    const spied = vi.spyOn(console, 'error').mockImplementation((m: string) => void said.push(m));
    try {
      await loadSplits(parseTrainArgs(['--dataset', 'folder', '--data-dir', imagenet, '--model', 'mnist-small']).options);
    } finally {
      spied.mockRestore();
    }
    expect(said.filter((l) => l.startsWith('note:'))).toEqual([`note: ${resolve(imagenet)} has no test/: its val/ is the test split (the test error is val/'s)`]);
    usage(['--dataset', 'folder', '--data-dir', imagenet, '--val', 'folder'], `--val folder: ${imagenet} has no test/, so its val/ is the test split: give --val N, or add a test/`);
    usage([...folder, '--image-size', '37', '--preprocess', 'gcn-zca'], /^--preprocess gcn-zca fits a D×D whitening matrix for the D = 4107 values of a 37×37×3 image; at most 4096 \(CIFAR's 32×32×3 is 3072\)/);
    expect(parseTrainArgs([...folder, '--image-size', '35x39', '--preprocess', 'gcn-zca']).options.config!.input).toEqual({ height: 39, width: 35, channels: 3 }); // 4095 values
    usage(['--dataset', 'cifar10', '--image-size', '64'], "--image-size resizes an image folder's pictures (--dataset folder); cifar10's images are 32×32×3");
    usage([...folder, '--image-size', '12x'], "--image-size must be WxH (width×height, e.g. 32x32) or N for N×N, each 1 to 4096, got '12x'");
    usage([...folder, '--train-limit', '61'], `--train-limit 61 is more than ${join(resolve(root), 'train')}'s 60 training images: leave it out to train on all`);
    usage([...folder, '--test-limit', '13'], `--test-limit 13 is more than ${join(resolve(root), 'test')}'s 12 test images: leave it out to test on all`);
    usage([...folder, '--batch', '61'], `--batch 61 is larger than the 60 training images left of ${join(resolve(root), 'train')}'s 60 training images`);
    // A config file's network is fixed: its classes must be the folder's, and it sets the size.
    const config = join(tmp, 'four.json');
    writeFileSync(config, JSON.stringify({ ...MODELS['mnist-small'], name: 'four', classes: 4, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [48, 32, 4] }] }));
    usage([...folder, '--config', config], `model 'four' has 4 classes but ${join(resolve(root), 'train')} has 3 class folders`);
    writeFileSync(config, JSON.stringify({ ...MODELS['mnist-small'], name: 'three', classes: 3, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [48, 32, 3] }] }));
    // Its channels too: colour pictures for its grey input are said to be read as grey.
    const noted: string[] = [];
    const grey = join(tmp, 'grey-only');
    const notes = vi.spyOn(console, 'error').mockImplementation((m: string) => void noted.push(m));
    try {
      expect(parseTrainArgs([...folder, '--config', config]).options.config).toMatchObject({ name: 'three', input: { height: 28, width: 28, channels: 1 } });
      const colourNet = join(tmp, 'colour-net.json');
      writeFileSync(colourNet, JSON.stringify({ ...MODELS['mnist-small'], name: 'colour', input: { height: 28, width: 28, channels: 3 }, classes: 2, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [48, 32, 2] }] }));
      for (const c of ['a', 'b']) for (const split of ['train', 'test']) writePng(join(grey, split, c, '0.png'), 6, 6, dot, 0);
      parseTrainArgs(['--dataset', 'folder', '--data-dir', grey, '--config', colourNet]);
      // A built-in network takes the folder's channels: nothing to say.
      parseTrainArgs(['--dataset', 'folder', '--data-dir', grey, '--model', 'mnist-small']);
    } finally {
      notes.mockRestore();
    }
    expect(noted).toEqual([
      `note: ${join(resolve(root), 'train')}: 60 of its 60 pictures are in colour, the network takes grey: colour pictures are read as grey (BT.601 luma)`,
      `note: ${join(resolve(grey), 'train')}: its pictures are grey (all 2), the network takes colour: each is read as 3 equal channels`,
    ]);
    writeFileSync(config, JSON.stringify({ ...MODELS['mnist-small'], name: 'two', input: { height: 28, width: 28, channels: 2 }, classes: 3, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [48, 32, 3] }] }));
    usage([...folder, '--config', config], "model 'two' takes 2 channels; images make 1 (grey) or 3 (colour)");
    writeFileSync(config, JSON.stringify({ ...MODELS['mnist-small'], name: 'three', classes: 3, layers: [...MODELS['mnist-small'].layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [48, 32, 3] }] }));
    usage([...folder, '--config', config, '--image-size', '8'], "--image-size: the network's input is 28×28 (width×height), fixed by --config: its images are resized to that");
  });

  it("a directory of one's own labelled pictures (eval --pictures): folders of some of a model's classes, named as it names them", async () => {
    const root = colourFolder(join(tmp, 'labelled'), [2, 3]);
    const own = join(root, 'test');
    rmSync(join(own, 'green'), { recursive: true });
    const scan = scanLabelledFolder(own, ['blue', 'green', 'red', 'violet']);
    expect(scan.classNames).toEqual(['blue', 'green', 'red', 'violet']);
    expect(scan.files.map(({ path, label }) => [relative(own, path), label])).toEqual([['blue/0.png', 0], ['red/0.png', 2], ['blue/1.png', 0], ['red/1.png', 2], ['blue/2.png', 0], ['red/2.png', 2]]);
    // A folder the model has no class for: named, with the model's classes; an image folder's root, with a hint.
    expect(() => scanLabelledFolder(own, ['blue', 'green'])).toThrow(`${own}: class folder red is not among the model's classes: blue, green`);
    expect(() => scanLabelledFolder(root, ['blue', 'red'])).toThrow(`${resolve(root)}: class folders test, train are not among the model's classes (an image folder's root? give its test/): blue, red`);
    expect(() => scanLabelledFolder(join(root, 'none'), ['blue'])).toThrow(/none: no such directory/);
    // Read as predict reads pictures, --invert too.
    const input = { height: 10, width: 12, channels: 3 } as const;
    const plain = await readImageFolder(scan, input, { note: () => {} });
    const inverted = await readImageFolder(scan, input, { note: () => {}, invert: true });
    plain.images.subarray(0, 12).forEach((v, i) => expect(inverted.images[i]).toBeCloseTo(255 - v, 3));
    expect(plain.images[0]).not.toBeCloseTo(127.5, 0); // (a value that inverting changes)
    // With predict's notes for a model of grey images: colour read as grey, three named and the rest counted.
    const said: string[] = [];
    await readImageFolder(scan, { ...input, channels: 1 }, { note: (line) => said.push(line), notesFor: { mnist: false } });
    expect(said).toEqual([...scan.files.slice(0, 3).map(({ path }) => `${path}: a colour picture, read as grey (BT.601 luma): the model takes grey images`), '… and 3 more pictures in colour read as grey']);
  });

  it("records val/'s images with --val folder, and a resume refuses them changed", async () => {
    const withVal = colourFolder(join(tmp, 'with-val'), [8, 4]);
    cpSync(join(withVal, 'test'), join(withVal, 'val'), { recursive: true });
    const { options: o } = parseTrainArgs(['--dataset', 'folder', '--data-dir', withVal, '--model', 'mnist-small', '--val', 'folder', '--out', join(tmp, 'with-val-run')]);
    expect(o.imageFolder).toMatchObject({ trainImages: 24, valImages: 12, valList: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // Read: val/ is the validation split (no note that it is not read), each split's line in height×width×channels.
    const said: string[] = [];
    const spied = vi.spyOn(console, 'error').mockImplementation((m: string) => void said.push(m));
    try {
      const read = await loadSplits(o);
      expect([read.train.count, read.validation!.count, read.test.count]).toEqual([24, 12, 12]);
    } finally {
      spied.mockRestore();
    }
    expect(said.filter((l) => l.includes('is not read'))).toEqual([]);
    expect(said.at(-1)).toMatch(/: 12 images 10×12×3 \(height×width×channels\)$/);
    const checkpoint = (name: string, options: TrainOptions) => {
      const path = join(tmp, name);
      writeSafetensors(path, {}, { format: 'nin-webgpu/1', options: JSON.stringify(options), config: JSON.stringify(modelConfig(options)), epoch: '1' });
      return path;
    };
    const resumable = checkpoint('with-val.safetensors', o);
    expect(parseTrainArgs(['--resume', resumable]).options.imageFolder).toEqual(o.imageFolder);
    // A run from before val/ was recorded resumes, and records it now.
    const { valImages: _, valList: __, valClasses: ____, ...before } = o.imageFolder!;
    expect(parseTrainArgs(['--resume', checkpoint('before-val-list.safetensors', { ...o, imageFolder: before })]).options.imageFolder).toEqual(o.imageFolder);
    // An image added to val/, or one moved to another class: refused, when the flags are read and
    // when the data are (a library caller's train(), or a folder changed in between).
    writePng(join(withVal, 'val', 'red', 'new.png'), 12, 10, () => [200, 0, 0]);
    await expect(loadSplits(o)).rejects.toThrow(`${join(resolve(withVal), 'val')}: its images are not the run's validation images (13 now, 12 then; red/ 5 now, 4 then)`);
    expect(() => parseTrainArgs(['--resume', resumable])).toThrow(
      new Error(`--resume ${resumable}: ${join(resolve(withVal), 'val')}: its images are not the run's validation images (13 now, 12 then; red/ 5 now, 4 then): an image added, removed, renamed or moved to another class would choose the best epoch on other images (start a new run on the folder as it is; --weights-from the checkpoint starts it from this run's weights)`),
    );
    // (the folder, not the flags: not a usage error, exit 1 as for changed class folders, no usage printed)
    expect(() => parseTrainArgs(['--resume', resumable])).toThrow(expect.not.objectContaining({ name: 'UsageError' }));
    rmSync(join(withVal, 'val', 'red', 'new.png'));
    renameSync(join(withVal, 'val', 'red', '0.png'), join(withVal, 'val', 'blue', 'was-red.png'));
    expect(() => parseTrainArgs(['--resume', resumable])).toThrow(/its images are not the run's validation images \(12 now, 12 then; blue\/ 5 now, 4 then; red\/ 3 now, 4 then\)/);
    // Renamed within its class: the count alone would not tell.
    renameSync(join(withVal, 'val', 'blue', 'was-red.png'), join(withVal, 'val', 'red', '0.png'));
    renameSync(join(withVal, 'val', 'green', '0.png'), join(withVal, 'val', 'green', 'renamed.png'));
    expect(() => parseTrainArgs(['--resume', resumable])).toThrow(/its images are not the run's validation images \(12 now, 12 then; green\/ as many, other names\)/);
    // A run from before the classes were recorded: the counts only.
    const { valClasses: ___, ...withoutClasses } = o.imageFolder!;
    expect(() => parseTrainArgs(['--resume', checkpoint('before-val-classes.safetensors', { ...o, imageFolder: withoutClasses })])).toThrow(/its images are not the run's validation images \(12 now, 12 then\): an image/);
  });
});

describe('nin train --dataset folder end to end', () => {
  it('trains well past chance, evaluates, predicts by folder name, and resumes from the folder moved', async () => {
    await getGpu();
    const root = colourFolder(join(tmp, 'e2e'), [40, 10]);
    const quiet = (o: TrainOptions): TrainOptions => ({ ...o, progress: false, log: () => {} });
    const args = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '16', '--epochs', '3', '--seed', '2', '--out', join(tmp, 'e2e-run')];
    const o = quiet(parseTrainArgs([...args, '--stop-after', '2']).options);
    expect(parseTrainArgs(args.filter((a, i) => a !== '--batch' && args[i - 1] !== '--batch')).options.batchSize).toBe(60); // 120 images: two batches of 60
    // With train/, val/ and test/: --val folder validates on val/; without it, val/ is not read, and a note says so.
    cpSync(join(root, 'test'), join(root, 'val'), { recursive: true });
    rmSync(join(root, 'val', 'green'), { recursive: true });
    const said: string[] = [];
    const spied = vi.spyOn(console, 'error').mockImplementation((m: string) => void said.push(m));
    try {
      expect((await loadSplits(quiet(parseTrainArgs([...args, '--test-limit', '7']).options))).test.count).toBe(7);
      const split = await loadSplits(quiet(parseTrainArgs([...args, '--val', 'folder']).options));
      // (it said "SVHN's --val paper takes quotas per class")
      expect(() => parseTrainArgs([...args, '--val', 'folder', '--val-from', 'end'])).toThrow(new UsageError("--val-from chooses where a split of N images comes from (--val N, or --val paper outside SVHN); --val folder validates on the folder's val/"));
      expect([split.train.count, split.validation!.count, [...new Set(split.validation!.labels)].sort()]).toEqual([120, 20, [0, 2]]); // nothing held out of train/; val/'s blue and red
      await loadSplits(quiet(parseTrainArgs([...args, '--val', '16']).options));
    } finally {
      spied.mockRestore();
    }
    expect(said.filter((l) => l.startsWith('note:'))).toEqual([
      `note: ${join(root, 'val')} is not read: the test split is ${join(root, 'test')}; give --val folder to validate on it (or --val N to hold out training images)`,
      `note: ${join(root, 'val')} is not read: the test split is ${join(root, 'test')}; the validation split is 16 images held out of train/ (--val folder would validate on val/ instead)`,
    ]);
    rmSync(join(root, 'val'), { recursive: true });
    expect(() => parseTrainArgs([...args, '--val', 'folder'])).toThrow(new UsageError(`--val folder validates on DIR/val/<class>/ beside test/: ${resolve(root)} has no val/ (give --val N to hold out training images instead)`));
    // --split-seed: the images held out by it, whatever --seed; by --seed without it.
    const held = async (...flags: string[]) => (await loadSplits(quiet(parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--val', '16', '--out', join(tmp, 'split-seed'), ...flags]).options))).validation!.images;
    expect(await held('--seed', '1', '--split-seed', '7')).toEqual(await held('--seed', '2', '--split-seed', '7'));
    expect(await held('--seed', '7')).toEqual(await held('--seed', '2', '--split-seed', '7'));
    expect(await held('--seed', '1')).not.toEqual(await held('--seed', '2'));
    expect(() => parseTrainArgs([...args, '--val', 'folder'])).toThrow(expect.objectContaining({ showUsage: false }));
    const data = await loadSplits(o);
    expect([data.train.count, data.test!.count, data.train.height, data.train.width, data.train.channels]).toEqual([120, 30, 10, 12, 3]);
    const r = await train(o, data);
    expect(r.test!.error).toBeLessThan(0.2); // chance: 2/3

    const c = loadCheckpoint(r.checkpoint);
    expect(c.options.imageFolder).toEqual({ dir: resolve(root), classNames: ['blue', 'green', 'red'], trainImages: 120, trainList: expect.stringMatching(/^[0-9a-f]{64}$/), trainClasses: [0, 1, 2].map(() => ({ images: 40, list: expect.stringMatching(/^[0-9a-f]{16}$/) })) });
    const test = await loadTestSet(c.options);
    const model = c.buildModel();
    const ev = await evaluate(model, await c.preprocessor.applyTo(test, { inPlace: true }), 16).finally(() => model.dispose());
    expect(ev.error).toBeCloseTo(r.test!.error, 10);
    const p = await predictProbabilities(r.checkpoint, [join(root, 'test', 'red', '3.png'), join(root, 'test', 'blue', '0.png')], () => {});
    expect(p.classNames).toEqual(['blue', 'green', 'red']);
    expect([topClasses(p, 0, 1)[0].name, topClasses(p, 1, 1)[0].name]).toEqual(['red', 'blue']);
    // --invert on this model of colour images is said (it is meant for dark strokes on white).
    const inverted: string[] = [];
    await predictProbabilities(r.checkpoint, [join(root, 'test', 'red', '3.png'), join(root, 'test', 'blue', '0.png')], (line) => inverted.push(line), { invert: true });
    expect(inverted).toEqual([invertNote(3)]);
    expect(invertNote(1)).toBeNull();

    // The folder moved: --data-dir says where; the resumed checkpoint records it.
    const moved = join(tmp, 'e2e-moved');
    cpSync(root, moved, { recursive: true });
    rmSync(root, { recursive: true });
    const gone = `${resolve(root)}: no such directory: the run's image folder is gone from there (moved? give --data-dir where it is now)`;
    expect(() => parseTrainArgs(['--resume', r.checkpoint])).toThrow(gone);
    await expect(loadTestSet(c.options)).rejects.toThrow(gone);
    expect((await loadTestSet(c.options, moved, 7)).count).toBe(7);
    expect(() => parseTrainArgs(['--resume', r.checkpoint, '--data-dir', moved, '--image-size', '8'])).toThrow(new UsageError("--image-size: the network's input is 12×10 (width×height), fixed by the resumed run: its images are resized to that"));
    const resumed = quiet(parseTrainArgs(['--resume', r.checkpoint, '--data-dir', moved]).options);
    expect(resumed.batchSize).toBe(16); // the run's own, not the recipe's for this folder
    const rest = await train(resumed, await loadSplits(resumed, moved));
    expect(loadCheckpoint(rest.checkpoint).options.imageFolder!.dir).toBe(resolve(moved));
    expect(rest.test!.error).toBeLessThan(0.2);
    expect(comparisonTable(readRuns([join(tmp, 'e2e-run')]))).toMatch(/same in all: dataset folder e2e-moved, model mnist-small,/); // the folder its checkpoint last trained on
    // An image moved to another class, or one more, would change the run's training set, its order and split.
    const more = ['--resume', rest.checkpoint, '--epochs', '4', '--data-dir', moved];
    const changed = (now: number, classes: string) => `${join(moved, 'train')}: its training images are not the run's (${now} now, 120 then${classes}): an image added, removed, renamed or moved to another class would change the training set, its order and the validation split (start a new run on the folder as it is; --weights-from the checkpoint starts it from this run's weights)`;
    renameSync(join(moved, 'train', 'red', '0.png'), join(moved, 'train', 'blue', 'from-red.png'));
    expect(() => parseTrainArgs(more)).toThrow(new Error(`--resume ${rest.checkpoint}: ${changed(120, '; blue/ 41 now, 40 then; red/ 39 now, 40 then')}`));
    // The same exit status as for a class folder renamed: the data changed, not the flags (it was 2, a usage error).
    const resumeSaid: string[] = [];
    const quietErrors = vi.spyOn(console, 'error').mockImplementation((m: string) => void resumeSaid.push(m));
    try {
      expect(await main(['train', ...more])).toBe(1);
      renameSync(join(moved, 'train', 'red'), join(moved, 'train', 'rot'));
      expect(await main(['train', ...more])).toBe(1);
      renameSync(join(moved, 'train', 'rot'), join(moved, 'train', 'red'));
    } finally {
      quietErrors.mockRestore();
    }
    expect(resumeSaid).toEqual([`nin: --resume ${rest.checkpoint}: ${changed(120, '; blue/ 41 now, 40 then; red/ 39 now, 40 then')}`, expect.stringMatching(/^nin: .*train: its class folders are blue, green, rot; the checkpoint's classes are blue, green, red$/)]);
    renameSync(join(moved, 'train', 'blue', 'from-red.png'), join(moved, 'train', 'red', '0.png'));
    const again = quiet(parseTrainArgs(more).options);
    writePng(join(moved, 'train', 'red', 'new.png'), 12, 10, dot); // (after the options were made: the loader finds it)
    await expect(loadSplits(again, moved)).rejects.toThrow(changed(121, '; red/ 41 now, 40 then'));
    // eval's --test-limit is held to the folder where --data-dir says it is (30 test images there).
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    try {
      expect(await main(['eval', rest.checkpoint, '--data-dir', moved, '--test-limit', '31'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(errors.join('\n')).toContain(`nin: --test-limit 31 is more than ${join(moved, 'test')}'s 30 test images: leave it out to test on all`);
    expect(() => parseTrainArgs(['--resume', r.checkpoint, '--dataset', 'cifar10'])).toThrow(new UsageError(`--resume ${r.checkpoint}: --dataset cifar10 (the checkpoint was trained on folder): a resumed run keeps its data (start a new run to change it)`));
  });
});

describe('nin train --dataset folder --stream', () => {
  it('reads the pictures batch by batch and trains, validates and tests on the same numbers as a run that read the folder whole', async () => {
    await getGpu();
    const root = colourFolder(join(tmp, 'stream'), [30, 7]);
    writePng(join(root, 'train', 'red', 'wide.png'), 24, 10, () => [200, 40, 40]); // resized to 12×10, as read whole
    const quiet = (o: TrainOptions): TrainOptions => ({ ...o, progress: false, log: () => {} });
    const args = (out: string, ...more: string[]) => ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--image-size', '12x10', '--batch', '16', '--epochs', '2', '--val', '9', '--aug', '--seed', '3', '--out', join(tmp, out), ...more];
    const whole = quiet(parseTrainArgs(args('stream-whole')).options);
    const streamed = quiet(parseTrainArgs(args('stream-batches', '--stream')).options);
    expect([whole.stream, streamed.stream]).toEqual([undefined, true]);
    const said: string[] = [];
    const spied = vi.spyOn(console, 'error').mockImplementation((m: string) => void said.push(m));
    let data: Awaited<ReturnType<typeof loadSplits>>;
    try {
      data = await loadSplits(streamed);
      // Its pictures' headers were read: the resizing is said as a whole read says it.
      expect(said).toContain('note: stream/train: 1 of 91 images resized to 12×10 (width×height)');
      said.length = 0;
      // Nothing read yet: paths and labels, the validation split drawn as for the whole folder.
      const read = await loadSplits(whole);
      expect([data.train.images.length, data.train.stream!.paths.length, data.validation!.count, data.test.count]).toEqual([0, 82, 9, 21]);
      expect(Array.from(data.train.labels)).toEqual(Array.from(read.train.labels));
      expect(Array.from(data.validation!.labels)).toEqual(Array.from(read.validation!.labels));
      expect(said).toContain('note: stream/train: 1 of 91 images resized to 12×10 (width×height)');
    } finally {
      spied.mockRestore();
    }
    const a = await train(whole, await loadSplits(whole));
    const b = await train(streamed, data);
    expect(b.stepLosses).toEqual(a.stepLosses);
    expect(b.epochs.map((e) => [e.valLoss, e.testLoss])).toEqual(a.epochs.map((e) => [e.valLoss, e.testLoss]));
    // The checkpoint's statistics, from one streamed pass, are the whole folder's.
    expect(loadCheckpoint(b.checkpoint).preprocessor.stats).toEqual(loadCheckpoint(a.checkpoint).preprocessor.stats);
    // A resume keeps streaming; --no-stream reads the folder whole.
    expect(parseTrainArgs(['--resume', b.checkpoint, '--epochs', '3']).options.stream).toBe(true);
    expect(parseTrainArgs(['--resume', b.checkpoint, '--epochs', '3', '--no-stream']).options.stream).toBe(false);
    // nin eval --stream: the same test loss.
    const c = loadCheckpoint(b.checkpoint);
    const model = c.buildModel();
    try {
      const test = await loadTestSet(c.options, undefined, undefined, { stream: true });
      expect(test.stream?.paths.length).toBe(21);
      const ev = await evaluate(model, await c.preprocessor.applyTo(test), 16);
      expect(ev.loss).toBe(b.test!.loss);
    } finally {
      model.dispose();
    }
  });

  it("--dry-run on a streamed folder takes the run's first steps (the folder within its sample): a whole read's run's losses", async () => {
    await getGpu();
    const root = colourFolder(join(tmp, 'stream-dry'), [30, 7]);
    const quiet = (o: TrainOptions): TrainOptions => ({ ...o, progress: false, log: () => {} });
    const args = (out: string, ...more: string[]) => ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '16', '--epochs', '2', '--val', '9', '--aug', '--seed', '3', '--out', join(tmp, out), ...more];
    const whole = quiet(parseTrainArgs(args('stream-dry-run')).options);
    const run = await train(whole, await loadSplits(whole));
    const streamed = quiet(parseTrainArgs(args('stream-dry-out', '--stream')).options);
    const dry = await dryRun(streamed, await loadSplits(streamed));
    expect(run.stepLosses).toHaveLength(10); // (81 training images: 5 batches an epoch)
    expect(dry.losses.slice(0, 10)).toEqual(run.stepLosses);
    expect(dry).toMatchObject({ stepsLeft: 10, epochsLeft: 2, evalBatches: 1 + 2 }); // 9 validation, 21 test images
    expect(existsSync(join(tmp, 'stream-dry-out'))).toBe(false);
  });

  it('pictures too large for even one on the adapter: --image-size is offered for a built-in network, which takes the folder\'s size', async () => {
    await getGpu();
    const root = colourFolder(join(tmp, 'too-large'), [4, 2], { width: 64, height: 64 });
    const options = (...flags: string[]): TrainOptions => ({ ...parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--batch', '1', '--out', join(tmp, 'too-large-run'), ...flags]).options, progress: false, log: () => {} });
    // (a 64×64×16 map is 256 KiB, mnist-small's largest weight tensor 54 KiB)
    await withDeviceLimit('maxStorageBufferBindingSize', 100 * 1024, async () => {
      const byFolder = options('--model', 'mnist-small');
      await expect(train(byFolder, await loadSplits(byFolder))).rejects.toThrow(/not even one image fits, whatever the batch: a network of smaller images would \(with a built-in --model, --image-size\)$/);
    });
    expect(existsSync(join(tmp, 'too-large-run'))).toBe(false);
  });

  it('a picture that cannot be read stops the run, saved where it stands: the resume goes on as the uninterrupted run', async () => {
    await getGpu();
    const root = colourFolder(join(tmp, 'stream-mend'), [30, 7]);
    const run = (out: string, more: Partial<TrainOptions> = {}, ...flags: string[]): TrainOptions => ({
      ...parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '8', '--epochs', '2', '--val', '9', '--seed', '5', '--stream', '--out', join(tmp, out), ...flags]).options,
      progress: false,
      log: () => {},
      ...more,
    });
    const quietly = <T>(f: () => Promise<T>): Promise<T> => {
      const spied = vi.spyOn(console, 'error').mockImplementation(() => {});
      return f().finally(() => spied.mockRestore());
    };
    const trainOn = (o: TrainOptions) => quietly(async () => train(o, await loadSplits(o)));
    const whole = await trainOn(run('mend-whole'));
    const records = (epochs: typeof whole.epochs) => epochs.map((e) => [e.epoch, e.trainLoss, e.trainError, e.valLoss, e.valError, e.testLoss, e.testError]);
    // Damage pictures past their headers (which were read up front), as a disk error might.
    const damage = (paths: string[]) => {
      const kept = paths.map((path) => [path, readFileSync(path)] as const);
      for (const [path, bytes] of kept) writeFileSync(path, Buffer.from(bytes).fill(0xff, 60, bytes.length - 20));
      return () => kept.forEach(([path, bytes]) => writeFileSync(path, bytes));
    };
    const escaped = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    // A test picture: epoch 1 trained, its evaluation fails; the checkpoint holds all its batches.
    const testPicture = join(root, 'test', 'green', '3.png');
    let mend = damage([testPicture]);
    const a = run('mend-eval');
    const ckpt = join(a.outDir, 'checkpoint.safetensors');
    await expect(trainOn(a)).rejects.toThrow(new RegExp(`^${escaped(testPicture)}: cannot be read \\(.*; while evaluating epoch 1; checkpoint ${escaped(ckpt)} saved there: --resume ${escaped(shellWord(ckpt))} continues from there once the picture reads$`));
    const saved = loadCheckpoint(ckpt);
    expect([saved.epoch, saved.step, saved.partialEpoch?.batches, saved.partialEpoch?.stepsPerEpoch]).toEqual([0, 10, 10, 10]);
    mend();
    const said: string[] = [];
    const a2 = await trainOn(run('mend-eval', { log: (m) => void said.push(m) }, '--resume', ckpt, '--profile'));
    expect(said).toContain(`resumed from ${ckpt}: after epoch 1's training, at step 10: its evaluation first`);
    // With no step left in epoch 1, the profile is of epoch 2.
    expect(said.filter((m) => m.includes('per-kernel GPU time')).map((m) => /epoch \d+/.exec(m)![0])).toEqual(['epoch 2']);
    expect(records(a2.epochs)).toEqual(records(whole.epochs));
    expect(a2.stepLosses).toEqual(whole.stepLosses.slice(10));

    // Training pictures, damaged after epoch 2's third step: the batch being read fails, the steps
    // before it are saved.
    const trainPictures = ['blue', 'green', 'red'].flatMap((c) => Array.from({ length: 30 }, (_, i) => join(root, 'train', c, `${i}.png`)));
    const b = run('mend-train', { interrupt: (step) => ((step === 13 && (mend = damage(trainPictures))), false) });
    const bCkpt = join(b.outDir, 'checkpoint.safetensors');
    const failed = await trainOn(b).catch((e: Error) => e);
    mend();
    expect((failed as Error).message).toMatch(new RegExp(`: cannot be read \\(.*; at step (\\d+) \\(epoch 2, batch \\d+ of 10\\); checkpoint ${escaped(bCkpt)} saved there: --resume ${escaped(shellWord(bCkpt))} continues from there once the picture reads$`));
    const stoppedAt = Number(/; at step (\d+) /.exec((failed as Error).message)![1]);
    const partial = loadCheckpoint(bCkpt);
    expect(partial.epoch).toBe(1);
    expect(partial.step).toBe(stoppedAt);
    expect(partial.partialEpoch!.batches).toBe(stoppedAt - 10);
    // The batch read when the damage came: step 13's where its read-ahead was still reading
    // (a loaded machine), else a later one; never one read before it.
    expect(stoppedAt).toBeGreaterThanOrEqual(13);
    const b2 = await trainOn(run('mend-train', {}, '--resume', bCkpt));
    expect(b2.stepLosses).toEqual(whole.stepLosses.slice(stoppedAt));
    expect(records(b2.epochs)).toEqual(records(whole.epochs.slice(1)));

    // At an epoch's first batch nothing is new since the last checkpoint: it is named, not saved
    // again. (Damaged after epoch 1's evaluation, the second call at step 10: the validation images
    // are training pictures.)
    let calls = 0;
    const c = run('mend-first', { interrupt: (step) => ((step === 10 && ++calls === 2 && (mend = damage(trainPictures))), false) });
    const cCkpt = join(c.outDir, 'checkpoint.safetensors');
    const first = await trainOn(c).catch((e: Error) => e);
    mend();
    expect((first as Error).message).toMatch(new RegExp(`; at step 10 \\(epoch 2, batch 1 of 10\\); last good checkpoint: ${escaped(cCkpt)}$`));
    expect(loadCheckpoint(cCkpt).partialEpoch).toBe(null);
  });

  it("a request that fails in a reading thread fails alone: the thread reads the next one", async () => {
    const root = colourFolder(join(tmp, 'stream-pool'), [8, 1]);
    const scan = scanImageFolder(root, 'train');
    const good = streamImageFolder(scan, { height: 10, width: 12, channels: 3 }, { note: () => {} });
    const bad = { ...good, channels: 2 }; // loadImageForModel throws (no such model input) in the thread
    const all = Int32Array.from({ length: 24 }, (_, i) => i);
    const [failed, read] = await Promise.allSettled([readStreamed(bad, all), readStreamed(good, all)]);
    expect(failed.status === 'rejected' && (failed.reason as Error).message).toMatch(/^picture reading worker \d+: loadImageForModel\(.*\): model input channels must be 1 or 3, found 2$/);
    expect(read.status).toBe('fulfilled');
    const whole = await readImageFolder(scan, { height: 10, width: 12, channels: 3 }, { note: () => {} });
    expect((read as PromiseFulfilledResult<Float32Array>).value).toEqual(whole.images);
  });

  it('names an index outside a streamed set, and the pictures of a batch that cannot be read: the first, how many more, three of those', async () => {
    const root = colourFolder(join(tmp, 'stream-names'), [8, 1]);
    const ds = streamImageFolder(scanImageFolder(root, 'train'), { height: 10, width: 12, channels: 3 }, { note: () => {} });
    const paths = ds.stream!.paths;
    expect(paths).toHaveLength(24);
    await expect(readStreamed(ds, [0, 24])).rejects.toThrow(new RangeError(`${ds.name}: image 24 outside 0..23`));
    await expect(readStreamed(ds, [-1])).rejects.toThrow(new RangeError(`${ds.name}: image -1 outside 0..23`));
    expect(() => streamedDataset(ds, paths, new Int32Array(23))).toThrow(new RangeError(`${ds.name}: 24 paths, 23 labels`));
    // Damaged past their headers (read when the set was made): named when their batch is read, in its order.
    const damaged = [3, 9, 10, 17, 22].map((i) => paths[i]);
    for (const path of damaged) {
      const bytes = readFileSync(path);
      writeFileSync(path, bytes.fill(0xff, 60, bytes.length - 20));
    }
    const escaped = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const all = Int32Array.from({ length: 24 }, (_, i) => i);
    await expect(readStreamed(ds, all)).rejects.toThrow(new RegExp(`^${escaped(damaged[0])}: cannot be read \\(.*\\); 4 more in this batch: ${damaged.slice(1, 4).map(escaped).join(', ')}, …$`));
    await expect(readStreamed(ds, all.subarray(0, 20))).rejects.toThrow(new RegExp(`^${escaped(damaged[0])}: cannot be read \\(.*\\); 3 more in this batch: ${damaged.slice(1, 4).map(escaped).join(', ')}$`));
  });

  it('a process waits for the batch it reads, and ends once it has it: the reading threads hold it only while they read', async () => {
    const root = colourFolder(join(tmp, 'stream-exit'), [4, 1]);
    const script = `Promise.all([import('./nin/data/folder.ts'), import('./nin/data/stream.ts')]).then(async ([f, s]) => {
      const ds = f.streamImageFolder(f.scanImageFolder(${JSON.stringify(root)}, 'train'), { height: 10, width: 12, channels: 3 }, { note: () => {} });
      console.log(String((await s.readStreamed(ds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).length)); // (a number would be coloured under FORCE_COLOR)
    });`;
    const r = await runAsync(process.execPath, ['--import', 'tsx', '-e', script], { timeout: 60_000, cwd: fileURLToPath(new URL('..', import.meta.url)) });
    expect([r.status, r.stdout]).toEqual([0, `${10 * 10 * 12 * 3}\n`]);
  });

  it("a new streamed run reads its training headers once: the stream takes those the shape pass read, once", () => {
    const root = colourFolder(join(tmp, 'stream-headers'), [4, 2]);
    const input = { height: 10, width: 12, channels: 3 as const };
    expect(folderImageShape(scanImageFolder(root, 'train'))).toEqual(input);
    // Damaged after the shape pass: the stream's header check (a scan of its own, as a run's
    // data load makes) does not read it again; its batch would name it (test above).
    const damaged = join(root, 'train', 'red', '0.png');
    writeFileSync(damaged, 'not a picture');
    const note = () => {};
    expect(streamImageFolder(scanImageFolder(root, 'train'), input, { note, limit: 5 }).count).toBe(5);
    // Taken once: the next read reads the headers itself.
    expect(() => streamImageFolder(scanImageFolder(root, 'train'), input, { note })).toThrow(`${join(root, 'train')}: 1 of 12 images cannot be read:`);
    // Another folder's shape pass is not taken for this one.
    const other = colourFolder(join(tmp, 'stream-headers-2'), [4, 2]);
    folderImageShape(scanImageFolder(other, 'train'));
    expect(() => streamImageFolder(scanImageFolder(root, 'train'), input, { note })).toThrow(`${join(root, 'train')}: 1 of 12 images cannot be read:`);
  });

  it('refuses --stream off an image folder, with whole-set preprocessing, and a picture it cannot read names it', async () => {
    const root = colourFolder(join(tmp, 'stream-bad'), [4, 2]);
    expect(() => parseTrainArgs(['--dataset', 'mnist', '--stream'])).toThrow(new UsageError("--stream: --stream reads an image folder's pictures batch by batch (--dataset folder); mnist's files are read whole"));
    expect(() => parseTrainArgs(['--dataset', 'mnist', '--no-stream'])).toThrow(new UsageError("--no-stream: --stream reads an image folder's pictures batch by batch (--dataset folder); mnist's files are read whole"));
    expect(() => parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--stream', '--no-stream'])).toThrow(new UsageError('--stream and --no-stream contradict each other'));
    expect(() => parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--stream', '--preprocess', 'gcn-lcn'])).toThrow(new UsageError("--stream: --preprocess gcn-lcn works on the whole training set in memory; a streamed one takes none or standardize (the folder's default)"));
    // A picture whose header read but whose data does not: named when its batch is read.
    const broken = join(root, 'train', 'green', '1.png');
    const bytes = readFileSync(broken);
    bytes.fill(0xff, 60, bytes.length - 20); // the image data, not the header
    writeFileSync(broken, bytes);
    const o: TrainOptions = { ...parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '4', '--epochs', '1', '--stream', '--out', join(tmp, 'stream-bad-run')]).options, progress: false, log: () => {} };
    const spied = vi.spyOn(console, 'error').mockImplementation(() => {});
    const data = await loadSplits(o).finally(() => spied.mockRestore());
    await expect(train(o, data)).rejects.toThrow(new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot be read \\(`));
    // A file that is no picture at all is named before training, as a whole read names it (a
    // test picture would otherwise be found after the first epoch).
    writeFileSync(join(root, 'test', 'red', '1.png'), 'not a picture');
    await expect(loadSplits(o)).rejects.toThrow(`${join(root, 'test')}: 1 of 6 images cannot be read:`);
  });
});
