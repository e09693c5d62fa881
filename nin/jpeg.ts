// JPEG in, on the CPU. jpeg-js decodes (Huffman-coded baseline, extended and progressive, 8 bits,
// grey or YCbCr/RGB); this file reads the file's structure first, so that what jpeg-js would
// misread, refuse with a bare message, or decode from a cut-off file as blank rows gets an error
// that says what is wrong, and it turns the picture upright as its EXIF orientation says (as photo
// viewers and browsers show it: a phone's portrait photo is stored sideways).
//
// Colour is made as libjpeg(-turbo) makes it by default, not as jpeg-js's own output does: jpeg-js
// gives each component's samples at the component's resolution, and this file brings chroma stored
// at reduced resolution (4:2:0, 4:2:2, …) to full size with libjpeg's "fancy" (interpolating)
// upsampling, where jpeg-js repeats each sample, then converts YCbCr to RGB with libjpeg's integer
// tables (libjpeg-turbo's jdsample.c, jdmainct.c and jdcolor.c). So a 4:2:0 photo's pixels match
// libjpeg's default decoding (PIL's, for one) to within the inverse DCT's rounding.
//
// Errors are JpegFormatError (a message without the file's name); nin/images.ts names the file.
//
// jpeg-js 0.4.4 (the latest) has one bug this file works around: in a scan of one component with
// restart markers, it decodes a whole restart interval even where the scan has fewer blocks left,
// and fails on valid files (grey JPEGs, progressive AC scans) whose block count is not a multiple
// of the interval. pdf.js, which jpeg-js derives from, fixed the same loop (pdf.js PR #8164).
// `jpegJs` loads jpeg-js's decoder with that loop bound fixed and its JpegImage (the decoder of
// component planes) exported, and refuses to load another version's (package.json pins 0.4.4).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { decodeBaselineJpeg, type ComponentPlanes } from './jpeg-baseline.ts';

export class JpegFormatError extends Error {
  name = 'JpegFormatError';
}

/** A component's sampling factors (1 to 4 each): its blocks across and down in an MCU. */
export interface Sampling {
  h: number;
  v: number;
}

/** What a JPEG's headers say, read without decoding. */
export interface JpegFrame {
  /** As stored, before the orientation is applied. */
  width: number;
  height: number;
  /** 1: grey; 3: colour. */
  components: 1 | 3;
  /** Each component's sampling factors, in the frame header's order (jpeg-js's too). */
  sampling: Sampling[];
  /** Whether the 3 components are YCbCr, to be converted to RGB, rather than R, G and B as they
   * are: by libjpeg's rule, YCbCr with a JFIF marker, else as an Adobe marker's transform flag
   * says, else unless the components are named R, G and B. */
  ycbcr: boolean;
  progressive: boolean;
  /** EXIF orientation 1..8 (1: as stored; 6: turn 90° clockwise to view), 1 without one. */
  orientation: number;
  /** Offset of the first start-of-scan marker (the image data). */
  scanAt: number;
}

/** The frame kinds JPEG defines (SOFn markers), those jpeg-js cannot decode named. */
const OTHER_FRAMES: Record<number, string> = {
  0xc3: 'lossless',
  0xc5: 'differential sequential',
  0xc6: 'differential progressive',
  0xc7: 'differential lossless',
  0xc9: 'arithmetic-coded sequential',
  0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless',
  0xcd: 'arithmetic-coded differential sequential',
  0xce: 'arithmetic-coded differential progressive',
  0xcf: 'arithmetic-coded differential lossless',
  0xf7: 'JPEG-LS',
};
const hex = (n: number) => n.toString(16).padStart(2, '0');

/** Thrown where the bytes at hand end before the first scan: the caller may read more of the file. */
export class JpegNeedsMore extends Error {}

/**
 * Reads the markers from the start of image to the first scan: the frame header (size, components,
 * kind) and the EXIF orientation. `bytes` may be the file's start only; where it ends before the
 * first scan, JpegNeedsMore is thrown if `complete` is false, else the file is cut short.
 */
