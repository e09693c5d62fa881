// Pictures in (PNG and JPEG) and PNG out, on the CPU: decoding a user's picture into the pixels a
// model expects, and encoding rendered RGBA rasters. pngjs and jpeg-js (through nin/jpeg.ts) do the
// codec work; this file owns the conventions:
//
//   * Pixel values are returned in [0, 1] exactly as stored (sample / max sample for the file's
//     bit depth). The PNG gamma chunk is ignored, as the datasets' own pixels carry no correction.
//   * A JPEG is turned upright as its EXIF orientation says (nin/jpeg.ts); a PNG's eXIf is ignored.
//   * Transparency is composited over BLACK (colour × alpha). MNIST-style digits are light strokes
//     on a black background, so a transparent background becomes the background the model knows.
//     `invert` (dark strokes on a light or transparent background): composited over WHITE, then
//     each value v becomes 1 − v, so the strokes come out light on black either way.
//   * 1-channel models get ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B); 3-channel models get
//     grey replicated into R, G and B.
//   * Resizing is per axis (separable): area averaging when an axis shrinks (every source pixel
//     counts in proportion to its overlap, so no aliasing and the mean is preserved), bilinear with
//     half-pixel centres when it grows, a plain copy when it keeps its size.
//   * Output is NHWC for one image ([height, width, channels], row-major); sizes are [height, width].
//   * Dataset preprocessing (mean subtraction, standardisation, ...) is NOT applied here: callers pass
//     these pixels through the same preprocessing as the training data.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { constants as zlibConstants, inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { decodeJpeg, JpegFormatError, JpegNeedsMore, noEndOfImage, readJpegFrame, tooManyPixels, viewedSize, type JpegFrame } from './jpeg.ts';

/** A picture that could not be loaded; `file` names it. */
export class ImageLoadError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'ImageLoadError';
  }
}

export interface ModelInput {
  height: number;
  width: number;
  channels: 1 | 3;
}

export interface LoadedImage {
  /** [height, width, channels] of the model input, values in [0, 1]. */
  pixels: Float32Array;
  /** The file's [height, width] before resizing. */
  originalSize: [number, number];
  /** Whether any pixel of the file is less than opaque. */
  translucent: boolean;
  /** Whether any visible pixel of the file has colour (red, green and blue not all equal). */
  colourful: boolean;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** BT.601 luma weights (the ones most image libraries use for RGB→grey). */
export const LUMA_BT601: readonly [number, number, number] = [0.299, 0.587, 0.114];

/** Well-known magic numbers, to turn "not a PNG" into a useful hint. */
const OTHER_FORMATS: { magic: number[]; name: string }[] = [
  { magic: [0xff, 0xd8, 0xff], name: 'JPEG' },
  { magic: [0x47, 0x49, 0x46, 0x38], name: 'GIF' },
  { magic: [0x42, 0x4d], name: 'BMP' },
  { magic: [0x52, 0x49, 0x46, 0x46], name: 'RIFF (WebP?)' },
  { magic: [0x1f, 0x8b], name: 'gzip' },
  { magic: [0x49, 0x49, 0x2a, 0x00], name: 'TIFF' },
  { magic: [0x4d, 0x4d, 0x00, 0x2a], name: 'TIFF' },
];

function describeBytes(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  const other = OTHER_FORMATS.find((f) => f.magic.every((m, i) => bytes[i] === m));
  return `${hex} ("${ascii}")${other ? `, which looks like ${other.name}` : ''}`;
}

/** Decoded picture: straight (non-premultiplied) RGBA in [0, 1], row-major. */
export interface DecodedImage {
  width: number;
  height: number;
  rgba: Float32Array;
}

/** Larger pictures are refused before decoding: 2²⁵ pixels (e.g. 8192 × 4096) already take 512 MiB as
 * float RGBA, and a 67-byte file can declare 2³¹ × 2³¹. */
export const MAX_IMAGE_PIXELS = 2 ** 25;
/** Bit depths the PNG specification allows per colour type, and samples per pixel. */
const PNG_COLOR_TYPES: Record<number, { depths: number[]; samples: number; name: string }> = {
  0: { depths: [1, 2, 4, 8, 16], samples: 1, name: 'grey' },
  2: { depths: [8, 16], samples: 3, name: 'RGB' },
  3: { depths: [1, 2, 4, 8], samples: 1, name: 'palette' },
  4: { depths: [8, 16], samples: 2, name: 'grey+alpha' },
  6: { depths: [8, 16], samples: 4, name: 'RGBA' },
};
/** Adam7 passes: first column, first row, column step, row step. */
const ADAM7: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];

