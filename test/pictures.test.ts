// CPU image I/O and pictures: PNG loading for models (channel conversion, alpha, resizing, errors),
// PNG encoding, the bitmap font and canvas, the feature-map grid and the curve plots.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { PNG, type ColorType } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { borderMean, encodePng, ImageLoadError, loadImageForModel, noteText, pictureFormat, pictureNotes, readImageHeader, readPng, resizeImage, resizeNote } from '../nin/images.ts';
import {
  BLACK, Canvas, CURVE_COLORS, FONT_CHARS, GLYPH_HEIGHT, SERIES_COLORS, drawPlot, featureMapGridLayout, logAxis, niceAxis,
  historyGap, renderCurves, renderFeatureMapGrid, renderTrainingCurves, testSetChange, trainingCurveSeries, textWidth, type FeatureMapGridOptions, type Rgb,
} from '../nin/plot.ts';
import { randomArray } from './helpers.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nin-pictures-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a PNG whose samples are `data` as given (colorType 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA). */
function writePng(name: string, width: number, height: number, colorType: ColorType, data: ArrayLike<number>, bitDepth: 8 | 16 = 8): string {
  const png = new PNG({ width, height });
  const bytes = bitDepth === 16 ? Buffer.from(Uint16Array.from(data).buffer) : Buffer.from(Uint8Array.from(data));
  png.data = bytes;
  const path = join(dir, name);
  writeFileSync(path, PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: colorType === 4 || colorType === 6, bitDepth }));
  return path;
}

function decode(buf: Buffer): { width: number; height: number; px: (x: number, y: number) => number[] } {
  const png = PNG.sync.read(buf);
  return { width: png.width, height: png.height, px: (x, y) => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3)) };
}

/** Pixels of colour `c` in a PNG, only those at (x, y) where `where` says so when given. */
function countColor(buf: Buffer, c: Rgb, where?: (x: number, y: number) => boolean): number {
  const png = PNG.sync.read(buf);
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (png.data[i] !== c[0] || png.data[i + 1] !== c[1] || png.data[i + 2] !== c[2]) continue;
    if (!where || where((i / 4) % png.width, Math.floor(i / 4 / png.width))) n++;
  }
  return n;
}

/** Pixels `text` inks when drawn alone at `scale` (any colour). */
function inkOf(text: string, scale = 1): number {
  const c = new Canvas(textWidth(text, scale) + 2, GLYPH_HEIGHT * scale + 2);
  c.drawText(text, 1, 1, BLACK, scale);
  return c.rgba.filter((v, i) => i % 4 === 0 && v !== 255).length;
}