export function readJpegFrame(bytes: Uint8Array, complete: boolean): JpegFrame {
  const fail = (message: string): never => {
    throw new JpegFormatError(`corrupt JPEG: ${message}`);
  };
  const ends = (what: string): never => {
    if (!complete) throw new JpegNeedsMore();
    return fail(`the file ends at byte ${bytes.length} ${what}: it is cut short`);
  };
  const u16 = (at: number) => (bytes[at] << 8) | bytes[at + 1];
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) fail('no start-of-image marker (ff d8)');
  let frame: Omit<JpegFrame, 'orientation' | 'scanAt' | 'ycbcr'> | undefined;
  let componentIds = '';
  let orientation = 1;
  let jfif = false;
  let adobeTransform: number | undefined;
  for (let at = 2; ; ) {
    if (at + 2 > bytes.length) ends('before its image data');
    if (bytes[at] !== 0xff) fail(`expected a marker (ff xx) at byte ${at}, found ${hex(bytes[at])}`);
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at++; // fill byte before a marker
      continue;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2; // markers without a segment
      continue;
    }
    if (marker === 0xd8 || marker === 0xd9 || marker === 0x00) fail(`marker ff ${hex(marker)} at byte ${at} before the image data`);
    if (at + 4 > bytes.length) ends(`inside the segment header at byte ${at}`);
    const length = u16(at + 2);
    if (length < 2) fail(`segment ff ${hex(marker)} at byte ${at} declares ${length} bytes (at least 2)`);
    const end = at + 2 + length;
    if (end > bytes.length) ends(`inside segment ff ${hex(marker)} at byte ${at}, which declares ${length} bytes`);
    const segment = bytes.subarray(at + 4, end);
    if (marker in OTHER_FRAMES) {
      throw new JpegFormatError(`${/^[aeiou]/.test(OTHER_FRAMES[marker]) ? 'an' : 'a'} ${OTHER_FRAMES[marker]} JPEG (frame marker ff ${hex(marker)}): only Huffman-coded baseline, extended and progressive JPEGs are read; re-save it as an ordinary JPEG or PNG`);
    }
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (frame) fail(`a second frame header at byte ${at}`);
      if (segment.length < 6) fail(`the frame header at byte ${at} holds ${segment.length} bytes`);
      const precision = segment[0];
      const height = u16(at + 5);
      const width = u16(at + 7);
      const components = segment[5];
      if (segment.length !== 6 + 3 * components) fail(`the frame header at byte ${at} holds ${segment.length} bytes, ${6 + 3 * components} for its ${components} components`);
      if (precision !== 8) throw new JpegFormatError(`a ${precision}-bit JPEG: only 8-bit samples are read; re-save it at 8 bits`);
      if (width === 0) fail('the frame header gives width 0');
      if (height === 0) throw new JpegFormatError('the frame header leaves the height to a later DNL marker, which this reader does not take; re-save the image');
      if (components === 4) throw new JpegFormatError('a CMYK (or YCCK) JPEG, 4 components: only grey and colour (RGB) JPEGs are read; convert it to RGB');
      if (components !== 1 && components !== 3) throw new JpegFormatError(`a JPEG of ${components} components: only grey (1) and colour (3) are read`);
      const sampling: Sampling[] = [];
      for (let c = 0; c < components; c++) {
        const factors = segment[6 + 3 * c + 1];
        const [h, v] = [factors >> 4, factors & 15];
        if (h < 1 || h > 4 || v < 1 || v > 4) fail(`component ${c + 1}'s sampling factors are ${h}×${v} (1 to 4 each)`);
        sampling.push({ h, v });
      }
      frame = { width, height, components: components as 1 | 3, sampling, progressive: marker === 0xc2 };
      componentIds = String.fromCharCode(...Array.from({ length: components }, (_, c) => segment[6 + 3 * c]));
    }
    const tagged = (tag: string) => segment.length >= tag.length && String.fromCharCode(...segment.subarray(0, tag.length)) === tag;
    if (marker === 0xe0 && tagged('JFIF\0')) jfif = true;
    if (marker === 0xee && tagged('Adobe') && segment.length >= 12) adobeTransform = segment[11];
    if (marker === 0xe1 && tagged('Exif\0\0')) orientation = exifOrientation(segment.subarray(6));
    if (marker === 0xda) {
      if (!frame) return fail(`image data (a scan at byte ${at}) before the frame header`);
      const ycbcr = frame.components === 3 && (jfif || (adobeTransform !== undefined ? adobeTransform !== 0 : componentIds !== 'RGB'));
      return { ...frame, ycbcr, orientation, scanAt: at };
    }
    at = end;
  }
}

