// JPEG in, on the CPU. jpeg-js decodes (Huffman-coded baseline, extended and progressive, 8 bits,
// grey or YCbCr/RGB); this file reads the file's structure first, so that what jpeg-js would
// misread, refuse with a bare message, or decode from a cut-off file as blank rows gets an error
// that says what is wrong, and it turns the picture upright as its EXIF orientation says (as photo
// viewers and browsers show it: a phone's portrait photo is stored sideways).
//
// Errors are JpegFormatError (a message without the file's name); nin/images.ts names the file.
//
// jpeg-js 0.4.4 (the latest) has one bug this file works around: in a scan of one component with
// restart markers, it decodes a whole restart interval even where the scan has fewer blocks left,
// and fails on valid files (grey JPEGs, progressive AC scans) whose block count is not a multiple
// of the interval. pdf.js, which jpeg-js derives from, fixed the same loop (pdf.js PR #8164).
// `patchedDecode` loads jpeg-js's decoder with that loop bound fixed, and refuses to load another
// version's (package.json pins 0.4.4).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type jpeg from 'jpeg-js';

export class JpegFormatError extends Error {
  name = 'JpegFormatError';
}

/** What a JPEG's headers say, read without decoding. */
export interface JpegFrame {
  /** As stored, before the orientation is applied. */
  width: number;
  height: number;
  /** 1: grey; 3: colour. */
  components: 1 | 3;
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
      for (let c = 0; c < components; c++) {
        const sampling = segment[6 + 3 * c + 1];
        const [h, v] = [sampling >> 4, sampling & 15];
        if (h < 1 || h > 4 || v < 1 || v > 4) fail(`component ${c + 1}'s sampling factors are ${h}×${v} (1 to 4 each)`);
      }
      frame = { width, height, components: components as 1 | 3, progressive: marker === 0xc2 };
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

/** The error for a JPEG without an end-of-image marker past its first scan. */
export function noEndOfImage(): JpegFormatError {
  return new JpegFormatError('corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short');
}

/** Decodes a whole JPEG file of at most `maxPixels` to RGBA bytes (alpha 255), upright as its EXIF orientation says. */
export function decodeJpeg(bytes: Uint8Array, maxPixels: number): { width: number; height: number; rgba: Uint8Array } {
  const frame = readJpegFrame(bytes, true);
  if (frame.width * frame.height > maxPixels) {
    throw new JpegFormatError(`JPEG is ${frame.width}×${frame.height} (${frame.width * frame.height} pixels), more than the ${maxPixels} this reader accepts; resize it first`);
  }
  jpegEndAfterScan(bytes, frame.scanAt); // jpeg-js would decode a cut-off file's missing rows as grey
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    // Not tolerant: a block outside the frame is an error, not skipped. The size is bounded above;
    // jpeg-js's own limits (100 megapixels, 512 MiB) would refuse it by other numbers.
    decoded = patchedDecode()(bytes, { useTArray: true, formatAsRGBA: true, colorTransform: frame.ycbcr, tolerantDecoding: false, maxResolutionInMP: 1e6, maxMemoryUsageInMB: 1e6 });
  } catch (e) {
    throw new JpegFormatError(`corrupt JPEG (${(e as Error).message})`);
  }
  const { width, height, data } = decoded;
  if (width !== frame.width || height !== frame.height || data.length !== width * height * 4) {
    throw new JpegFormatError(`corrupt JPEG: decoded ${data.length / 4} pixels as ${width}×${height}, the frame header says ${frame.width}×${frame.height}`);
  }
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

let decoder: typeof jpeg.decode | undefined;

/** jpeg-js's decode with the restart-interval bound of one-component scans fixed (see the top). */
function patchedDecode(): typeof jpeg.decode {
  if (decoder) return decoder;
  const require = createRequire(import.meta.url);
  const path = require.resolve('jpeg-js/lib/decoder.js');
  const source = readFileSync(path, 'utf8');
  const loop = 'for (n = 0; n < resetInterval; n++) {\n          decodeBlock(component, decodeFn, mcu);';
  const fixed = 'for (n = 0; n < resetInterval && mcu < mcuExpected; n++) {\n          decodeBlock(component, decodeFn, mcu);';
  if (source.split(loop).length !== 2) {
    throw new Error(`${path}: not jpeg-js 0.4.4's decoder (the one-component scan loop that nin/jpeg.ts fixes is not there once); install the version package.json pins`);
  }
  const module = { exports: {} as unknown };
  new Function('module', 'exports', 'require', source.replace(loop, fixed))(module, module.exports, require);
  decoder = module.exports as typeof jpeg.decode;
  return decoder;
}