describe('loadImageForModel', () => {
  it('converts RGB to grey with BT.601 luma, and grey to RGB by replication', () => {
    const rgb = writePng('rgb.png', 3, 1, 2, [255, 0, 0, 10, 200, 30, 0, 0, 255]);
    const grey = loadImageForModel(rgb, { height: 1, width: 3, channels: 1 });
    expect(grey.originalSize).toEqual([1, 3]);
    expect(grey.pixels.length).toBe(3);
    expect(grey.pixels[0]).toBeCloseTo(0.299, 6);
    expect(grey.pixels[1]).toBeCloseTo((0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255, 6);
    expect(grey.pixels[2]).toBeCloseTo(0.114, 6);

    const asRgb = loadImageForModel(rgb, { height: 1, width: 3, channels: 3 });
    expect(Array.from(asRgb.pixels)).toEqual(Array.from([1, 0, 0, 10 / 255, 200 / 255, 30 / 255, 0, 0, 1], Math.fround));

    const g = writePng('grey.png', 2, 1, 0, [0, 77]);
    const rep = loadImageForModel(g, { height: 1, width: 2, channels: 3 });
    expect(Array.from(rep.pixels)).toEqual(Array.from([0, 0, 0, 77 / 255, 77 / 255, 77 / 255], Math.fround));
    // Grey stays exact through the 1-channel (luma) path.
    expect(loadImageForModel(g, { height: 1, width: 2, channels: 1 }).pixels[1]).toBe(Math.fround(77 / 255));
  });

  it('--invert: composites over white, then inverts, so dark strokes on a light or transparent background come out light on black', () => {
    // Opaque white, black, a half-transparent black and a fully transparent pixel.
    const rgba = writePng('invert.png', 4, 1, 6, [255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 128, 0, 0, 0, 0]);
    const grey = loadImageForModel(rgba, { height: 1, width: 4, channels: 1 }, { invert: true }).pixels;
    expect(grey[0]).toBe(0);
    expect(grey[1]).toBe(1);
    expect(grey[2]).toBeCloseTo(128 / 255, 6);
    expect(grey[3]).toBe(0); // transparent: the background, black after the inversion (over black it was black too: the stroke vanished)
    expect(Array.from(loadImageForModel(rgba, { height: 1, width: 4, channels: 1 }).pixels)).toEqual([1, 0, 0, 0]);
    // In colour, per channel.
    const c = writePng('invert-rgb.png', 1, 1, 2, [255, 128, 0]);
    const inverted = loadImageForModel(c, { height: 1, width: 1, channels: 3 }, { invert: true }).pixels;
    expect([inverted[0], inverted[2]]).toEqual([0, 1]);
    expect(inverted[1]).toBeCloseTo(127 / 255, 6);
    expect(borderMean(Float32Array.from([1, 1, 1, 1, 0, 1, 1, 1, 1]), { height: 3, width: 3, channels: 1 })).toBe(1);
    expect(borderMean(Float32Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0.8]), { height: 3, width: 3, channels: 1 })).toBeCloseTo(0.1, 7);
  });

  it('keeps 16-bit precision', () => {
    const p = writePng('grey16.png', 2, 1, 0, [0x1234, 0xffff], 16);
    const { pixels } = loadImageForModel(p, { height: 1, width: 2, channels: 1 });
    expect(pixels[0]).toBeCloseTo(0x1234 / 65535, 7);
    expect(pixels[1]).toBe(1);
  });

  it('composites alpha over black', () => {
    const rgba = writePng('rgba.png', 3, 1, 6, [255, 255, 255, 128, 200, 100, 50, 0, 255, 0, 0, 255]);
    const { pixels } = loadImageForModel(rgba, { height: 1, width: 3, channels: 3 });
    expect(pixels[0]).toBeCloseTo(128 / 255, 6);
    expect(pixels[1]).toBeCloseTo(128 / 255, 6);
    expect(Array.from(pixels.subarray(3, 6))).toEqual([0, 0, 0]); // fully transparent → black
    expect(Array.from(pixels.subarray(6, 9))).toEqual([1, 0, 0]);
    const ga = writePng('grey-alpha.png', 2, 1, 4, [255, 64, 100, 255]);
    const g = loadImageForModel(ga, { height: 1, width: 2, channels: 1 }).pixels;
    expect(g[0]).toBeCloseTo(64 / 255, 6);
    expect(g[1]).toBeCloseTo(100 / 255, 6);
  });

  it('area-averages 56×56 down to 28×28 exactly', () => {
    // 1-pixel checkerboard of 0 and 255: every 2×2 block averages to exactly 0.5.
    const checker = Array.from({ length: 56 * 56 }, (_, i) => ((i % 56) + Math.floor(i / 56)) % 2 ? 255 : 0);
    const c = loadImageForModel(writePng('checker.png', 56, 56, 0, checker), { height: 28, width: 28, channels: 1 });
    expect(c.originalSize).toEqual([56, 56]);
    expect(c.pixels.length).toBe(28 * 28);
    expect(c.pixels.every((v) => v === 0.5)).toBe(true);

    // Constant 2×2 blocks: each output pixel is exactly its block's value, in the right place.
    const blockValue = (by: number, bx: number) => (by * 7 + bx * 3) % 256;
    const blocks = Array.from({ length: 56 * 56 }, (_, i) => blockValue(Math.floor(Math.floor(i / 56) / 2), Math.floor((i % 56) / 2)));
    const b = loadImageForModel(writePng('blocks.png', 56, 56, 0, blocks), { height: 28, width: 28, channels: 3 });
    const expected = Array.from({ length: 28 * 28 * 3 }, (_, i) => Math.fround(blockValue(Math.floor(i / 3 / 28), Math.floor(i / 3) % 28) / 255));
    expect(Array.from(b.pixels)).toEqual(expected);

    // A constant image resizes to exactly the value it has unresized.
    const flat = writePng('flat.png', 56, 56, 0, new Array(56 * 56).fill(77));
    const small = loadImageForModel(flat, { height: 28, width: 28, channels: 1 }).pixels;
    const same = loadImageForModel(flat, { height: 56, width: 56, channels: 1 }).pixels;
    expect(small.every((v) => v === same[0])).toBe(true);
    expect(same[0]).toBe(Math.fround(77 / 255));
  });

  it('handles non-square sources and reports [height, width]', () => {
    const p = writePng('wide.png', 40, 20, 2, randomArray(40 * 20 * 3, 1, 0, 256).map(Math.floor));
    const r = loadImageForModel(p, { height: 32, width: 32, channels: 3 });
    expect(r.originalSize).toEqual([20, 40]);
    expect(r.pixels.length).toBe(32 * 32 * 3);
    expect(r.pixels.every((v) => v >= 0 && v <= 1)).toBe(true);
  });

  it('resizeNote: one line naming the file, its size and the model\'s, and whether the aspect ratio changed', () => {
    const p = writePng('squashed.png', 100, 10, 0, new Array(100 * 10).fill(128));
    const model = { height: 28, width: 28 };
    const squashed = loadImageForModel(p, { ...model, channels: 1 });
    expect(resizeNote(p, squashed.originalSize, model)).toBe(`${p}: resized from 100×10 to 28×28 (width×height), aspect ratio changed from 10:1 to 1:1`);
    expect(resizeNote('tall.png', [40, 30], { height: 32, width: 32 })).toBe('tall.png: resized from 30×40 to 32×32 (width×height), aspect ratio changed from 1:1.33 to 1:1');
    expect(resizeNote('strip.png', [300, 1], { height: 8, width: 8 })).toBe('strip.png: resized from 1×300 to 8×8 (width×height), aspect ratio changed from 1:300 to 1:1'); // (0:1 before)
    expect(resizeNote('banner.png', [8, 16], { height: 28, width: 7 })).toBe('banner.png: resized from 16×8 to 7×28 (width×height), aspect ratio changed from 2:1 to 1:4');
    expect(resizeNote('big.png', [56, 56], model)).toBe('big.png: resized from 56×56 to 28×28 (width×height), aspect ratio kept');
    expect(resizeNote('fits.png', [28, 28], model)).toBeNull();
  });

  it('pictureNotes: resized, colour read as grey, a light border for MNIST, and a picture blank as the model sees it (dark strokes on transparency)', () => {
    const model = { height: 28, width: 28, channels: 1 as const };
    const opts = { mnist: true };
    // A black digit drawn only through alpha: black over black is blank; --invert shows it.
    const strokes = new Array(28 * 28 * 2).fill(0).map((_, i) => (i % 2 === 1 && Math.floor(i / 2) % 28 > 10 && Math.floor(i / 2) % 28 < 16 ? 255 : 0));
    const drawn = writePng('alpha-strokes.png', 28, 28, 4, strokes);
    const plain = loadImageForModel(drawn, model);
    expect(plain.translucent).toBe(true);
    expect(pictureNotes(drawn, plain, model, opts)).toEqual([`${drawn}: the picture is blank as the model sees it (every value 0.00 of 1): dark strokes on a transparent background vanish over black; pass --invert`]);
    const inverted = loadImageForModel(drawn, model, { invert: true });
    expect(pictureNotes(drawn, inverted, model, { ...opts, invert: true })).toEqual([]);
    // Opaque and flat: blank, without the transparency hint; for any data set.
    const grey = loadImageForModel(writePng('flat.png', 56, 56, 0, new Array(56 * 56).fill(128)), model);
    expect(grey.translucent).toBe(false);
    expect(pictureNotes('flat.png', grey, model, { mnist: false })).toEqual([
      'flat.png: resized from 56×56 to 28×28 (width×height), aspect ratio kept',
      'flat.png: the picture is blank as the model sees it (every value 0.50 of 1)',
    ]);
    // Two adjacent levels are two values, not one flat one (as float32, 129/255 − 128/255 is a hair under 1/255).
    const twoLevels = loadImageForModel(writePng('two-levels.png', 28, 28, 0, new Array(28 * 28).fill(0).map((_, i) => (i < 392 ? 128 : 129))), model);
    expect(pictureNotes('two-levels.png', twoLevels, model, { mnist: false })).toEqual([]);
    // A dark digit on white: the border note (MNIST only).
    const dark = loadImageForModel(writePng('dark.png', 28, 28, 0, new Array(28 * 28).fill(0).map((_, i) => (i % 28 > 10 && i % 28 < 16 ? 0 : 255))), model);
    expect(pictureNotes('dark.png', dark, model, opts)).toEqual([`dark.png: its border is light (mean 0.91 of 1); MNIST's digits are light strokes on black: for a dark digit on a light background, pass --invert`]);
    expect(pictureNotes('dark.png', dark, model, { mnist: false })).toEqual([]);
    // Colour read as grey is said, for a model of grey images only; an RGB file of grey pixels is not colour.
    const colour = writePng('colour.png', 28, 28, 2, new Array(28 * 28 * 3).fill(0).map((_, i) => (i === 3 * 400 ? 200 : 60))); // one red pixel
    expect(loadImageForModel(colour, model).colourful).toBe(true);
    expect(pictureNotes(colour, loadImageForModel(colour, model), model, { mnist: false })).toEqual([`${colour}: a colour picture, read as grey (BT.601 luma): the model takes grey images`]);
    const rgbModel = { ...model, channels: 3 as const };
    expect(pictureNotes(colour, loadImageForModel(colour, rgbModel), rgbModel, { mnist: false })).toEqual([]);
    const greyRgb = writePng('grey-rgb.png', 28, 28, 2, new Array(28 * 28 * 3).fill(90).map((v, i) => (i < 3 * 28 ? 20 : v))); // a darker top row: not blank
    expect(pictureNotes(greyRgb, loadImageForModel(greyRgb, model), model, { mnist: false }).filter((n) => n.includes('colour'))).toEqual([]);
    // Nor is a grey picture whose colour is only in pixels of alpha 0 (composited away).
    const hidden = writePng('hidden-colour.png', 28, 28, 6, Array.from({ length: 28 * 28 }, (_, p) => (p === 400 ? [255, 0, 0, 0] : [p < 28 ? 20 : 90, p < 28 ? 20 : 90, p < 28 ? 20 : 90, 255])).flat());
    expect(loadImageForModel(hidden, model).colourful).toBe(false);
    // A grey picture given to a model of colour images is said, whether its file is grey or RGB;
    // not where the picture is blank (that note says more).
    const greyNote = (f: string) => `${f}: a grey picture, its grey in all 3 channels: the model takes colour images`;
    expect(pictureNotes(greyRgb, loadImageForModel(greyRgb, rgbModel), rgbModel, { mnist: false })).toEqual([greyNote(greyRgb)]);
    expect(pictureNotes(hidden, loadImageForModel(hidden, rgbModel), rgbModel, { mnist: false })).toEqual([greyNote(hidden)]);
    expect(pictureNotes('dark.png', loadImageForModel(join(dir, 'dark.png'), rgbModel), rgbModel, { mnist: false })).toEqual([greyNote('dark.png')]);
    expect(pictureNotes('flat.png', loadImageForModel(join(dir, 'flat.png'), rgbModel), rgbModel, { mnist: false })).toEqual([
      'flat.png: resized from 56×56 to 28×28 (width×height), aspect ratio kept',
      'flat.png: the picture is blank as the model sees it (every value 0.50 of 1)',
    ]);
  });

  it('pictureNotes at the edges: a border of mean exactly 0.5 is not light; under --invert a blank translucent picture is not told to pass --invert; a note without its path', () => {
    const model = { height: 4, width: 4, channels: 1 as const };
    // 12 border pixels, 6 of them 1: mean 0.5, not past it. One more: 7/12 = 0.58.
    const half = Float32Array.of(1, 1, 1, 1, 0, 0.2, 0.3, 0, 0, 0.1, 0.4, 0, 1, 1, 0, 0);
    const image = (pixels: Float32Array, translucent = false) => ({ pixels, originalSize: [4, 4] as [number, number], translucent, colourful: false });
    expect(pictureNotes('half.png', image(half), model, { mnist: true })).toEqual([]);
    const more = Float32Array.from(half, (v, i) => (i === 15 ? 1 : v));
    expect(pictureNotes('more.png', image(more), model, { mnist: true })).toEqual([
      "more.png: its border is light (mean 0.58 of 1); MNIST's digits are light strokes on black: for a dark digit on a light background, pass --invert",
    ]);
    expect(pictureNotes('blank.png', image(new Float32Array(16), true), model, { mnist: true, invert: true })).toEqual(['blank.png: the picture is blank as the model sees it (every value 0.00 of 1, after --invert)']);
    expect(noteText('a.png', 'a.png: resized from 8×8 to 4×4 (width×height), aspect ratio kept')).toBe('resized from 8×8 to 4×4 (width×height), aspect ratio kept');
    expect(noteText('a.png', 'b.png: a note of another picture')).toBe('b.png: a note of another picture');
  });

  it('a picture of any alpha under 255 is translucent; a grey+alpha PNG is grey by its header, an RGBA one is not', () => {
    const nearly = writePng('nearly-opaque.png', 2, 1, 4, [0, 254, 255, 255]);
    expect(loadImageForModel(nearly, { height: 1, width: 2, channels: 1 }).translucent).toBe(true);
    expect(readImageHeader(nearly)).toEqual({ width: 2, height: 1, grey: true });
    expect(readImageHeader(writePng('rgba.png', 2, 1, 6, [9, 9, 9, 255, 9, 9, 9, 255]))).toEqual({ width: 2, height: 1, grey: false });
  });

  it('pictureFormat tells PNG from JPEG by the first bytes, whatever the name; anything else, or no file, is null', () => {
    const png = writePng('format.jpg', 1, 1, 0, [0]);
    const jpeg = join(dir, 'format.png');
    writeFileSync(jpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]));
    const text = join(dir, 'format.txt');
    writeFileSync(text, 'hello world');
    expect([pictureFormat(png), pictureFormat(jpeg), pictureFormat(text), pictureFormat(join(dir, 'no-such-file'))]).toEqual(['PNG', 'JPEG', null, null]);
  });

  it('a file that is no picture is described by its first bytes: non-printable ones (DEL too) as ".", a known format named', () => {
    const elf = join(dir, 'program.png');
    writeFileSync(elf, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00]));
    expect(() => loadImageForModel(elf, { height: 28, width: 28, channels: 1 })).toThrow(
      `${elf}: not a PNG or JPEG file: expected PNG's signature 89 50 4e 47 0d 0a 1a 0a or JPEG's ff d8 ff, found 7f 45 4c 46 02 01 01 00 (".ELF....")`,
    );
    const bmp = join(dir, 'bitmap.png');
    writeFileSync(bmp, Buffer.from([0x42, 0x4d, 0x36, 0x0c, 0, 0, 0, 0]));
    expect(() => readPng(bmp)).toThrow(`${bmp}: not a PNG file: expected signature 89 50 4e 47 0d 0a 1a 0a, found 42 4d 36 0c 00 00 00 00 ("BM6....."), which looks like BMP`);
  });

  it('names the file in every error', () => {
    const missing = join(dir, 'nope.png');
    expect(() => loadImageForModel(missing, { height: 28, width: 28, channels: 1 })).toThrow(ImageLoadError);
    expect(() => loadImageForModel(missing, { height: 28, width: 28, channels: 1 })).toThrow(`${missing}: file not found`);

    const text = join(dir, 'notes.png');
    writeFileSync(text, 'hello world');
    expect(() => loadImageForModel(text, { height: 28, width: 28, channels: 1 })).toThrow(
      new RegExp(`${text}: not a PNG or JPEG file: expected PNG's signature 89 50 4e 47 0d 0a 1a 0a or JPEG's ff d8 ff, found 68 65 6c 6c 6f 20 77 6f \\("hello wo"\\)`),
    );
    // A JPEG is read as a JPEG whatever its name (test/jpeg.test.ts): this one is cut short.
    const jpeg = join(dir, 'photo.png');
    writeFileSync(jpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46]));
    expect(() => loadImageForModel(jpeg, { height: 28, width: 28, channels: 1 })).toThrow(`${jpeg}: corrupt JPEG: the file ends at byte 10 inside segment ff e0 at byte 2, which declares 16 bytes: it is cut short`);
    expect(() => readPng(jpeg)).toThrow(/photo\.png: not a PNG file.*looks like JPEG/);
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    expect(() => loadImageForModel(empty, { height: 28, width: 28, channels: 1 })).toThrow(/empty\.png: not a PNG or JPEG file.*found an empty file/);
    const three = join(dir, 'three.png');
    writeFileSync(three, Buffer.from([0x89, 0x50, 0x4e]));
    expect(() => readPng(three)).toThrow(`${three}: not a PNG file: expected signature 89 50 4e 47 0d 0a 1a 0a, found 89 50 4e (".PN")`);
    // A 3 GiB GIF (sparse: no disk used) is named for what it is, from its first bytes; read whole,
    // it was refused for its size ("cannot read file (File size ... is greater than 2 GiB)").
    const video = join(dir, 'huge.png');
    writeFileSync(video, 'GIF89a');
    truncateSync(video, 3 * 2 ** 30);
    expect(() => readPng(video)).toThrow(/huge\.png: not a PNG file: .*found 47 49 46 38 39 61 00 00 \("GIF89a\.\."\), which looks like GIF/);
    rmSync(video);

    // A zero-width image: a valid signature and IHDR saying 0 × 5.
    const ihdr = Buffer.alloc(25);
    ihdr.writeUInt32BE(13, 0);
    ihdr.write('IHDR', 4, 'latin1');
    ihdr.writeUInt32BE(0, 8);
    ihdr.writeUInt32BE(5, 12);
    ihdr[16] = 8;
    const zero = join(dir, 'zero.png');
    writeFileSync(zero, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]));
    expect(() => loadImageForModel(zero, { height: 28, width: 28, channels: 1 })).toThrow(/zero\.png: PNG has zero size \(width 0, height 5\)/);

    const good = writePng('good.png', 8, 8, 0, new Array(64).fill(9));
    const cut = join(dir, 'cut.png');
    writeFileSync(cut, PNG.sync.write(Object.assign(new PNG({ width: 8, height: 8 }), { data: Buffer.alloc(256, 9) })).subarray(0, 40));
    expect(() => loadImageForModel(cut, { height: 28, width: 28, channels: 1 })).toThrow(/cut\.png: corrupt PNG/);
    expect(() => loadImageForModel(good, { height: 28, width: 28, channels: 2 as unknown as 1 })).toThrow(/good\.png.*channels must be 1 or 3, found 2/);
    expect(() => loadImageForModel(dir, { height: 28, width: 28, channels: 1 })).toThrow(/found a directory/);
  });
});