/** Bytes of filtered scanlines (one filter byte a row) a width × height image holds once inflated. */
function pngScanlineBytes(width: number, height: number, bitsPerPixel: number, interlaced: boolean): number {
  const rows = (w: number, h: number): number => (w > 0 && h > 0 ? h * (1 + Math.ceil((w * bitsPerPixel) / 8)) : 0);
  if (!interlaced) return rows(width, height);
  return ADAM7.reduce((sum, [x0, y0, dx, dy]) => sum + rows(Math.ceil((width - x0) / dx), Math.ceil((height - y0) / dy)), 0);
}

/** CRC-32 as PNG chunks carry it (ISO 3309; zlib.crc32 needs Node 20.15, the package allows 20.6). */
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
/** The critical chunks (upper-case first letter) a PNG reader knows; any other one cannot be skipped. */
const KNOWN_CRITICAL_CHUNKS = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']);

/** Refuses a picture of more than MAX_IMAGE_PIXELS, from its header: before its pixels are made,
 * and when a folder is sized up (a streamed run met it only at its batch, on the GPU). */
function checkPixelCount(path: string, kind: 'PNG' | 'JPEG', width: number, height: number): void {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new ImageLoadError(path, tooManyPixels(kind, width, height, MAX_IMAGE_PIXELS));
  }
}

/** What pngjs does not check, or checks only by allocating what the header claims, or fails on
 * with a message that hides the cause (its sync reader reports "unrecognised content at end of
 * stream" for any parse error): the chunk layout and CRCs, the header's size, depth, colour type
 * and methods, unknown critical chunks, tRNS against the palette, and that the image data
 * inflates to exactly the scanlines the header declares (a cut-off IDAT would otherwise decode as
 * black rows). Returns the file's length up to the end of IEND: bytes after it are ignored, as
 * other PNG readers do. */
function checkPngStructure(bytes: Buffer, path: string, width: number, height: number): number {
  const fail = (message: string): never => {
    throw new ImageLoadError(path, `corrupt PNG: ${message}`);
  };
  checkPixelCount(path, 'PNG', width, height);
  if (bytes.length < 33) fail(`the file ends inside the IHDR chunk (${bytes.length} bytes, the signature and IHDR take 33)`);
  if (bytes.readUInt32BE(8) !== 13) fail(`IHDR holds ${bytes.readUInt32BE(8)} bytes, expected 13`);
  const depth = bytes[24];
  const colorType = bytes[25];
  const kind = PNG_COLOR_TYPES[colorType];
  if (!kind) fail(`colour type ${colorType} does not exist (0, 2, 3, 4 or 6)`);
  if (!kind.depths.includes(depth)) fail(`bit depth ${depth} is not allowed for ${kind.name} (colour type ${colorType}): ${kind.depths.join(', ')}`);
  // pngjs computes a row's bytes in 32-bit integers: a row of 2³¹ bits or more would wrap.
  if (width * depth * kind.samples >= 2 ** 31) {
    throw new ImageLoadError(path, `PNG rows are ${width} pixels of ${depth * kind.samples} bits (${width * depth * kind.samples} bits a row), more than the 2^31 this reader's decoder handles; resize it first`);
  }
  if (bytes[26] !== 0) fail(`compression method ${bytes[26]} does not exist (0)`);
  if (bytes[27] !== 0) fail(`filter method ${bytes[27]} does not exist (0)`);
  const interlace = bytes[28];
  if (interlace > 1) fail(`interlace method ${interlace} does not exist (0 or 1)`);
  const idat: Buffer[] = [];
  let paletteEntries = 0;
  let end = 0; // where IEND ends; 0 until it is seen
  for (let off = 8; off < bytes.length; ) {
    if (off + 12 > bytes.length) fail(`the file ends inside a chunk header at offset ${off}`);
    const length = bytes.readUInt32BE(off);
    const type = bytes.toString('latin1', off + 4, off + 8);
    if (off + 12 + length > bytes.length) fail(`chunk "${type}" at offset ${off} declares ${length} data bytes and a 4-byte CRC, the file holds ${bytes.length - off - 8} bytes after its header`);
    if (crc32(bytes.subarray(off + 4, off + 8 + length)) !== bytes.readUInt32BE(off + 8 + length)) fail(`chunk "${type}" at offset ${off} fails its CRC check (damaged)`);
    if ((bytes[off + 4] & 0x20) === 0 && !KNOWN_CRITICAL_CHUNKS.has(type)) fail(`chunk "${type}" at offset ${off} is critical (upper-case first letter) and unknown: the image cannot be read without it`);
    if (type === 'IDAT') idat.push(bytes.subarray(off + 8, off + 8 + length));
    if (type === 'PLTE') {
      // (as libpng: a palette image's palette is whole RGB entries, 1 to 256 of them)
      if (colorType === 3 && (length % 3 !== 0 || length === 0 || length > 768)) fail(`the palette (PLTE) at offset ${off} holds ${length} bytes: 1 to 256 entries of 3 bytes each`);
      paletteEntries = Math.floor(length / 3);
    }
    if (type === 'tRNS') {
      if (colorType === 3 && paletteEntries === 0) fail(`the tRNS chunk at offset ${off} comes before the palette (PLTE)`);
      if (colorType === 3 && length > paletteEntries) fail(`the tRNS chunk at offset ${off} holds ${length} alpha values, the palette only ${paletteEntries} entries`);
      const needs = colorType === 0 ? 2 : colorType === 2 ? 6 : undefined; // one transparent grey / RGB colour, 16-bit samples
      if (needs !== undefined && length !== needs) fail(`the tRNS chunk at offset ${off} holds ${length} bytes, a ${kind.name} image's holds ${needs}`);
    }
    off += 12 + length;
    if (type === 'IEND') {
      end = off;
      break;
    }
  }
  if (idat.length === 0) fail('no IDAT chunk (the image data)');
  if (!end) fail('no IEND chunk: the file is cut short');
  const needed = pngScanlineBytes(width, height, depth * kind.samples, interlace === 1);
  const compressed = Buffer.concat(idat);
  let inflated: Buffer;
  let consumed: number;
  try {
    // A sync flush returns what a cut-off stream holds instead of failing, so the shortfall can be named.
    const result = inflateSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: needed, info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    inflated = result.buffer;
    consumed = result.engine.bytesWritten; // input bytes the inflater took: the stream's end
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // More data than the rows need: pngjs fails on it with a message that names no cause.
    if (err.code === 'ERR_BUFFER_TOO_LARGE') fail(`the image data inflates to more than the ${needed} bytes a ${width}×${height} ${kind.name} image holds`);
    fail(`the image data does not inflate (${err.message})`);
    throw e;
  }
  if (inflated.length !== needed) fail(`the image data inflates to ${inflated.length} bytes, a ${width}×${height} ${kind.name} image at depth ${depth} needs ${needed}`);
  if (consumed < compressed.length) fail(`the image data holds ${compressed.length - consumed} bytes after the end of its compressed stream`);
  return end;
}