/** The orientation tag (0x0112) of an EXIF block's first image directory, 1 where there is none or
 * the block is damaged (a photo's metadata is not worth refusing its pixels for). */
export function exifOrientation(tiff: Uint8Array): number {
  if (tiff.length < 8) return 1;
  const little = tiff[0] === 0x49 && tiff[1] === 0x49; // "II"; "MM" is big-endian
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const u16 = (at: number) => (little ? tiff[at] | (tiff[at + 1] << 8) : (tiff[at] << 8) | tiff[at + 1]);
  const u32 = (at: number) => (little ? u16(at) + u16(at + 2) * 65536 : u16(at) * 65536 + u16(at + 2));
  if (u16(2) !== 42) return 1;
  const directory = u32(4);
  if (directory + 2 > tiff.length) return 1;
  const entries = u16(directory);
  for (let i = 0; i < entries; i++) {
    const at = directory + 2 + 12 * i;
    if (at + 12 > tiff.length) return 1;
    if (u16(at) !== 0x0112) continue;
    const value = u16(at + 2) === 3 ? u16(at + 8) : 0; // type 3: SHORT, the value held in place
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/** The size a picture is viewed at: orientations 5 to 8 turn it a quarter, swapping width and height. */
export function viewedSize(frame: Pick<JpegFrame, 'width' | 'height' | 'orientation'>): { width: number; height: number } {
  return frame.orientation >= 5 ? { width: frame.height, height: frame.width } : { width: frame.width, height: frame.height };
}

/**
 * For a picture stored `width` × `height` with EXIF `orientation`, the stored pixel (x, y) shown at
 * each viewed pixel: the tag says where the stored rows and columns go (6: the stored top row is the
 * viewed right column, the stored left column the viewed top row).
 */
export function storedPixel(orientation: number, width: number, height: number): (x: number, y: number) => [number, number] {
  switch (orientation) {
    case 2: return (x, y) => [width - 1 - x, y]; // mirrored left to right
    case 3: return (x, y) => [width - 1 - x, height - 1 - y]; // turned half round
    case 4: return (x, y) => [x, height - 1 - y]; // mirrored top to bottom
    case 5: return (x, y) => [y, x]; // mirrored along the main diagonal
    case 6: return (x, y) => [y, height - 1 - x]; // turned a quarter clockwise to view
    case 7: return (x, y) => [width - 1 - y, height - 1 - x]; // mirrored along the other diagonal
    case 8: return (x, y) => [width - 1 - y, x]; // turned a quarter anticlockwise to view
    default: return (x, y) => [x, y];
  }
}

/** Throws where a whole JPEG file has no end-of-image marker past its first scan (at `scanAt`):
 * entropy-coded data stuffs every ff with 00 and restart markers are ff d0..d7, so an ff d9 there
 * is the end of the image, and a file without one is cut short. */
export function jpegEndAfterScan(bytes: Uint8Array, scanAt: number): void {
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(Buffer.from([0xff, 0xd9]), scanAt) < 0) throw noEndOfImage();
}

/**
 * Walks a whole JPEG's segments and scans to its end, refusing by name what jpeg-js would meet
 * with a bare JavaScript error (reading a table that is not there) or an allocation for a size
 * never checked: a second frame header past the first scan, a scan naming a component the frame
 * does not have, a Huffman table used before any DHT defines it, a quantisation table no DQT
 * defines. Tables are used as jpeg-js uses them: a sequential scan decodes with its DC and AC
 * tables, a progressive scan's first DC pass with the DC table, its AC passes with the AC table,
 * its DC refinements with none. A marker it does not know ends the walk: jpeg-js has its words.
 * `declared`: the frame header as readJpegFrame read it, whose size the coded data must fill.
 */
export function checkJpegSegments(bytes: Uint8Array, declared: JpegFrame): void {
  const fail = (message: string): never => {
    throw new JpegFormatError(`corrupt JPEG: ${message}`);
  };
  const u16 = (at: number) => (bytes[at] << 8) | bytes[at + 1];
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const quantisation = new Set<number>();
  const huffman = { DC: new Set<number>(), AC: new Set<number>() };
  let frame: { progressive: boolean; components: Map<number, number> } | undefined; // component id → its quantisation table
  let coded = 0; // bytes of entropy-coded data, all scans
  for (let at = 2; at + 4 <= bytes.length && bytes[at] === 0xff; ) {
    const marker = bytes[at + 1];
    if (marker === 0xff || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += marker === 0xff ? 1 : 2;
      continue;
    }
    if (marker === 0xd9) break;
    const end = at + 2 + u16(at + 2);
    if (end > bytes.length) return;
    const segment = bytes.subarray(at + 4, end);
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2 || marker in OTHER_FRAMES) {
      if (frame) fail(`a second frame header at byte ${at}`);
      const components = new Map<number, number>();
      for (let c = 0; c < segment[5] && 6 + 3 * c + 2 < segment.length; c++) {
        const id = segment[6 + 3 * c];
        if (components.has(id)) fail(`the frame header at byte ${at} names component id ${id} twice`);
        components.set(id, segment[6 + 3 * c + 2]);
      }
      frame = { progressive: marker === 0xc2, components };
    } else if (marker === 0xdb) {
      // Each table: precision (0: 8-bit, 1: 16-bit) and id, then 64 entries.
      for (let k = 0; k < segment.length; k += 1 + 64 * ((segment[k] >> 4) + 1)) quantisation.add(segment[k] & 15);
    } else if (marker === 0xc4) {
      for (let k = 0; k + 17 <= segment.length; ) {
        (segment[k] >> 4 === 0 ? huffman.DC : huffman.AC).add(segment[k] & 15);
        let codes = 0;
        for (let n = 1; n <= 16; n++) codes += segment[k + n];
        k += 17 + codes;
      }
    } else if (marker === 0xda) {
      if (!frame) return; // readJpegFrame has refused it
      const count = segment[0];
      if (count < 1 || count > 4 || segment.length !== 4 + 2 * count) {
        fail(`the scan header at byte ${at} names ${count} components in ${segment.length} bytes (1 to 4 components, 2 bytes each and 4 more)`);
      }
      const [spectralStart, approximation] = [segment[1 + 2 * count], segment[3 + 2 * count]];
      const uses = {
        DC: !frame.progressive || (spectralStart === 0 && approximation >> 4 === 0),
        AC: !frame.progressive || spectralStart > 0,
      };
      for (let c = 0; c < count; c++) {
        const id = segment[1 + 2 * c];
        if (!frame.components.has(id)) fail(`the scan at byte ${at} names component id ${id}; the frame header's are ${[...frame.components.keys()].join(', ')}`);
        const tables = { DC: segment[2 + 2 * c] >> 4, AC: segment[2 + 2 * c] & 15 };
        for (const kind of ['DC', 'AC'] as const) {
          if (uses[kind] && !huffman[kind].has(tables[kind])) fail(`the scan at byte ${at} decodes component id ${id} with ${kind} Huffman table ${tables[kind]}, which no DHT before it defines`);
        }
      }
      // Past the entropy-coded data, to the next marker: in the data, ff is followed by 00 (a
      // stuffed byte), by a restart marker d0..d7, or by fill bytes ff before a marker.
      let next = end;
      for (;;) {
        next = buffer.indexOf(0xff, next);
        if (next < 0 || next + 1 >= bytes.length) return; // cut short: jpegEndAfterScan says so
        const after = bytes[next + 1];
        if (after === 0x00 || (after >= 0xd0 && after <= 0xd7)) next += 2;
        else if (after === 0xff) next++;
        else break;
      }
      coded += next - end;
      at = next;
      continue;
    } else if (!((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe || marker === 0xdd || marker === 0xdc)) {
      return; // a marker jpeg-js does not take either
    }
    at = end;
  }
  for (const [id, table] of frame?.components ?? []) {
    if (!quantisation.has(table)) fail(`component id ${id} uses quantisation table ${table}, which no DQT defines`);
  }
  // A picture too large for its data (a damaged size, a file cut short): refused here, where jpeg-js
  // would first allocate for the size (a 4 KB file declaring 4096×4096 took 570 MB and seconds).
  // Each 8×8 block of each component (as sampled) has its DC coefficient coded in some scan, in
  // one bit at the least.
  const [hMax, vMax] = [Math.max(...declared.sampling.map((s) => s.h)), Math.max(...declared.sampling.map((s) => s.v))];
  const blocks = declared.sampling.reduce((n, s) => n + Math.ceil(Math.ceil((declared.width * s.h) / hMax) / 8) * Math.ceil(Math.ceil((declared.height * s.v) / vMax) / 8), 0);
  if (frame && coded < blocks / 8) fail(`its ${blocks} blocks of 8×8 need at least ${Math.ceil(blocks / 8)} bytes of image data, it holds ${coded}: the frame header's size is damaged, or the data cut short`);
}

/** The error for a JPEG without an end-of-image marker past its first scan. */
export function noEndOfImage(): JpegFormatError {
  return new JpegFormatError('corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short');
}

/** The refusal of a picture of more than `maxPixels` (PNG's too, nin/images.ts). */
export function tooManyPixels(kind: 'PNG' | 'JPEG', width: number, height: number, maxPixels: number): string {
  return `${kind} is ${width}×${height} (${width * height} pixels), more than the ${maxPixels} this reader accepts; resize it first`;
}

/** Decodes a whole JPEG file of at most `maxPixels` to RGBA bytes (alpha 255), upright as its EXIF orientation says. */
export function decodeJpeg(bytes: Uint8Array, maxPixels: number): { width: number; height: number; rgba: Uint8Array } {
  const frame = readJpegFrame(bytes, true);
  if (frame.width * frame.height > maxPixels) {
    throw new JpegFormatError(tooManyPixels('JPEG', frame.width, frame.height, maxPixels));
  }
  jpegEndAfterScan(bytes, frame.scanAt); // jpeg-js would decode a cut-off file's missing rows as grey
  checkJpegSegments(bytes, frame);
  let image: ComponentPlanes;
  jpegJs(); // loaded outside the try: another version of jpeg-js is not a corrupt file
  try {
    image = decodeComponents(bytes);
  } catch (e) {
    throw new JpegFormatError(`corrupt JPEG (${(e as Error).message})`);
  }
  const { width, height } = frame;
  if (image.width !== width || image.height !== height || image.components.length !== frame.components) {
    throw new JpegFormatError(`corrupt JPEG: decoded ${image.components.length} components of ${image.width}×${image.height}, the frame header says ${frame.components} of ${width}×${height}`);
  }
  const max = { h: Math.max(...frame.sampling.map((s) => s.h)), v: Math.max(...frame.sampling.map((s) => s.v)) };
  const planes = image.components.map(({ lines }, c) => upsampleComponent(lines, frame.sampling[c], max, width, height));
  const data = toRgba(planes, frame.ycbcr, width, height);
  if (frame.orientation === 1) return { width, height, rgba: data };
  const viewed = viewedSize(frame);
  const rgba = new Uint8Array(data.length);
  const from = storedPixel(frame.orientation, width, height);
  for (let y = 0; y < viewed.height; y++) {
    for (let x = 0; x < viewed.width; x++) {
      const [sx, sy] = from(x, y);
      const src = (sy * width + sx) * 4;
      const dst = (y * viewed.width + x) * 4;
      for (let k = 0; k < 4; k++) rgba[dst + k] = data[src + k];
    }
  }
  return { ...viewed, rgba };
}

/**
 * One component's samples brought to the image's `width` × `height`, as libjpeg(-turbo) does by
 * default (jdsample.c, do_fancy_upsampling on). `rows` hold the component as decoded, at least its
 * real size: ceil(width × h / max.h) samples across, ceil(height × v / max.v) rows (jpeg-js pads
 * to whole blocks). Half the resolution across, down or both is interpolated (a triangle filter:
 * 3/4 of the nearer sample, 1/4 of the next); libjpeg does so across only where the component is
 * over 2 samples wide, and repeats each sample otherwise and at any other ratio. Ratios that are
 * not whole numbers, which libjpeg refuses, take the nearest sample to the left and above, as
 * jpeg-js does. The rows returned hold at least `width` samples; some may be shared.
 */
export function upsampleComponent(rows: Uint8Array[], sampling: Sampling, max: Sampling, width: number, height: number): Uint8Array[] {
  const across = Math.ceil((width * sampling.h) / max.h);
  const down = Math.ceil((height * sampling.v) / max.v);
  const halfAcross = sampling.h * 2 === max.h;
  const halfDown = sampling.v * 2 === max.v;
  const fullAcross = sampling.h === max.h;
  const fullDown = sampling.v === max.v;
  if (fullAcross && fullDown) return rows;
  if (halfAcross && fullDown && across > 2) return fancyAcross(rows, across, height);
  if (fullAcross && halfDown) return fancyDown(rows, across, down, height);
  if (halfAcross && halfDown && across > 2) return fancyBoth(rows, across, down, height);
  return repeated(rows, sampling, max, width, height);
}

/** h2v1_fancy_upsample: each row interpolated across, its samples weighing 4 (shift 2), 0.5
 * rounded down to the left of a sample and up to its right (libjpeg's alternating bias). */
function fancyAcross(rows: Uint8Array[], across: number, height: number): Uint8Array[] {
  const out = outputRows(2 * across, height);
  for (let y = 0; y < height; y++) triangleAcross(rows[y], across, out[y], 1, 2, 2);
  return out;
}

/** h1v2_fancy_upsample: 3/4 of the nearer row and 1/4 of the other, 0.5 rounded down above a
 * row's centre and up below it. */
function fancyDown(rows: Uint8Array[], across: number, down: number, height: number): Uint8Array[] {
  const out = outputRows(across, height);
  for (let y = 0; y < height; y++) {
    const near = rows[y >> 1];
    const far = rows[otherRow(y, down)];
    const bias = y & 1 ? 2 : 1;
    const row = out[y];
    for (let x = 0; x < across; x++) row[x] = (near[x] * 3 + far[x] + bias) >> 2;
  }
  return out;
}

/** h2v2_fancy_upsample: the rows' sums (3 × nearer + other, weighing 4) interpolated across, so
 * each sample weighs 16 (shift 4); 0.5 rounded up left of a sample's centre, down right of it. */
function fancyBoth(rows: Uint8Array[], across: number, down: number, height: number): Uint8Array[] {
  const out = outputRows(2 * across, height);
  const sums = new Uint16Array(across);
  for (let y = 0; y < height; y++) {
    const near = rows[y >> 1];
    const far = rows[otherRow(y, down)];
    for (let x = 0; x < across; x++) sums[x] = near[x] * 3 + far[x];
    triangleAcross(sums, across, out[y], 8, 7, 4);
  }
  return out;
}

/** The row of a half-height component that output row `y` takes 1/4 from: the one above the
 * nearest for an even `y`, below for an odd one. At the top and bottom libjpeg's main buffer
 * (jdmainct.c) repeats the first or last real row, so it is the nearest itself there. */
function otherRow(y: number, down: number): number {
  const nearest = y >> 1;
  return y & 1 ? Math.min(nearest + 1, down - 1) : Math.max(nearest - 1, 0);
}

/** Interpolates `across` values (samples, or sums of them) to twice as many: output 2i is
 * (3 × value i + value i−1 + `leftBias`) >> `shift`, 2i+1 is (3 × value i + value i+1 +
 * `rightBias`) >> `shift`, the first and last values standing in for their missing neighbours. */
function triangleAcross(values: ArrayLike<number>, across: number, out: Uint8Array, leftBias: number, rightBias: number, shift: number): void {
  const last = across - 1;
  for (let x = 0; x < across; x++) {
    const nearer = values[x] * 3;
    out[2 * x] = (nearer + values[x > 0 ? x - 1 : 0] + leftBias) >> shift;
    out[2 * x + 1] = (nearer + values[x < last ? x + 1 : last] + rightBias) >> shift;
  }
}

/** int_upsample: each output sample is the component's sample at or left of and above it
 * (factors as whole numbers: each repeated max / own times across and down). */
function repeated(rows: Uint8Array[], sampling: Sampling, max: Sampling, width: number, height: number): Uint8Array[] {
  const columns = Int32Array.from({ length: width }, (_, x) => Math.floor((x * sampling.h) / max.h));
  const out: Uint8Array[] = [];
  let row = new Uint8Array(0);
  for (let y = 0, from = -1; y < height; y++) {
    const source = Math.floor((y * sampling.v) / max.v);
    if (source !== from) {
      from = source;
      row = Uint8Array.from(columns, (x) => rows[source][x]);
    }
    out.push(row); // rows repeated down are the same array
  }
  return out;
}

/** `height` rows of `width` samples, in one buffer. */
function outputRows(width: number, height: number): Uint8Array[] {
  const buffer = new Uint8Array(width * height);
  return Array.from({ length: height }, (_, y) => buffer.subarray(y * width, (y + 1) * width));
}

// jdcolor.c's YCbCr → RGB tables: 16-bit fixed point, FIX(x) = x × 2¹⁶ rounded; R and B rounded
// per table entry, G's two terms summed before the shift (ONE_HALF held in the Cb term).
const SCALEBITS = 16;
const ONE_HALF = 1 << (SCALEBITS - 1);
const fix = (x: number) => Math.floor(x * (1 << SCALEBITS) + 0.5);
const chromaTable = (entry: (centred: number) => number) => Int32Array.from({ length: 256 }, (_, i) => entry(i - 128));
const CR_R = chromaTable((c) => (fix(1.402) * c + ONE_HALF) >> SCALEBITS);
const CB_B = chromaTable((c) => (fix(1.772) * c + ONE_HALF) >> SCALEBITS);
const CR_G = chromaTable((c) => -fix(0.71414) * c);
const CB_G = chromaTable((c) => -fix(0.34414) * c + ONE_HALF);
const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** RGBA bytes (alpha 255) from full-size component rows: one is grey; three are YCbCr, converted
 * as libjpeg converts them, or else R, G and B as they are. */
export function toRgba(planes: Uint8Array[][], ycbcr: boolean, width: number, height: number): Uint8Array {
  const rgba = new Uint8Array(width * height * 4).fill(255);
  for (let y = 0, at = 0; y < height; y++) {
    const [first, second, third] = planes.map((rows) => rows[y]);
    // One loop a kind, none branching within: decoding aside, the most of a large JPEG's time.
    if (planes.length === 1) {
      for (let x = 0; x < width; x++, at += 4) rgba[at] = rgba[at + 1] = rgba[at + 2] = first[x];
    } else if (ycbcr) {
      for (let x = 0; x < width; x++, at += 4) {
        const luma = first[x];
        const cb = second[x];
        const cr = third[x];
        rgba[at] = clamp(luma + CR_R[cr]);
        rgba[at + 1] = clamp(luma + ((CB_G[cb] + CR_G[cr]) >> SCALEBITS));
        rgba[at + 2] = clamp(luma + CB_B[cb]);
      }
    } else {
      for (let x = 0; x < width; x++, at += 4) {
        rgba[at] = first[x];
        rgba[at + 1] = second[x];
        rgba[at + 2] = third[x];
      }
    }
  }
  return rgba;
}

/** The part of jpeg-js that this file uses: its decoder of component planes. */
interface JpegJsImage {
  opts: Record<string, unknown>;
  parse(data: Uint8Array): void;
  width: number;
  height: number;
  /** In the frame header's order: each one's rows at its own resolution, padded to whole blocks. */
  components: { lines: Uint8Array[] }[];
}
interface JpegJs {
  JpegImage: { new (): JpegJsImage; resetMaxMemoryUsage(bytes: number): void };
}

/** The JPEG's component planes, decoded by jpeg-js as its decode() does before it makes pixels (a
 * one-scan sequential JPEG by nin/jpeg-baseline.ts, to the same bytes, faster). */
function decodeComponents(bytes: Uint8Array): ComponentPlanes {
  let fast: ComponentPlanes | null = null;
  try {
    fast = decodeBaselineJpeg(bytes);
  } catch {
    // (never seen: the fast path declines what it does not read as jpeg-js does; should it throw,
    // jpeg-js's reading stands all the same)
  }
  return fast ?? jpegJsPlanes(bytes);
}

/** jpeg-js's component planes (and the fast path's comparison in the tests). Not tolerant: a block
 * outside the frame is an error, not skipped. The size is bounded above; jpeg-js's own limits
 * (100 megapixels, 512 MiB) would refuse it by other numbers. */
export function jpegJsPlanes(bytes: Uint8Array): ComponentPlanes {
  const { JpegImage } = jpegJs();
  const image = new JpegImage();
  image.opts = { tolerantDecoding: false, maxResolutionInMP: 1e6, maxMemoryUsageInMB: 1e6 };
  JpegImage.resetMaxMemoryUsage(1e6 * 1024 * 1024);
  image.parse(bytes);
  return image;
}



let loaded: JpegJs | undefined;

/** jpeg-js's decoder with the restart-interval bound of one-component scans fixed (see the top),
 * exporting JpegImage beside decode. */
function jpegJs(): JpegJs {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const path = require.resolve('jpeg-js/lib/decoder.js');
  let source = readFileSync(path, 'utf8');
  const patches: [string, string, string][] = [
    [
      'the one-component scan loop',
      'for (n = 0; n < resetInterval; n++) {\n          decodeBlock(component, decodeFn, mcu);',
      'for (n = 0; n < resetInterval && mcu < mcuExpected; n++) {\n          decodeBlock(component, decodeFn, mcu);',
    ],
    ['the export', 'module.exports = decode;', 'module.exports = { decode, JpegImage };'],
  ];
  for (const [what, from, to] of patches) {
    if (source.split(from).length !== 2) {
      throw new Error(`${path}: not jpeg-js 0.4.4's decoder (${what}, which nin/jpeg.ts patches, is not there once); install the version package.json pins`);
    }
    source = source.replace(from, to);
  }
  const module = { exports: {} as unknown };
  new Function('module', 'exports', 'require', source)(module, module.exports, require);
  loaded = module.exports as JpegJs;
  return loaded;
}