/** A PNG built chunk by chunk: the header as given, `data` as the IDAT's inflated scanlines, or raw chunks;
 * `idatBytes`: the IDAT's data as given (not deflated). */
function handMadePng(opts: { width: number; height: number; depth?: number; colorType?: number; interlace?: number; scanlines?: Buffer; idat?: boolean; idatBytes?: Buffer; before?: [string, Buffer][]; header?: (ihdr: Buffer) => void }): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(opts.width, 0);
  ihdr.writeUInt32BE(opts.height, 4);
  ihdr[8] = opts.depth ?? 8;
  ihdr[9] = opts.colorType ?? 0;
  ihdr[12] = opts.interlace ?? 0;
  opts.header?.(ihdr);
  const chunks = [chunk('IHDR', ihdr), ...(opts.before ?? []).map(([type, data]) => chunk(type, data))];
  if (opts.idat !== false) chunks.push(chunk('IDAT', opts.idatBytes ?? deflateSync(opts.scanlines ?? Buffer.alloc(0))));
  chunks.push(chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks]);
}

describe('readPng: what the header declares is checked before decoding', () => {
  const file = (name: string, bytes: Buffer): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  /** `rows` unfiltered 8-bit grey scanlines of `width` pixels (filter byte 0, then the pixels). */
  const greyRows = (width: number, rows: number, value = 200): Buffer => {
    const b = Buffer.alloc(rows * (width + 1), value);
    for (let r = 0; r < rows; r++) b[r * (width + 1)] = 0;
    return b;
  };

  it('a tiny file that declares a huge image is refused without allocating it', () => {
    const huge = file('huge.png', handMadePng({ width: 1, height: 2 ** 31 - 1, scanlines: greyRows(1, 1) }));
    expect(() => readPng(huge)).toThrow(`${huge}: PNG is 1×2147483647 (2147483647 pixels), more than the 33554432 this reader accepts; resize it first`);
    // Its header alone says so, when a folder is sized up.
    expect(() => readImageHeader(huge)).toThrow(`${huge}: PNG is 1×2147483647 (2147483647 pixels), more than the 33554432 this reader accepts; resize it first`);
  });

  it('image data cut short, too long or missing, a header cut short, and a depth the colour type does not allow → errors naming the file', () => {
    const half = file('half.png', handMadePng({ width: 28, height: 28, scanlines: greyRows(28, 14) }));
    expect(() => readPng(half)).toThrow(`${half}: corrupt PNG: the image data inflates to 406 bytes, a 28×28 grey image at depth 8 needs 812`);
    // A row too many: pngjs refuses it too, but says only "There are some read requests waitng on finished stream".
    const long = file('long.png', handMadePng({ width: 28, height: 28, scanlines: greyRows(28, 29) }));
    expect(() => readPng(long)).toThrow(`${long}: corrupt PNG: the image data inflates to more than the 812 bytes a 28×28 grey image holds`);
    const shortHeader = file('short-ihdr.png', handMadePng({ width: 28, height: 28 }).subarray(0, 27));
    expect(() => readPng(shortHeader)).toThrow(`${shortHeader}: corrupt PNG: the file ends inside the IHDR chunk (27 bytes, the signature and IHDR take 33)`);
    const ihdr32 = file('short-ihdr-32.png', handMadePng({ width: 28, height: 28 }).subarray(0, 32)); // one byte short of IHDR's CRC
    expect(() => readPng(ihdr32)).toThrow(`${ihdr32}: corrupt PNG: the file ends inside the IHDR chunk (32 bytes, the signature and IHDR take 33)`);
    const none = file('none.png', handMadePng({ width: 4, height: 4, idat: false }));
    expect(() => readPng(none)).toThrow(`${none}: corrupt PNG: no IDAT chunk (the image data)`);
    const rgb4 = file('rgb4.png', handMadePng({ width: 2, height: 2, depth: 4, colorType: 2, scanlines: Buffer.alloc(8) }));
    expect(() => readPng(rgb4)).toThrow(`${rgb4}: corrupt PNG: bit depth 4 is not allowed for RGB (colour type 2): 8, 16`);
    const whole = handMadePng({ width: 28, height: 28, scanlines: greyRows(28, 28) });
    const noEnd = file('no-end.png', whole.subarray(0, whole.length - 12));
    expect(() => readPng(noEnd)).toThrow(`${noEnd}: corrupt PNG: no IEND chunk: the file is cut short`);
    const cutChunk = file('cut-chunk.png', whole.subarray(0, 50));
    expect(() => readPng(cutChunk)).toThrow(new RegExp(`cut-chunk\\.png: corrupt PNG: chunk "IDAT" at offset 33 declares \\d+ data bytes and a 4-byte CRC, the file holds 9 bytes after its header`));
    expect(readPng(file('whole.png', whole)).rgba[0]).toBe(Math.fround(200 / 255)); // the same file, whole, decodes
  });

  it('an IHDR of another length, an interlace method that does not exist, a file cut inside a chunk header, image data that is not zlib → errors naming the file', () => {
    const whole = handMadePng({ width: 28, height: 28, scanlines: greyRows(28, 28) });
    const longIhdr = Buffer.from(whole);
    longIhdr.writeUInt32BE(14, 8); // the IHDR chunk's length field
    const ihdr14 = file('ihdr-14.png', longIhdr);
    expect(() => readPng(ihdr14)).toThrow(`${ihdr14}: corrupt PNG: IHDR holds 14 bytes, expected 13`);
    const interlace2 = file('interlace-2.png', handMadePng({ width: 28, height: 28, interlace: 2, scanlines: greyRows(28, 28) }));
    expect(() => readPng(interlace2)).toThrow(`${interlace2}: corrupt PNG: interlace method 2 does not exist (0 or 1)`);
    // After the signature and IHDR (33 bytes), 7 of the next chunk header's 8 bytes (and no CRC).
    const cutHeader = file('cut-header.png', whole.subarray(0, 40));
    expect(() => readPng(cutHeader)).toThrow(`${cutHeader}: corrupt PNG: the file ends inside a chunk header at offset 33`);
    const notZlib = file('not-zlib.png', handMadePng({ width: 28, height: 28, idatBytes: Buffer.from('these bytes are not a zlib stream') }));
    expect(() => readPng(notZlib)).toThrow(`${notZlib}: corrupt PNG: the image data does not inflate (incorrect header check)`);
  });

  it('damaged chunks, unknown critical chunks, tRNS that does not fit, other methods, junk after the image data → errors naming the cause (pngjs would say "unrecognised content at end of stream")', () => {
    const rows = greyRows(4, 2);
    const whole = handMadePng({ width: 4, height: 2, scanlines: rows });
    const flipped = Buffer.from(whole);
    flipped[33 + 8] ^= 1; // the first byte of the IDAT's data: its CRC no longer matches
    const badCrc = file('bad-crc.png', flipped);
    expect(() => readPng(badCrc)).toThrow(`${badCrc}: corrupt PNG: chunk "IDAT" at offset 33 fails its CRC check (damaged)`);
    const critical = file('critical.png', handMadePng({ width: 4, height: 2, scanlines: rows, before: [['ABCD', Buffer.alloc(3)]] }));
    expect(() => readPng(critical)).toThrow(`${critical}: corrupt PNG: chunk "ABCD" at offset 33 is critical (upper-case first letter) and unknown: the image cannot be read without it`);
    expect(readPng(file('ancillary.png', handMadePng({ width: 4, height: 2, scanlines: rows, before: [['abCD', Buffer.alloc(3)]] }))).width).toBe(4); // ancillary: skipped
    const palette = (entries: number): Buffer => Buffer.alloc(3 * entries, 7);
    // 8-bit palette indices, all 1.
    const trnsFirst = file('trns-first.png', handMadePng({ width: 4, height: 2, colorType: 3, scanlines: greyRows(4, 2, 1), before: [['tRNS', Buffer.alloc(2)], ['PLTE', palette(2)]] }));
    expect(() => readPng(trnsFirst)).toThrow(`${trnsFirst}: corrupt PNG: the tRNS chunk at offset 33 comes before the palette (PLTE)`);
    const trnsLong = file('trns-long.png', handMadePng({ width: 4, height: 2, colorType: 3, scanlines: greyRows(4, 2, 1), before: [['PLTE', palette(2)], ['tRNS', Buffer.alloc(3)]] }));
    expect(() => readPng(trnsLong)).toThrow(`${trnsLong}: corrupt PNG: the tRNS chunk at offset 51 holds 3 alpha values, the palette only 2 entries`);
    for (const bytes of [7, 0, 771]) {
      const odd = file(`plte-${bytes}.png`, handMadePng({ width: 4, height: 2, colorType: 3, scanlines: greyRows(4, 2, 1), before: [['PLTE', Buffer.alloc(bytes, 7)]] }));
      expect(() => readPng(odd), `${bytes}`).toThrow(`${odd}: corrupt PNG: the palette (PLTE) at offset 33 holds ${bytes} bytes: 1 to 256 entries of 3 bytes each`);
    }
    const trnsGrey = file('trns-grey.png', handMadePng({ width: 4, height: 2, scanlines: rows, before: [['tRNS', Buffer.alloc(1)]] }));
    expect(() => readPng(trnsGrey)).toThrow(`${trnsGrey}: corrupt PNG: the tRNS chunk at offset 33 holds 1 bytes, a grey image's holds 2`);
    const fitting = file('trns-fits.png', handMadePng({ width: 4, height: 2, colorType: 3, scanlines: greyRows(4, 2, 1), before: [['PLTE', palette(2)], ['tRNS', Buffer.from([0, 128])]] }));
    expect(readPng(fitting).rgba[3]).toBe(Math.fround(128 / 255)); // index 1's alpha
    const compression = file('compression-1.png', handMadePng({ width: 4, height: 2, scanlines: rows, header: (h) => (h[10] = 1) }));
    expect(() => readPng(compression)).toThrow(`${compression}: corrupt PNG: compression method 1 does not exist (0)`);
    const filter = file('filter-1.png', handMadePng({ width: 4, height: 2, scanlines: rows, header: (h) => (h[11] = 1) }));
    expect(() => readPng(filter)).toThrow(`${filter}: corrupt PNG: filter method 1 does not exist (0)`);
    const oneJunk = file('one-junk-byte.png', handMadePng({ width: 4, height: 2, idatBytes: Buffer.concat([deflateSync(rows), Buffer.from([1])]) }));
    expect(() => readPng(oneJunk)).toThrow(`${oneJunk}: corrupt PNG: the image data holds 1 bytes after the end of its compressed stream`);
    // An RGB image's tRNS is one 16-bit colour: 6 bytes, no other length.
    const rgbRows = Buffer.alloc(2 * (1 + 4 * 3), 50);
    rgbRows[0] = rgbRows[13] = 0;
    const rgbTrns = file('trns-rgb.png', handMadePng({ width: 4, height: 2, colorType: 2, scanlines: rgbRows, before: [['tRNS', Buffer.from([0, 50, 0, 50, 0, 50])]] }));
    expect(readPng(rgbTrns).rgba[3]).toBe(0); // every pixel is the transparent colour
    const rgbTrns3 = file('trns-rgb-3.png', handMadePng({ width: 4, height: 2, colorType: 2, scanlines: rgbRows, before: [['tRNS', Buffer.from([0, 50, 0])]] }));
    expect(() => readPng(rgbTrns3)).toThrow(`${rgbTrns3}: corrupt PNG: the tRNS chunk at offset 33 holds 3 bytes, a RGB image's holds 6`);
    const junk = file('junk-after-stream.png', handMadePng({ width: 4, height: 2, idatBytes: Buffer.concat([deflateSync(rows), Buffer.from([1, 2, 3])]) }));
    expect(() => readPng(junk)).toThrow(`${junk}: corrupt PNG: the image data holds 3 bytes after the end of its compressed stream`);
    // Bytes after IEND are ignored, as libpng does: the same pixels as the file without them.
    const trailing = file('trailing.png', Buffer.concat([whole, Buffer.from([0, 0])]));
    expect(readPng(trailing)).toEqual(readPng(file('whole-4x2.png', whole)));
    // The header reader (an image folder's first pass) finds a file cut short by its end, and
    // reads whole one whose last bytes are not IEND to tell bytes after it from a cut.
    expect(readImageHeader(trailing)).toEqual({ width: 4, height: 2, grey: true });
    expect(readImageHeader(file('long-trailer.png', Buffer.concat([whole, Buffer.alloc(200_000, 7)])))).toEqual({ width: 4, height: 2, grey: true });
    expect(readImageHeader(file('whole-again.png', whole))).toEqual({ width: 4, height: 2, grey: true });
    for (const cutAt of [whole.length - 1, whole.length - 12, 40]) {
      const cut = file(`cut-${cutAt}.png`, whole.subarray(0, cutAt));
      expect(() => readImageHeader(cut), `cut at ${cutAt}`).toThrow(new ImageLoadError(cut, 'corrupt PNG: no IEND chunk: the file is cut short'));
    }
  });

  it('16-bit RGB and RGBA files that carry a suggested palette keep their 16-bit scale (the palette is not their pixels)', () => {
    const samples = [0, 1000, 30000, 65535];
    for (const [colorType, channels] of [[2, 3], [6, 4]]) {
      const scanline = Buffer.alloc(1 + 4 * channels * 2);
      samples.forEach((v, x) => {
        for (let c = 0; c < channels; c++) scanline.writeUInt16BE(c === 3 ? 65535 : v, 1 + (x * channels + c) * 2);
      });
      const plain = readPng(file(`rgb16-${colorType}.png`, handMadePng({ width: 4, height: 1, depth: 16, colorType, scanlines: scanline })));
      const withPalette = readPng(file(`rgb16-${colorType}-plte.png`, handMadePng({ width: 4, height: 1, depth: 16, colorType, scanlines: scanline, before: [['PLTE', Buffer.from([0, 0, 0, 255, 255, 255])]] })));
      expect(Array.from(plain.rgba.filter((_, i) => i % 4 === 0))).toEqual(samples.map((v) => Math.fround(v / 65535)));
      expect(withPalette.rgba).toEqual(plain.rgba);
    }
  });

  it('grey at 1, 2 and 4 bits scales by its own depth (2^depth − 1 is white)', () => {
    for (const [depth, row, want] of [[1, [0, 0b10100000], [1, 0, 1]], [2, [0, 0b00011011], [0, 1 / 3, 2 / 3, 1]], [4, [0, 0x0f, 0x70], [0, 1, 7 / 15]]] as const) {
      const p = file(`grey${depth}.png`, handMadePng({ width: want.length, height: 1, depth, scanlines: Buffer.from(row) }));
      expect(Array.from(readPng(p).rgba.filter((_, i) => i % 4 === 0)), `depth ${depth}`).toEqual(want.map((v) => Math.fround(v)));
    }
  });

  it('rows too long for the decoder (2^31 bits) are refused up front, within the pixel limit', () => {
    const wide = file('wide-rgba16.png', handMadePng({ width: 2 ** 25, height: 1, depth: 16, colorType: 6, scanlines: Buffer.alloc(1) }));
    expect(() => readPng(wide)).toThrow(`${wide}: PNG rows are 33554432 pixels of 64 bits (2147483648 bits a row), more than the 2^31 this reader's decoder handles; resize it first`);
  });

  it('interlaced (Adam7) files of odd sizes, where some passes are empty, decode to the right pixels', () => {
    for (const [width, height] of [[5, 3], [1, 1], [9, 2]]) {
      const value = (x: number, y: number): number => (x * 17 + y * 41 + 3) % 256;
      const parts: number[] = [];
      for (const [x0, y0, dx, dy] of [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]]) {
        if (x0 >= width || y0 >= height) continue; // an empty pass has no scanlines at all
        for (let y = y0; y < height; y += dy) {
          parts.push(0);
          for (let x = x0; x < width; x += dx) parts.push(value(x, y));
        }
      }
      const p = file(`adam7-${width}x${height}.png`, handMadePng({ width, height, interlace: 1, scanlines: Buffer.from(parts) }));
      const { rgba } = readPng(p);
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) expect(rgba[(y * width + x) * 4]).toBe(Math.fround(value(x, y) / 255));
    }
  });
});