/** The ImageLoadError for a failed open or read of `path` (an ImageLoadError passes through). */
function readError(path: string, e: unknown): ImageLoadError {
  if (e instanceof ImageLoadError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new ImageLoadError(path, 'file not found');
  if (err.code === 'EISDIR') return new ImageLoadError(path, 'expected an image file, found a directory');
  return new ImageLoadError(path, `cannot read file (${err.message})`);
}

/** The error for a file whose first bytes (`head`, up to 8) are not PNG's signature. */
function notPng(path: string, head: Uint8Array): ImageLoadError {
  const found = head.length === 0 ? 'an empty file' : describeBytes(head);
  return new ImageLoadError(path, `not a PNG file: expected signature 89 50 4e 47 0d 0a 1a 0a, found ${found}`);
}

const noIhdr = (path: string) => new ImageLoadError(path, 'corrupt PNG: expected an IHDR chunk right after the signature');
const zeroSize = (path: string, width: number, height: number) => new ImageLoadError(path, `PNG has zero size (width ${width}, height ${height})`);

/** A PNG's size and colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA) from its first 26
 * bytes (`head`), without decoding it. */
function pngHeader(path: string, head: Buffer): { width: number; height: number; colorType: number } {
  if (head.length < 8 || !head.subarray(0, 8).equals(PNG_SIGNATURE)) throw notPng(path, head.subarray(0, Math.min(head.length, 8)));
  if (head.length < 26 || head.toString('latin1', 12, 16) !== 'IHDR') throw noIhdr(path);
  const [width, height] = [head.readUInt32BE(16), head.readUInt32BE(20)];
  if (width === 0 || height === 0) throw zeroSize(path, width, height);
  return { width, height, colorType: head[25] };
}

/** Up to `length` bytes from the start of `path`. */
export function readStart(path: string, length: number): Buffer {
  return withFile(path, (fd) => {
    const head = Buffer.alloc(length);
    return head.subarray(0, readSync(fd, head, 0, length, 0));
  });
}

/** JPEG's start-of-image marker and the first byte of the next marker. */
const isJpeg = (head: Uint8Array) => head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;

/** 'PNG' or 'JPEG' where `path` starts as one (by its bytes), else null (also where it cannot be read). */
export function pictureFormat(path: string): 'PNG' | 'JPEG' | null {
  let head: Buffer;
  try {
    head = readStart(path, 8);
  } catch {
    return null;
  }
  return head.equals(PNG_SIGNATURE) ? 'PNG' : isJpeg(head) ? 'JPEG' : null;
}

/** The error for a file that is neither a PNG nor a JPEG by its first bytes (`head`, up to 8). */
function notAnImage(path: string, head: Uint8Array): ImageLoadError {
  const found = head.length === 0 ? 'an empty file' : describeBytes(head);
  return new ImageLoadError(path, `not a PNG or JPEG file: expected PNG's signature 89 50 4e 47 0d 0a 1a 0a or JPEG's ff d8 ff, found ${found}`);
}

/** A JpegFormatError as an ImageLoadError naming the file. */
function jpegError(path: string, e: unknown): unknown {
  return e instanceof JpegFormatError ? new ImageLoadError(path, e.message) : e;
}

/**
 * A picture's size as viewed (a JPEG's EXIF orientation applied) and whether it is grey (a grey or
 * grey+alpha PNG, a one-component JPEG), from its headers, without decoding it: a folder of
 * training images is sized up before it is read. A JPEG's frame header usually lies in its first
 * 4 KiB, past an EXIF block (with its thumbnail) in its first 128 KiB; the file is read that far,
 * and whole only where the frame header lies further on. A file cut short (a partial download or
 * copy: the commonest damage) is found here too, by its last bytes, which end a whole file with its
 * end marker (JPEG's ff d9, PNG's IEND chunk): where they do not (bytes after the end, or a cut),
 * jpegHasEnd and pngReachesIend tell which without reading the file whole.
 */
export function readImageHeader(path: string): { width: number; height: number; grey: boolean } {
  const head = readStart(path, 4096);
  if (!isJpeg(head)) {
    if (head.length < 8 || !head.subarray(0, 8).equals(PNG_SIGNATURE)) throw notAnImage(path, head.subarray(0, 8));
    const { width, height, colorType } = pngHeader(path, head);
    checkPixelCount(path, 'PNG', width, height);
    if (!readEnd(path, 12).equals(PNG_END) && !pngReachesIend(path)) throw new ImageLoadError(path, 'corrupt PNG: no IEND chunk: the file is cut short');
    return { width, height, grey: colorType === 0 || colorType === 4 };
  }
  try {
    const frame = jpegFrameOf(path, head, 4096);
    checkPixelCount(path, 'JPEG', frame.width, frame.height);
    const tail = readEnd(path, 2);
    if (!(tail[0] === 0xff && tail[1] === 0xd9) && !jpegHasEnd(path, frame.scanAt)) throw noEndOfImage();
    return { ...viewedSize(frame), grey: frame.components === 1 };
  } catch (e) {
    throw jpegError(path, e);
  }
}

/** A whole PNG's last 12 bytes: the IEND chunk (no data, its CRC). */
const PNG_END = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** `path` opened for `use(fd, size)`; errors name it. */
function withFile<T>(path: string, use: (fd: number, size: number) => T): T {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    return use(fd, fstatSync(fd).size);
  } catch (e) {
    throw readError(path, e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Up to the last `length` bytes of `path`. */
function readEnd(path: string, length: number): Buffer {
  return withFile(path, (fd, size) => {
    const tail = Buffer.alloc(Math.min(length, size));
    return tail.subarray(0, readSync(fd, tail, 0, tail.length, size - tail.length));
  });
}

/** Whether a PNG's chunks, followed by their lengths (8 bytes read at each), reach an IEND chunk
 * within the file: bytes after IEND, not a cut. */
function pngReachesIend(path: string): boolean {
  return withFile(path, (fd, size) => {
    const header = Buffer.alloc(8);
    for (let at = 8; at + 12 <= size; at += 12 + header.readUInt32BE(0)) {
      readSync(fd, header, 0, 8, at);
      if (header.toString('latin1', 4, 8) === 'IEND') return true;
    }
    return false;
  });
}

/** Whether a JPEG holds an end-of-image marker (ff d9) past its first scan, at `scanAt`, searched
 * from the file's end back in 64 KiB blocks: a file with bytes after its end (a phone's motion
 * photo carries a video there) is found at once rather than read whole. Entropy-coded data cannot
 * hold ff d9 (jpegEndAfterScan), so any there is the end of the image or past it. */
function jpegHasEnd(path: string, scanAt: number): boolean {
  const BLOCK = 65536;
  return withFile(path, (fd, size) => {
    const block = Buffer.alloc(BLOCK + 1);
    for (let end = size; end > scanAt; end -= BLOCK) {
      const start = Math.max(scanAt, end - BLOCK);
      const n = readSync(fd, block, 0, Math.min(end + 1, size) - start, start); // one byte past: a marker across blocks
      if (block.subarray(0, n).indexOf(JPEG_END) >= 0) return true;
    }
    return false;
  });
}
const JPEG_END = Buffer.from([0xff, 0xd9]);

/** A JPEG's frame header from the file's first `asked` bytes (`head`), reading on where it lies
 * further: to 128 KiB, then whole. */
function jpegFrameOf(path: string, head: Buffer, asked: number): JpegFrame {
  for (;;) {
    try {
      return readJpegFrame(head, head.length < asked); // shorter than asked: the file ends there
    } catch (e) {
      if (!(e instanceof JpegNeedsMore)) throw e;
    }
    asked = asked < 131072 ? 131072 : Infinity;
    head = asked === Infinity ? readWhole(path) : readStart(path, asked);
  }
}

/** A file's bytes, whole; errors name it. */
function readWhole(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
}

/** Reads and decodes a JPEG (nin/jpeg.ts: Huffman-coded, 8-bit, grey or colour), upright as its EXIF
 * orientation says. Errors name the file. */
export function readJpeg(path: string): DecodedImage {
  const bytes = readWhole(path);
  if (!isJpeg(bytes)) throw new ImageLoadError(path, `not a JPEG file: expected ff d8 ff, found ${bytes.length ? describeBytes(bytes.subarray(0, 8)) : 'an empty file'}`);
  try {
    const { width, height, rgba: bytesRgba } = decodeJpeg(bytes, MAX_IMAGE_PIXELS);
    const rgba = new Float32Array(bytesRgba.length);
    for (let i = 0; i < rgba.length; i++) rgba[i] = bytesRgba[i] / 255;
    return { width, height, rgba };
  } catch (e) {
    throw jpegError(path, e);
  }
}

/** Reads and decodes a PNG or a JPEG, told apart by their first bytes (not by the file's name). */
export function readImage(path: string): DecodedImage {
  const head = readStart(path, 8);
  if (isJpeg(head)) return readJpeg(path);
  if (head.length < 8 || !head.equals(PNG_SIGNATURE)) throw notAnImage(path, head);
  return readPng(path);
}

/** Reads and decodes any PNG pngjs supports (bit depths 1–16, grey/RGB/palette, ±alpha, tRNS,
 * interlaced). Errors name the file: missing, unreadable, not a PNG, zero-sized, corrupt. */
export function readPng(path: string): DecodedImage {
  let bytes: Buffer;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // The signature first: a video or archive passed by mistake is named as not a PNG without
    // being read whole (past 2 GiB, readFileSync would refuse it with a size error instead).
    const head = Buffer.alloc(8);
    const got = readSync(fd, head, 0, 8, 0);
    if (got < 8 || !head.equals(PNG_SIGNATURE)) throw notPng(path, head.subarray(0, got));
    bytes = readFileSync(fd);
  } catch (e) {
    throw readError(path, e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  // The IHDR chunk must come first; read the size ourselves so a zero-sized image gets a clear
  // error instead of whatever the decoder trips over.
  if (bytes.length < 24 || bytes.toString('latin1', 12, 16) !== 'IHDR') throw noIhdr(path);
  const headerWidth = bytes.readUInt32BE(16);
  const headerHeight = bytes.readUInt32BE(20);
  if (headerWidth === 0 || headerHeight === 0) throw zeroSize(path, headerWidth, headerHeight);
  const end = checkPngStructure(bytes, path, headerWidth, headerHeight);
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    // skipRescale keeps 16-bit samples at full precision (pngjs otherwise rounds them to 8 bits).
    png = PNG.sync.read(bytes.subarray(0, end), { skipRescale: true });
  } catch (e) {
    throw new ImageLoadError(path, `corrupt PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  // Palette entries are always 8-bit; other samples keep the file's depth when not rescaled. (Not
  // `png.palette`: an RGB or RGBA file may carry a suggested palette, and its samples are its own.)
  const maxSample = bytes[25] === 3 ? 255 : 2 ** bytes[24] - 1;
  const src = png.data as unknown as ArrayLike<number>;
  const n = width * height * 4;
  if (src.length < n) {
    throw new ImageLoadError(path, `corrupt PNG: decoded ${src.length} samples, expected ${n} for ${width}×${height} RGBA`);
  }
  const rgba = new Float32Array(n);
  const inv = 1 / maxSample;
  for (let i = 0; i < n; i++) rgba[i] = src[i] * inv;
  return { width, height, rgba };
}

/** Composites straight RGBA over black (`invert`: over white, then 1 − v) and converts to
 * `channels` (BT.601 luma for 1). */
export function rgbaToChannels(rgba: Float32Array, width: number, height: number, channels: 1 | 3, invert = false): Float32Array {
  const n = width * height;
  const out = new Float32Array(n * channels);
  const [wr, wg, wb] = LUMA_BT601;
  // Over white and inverted: 1 − (v·a + (1 − a)) = (1 − v)·a, the inverted colour over black.
  // (Written out, not a function per value: this loop is a large picture's slowest after decoding.)
  for (let p = 0; p < n; p++) {
    const a = rgba[p * 4 + 3];
    const r = (invert ? 1 - rgba[p * 4] : rgba[p * 4]) * a;
    const g = (invert ? 1 - rgba[p * 4 + 1] : rgba[p * 4 + 1]) * a;
    const b = (invert ? 1 - rgba[p * 4 + 2] : rgba[p * 4 + 2]) * a;
    if (channels === 1) {
      // Grey pixels pass through untouched (the weights need not sum to exactly 1 in floating point).
      out[p] = r === g && g === b ? r : wr * r + wg * g + wb * b;
    } else {
      out[p * 3] = r;
      out[p * 3 + 1] = g;
      out[p * 3 + 2] = b;
    }
  }
  return out;
}

/** A 1-D resampling matrix, banded: output o reads `count[o]` source samples from `first[o]` on,
 * their weights `weight[at[o]…]`. (Area averaging and bilinear both read a contiguous run.) */
interface Taps {
  first: Int32Array;
  count: Int32Array;
  at: Int32Array;
  weight: Float64Array;
}

function resampleTaps(inSize: number, outSize: number): Taps {
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const at = new Int32Array(outSize);
  const weight: number[] = [];
  const tap = (o: number, i: number, w: number) => {
    if (count[o] === 0) {
      first[o] = i;
      at[o] = weight.length;
    }
    count[o]++;
    weight.push(w);
  };
  const s = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) {
      tap(o, o, 1);
    } else if (outSize < inSize) {
      // Area average: output o covers source [o·s, (o+1)·s); weight = overlap / s.
      const lo = o * s;
      const hi = (o + 1) * s;
      for (let i = Math.floor(lo); i < Math.min(Math.ceil(hi), inSize); i++) {
        const overlap = Math.min(hi, i + 1) - Math.max(lo, i);
        if (overlap > 0) tap(o, i, overlap / s);
      }
    } else {
      // Bilinear with half-pixel centres (the "align_corners = false" convention), edges clamped.
      const x = Math.min(Math.max((o + 0.5) * s - 0.5, 0), inSize - 1);
      const i0 = Math.floor(x);
      const f = x - i0;
      const one = f === 0 || i0 + 1 === inSize; // on a sample, or at the last
      tap(o, i0, one ? 1 : 1 - f);
      if (!one) tap(o, i0 + 1, f);
    }
  }
  return { first, count, at, weight: Float64Array.from(weight) };
}

/**
 * Resizes an HWC image: area averaging on axes that shrink, bilinear on axes that grow. Separable:
 * across into float64, then down; each sum in tap order, from 0.
 */
export function resizeImage(
  src: Float32Array,
  height: number,
  width: number,
  channels: number,
  outHeight: number,
  outWidth: number,
): Float32Array {
  if (src.length !== height * width * channels) {
    throw new Error(`resizeImage: expected ${height}×${width}×${channels} = ${height * width * channels} values, found ${src.length}`);
  }
  for (const [name, v] of [['height', outHeight], ['width', outWidth]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`resizeImage: output ${name} must be a positive integer, found ${v}`);
  }
  if (outHeight === height && outWidth === width) return Float32Array.from(src);
  const mid = resampleAcross(src, height, width, channels, resampleTaps(width, outWidth));
  return resampleDown(mid, outWidth * channels, resampleTaps(height, outHeight));
}

/** resizeImage's first pass: each of `lines` rows of `width` pixels resampled across, into float64. */
function resampleAcross(src: Float32Array, lines: number, width: number, c: number, t: Taps): Float64Array {
  const { first, count, at, weight } = t;
  const outWidth = first.length;
  const mid = new Float64Array(lines * outWidth * c);
  for (let y = 0; y < lines; y++) {
    for (let o = 0; o < outWidth; o++) {
      const end = at[o] + count[o];
      if (c === 3) {
        // Colour, the common case, one pass over the taps (twice as fast as three).
        let r = 0;
        let g = 0;
        let b = 0;
        for (let k = at[o], i = (y * width + first[o]) * 3; k < end; k++, i += 3) {
          const w = weight[k];
          r += w * src[i];
          g += w * src[i + 1];
          b += w * src[i + 2];
        }
        const to = (y * outWidth + o) * 3;
        mid[to] = r;
        mid[to + 1] = g;
        mid[to + 2] = b;
        continue;
      }
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let k = at[o], i = (y * width + first[o]) * c + ch; k < end; k++, i += c) sum += weight[k] * src[i];
        mid[(y * outWidth + o) * c + ch] = sum;
      }
    }
  }
  return mid;
}

/** resizeImage's second pass: rows of `rowLength` values resampled down, a whole row at a time. */
function resampleDown(mid: Float64Array, rowLength: number, t: Taps): Float32Array {
  const { first, count, at, weight } = t;
  const out = new Float32Array(first.length * rowLength);
  const sum = new Float64Array(rowLength);
  for (let o = 0; o < first.length; o++) {
    sum.fill(0);
    for (let k = at[o], row = first[o]; k < at[o] + count[o]; k++, row++) {
      const w = weight[k];
      const from = row * rowLength;
      for (let j = 0; j < rowLength; j++) sum[j] += w * mid[from + j];
    }
    out.set(sum, o * rowLength);
  }
  return out;
}

/** Loads a PNG or JPEG as one NHWC model input: composited over black (`invert`: over white, then
 * inverted), converted to the model's channel count, resized to its height × width, values in [0, 1]. */
export function loadImageForModel(path: string, input: ModelInput, opts: { invert?: boolean } = {}): LoadedImage {
  const { height, width, channels } = input;
  if (!Number.isInteger(height) || height <= 0 || !Number.isInteger(width) || width <= 0) {
    throw new Error(`loadImageForModel(${path}): model input size must be positive integers, found ${height}×${width}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new Error(`loadImageForModel(${path}): model input channels must be 1 or 3, found ${String(channels)}`);
  }
  const image = readImage(path);
  const converted = rgbaToChannels(image.rgba, image.width, image.height, channels, opts.invert);
  const pixels = resizeImage(converted, image.height, image.width, channels, height, width);
  // Interpolation weights are convex, so this only trims float rounding at the ends.
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(1, Math.max(0, pixels[i]));
  // One pass over the file's pixels for both, stopping once both are found. Colour counts only in a
  // pixel the model sees: one of alpha 0 is composited away, whatever colour it holds.
  const { rgba } = image;
  let translucent = false;
  let colourful = false;
  for (let i = 0; i < rgba.length && !(translucent && colourful); i += 4) {
    translucent ||= rgba[i + 3] < 1;
    colourful ||= rgba[i + 3] > 0 && (rgba[i] !== rgba[i + 1] || rgba[i + 1] !== rgba[i + 2]);
  }
  return { pixels, originalSize: [image.height, image.width], translucent, colourful };
}

/**
 * What a picture given to `nin predict` may need said, one line each: resized (resizeNote); colour
 * read as grey, for a model of grey images, and a grey picture for a model of colour ones; for an MNIST model, a light border (its digits are light strokes on black); and a picture that is one
 * flat value as the model sees it (dark strokes on a transparent background vanish over black).
 */
export function pictureNotes(file: string, image: LoadedImage, input: ModelInput, opts: { mnist: boolean; invert?: boolean; resized?: boolean }): string[] {
  const notes: string[] = [];
  const resized = opts.resized === false ? null : resizeNote(file, image.originalSize, input);
  if (resized) notes.push(resized);
  // Said, as resizing is: a colour cue the model would need is gone.
  if (input.channels === 1 && image.colourful) notes.push(`${file}: a colour picture, read as grey (BT.601 luma): the model takes grey images`);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of image.pixels) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  // One flat value: under half a level apart (a float32 v/255 of two adjacent levels is often a
  // hair under 1/255 apart, which read a two-level picture as blank).
  if (hi - lo < 0.5 / 255) {
    const why = image.translucent && !opts.invert ? ': dark strokes on a transparent background vanish over black; pass --invert' : '';
    notes.push(`${file}: the picture is blank as the model sees it (every value ${lo.toFixed(2)} of 1${opts.invert ? ', after --invert' : ''})${why}`);
    return notes; // (a border note would only repeat it)
  }
  // And the other way: a grey picture (or one whose visible pixels are all grey) has its grey in
  // every channel, where the model learnt from colour, whose cues it then lacks.
  if (input.channels === 3 && !image.colourful) notes.push(`${file}: a grey picture, its grey in all 3 channels: the model takes colour images`);
  const border = opts.mnist ? borderMean(image.pixels, input) : 0;
  if (border > 0.5) {
    notes.push(`${file}: its border is light (mean ${border.toFixed(2)} of 1${opts.invert ? ', after --invert' : ''}); MNIST's digits are light strokes on black` + (opts.invert ? '' : ': for a dark digit on a light background, pass --invert'));
  }
  return notes;
}

/** A picture's note (pictureNotes) without its path in front: where the note travels with its picture (JSON). */
export function noteText(file: string, line: string): string {
  return line.startsWith(`${file}: `) ? line.slice(file.length + 2) : line;
}

/** Pictures' notes with those of one kind past the first `keep` counted instead (a directory of
 * photos is resized picture by picture: a line each would bury the predictions). The notes come
 * grouped by kind, the counted kinds first. */
export function fewerNotes(notes: readonly string[], keep = 3): string[] {
  const kinds: [RegExp, string][] = [[/: resized from /, 'resized to the model\'s input'], [/: a colour picture, read as grey /, 'in colour read as grey'], [/: a grey picture, its grey in all 3 channels/, 'grey, for a model of colour images'], [/: its border is light /, 'with a light border'], [/: the picture is blank /, 'blank as the model sees them']];
  const out: string[] = [];
  for (const [pattern, what] of kinds) {
    const these = notes.filter((n) => pattern.test(n));
    out.push(...these.slice(0, keep));
    const more = these.length - keep;
    if (more > 0) out.push(`… and ${more} more picture${more === 1 ? '' : 's'} ${what}`);
  }
  return [...out, ...notes.filter((n) => !kinds.some(([pattern]) => pattern.test(n)))];
}

/** Why --invert is worth a word for a model of `channels` (colour: every picture's colours are
 * inverted, where it is meant for dark strokes on a light background), or null. */
export function invertNote(channels: number): string | null {
  return channels === 1 ? null : "--invert on a model of colour images: every picture's colours are inverted (it is meant for dark strokes on a light background, as MNIST's digits are light on black)";
}

/** The mean of a loaded image's outermost rows and columns (all channels), in [0, 1]. */
export function borderMean(pixels: Float32Array, input: ModelInput): number {
  const { height, width, channels } = input;
  let sum = 0;
  let count = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y !== 0 && y !== height - 1 && x !== 0 && x !== width - 1) continue;
      for (let c = 0; c < channels; c++) sum += pixels[(y * width + x) * channels + c];
      count += channels;
    }
  }
  return sum / count;
}