describe('resizeImage', () => {
  it('preserves the mean and stays within the input range when area-averaging by odd ratios', () => {
    const src = randomArray(30 * 45 * 3, 7, 0, 1);
    const out = resizeImage(src, 30, 45, 3, 28, 28);
    const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(out) - mean(src))).toBeLessThan(1e-6);
    expect(Math.min(...out)).toBeGreaterThanOrEqual(Math.min(...src));
    expect(Math.max(...out)).toBeLessThanOrEqual(Math.max(...src));
  });

  it('enlarges bilinearly with half-pixel centres', () => {
    expect(Array.from(resizeImage(Float32Array.of(0.2, 1), 1, 2, 1, 1, 4))).toEqual(Array.from([0.2, 0.4, 0.8, 1], Math.fround));
    // Mixed: rows grow (bilinear), columns shrink (area average).
    const out = resizeImage(Float32Array.of(0, 1, 1, 1), 2, 2, 1, 4, 1);
    expect(Array.from(out)).toEqual(Array.from([0.5, 0.625, 0.875, 1], Math.fround));
  });

  it('is the 2-D resampling each axis defines, on odd sizes, up, down and mixed, any channel count', () => {
    // Float64 reference, not separable: each output sums every input pixel by both axes' weights.
    const weightOf = (o: number, i: number, inSize: number, outSize: number): number => {
      const s = inSize / outSize;
      if (inSize === outSize) return i === o ? 1 : 0;
      if (outSize < inSize) return Math.max(0, Math.min((o + 1) * s, i + 1) - Math.max(o * s, i)) / s;
      const x = Math.min(Math.max((o + 0.5) * s - 0.5, 0), inSize - 1);
      const i0 = Math.floor(x);
      return i === i0 ? 1 - (x - i0) : i === i0 + 1 ? x - i0 : 0;
    };
    const cases: [number, number, number, number, number][] = [[7, 11, 3, 5, 3], [5, 3, 13, 9, 3], [9, 4, 4, 10, 1], [6, 7, 6, 2, 2], [3, 8, 11, 8, 4], [13, 13, 5, 5, 3], [1, 9, 1, 2, 3]];
    cases.forEach(([h, w, oh, ow, c], n) => {
      const src = randomArray(h * w * c, 20 + n, 0, 1);
      const out = resizeImage(src, h, w, c, oh, ow);
      const ref = new Float64Array(oh * ow * c);
      for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) sum += weightOf(oy, y, h, oh) * weightOf(ox, x, w, ow) * src[(y * w + x) * c + ch];
        ref[(oy * ow + ox) * c + ch] = sum;
      }
      expect(out.length, `${h}×${w}×${c} → ${oh}×${ow}`).toBe(ref.length);
      const worst = Math.max(...Array.from(out, (v, i) => Math.abs(v - ref[i])));
      expect(worst, `${h}×${w}×${c} → ${oh}×${ow}`).toBeLessThan(1e-6);
    });
  });

  it('rejects mismatched sizes', () => {
    expect(() => resizeImage(new Float32Array(5), 2, 2, 1, 1, 1)).toThrow(/expected 2×2×1 = 4 values, found 5/);
    expect(() => resizeImage(new Float32Array(4), 2, 2, 1, 0, 1)).toThrow(/output height must be a positive integer/);
    expect(() => resizeImage(new Float32Array(4), 2, 2, 1, 2, 2.5)).toThrow('resizeImage: output width must be a positive integer, found 2.5');
  });
});

describe('encodePng and canvas', () => {
  it('round-trips RGBA bytes', () => {
    const data = Uint8Array.from(randomArray(3 * 2 * 4, 3, 0, 256), Math.floor);
    const png = PNG.sync.read(encodePng(3, 2, data));
    expect([png.width, png.height]).toEqual([3, 2]);
    expect(Array.from(png.data)).toEqual(Array.from(data));
    expect(() => encodePng(3, 2, new Uint8Array(23))).toThrow(/expected 3×2×4 = 24 bytes of RGBA, found 23/);
  });

  it('draws every supported character, each one distinct', () => {
    const need = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,-+%:/()=_ ';
    for (const ch of need) expect(FONT_CHARS, `font has ${JSON.stringify(ch)}`).toContain(ch);
    const seen = new Map<string, string>();
    for (const ch of FONT_CHARS) {
      const c = new Canvas(8, GLYPH_HEIGHT + 2);
      expect(c.drawText(ch, 1, 1, BLACK)).toBe(textWidth(ch));
      const ink = c.rgba.filter((v, i) => i % 4 === 0 && v === 0).length;
      if (ch === ' ') expect(ink).toBe(0);
      else expect(ink, `glyph ${JSON.stringify(ch)}`).toBeGreaterThan(0);
      const key = Buffer.from(c.rgba).toString('base64');
      expect(seen.get(key), `${JSON.stringify(ch)} looks like ${JSON.stringify(seen.get(key))}`).toBeUndefined();
      seen.set(key, ch);
    }
    // Scale multiplies every font pixel; an unknown character still draws (a box).
    const one = new Canvas(20, 20);
    const three = new Canvas(40, 40);
    one.drawText('A', 0, 0, BLACK);
    three.drawText('A', 0, 0, BLACK, 3);
    const inkOf = (c: Canvas) => c.rgba.filter((v, i) => i % 4 === 0 && v === 0).length;
    expect(inkOf(three)).toBe(9 * inkOf(one));
    const box = new Canvas(8, 10);
    box.drawText('\u4e2d', 0, 0, BLACK);
    expect(inkOf(box)).toBe(20); // the hollow 5×7 box
  });

  it('draws accented letters (class names of an image folder): the accent where the letter leaves room, else the letter alone; a letter and its accent written apart alike', () => {
    // Each glyph's rows, as the font's source writes them ('#' ink).
    const rows = (text: string) => {
      const c = new Canvas(textWidth(text) + 2, GLYPH_HEIGHT + 2);
      c.drawText(text, 1, 1, BLACK);
      return Array.from({ length: GLYPH_HEIGHT }, (_, y) => Array.from({ length: textWidth(text) }, (_, x) => (c.getPixel(x + 1, y + 1)[0] === 0 ? '#' : '.')).join(''));
    };
    const e = rows('e');
    expect(rows('\u00e9')).toEqual(['...#.', '..#..', ...e.slice(2)]); // é: acute over e
    expect(rows('\u00e8')).toEqual(['.#...', '..#..', ...e.slice(2)]); // è
    expect(rows('\u00fc')).toEqual(['.#.#.', '.....', ...rows('u').slice(2)]); // ü
    expect(rows('\u00f1')).toEqual(['.##.#', '#.##.', ...rows('n').slice(2)]); // ñ
    expect(rows('\u00e7')).toEqual([...rows('c').slice(0, 7), '..#..']); // ç: the cedilla in the descender row
    expect(rows('\u00ed')).toEqual(['...#.', '..#..', ...rows('i').slice(2)]); // í: the accent in place of the dot
    expect(rows('\u00c9')).toEqual(rows('E')); // É: no room above a capital
    expect(rows('\u011f')).toEqual(rows('\u4e2d')); // ğ: a breve is not among the accents drawn: the box
    // Written apart (NFD, as macOS names files): one character, drawn and measured as the composed one.
    expect(textWidth('cafe\u0301')).toBe(textWidth('caf\u00e9'));
    expect(rows('cafe\u0301')).toEqual(rows('caf\u00e9'));
    const c = new Canvas(40, 12);
    expect(c.drawText('cafe\u0301', 0, 0, BLACK)).toBe(textWidth('caf\u00e9'));
  });

  it('draws lines of the requested thickness and clips', () => {
    const c = new Canvas(40, 20);
    c.drawLine(10, 5.5, 30, 5.5, BLACK, 1);
    expect(c.getPixel(20, 5)).toEqual([0, 0, 0, 255]);
    expect(c.getPixel(20, 4)).toEqual([255, 255, 255, 255]);
    expect(c.getPixel(20, 6)).toEqual([255, 255, 255, 255]);
    c.drawLine(10, 12.5, 30, 12.5, BLACK, 3);
    for (const y of [11, 12, 13]) expect(c.getPixel(20, y)[0]).toBe(0);
    expect(c.getPixel(20, 10)[0]).toBe(255);
    expect(c.getPixel(20, 14)[0]).toBe(255);
    c.fillRect(-5, -5, 1000, 1000, [1, 2, 3]); // clipped, no throw
    expect(c.getPixel(39, 19)).toEqual([1, 2, 3, 255]);
  });
});

describe('canvas edges', () => {
  it('textWidth has no trailing spacing; the clip and getPixel end before their right and bottom edges; a stroke no wider than half the rectangle; a line under 1 px drawn 1 px thick', () => {
    expect([textWidth(''), textWidth('ab'), textWidth('ab', 2)]).toEqual([0, 11, 22]);
    const black = (c: Canvas) => c.rgba.filter((v, i) => i % 4 === 0 && v === 0).length;
    const c = new Canvas(20, 20);
    c.setClip(2, 2, 5, 5); // [2, 7) × [2, 7)
    c.setPixel(7, 3, BLACK);
    c.setPixel(3, 7, BLACK);
    c.setPixel(6, 6, BLACK);
    expect(black(c)).toBe(1);
    expect(c.getPixel(6, 6)).toEqual([0, 0, 0, 255]);
    expect(() => c.getPixel(20, 0)).toThrow('Canvas.getPixel: (20, 0) is outside 20×20');
    const stroke = new Canvas(10, 10);
    stroke.strokeRect(4, 4, 2, 2, BLACK, 3); // 3 px asked, 1 px (half of 2) drawn: the 2×2 square, nothing outside it
    expect(black(stroke)).toBe(4);
    const thin = new Canvas(20, 10);
    const one = new Canvas(20, 10);
    thin.drawLine(0, 0, 10, 3, BLACK, 0);
    one.drawLine(0, 0, 10, 3, BLACK, 1);
    expect(black(thin)).toBe(black(one));
  });
});

describe('renderFeatureMapGrid', () => {
  const base = (): FeatureMapGridOptions => {
    const images = new Float32Array(2 * 4 * 4 * 1);
    images[16 + 1 * 4 + 3] = 1; // image 1, pixel (y 1, x 3) white
    const maps = new Float32Array(2 * 3 * 3 * 3);
    // Row 0: class 0 has 2 at (0, 0) and class 1 has 1 at (2, 2): 1 shows as mid grey.
    maps[(0 * 3 + 0) * 3 + 0] = 2;
    maps[(2 * 3 + 2) * 3 + 1] = 1;
    // Row 1: a single bright value, class 2 at (y 1, x 2).
    maps[27 + (1 * 3 + 2) * 3 + 2] = 5;
    return { images, imageShape: [4, 4, 1], maps, mapShape: [3, 3, 3], classNames: ['zero', 'one', 'aquatic_mammals'], cellScale: 10 };
  };

  it('puts each map value, scaled by its row maximum, at its place', () => {
    const opts = base();
    const png = decode(renderFeatureMapGrid(opts));
    const layout = featureMapGridLayout(opts);
    expect([png.width, png.height]).toEqual([layout.width, layout.height]);
    expect(layout.cellScale).toBe(10);
    const at = (i: number, k: number, y: number, x: number) => {
      const r = layout.mapRect(i, k);
      return png.px(r.x + x * 10 + 5, r.y + y * 10 + 5);
    };
    expect(at(1, 2, 1, 2)).toEqual([255, 255, 255]);
    for (let k = 0; k < 3; k++) {
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) if (!(k === 2 && y === 1 && x === 2)) expect(at(1, k, y, x)).toEqual([0, 0, 0]);
      }
    }
    // Block edges: the bright block covers exactly its 10×10 pixels.
    const r = layout.mapRect(1, 2);
    expect(png.px(r.x + 20, r.y + 10)).toEqual([255, 255, 255]);
    expect(png.px(r.x + 29, r.y + 19)).toEqual([255, 255, 255]);
    expect(png.px(r.x + 19, r.y + 10)).toEqual([0, 0, 0]);
    expect(png.px(r.x + 20, r.y + 20)).toEqual([0, 0, 0]);
    expect(at(0, 0, 0, 0)).toEqual([255, 255, 255]);
    expect(at(0, 1, 2, 2)).toEqual([128, 128, 128]);
    // The input image, upscaled to the maps' height.
    const ir = layout.imageRect(1);
    const s = layout.imageScale;
    expect(s).toBe(8);
    expect(png.px(ir.x + 3 * s + 1, ir.y + 1 * s + 1)).toEqual([255, 255, 255]);
    expect(png.px(ir.x + 2 * s + 1, ir.y + 1 * s + 1)).toEqual([0, 0, 0]);
  });

  it('frames the true and predicted classes and marks NaN', () => {
    const opts = { ...base(), labels: [0, 1], predicted: [0, 2], colormap: 'hot' as const };
    opts.maps[0] = NaN;
    const buf = renderFeatureMapGrid(opts);
    const png = decode(buf);
    const layout = featureMapGridLayout(opts);
    const frame = (i: number, k: number) => png.px(layout.mapRect(i, k).x - 3, layout.mapRect(i, k).y + 5);
    expect(frame(0, 0)).toEqual([0, 150, 60]); // right: green
    expect(frame(1, 2)).toEqual([215, 25, 28]); // wrong prediction: red
    expect(frame(1, 1)).toEqual([30, 100, 230]); // true class: blue
    expect(frame(0, 1)).toEqual([255, 255, 255]); // no frame
    const r = layout.mapRect(0, 0);
    expect(png.px(r.x + 5, r.y + 5)).toEqual([255, 0, 255]);
    expect(countColor(buf, [255, 255, 255])).toBeGreaterThan(0);
  });

  it("signed: linear class maps scaled by the row's largest magnitude, positive to yellow and negative to cyan, 0 black; means: each map's mean written under it", () => {
    const opts: FeatureMapGridOptions = { ...base(), colormap: 'signed', means: true };
    opts.maps[(2 * 3 + 2) * 3 + 1] = -1; // row 0: 2 at class 0 (0, 0), −1 at class 1 (2, 2)
    const png = decode(renderFeatureMapGrid(opts));
    const layout = featureMapGridLayout(opts);
    const at = (i: number, k: number, y: number, x: number) => png.px(layout.mapRect(i, k).x + x * 10 + 5, layout.mapRect(i, k).y + y * 10 + 5);
    expect(at(0, 0, 0, 0)).toEqual([255, 255, 0]); // +2 of 2: yellow
    expect(at(0, 1, 2, 2)).toEqual([0, 0, 255]); // −1 of 2: half way to cyan, blue
    expect(at(0, 1, 0, 0)).toEqual([0, 0, 0]);
    // Clipped at 0 ('gray') the −1 is black, as 0 is: a map that lowers its logit looked like one that does not.
    expect(decode(renderFeatureMapGrid({ ...opts, colormap: 'gray' })).px(layout.mapRect(0, 1).x + 25, layout.mapRect(0, 1).y + 25)).toEqual([0, 0, 0]);
    // The means' line: text below each map, inside the row (the rows are taller for it).
    const plain = featureMapGridLayout(base());
    expect(layout.height).toBeGreaterThan(plain.height);
    const inkBelow = (p: ReturnType<typeof decode>, r: { x: number; y: number; w: number; h: number }) => {
      let n = 0;
      for (let y = r.y + r.h + 4; y < r.y + r.h + 4 + 8; y++) for (let x = r.x; x < r.x + r.w; x++) if (p.px(x, y).every((v) => v === 0)) n++;
      return n;
    };
    for (let k = 0; k < 3; k++) expect(inkBelow(png, layout.mapRect(0, k)), `map ${k}`).toBeGreaterThan(5);
    const withoutMeans = decode(renderFeatureMapGrid({ ...opts, means: false }));
    expect(inkBelow(withoutMeans, featureMapGridLayout({ ...opts, means: false }).mapRect(0, 0))).toBe(0);
    // Row 0's means: 2 / 9 and −1 / 9 and 0, written as 0.222, -0.111, 0.000 (text differs, so the ink does).
    expect(inkBelow(png, layout.mapRect(0, 0))).not.toBe(inkBelow(png, layout.mapRect(0, 1)));
    // A mean that rounds to 0 from below is written 0.000, as one from above: not -0.000.
    const tiny = { ...opts, maps: opts.maps.slice() };
    tiny.maps[(2 * 3 + 2) * 3 + 1] = -0.0036; // class 1's mean: −0.0004
    tiny.maps[(1 * 3 + 1) * 3 + 2] = 0.0036; // class 2's mean: +0.0004
    const tinyPng = decode(renderFeatureMapGrid(tiny));
    expect(inkBelow(tinyPng, layout.mapRect(0, 1))).toBe(inkBelow(tinyPng, layout.mapRect(0, 2)));
  });

  it("hot: black to red to yellow to white; an infinite value is marked, and does not set the row's scale", () => {
    const one = (values: number[], colormap?: 'hot'): { png: ReturnType<typeof decode>; at: (k: number) => number[] } => {
      const opts: FeatureMapGridOptions = { images: new Float32Array(4), imageShape: [2, 2, 1], maps: Float32Array.from(values), mapShape: [1, 1, values.length], classNames: values.map((_, k) => `c${k}`), cellScale: 4, colormap };
      const png = decode(renderFeatureMapGrid(opts));
      const layout = featureMapGridLayout(opts);
      return { png, at: (k) => png.px(layout.mapRect(0, k).x + 1, layout.mapRect(0, k).y + 1) };
    };
    const hot = one([0, 1, 2], 'hot');
    expect([0, 1, 2].map((k) => hot.at(k))).toEqual([[0, 0, 0], [255, 128, 0], [255, 255, 255]]);
    const inf = one([Infinity, 1, 2]);
    expect([0, 1, 2].map((k) => inf.at(k))).toEqual([[255, 0, 255], [128, 128, 128], [255, 255, 255]]);
  });

  it('layout: cells about 64 px (rounded), the input a whole multiple near their height; a caption line for each of means, labels, predictions; cellScale a positive integer', () => {
    const opts: FeatureMapGridOptions = { images: new Float32Array(36), imageShape: [6, 6, 1], maps: new Float32Array(50), mapShape: [5, 5, 2], classNames: ['a', 'b'] };
    const layout = featureMapGridLayout(opts);
    expect([layout.cellScale, layout.imageScale]).toEqual([13, 11]); // 64/5 = 12.8 → 13; 65/6 = 10.8 → 11
    const height = (o: Partial<FeatureMapGridOptions>) => featureMapGridLayout({ ...base(), ...o }).height;
    const plain = height({});
    expect([height({ predicted: [0, 1] }), height({ labels: [0, 1] }), height({ labels: [0, 1], predicted: [0, 1] })]).toEqual([plain + 10, plain + 10, plain + 10]);
    expect(() => renderFeatureMapGrid({ ...base(), cellScale: 2.5 })).toThrow('renderFeatureMapGrid: cellScale must be a positive integer, found 2.5');
    expect(() => renderFeatureMapGrid({ ...base(), labels: [0, 1, 2] })).toThrow('renderFeatureMapGrid: labels has 3 entries, expected one per image (2)');
  });

  it("means: 3 significant digits (100 has none after the point, 10 one, 1 two, under 1 three); headers wrap at a break in the second half of a cell's width, the next line without its leading spaces", () => {
    const means = [100, 10, 1, 0.5];
    const names = ['a bcdefghij', 'abcdefg  hij', 'x', 'y'];
    const opts: FeatureMapGridOptions = { images: new Float32Array(4), imageShape: [2, 2, 1], maps: Float32Array.from(means), mapShape: [1, 1, 4], classNames: names, cellScale: 40, means: true };
    const buf = renderFeatureMapGrid(opts);
    const layout = featureMapGridLayout(opts);
    const inkAt = (x: number, y: number, w: number) => countColor(buf, BLACK, (px, py) => px >= x && px < x + w && py >= y && py < y + GLYPH_HEIGHT);
    ['100', '10.0', '1.00', '0.500'].forEach((text, k) => {
      const r = layout.mapRect(0, k);
      expect(inkAt(r.x, r.y + r.h + 4, r.w + 6), text).toBe(inkOf(text));
    });
    // Cells of 40 px: 7 characters a header line (40 + 8 − 2 = 46 px).
    const headerY = 10 + 2 * 10 + 6; // margin, then the caption (two lines with means)
    [['a bcdef', 'ghij'], ['abcdefg', 'hij']].forEach((lines, k) => {
      const x = layout.mapRect(0, k).x;
      lines.forEach((line, j) => {
        expect(inkAt(x, headerY + j * 10, textWidth(line)), line).toBe(inkOf(line));
        expect(inkAt(x, headerY + j * 10, 46), line).toBe(inkOf(line));
      });
    });
  });

  it('rejects inconsistent inputs', () => {
    expect(() => renderFeatureMapGrid({ ...base(), classNames: ['a', 'b'] })).toThrow(/3 maps per image \(mapShape\[2\]\) but 2 class names/);
    expect(() => renderFeatureMapGrid({ ...base(), maps: new Float32Array(27) })).toThrow(/2 images but maps for 1/);
    expect(() => renderFeatureMapGrid({ ...base(), labels: [0, 3] })).toThrow(/labels contains 3, expected a class index in \[0, 3\)/);
    expect(() => renderFeatureMapGrid({ ...base(), imageShape: [4, 2, 2] })).toThrow(/1 or 3 channels, found 2/);
  });
});