/**
 * A one-line note for a picture resized to the model's input size, null when it already had that
 * size: resizing is silent otherwise, and a squashed picture is a likely cause of an odd prediction.
 * Sizes are written width×height, as image viewers show them.
 */
export function resizeNote(file: string, originalSize: readonly [number, number], input: { height: number; width: number }): string | null {
  const [height, width] = originalSize;
  if (height === input.height && width === input.width) return null;
  const resized = `${file}: resized from ${width}×${height} to ${input.width}×${input.height} (width×height)`;
  if (width * input.height === input.width * height) return `${resized}, aspect ratio kept`;
  // The shorter side as 1 (a 1×300 picture is 1:300, not 0:1).
  const ratio = (w: number, h: number) => (w >= h ? `${Number((w / h).toFixed(2))}:1` : `1:${Number((h / w).toFixed(2))}`);
  return `${resized}, aspect ratio changed from ${ratio(width, height)} to ${ratio(input.width, input.height)}`;
}

/** Encodes 8-bit RGBA (row-major, width × height × 4 bytes) as a PNG file's bytes. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new Error(`encodePng: size must be positive integers, found ${width}×${height}`);
  }
  if (rgba.length !== width * height * 4) {
    throw new Error(`encodePng: expected ${width}×${height}×4 = ${width * height * 4} bytes of RGBA, found ${rgba.length}`);
  }
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png, { colorType: 6, inputColorType: 6, inputHasAlpha: true });
}