describe('renderCurves', () => {
  it('draws each series in its colour where its points are', () => {
    const buf = renderCurves(
      [
        { name: 'flat', points: [[0, 1], [10, 1]] },
        { name: 'split', points: [[1, 0.5], [5, NaN], [9, 1.5]] },
        { name: 'nothing', points: [] },
      ],
      { title: 'curves', xLabel: 'x', yLabel: 'y', width: 500, height: 300 },
    );
    const png = PNG.sync.read(buf);
    expect([png.width, png.height]).toEqual([500, 300]);
    // The flat series is one horizontal run across most of the plot, near the middle.
    let bestRow = -1;
    let bestCount = 0;
    for (let y = 0; y < 300; y++) {
      let n = 0;
      for (let x = 0; x < 500; x++) {
        const i = (y * 500 + x) * 4;
        if (png.data[i] === SERIES_COLORS[0][0] && png.data[i + 1] === SERIES_COLORS[0][1] && png.data[i + 2] === SERIES_COLORS[0][2]) n++;
      }
      if (n > bestCount) [bestRow, bestCount] = [y, n];
    }
    expect(bestCount).toBeGreaterThan(250);
    expect(bestRow).toBeGreaterThan(300 * 0.35);
    expect(bestRow).toBeLessThan(300 * 0.65);
    // The NaN splits 'split' into two single points: two 5×5 markers and the 20×3 legend swatch, no line.
    expect(countColor(buf, SERIES_COLORS[1])).toBe(2 * 25 + 60);
    expect(countColor(buf, SERIES_COLORS[2])).toBe(0); // empty series: no swatch, no line
  });

  it('renders axes and "no data" when nothing is drawable', () => {
    const cases: [boolean, [number, number][]][] = [
      [false, [[0, NaN], [Infinity, 1]]],
      [true, [[1, -1], [2, 0]]], // nothing positive on a log axis
    ];
    for (const [logY, points] of cases) {
      const buf = renderCurves([{ name: 'a', points }], { title: 't', xLabel: 'x', yLabel: 'y', logY });
      const png = decode(buf);
      expect([png.width, png.height]).toEqual([800, 500]);
      expect(countColor(buf, BLACK)).toBeGreaterThan(1000); // frame, ticks, labels
      expect(countColor(buf, [120, 120, 120])).toBeGreaterThan(100); // muted "no data" note and legend entry
      expect(countColor(buf, SERIES_COLORS[0])).toBe(0);
    }
    expect(decode(renderCurves([], { title: 't', xLabel: 'x', yLabel: 'y', width: 300, height: 200 })).width).toBe(300);
    expect(() => renderCurves([], { title: 't', xLabel: 'x', yLabel: 'y', width: 60, height: 40 })).toThrow(/too small/);
  });

  it('picks readable ticks', () => {
    expect(niceAxis(0, 1).ticks.map((t) => t.label)).toEqual(['0', '0.2', '0.4', '0.6', '0.8', '1.0']);
    expect(niceAxis(0.3, 97).ticks.map((t) => t.label)).toEqual(['0', '20', '40', '60', '80', '100']);
    expect(niceAxis(-3, 1234567).ticks.map((t) => t.label)).toEqual(['-5.0e5', '0', '5.0e5', '1.0e6', '1.5e6']);
    expect(logAxis(0.24, 2.4).ticks.map((t) => t.label)).toEqual(['0.1', '0.2', '0.5', '1', '2', '5', '10']);
    expect(logAxis(1e-7, 300).ticks.map((t) => t.label)).toEqual(['1e-7', '1e-5', '0.001', '0.1', '10', '1000']);
  });

  it('ticks at the edges: exponent form from 1e6 on, a reversed or one-value range (negative too), 1-2-5 multiples up to three decades, 1…9 where 1-2-5 give only 3', () => {
    expect(niceAxis(0, 1e6).ticks.map((t) => t.label)).toEqual(['0', '2.0e5', '4.0e5', '6.0e5', '8.0e5', '1.0e6']);
    expect(niceAxis(1, 0)).toEqual(niceAxis(0, 1));
    const flat = niceAxis(-5, -5);
    expect(flat.ticks.map((t) => t.label)).toEqual(['-5.6', '-5.4', '-5.2', '-5.0', '-4.8', '-4.6', '-4.4']);
    expect([flat.lo, flat.hi]).toEqual([flat.ticks[0].value, flat.ticks.at(-1)!.value]);
    expect(logAxis(1, 1000).ticks.map((t) => t.label)).toEqual(['1', '2', '5', '10', '20', '50', '100', '200', '500', '1000']);
    expect(logAxis(1, 5.5).ticks.map((t) => t.label)).toEqual(['1', '2', '3', '4', '5']);
  });

  it('a plot area under 20 px is refused; markers on a series of 40 points, not 41; an empty series\'s legend name says "(no data)", cut only past its room; a title too wide at twice the size is drawn at 1', () => {
    expect(() => renderCurves([], { title: 't', xLabel: 'x', yLabel: 'y', width: 63, height: 200 })).toThrow('drawPlot: 63×200 px is too small for a plot (plot area 10×130)');
    const line = (n: number) => renderCurves([{ name: 'a', points: Array.from({ length: n }, (_, i): [number, number] => [(40 * i) / (n - 1), 1]) }], { title: 't', xLabel: 'x', yLabel: 'y' });
    expect(countColor(line(40), SERIES_COLORS[0])).toBeGreaterThan(countColor(line(41), SERIES_COLORS[0]) + 40 * 10);
    // The legend is as wide as its longest name, 17 characters: 'nothing (no data)' fits whole.
    const buf = renderCurves([{ name: 'flat', points: [[0, 1], [10, 1]] }, { name: 'split', points: [[1, 0.5], [9, 1.5]] }, { name: 'nothing', points: [] }], { title: 'curves', xLabel: 'x', yLabel: 'y', width: 500, height: 300 });
    expect(countColor(buf, [120, 120, 120])).toBe(inkOf('nothing (no data)'));
    const title = 'a title too wide at scale two.'; // 30 characters: 358 px at scale 2, 179 at 1
    const narrow = renderCurves([], { title, xLabel: 'x', yLabel: 'y', width: 300, height: 300 });
    expect(countColor(narrow, BLACK, (_, y) => y < 20)).toBe(inkOf(title));
  });
});

describe('renderTrainingCurves', () => {
  it("says on the plot where the test set changed during the run (a resume with another --test-limit)", () => {
    const run = (sizes: number[]) => sizes.map((n, e) => ({ kind: 'epoch', epoch: e + 1, trainLoss: 1 / (e + 1), testError: 0.3 / (e + 1), testImages: n }));
    expect(testSetChange(run([300, 300]))).toBeNull();
    expect(testSetChange(run([300, 300, 400]))).toBe('the test set changed during the run (300, 400 images): its test error curve mixes them');
    // Dark pixels at the top, between the panels' titles: the note's.
    const darkOnTop = (buf: Buffer) => {
      const png = decode(buf);
      let n = 0;
      for (let y = 0; y < 24; y++) for (let x = 450; x < 950; x++) if (png.px(x, y)[0] < 100) n++;
      return n;
    };
    expect(darkOnTop(renderTrainingCurves(run([300, 300, 300])))).toBe(0);
    expect(darkOnTop(renderTrainingCurves(run([300, 300, 400])))).toBeGreaterThan(50);
    // A fork whose parent's log was found nowhere: its curves start after the fork, and say so.
    const forkRecord = { kind: 'resume', run: 'F', parent: 'P', epoch: 2, step: 20, from: '/gone/checkpoint.safetensors' };
    const orphan: object[] = [forkRecord, ...run([300, 300, 300]).slice(2)];
    expect(historyGap(orphan)).toBe("a fork after epoch 2 whose parent's log was not found: epochs 1–2 are missing");
    expect(historyGap(run([300, 300]))).toBeNull();
    // Forked from a checkpoint saved without a run id (parent null): as much missing.
    expect(historyGap([{ ...forkRecord, parent: null }, ...orphan.slice(1)])).toBe("a fork after epoch 2 whose parent's log was not found: epochs 1–2 are missing");
    // Resumed in its own directory (no parent) after its log was deleted: the log starts at the resume.
    const { parent: _, ...ownResume } = forkRecord;
    expect(historyGap([ownResume, ...orphan.slice(1)])).toBe('a run resumed after epoch 2 whose log before that was not found: epochs 1–2 are missing');
    // A resume after the log's own start: nothing missing.
    expect(historyGap([...run([300, 300]), ownResume, ...orphan.slice(1)])).toBeNull();
    expect(darkOnTop(renderTrainingCurves(orphan))).toBeGreaterThan(50);
  });

  it('draws loss and error panels from step and epoch records', () => {
    const records: object[] = [{ kind: 'config', model: 'mnist' }];
    for (let e = 0; e < 4; e++) {
      for (let s = 0; s < 20; s++) records.push({ kind: 'step', step: e * 20 + s, epoch: e, loss: s === 3 && e === 1 ? null : 2 / (1 + e + s / 20) });
      records.push({ kind: 'epoch', epoch: e + 1, trainLoss: 2 / (1.5 + e), testLoss: 2.2 / (1.5 + e), testError: 0.5 / (1 + e), valError: 0.6 / (1 + e) });
    }
    const buf = renderTrainingCurves(records, { width: 1000, height: 400, title: 'mnist' });
    const png = decode(buf);
    expect([png.width, png.height]).toEqual([1000, 400]);
    // Loss panel: step loss, train loss, test loss; error panel: validation, test error. One colour
    // per split in both panels (they restarted per panel: test was orange on one, green on the other).
    for (const c of Object.values(CURVE_COLORS)) expect(countColor(buf, c)).toBeGreaterThan(100);
    expect(countColor(buf, SERIES_COLORS[3])).toBe(0);
    // The x axis is "epochs completed": epoch e's steps (index e - 1) end where its record sits.
    const { loss, error } = trainingCurveSeries(records);
    expect(loss.map((c) => c.name)).toEqual(['step loss (mean of 3)', 'train loss (epoch)', 'test loss']);
    expect([...loss, ...error].map((c) => c.color)).toEqual([CURVE_COLORS.steps, CURVE_COLORS.train, CURVE_COLORS.test, CURVE_COLORS.validation, CURVE_COLORS.test]);
    const stepX = loss[0].points.map((p) => p[0]);
    expect([stepX[0], stepX[19], stepX[20], stepX.at(-1)]).toEqual([1 / 20, 1, 1 + 1 / 20, 4]);
    for (const c of [...loss.slice(1), ...error]) expect(c.points.map((p) => p[0])).toEqual([1, 2, 3, 4]);
    // A resumed run's own log (epochs 3 and 4 only) lands on the same x positions.
    const laterEpochs = (r: object) => {
      const { kind, epoch } = r as { kind: string; epoch?: number };
      return epoch === undefined || epoch >= (kind === 'step' ? 2 : 3);
    };
    const resumed = trainingCurveSeries(records.filter(laterEpochs));
    expect(resumed.loss[0].points.map((p) => p[0])).toEqual(stepX.slice(40));
    expect(resumed.error.at(-1)!.points.map((p) => p[0])).toEqual([3, 4]);
    // The last, unfinished epoch is drawn at a finished one's pace.
    const cut = trainingCurveSeries(records.slice(0, 1 + 2 * 21 + 5));
    expect(cut.loss[0].points.at(-1)![0]).toBeCloseTo(2 + 5 / 20, 12);
    const empty = renderTrainingCurves([]);
    expect(decode(empty).width).toBe(1400);
    expect(countColor(empty, [120, 120, 120])).toBeGreaterThan(100); // two "no data" notes
  });

  // A step record every 20 steps, placed by its `step`: they were spread evenly by count, so an
  // epoch of 8 steps drew its one record (step 0) at the epoch's end, and an unfinished epoch after
  // a resume that changed the batch size went at the old epochs' pace.
  it('places step losses by their step: epochs of 100 steps, then a resume at 50 steps an epoch, the last one unfinished', () => {
    const steps = (epoch: number, from: number, to: number) =>
      Array.from({ length: Math.ceil((to - from) / 20) }, (_, i) => ({ kind: 'step', epoch, step: from + 20 * i, loss: 1, lr: 0.1 }));
    const epoch = (n: number, step: number) => ({ kind: 'epoch', epoch: n, step, trainLoss: 1, trainError: 0.1, lr: 0.1, imgPerSec: 1, seconds: 1 });
    const records: object[] = [
      { kind: 'start', run: 'r', stretch: 'a', time: '2026-12-05T00:00:00Z', stepsPerEpoch: 100 },
      ...steps(0, 0, 100), epoch(1, 100), ...steps(1, 100, 200), epoch(2, 200),
      { kind: 'resume', run: 'r', stretch: 'b', fromStretch: 'a', epoch: 2, step: 200, from: 'ckpt', stepsPerEpoch: 50 },
      ...steps(2, 200, 250), epoch(3, 250), ...steps(3, 250, 290),
    ];
    const x = trainingCurveSeries(records).loss[0].points.map((p) => p[0]);
    expect(x.length).toBe(5 + 5 + 3 + 2);
    [0.01, 0.81, 1.01, 1.81, 2 + 1 / 50, 2 + 41 / 50, 3 + 1 / 50, 3 + 21 / 50].forEach((want, i) => expect(x[[0, 4, 5, 9, 10, 12, 13, 14][i]]).toBeCloseTo(want, 12));
    // A log from before stepsPerEpoch: the unfinished epoch goes at the previous epoch's pace.
    const older = records.map((r) => ({ ...r, stepsPerEpoch: undefined }));
    expect(trainingCurveSeries(older).loss[0].points.at(-1)![0]).toBeCloseTo(3 + 21 / 50, 12);
    // A first epoch still running, its records at steps 0-40 of 100: not a whole epoch done.
    expect(trainingCurveSeries(records.slice(0, 4)).loss[0].points.map((p) => p[0])).toEqual([0.01, 0.21, 0.41]);
  });
});

describe('training curves: smoothing, thinning, pace', () => {
  it('the moving average leaves a missing loss out of its count; past 800 steps every other one is kept, and the last; an unfinished epoch goes at the median pace', () => {
    const y = trainingCurveSeries([2, null, 4, 4, 4].map((loss, j) => ({ kind: 'step', epoch: 0, step: j, loss })), { window: 3 }).loss[0].points.map((p) => p[1]);
    expect(y).toEqual([2, 3, 4, 4, 4]);
    const many = Array.from({ length: 1000 }, (_, j) => ({ kind: 'step', epoch: 0, step: j, loss: 1 }));
    const thinned = trainingCurveSeries([{ kind: 'start', stepsPerEpoch: 1000 }, ...many]).loss[0].points;
    expect(thinned).toHaveLength(501);
    expect([thinned[1][0], thinned.at(-1)![0]]).toEqual([3 / 1000, 1]);
    // Epochs of 10, 30 and 20 step records (no step numbers, no stepsPerEpoch), then 5 of an unfinished one: at the median's pace, 20.
    const sizes = [10, 30, 20, 5];
    const records = sizes.flatMap((n, e) => [...Array.from({ length: n }, () => ({ kind: 'step', epoch: e, loss: 1 })), ...(e < 3 ? [{ kind: 'epoch', epoch: e + 1, trainLoss: 1 }] : [])]);
    expect(trainingCurveSeries(records).loss[0].points.at(-1)![0]).toBe(3 + 5 / 20);
  });

  it('a note on the curves (no title) is drawn in the small type', () => {
    const records = [300, 200].map((n, e) => ({ kind: 'epoch', epoch: e + 1, trainLoss: 1, testError: 0.1, testImages: n }));
    const note = testSetChange(records)!;
    expect(countColor(renderTrainingCurves(records), BLACK, (_, y) => y < 20)).toBe(inkOf(note));
  });
});

describe('drawPlot: where things land', () => {
  /** Columns (or rows) holding at least `min` black pixels: the frame's borders. */
  const blackLines = (c: Canvas, axis: 'x' | 'y', min = 100) => {
    const out: number[] = [];
    const [n, m] = axis === 'x' ? [c.width, c.height] : [c.height, c.width];
    for (let i = 0; i < n; i++) {
      let k = 0;
      for (let j = 0; j < m; j++) {
        const [r, g, b] = axis === 'x' ? c.getPixel(i, j) : c.getPixel(j, i);
        if (r === 0 && g === 0 && b === 0) k++;
      }
      if (k >= min) out.push(i);
    }
    return out;
  };
  const is = (c: Canvas, x: number, y: number, col: Rgb) => c.getPixel(x, y).slice(0, 3).every((v, i) => v === col[i]);
  /** The extent of `col` inside the frame (x0 < x < x1, y0 < y < y1). */
  const extent = (c: Canvas, col: Rgb, [x0, x1]: number[], [y0, y1]: number[]) => {
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let y = y0 + 1; y < y1; y++) {
      for (let x = x0 + 1; x < x1; x++) {
        if (!is(c, x, y, col)) continue;
        minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      }
    }
    return { minX, maxX, minY, maxY };
  };
  const opts = { title: 't', xLabel: 'x', yLabel: 'y' };

  it('draws the first and last values 4 px inside the frame, low values low, so their 5-px markers are whole', () => {
    const c = new Canvas(500, 300);
    drawPlot(c, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points: [[0, 0], [10, 10]] }], opts);
    const xs = blackLines(c, 'x');
    const ys = blackLines(c, 'y');
    expect(xs).toHaveLength(2); // the frame's left and right borders
    expect(ys).toHaveLength(2);
    const [left, right] = xs;
    const [top, bottom] = ys;
    // Both axes run 0..10: (0, 0) is centred 4.5 px inside the bottom-left corner, (10, 10) inside the top-right one.
    expect(extent(c, SERIES_COLORS[0], xs, ys)).toEqual({ minX: left + 2, maxX: right - 2, minY: top + 2, maxY: bottom - 2 });
    expect(is(c, left + 4, bottom - 4, SERIES_COLORS[0])).toBe(true);
    expect(is(c, right - 4, top + 4, SERIES_COLORS[0])).toBe(true);
    expect(is(c, left + 4, top + 4, SERIES_COLORS[0])).toBe(false);
    expect(is(c, right - 4, bottom - 4, SERIES_COLORS[0])).toBe(false);
  });

  it('logX: x on a log10 axis (a learning rate\'s): a decade is the same width anywhere; x ≤ 0 is left out', () => {
    // y = log10(x) + 3 is a straight line on a log x axis: its middle point, x = 0.01, at the frame's centre.
    const points: [number, number][] = [[1e-3, 0], [1e-2, 1], [1e-1, 2]];
    const at = (logX: boolean) => {
      const c = new Canvas(500, 300);
      drawPlot(c, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points }], { ...opts, logX });
      const [left, right] = blackLines(c, 'x');
      const [top, bottom] = blackLines(c, 'y');
      return is(c, Math.round((left + right) / 2), Math.round((top + bottom) / 2), SERIES_COLORS[0]);
    };
    expect(at(true)).toBe(true);
    expect(at(false)).toBe(false); // (linear: 0.01 sits a tenth of the way along)
    const none = new Canvas(500, 300);
    drawPlot(none, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points: [[0, 1], [-1, 2]] }], { ...opts, logX: true });
    expect(extent(none, SERIES_COLORS[0], blackLines(none, 'x'), blackLines(none, 'y')).minX).toBe(Infinity);
  });

  it('zeroOnFloor: on a log axis, 0 is drawn on the bottom edge and the axis spans the rest (an error curve reaching 0 %)', () => {
    const points: [number, number][] = [[1, 10], [2, 1], [3, 0], [4, 0]];
    const plain = new Canvas(500, 300);
    drawPlot(plain, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points }], { ...opts, logY: true });
    const floored = new Canvas(500, 300);
    drawPlot(floored, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points }], { ...opts, logY: true, zeroOnFloor: true });
    const xs = blackLines(floored, 'x');
    const ys = blackLines(floored, 'y');
    // Without it the zeros are left out: the curve and the x axis end at 2.
    expect(extent(plain, SERIES_COLORS[0], blackLines(plain, 'x'), blackLines(plain, 'y')).maxX).toBe(blackLines(plain, 'x')[1] - 2);
    // With it the x axis runs to 4, and the last two points sit on the bottom edge, 4 px inside.
    const e = extent(floored, SERIES_COLORS[0], xs, ys);
    expect([e.maxX, e.maxY]).toEqual([xs[1] - 2, ys[1] - 2]);
    expect(is(floored, xs[1] - 4, ys[1] - 4, SERIES_COLORS[0])).toBe(true);
    // 0 sits below the axis's range, apart from the lowest value shown (1, at x = 2): on the row of
    // the floor's markers, the curve starts at x = 3 (two thirds along), not at x = 2.
    const row = ys[1] - 4;
    let leftmost = Infinity;
    for (let x = xs[0] + 1; x < xs[1]; x++) if (is(floored, x, row, SERIES_COLORS[0])) leftmost = Math.min(leftmost, x);
    expect(leftmost).toBeGreaterThan((xs[0] + xs[1]) / 2);
    // Every value 0 (a run that never erred): drawn on the floor, not refused for an empty range.
    const zeros = new Canvas(500, 300);
    drawPlot(zeros, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points: [[1, 0], [2, 0]] }], { ...opts, logY: true, zeroOnFloor: true });
    const z = extent(zeros, SERIES_COLORS[0], blackLines(zeros, 'x'), blackLines(zeros, 'y'));
    expect([z.minY, z.maxY]).toEqual([blackLines(zeros, 'y')[1] - 6, blackLines(zeros, 'y')[1] - 2]);
  });

  it("zeroOnFloor: the '0' tick sits a tenth of the log axis's span below its lowest value", () => {
    const c = new Canvas(500, 300);
    drawPlot(c, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points: [[1, 0], [2, 1], [3, 10]] }], { ...opts, logY: true, zeroOnFloor: true });
    // Grid rows (ticks 10, 5, 2, 1 and 0 from the top): the axis spans log10 1…10, one unit, and 0 is 0.1 below it.
    const grid: number[] = [];
    for (let y = 0; y < 300; y++) if ([...Array(500).keys()].filter((x) => is(c, x, y, [228, 228, 228])).length > 100) grid.push(y);
    expect(grid).toHaveLength(5);
    const [ten, , , one, zero] = grid;
    expect(Math.abs(zero - one - 0.1 * (one - ten))).toBeLessThanOrEqual(1);
  });

  it('xFrom: the x axis reaches down to it (epochs from 0)', () => {
    const c = new Canvas(500, 300);
    drawPlot(c, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'a', points: [[5, 1], [10, 2]] }], { ...opts, xFrom: 0 });
    const xs = blackLines(c, 'x');
    const { minX, maxX } = extent(c, SERIES_COLORS[0], xs, blackLines(c, 'y'));
    // x = 5 is half way along an axis from 0 to 10 (its marker 5 px wide around the centre).
    expect(Math.abs((minX + 2) - (xs[0] + xs[1]) / 2)).toBeLessThanOrEqual(1);
    expect(maxX).toBe(xs[1] - 2);
  });

  it('cuts a long legend name to fit, with a trailing ".", inside the right margin', () => {
    const c = new Canvas(500, 300);
    drawPlot(c, { x: 0, y: 0, w: 500, h: 300 }, [{ name: 'W'.repeat(60), points: [[0, 0], [1, 1]] }], opts);
    // The legend takes 40% of the width (200 px): its text 200 − 26 px wide, 29 characters of 6 px
    // (28 W and '.'), from x = 500 − 8 − 200 + 26 = 318: the '.' ends at 318 + 28·6 + 2 = 488.
    const inkCols = blackLines(c, 'x', 1).filter((x) => x >= 318);
    expect(inkCols.at(-1)).toBe(488);
    expect(is(c, 318 + 28 * 6 + 1, 8 + (2 * 8 + 8) + 4 + 6, BLACK)).toBe(true); // the '.', its glyph row 6: the legend starts 4 px below the frame's top (pad 8, title 2·8 + 8)
  });

  it('draws text one 6-px advance per character, and upright text bottom to top', () => {
    const c = new Canvas(20, 10);
    c.drawText('II', 0, 0, BLACK); // 'I' is .###. on top
    expect([...Array(20).keys()].filter((x) => is(c, x, 0, BLACK))).toEqual([1, 2, 3, 7, 8, 9]);
    const u = new Canvas(10, 20);
    u.drawTextUp('II', 0, 19, BLACK); // glyph row 0 becomes column 0, glyph column gx row 19 − 1 − gx
    expect([...Array(20).keys()].filter((y) => is(u, 0, y, BLACK))).toEqual([9, 10, 11, 15, 16, 17]);
  });

  it('log axes narrower than a decade: 1…9 multiples where 1-2-5 give fewer than 4 ticks, else linear ticks', () => {
    expect(logAxis(2, 9).ticks.map((t) => t.label)).toEqual(['2', '3', '4', '5', '6', '7', '8', '9']);
    expect(logAxis(2, 2.5).ticks.map((t) => t.label)).toEqual(['2.0', '2.2', '2.4']);
    // Across a power of ten: 1…9 multiples would end at 10, with the points at 12.8 and 16.1 unlabelled.
    const across = logAxis(5.5, 16.1);
    expect(across.ticks.map((t) => t.label)).toEqual(['6', '8', '10', '12', '14', '16']);
    expect(across.ticks.at(-1)!.value).toBeCloseTo(Math.log10(16), 12);
  });

  it('smooths step losses over an odd window of about 1/50 of them, centred, holding the count its label says', () => {
    // 100 steps: 1/50 is 2, made odd: 3, so a spike of 3 becomes 1 at its step and either side.
    // (An even window of 2 took 3 values under the label "mean of 2".)
    const spike = (n: number) => Array.from({ length: n }, (_, j) => ({ kind: 'step', epoch: 0, step: j, loss: j === 50 ? 3 : 0 }));
    const [steps] = trainingCurveSeries(spike(100)).loss;
    expect(steps.name).toBe('step loss (mean of 3)');
    const y = steps.points.map((p) => p[1]);
    expect(y).toHaveLength(100);
    y.forEach((v, j) => expect(v, `step ${j}`).toBe(j >= 49 && j <= 51 ? 1 : 0));
    // 200 steps: 1/50 is 4, made odd: 5; 70 steps: 1/50 rounds to 1, no smoothing.
    const [five] = trainingCurveSeries(spike(200)).loss;
    expect(five.name).toBe('step loss (mean of 5)');
    expect(five.points.map((p) => p[1]).slice(47, 54)).toEqual([0, 0.6, 0.6, 0.6, 0.6, 0.6, 0].map((v) => (v ? 3 / 5 : 0)));
    expect(trainingCurveSeries(spike(70)).loss[0].name).toBe('step loss');
  });

  it('renderTrainingCurves: the error panel in the right half, on a log axis unless logError is false', () => {
    const records = [1, 2, 3].map((epoch) => ({ kind: 'epoch', epoch, trainLoss: 1 / epoch, testError: 0.4 / 2 ** (epoch - 1) }));
    const { loss, error } = trainingCurveSeries(records);
    expect(error.map((s) => [s.name, s.points])).toEqual([['test error', [[1, 40], [2, 20], [3, 10]]]]); // in percent
    expect(loss.map((s) => s.name)).toEqual(['train loss (epoch)']);
    const png = renderTrainingCurves(records, { width: 1000, height: 400 });
    expect(countColor(png, CURVE_COLORS.train, (x) => x < 500)).toBeGreaterThan(100); // train loss, left
    expect(countColor(png, CURVE_COLORS.test, (x) => x >= 500)).toBeGreaterThan(100); // test error, right
    expect(countColor(png, CURVE_COLORS.test, (x) => x < 500)).toBe(0);
    expect(png.equals(renderTrainingCurves(records, { width: 1000, height: 400, logError: true }))).toBe(true);
    expect(png.equals(renderTrainingCurves(records, { width: 1000, height: 400, logError: false }))).toBe(false);
  });

  it('renderTrainingCurves: a test error that reaches 0 % is drawn on the log axis\'s floor, its epoch not dropped', () => {
    const curves = (last: number) => renderTrainingCurves([0.2, 0.05, last].map((testError, i) => ({ kind: 'epoch', epoch: i + 1, trainLoss: 1 / (i + 1), testError })), { width: 1000, height: 400 });
    const drawn = (png: Buffer) => {
      const { data, width } = PNG.sync.read(png);
      let maxX = -1;
      let maxY = -1;
      for (let i = 0; i < data.length; i += 4) {
        const [x, y] = [(i / 4) % width, Math.floor(i / 4 / width)];
        if (x >= 500 && CURVE_COLORS.test.every((v, k) => data[i + k] === v)) (maxX = Math.max(maxX, x)), (maxY = Math.max(maxY, y));
      }
      return { maxX, maxY };
    };
    // Epoch 3 sits where a 1 % error's would: at the right end, and as low as the panel goes.
    expect(drawn(curves(0))).toEqual(drawn(curves(0.01)));
  });
});
