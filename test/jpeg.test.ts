// JPEG input (nin/jpeg.ts through nin/images.ts): pictures made and decoded by libjpeg
// (test/fixtures/make-jpegs.c) against our decoding, EXIF orientation, the header read without
// decoding, and errors that name the file and what is wrong. Image folders of JPEGs: the sizing and
// reading that training uses.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { folderImageShape, readImageFolder, scanImageFolder } from '../nin/data/folder.ts';
import { encodePng, ImageLoadError, loadImageForModel, readImage, readImageHeader, readJpeg, type DecodedImage } from '../nin/images.ts';
import { exifOrientation, jpegJsPlanes, toRgba, upsampleComponent, type Sampling } from '../nin/jpeg.ts';
import { decodeBaselineJpeg, type ComponentPlanes } from '../nin/jpeg-baseline.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-jpeg-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
/** The pattern every fixture holds (jpeg_pixel in make-jpegs.c). */
const jpegPixel = (x: number, y: number, ch: number) => (x * 23 + y * 9 + ch * 80) % 256;

/** A binary PGM (P5) or PPM (P6), as make-jpegs.c writes libjpeg's decodings. */
function readPnm(path: string): { width: number; height: number; channels: number; data: Uint8Array } {
  const bytes = readFileSync(path);
  const fields: string[] = [];
  let at = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(bytes[at]))) at++;
    const start = at;
    while (!/\s/.test(String.fromCharCode(bytes[at]))) at++;
    fields.push(bytes.toString('latin1', start, at));
  }
  const [magic, width, height] = [fields[0], Number(fields[1]), Number(fields[2])];
  const channels = magic === 'P5' ? 1 : 3;
  return { width, height, channels, data: bytes.subarray(at + 1, at + 1 + width * height * channels) };
}

/** Bytes as the errors quote them: printable ASCII, else a dot. */
const describeAscii = (bytes: Uint8Array) => Array.from(bytes, (v) => (v >= 0x20 && v < 0x7f ? String.fromCharCode(v) : '.')).join('');

/** Byte `ch` (0..3) of pixel (x, y) of a decoded picture. */
const byteAt = (image: DecodedImage, x: number, y: number, ch: number) => Math.round(image.rgba[(y * image.width + x) * 4 + ch] * 255);

/** Writes `bytes` as `name` under the test's directory; returns the path. */
function write(name: string, bytes: Uint8Array): string {
  const path = join(tmp, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}

/** A copy of `bytes` with `edit` applied. */
function editedCopy(bytes: Buffer, edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(bytes);
  edit(b);
  return b;
}

/** Offsets of a JPEG's segments with marker ff `marker`, up to and including its first scan. */
function segmentsAt(bytes: Buffer, marker: number): number[] {
  const found: number[] = [];
  for (let at = 2; at + 4 <= bytes.length; at += 2 + bytes.readUInt16BE(at + 2)) {
    if (bytes[at + 1] === marker) found.push(at);
    if (bytes[at + 1] === 0xda) break;
  }
  return found;
}

describe('JPEG pictures, against libjpeg', () => {
  // libjpeg's decodings are its defaults: chroma stored at half resolution is interpolated ("fancy"
  // upsampling). Decoders may round differently: T.83's accuracy test allows ±1 per sample from the
  // inverse DCT, and colour conversion spreads ±1 in Y, Cb and Cr over R, G and B with weights up to
  // 1 + 1.772 (B = Y + 1.772 Cb): ±1 for grey, ±3 for colour. A shifted row or column, swapped
  // channels or a wrong upsampling of this pattern is off by 9 or more: on the 4:2:0 pictures,
  // repeating each chroma sample (jpeg-js's own upsampling) is off by 83 to 92 at worst (15 to 16 on
  // average), interpolating with mirrored rather than repeated edge rows by 18 to 19. A wrong
  // rounding in the interpolation stays within ±3: the next tests check it exactly.
  const cases: [string, number, number, boolean][] = [
    ['rgb444-q100-baseline', 37, 21, false], // restart markers every 2 MCUs
    ['rgb444-q100-progressive', 13, 11, false],
    ['rgb420-q90-baseline', 37, 21, false], // chroma at half resolution, partial MCUs at both edges
    ['rgb420-q90-progressive', 13, 11, false], // and a restart marker after every MCU
    ['grey-q100-baseline', 13, 11, true],
    ['grey-q100-progressive', 37, 21, true],
    // Restart intervals that do not divide a one-component scan's blocks (2×2 blocks, interval 3;
    // progressive AC scans are of one component): jpeg-js 0.4.4 failed on these.
    ['grey-restart-3', 13, 11, true],
    ['rgb444-progressive-restart-4', 37, 21, false],
    ['rgb420-progressive-restart-7', 37, 21, false],
    // A restart marker after every MCU of a sequential scan: RST0 to RST7, and round again (the fast path's).
    ['rgb444-restart-1', 37, 21, false],
    // Colour stored as R, G, B: said by an Adobe marker, or by the components' names alone.
    ['rgb-stored-adobe', 13, 11, false],
    ['rgb-stored-named', 13, 11, false],
    ['rgb-extended-q1', 13, 11, false], // an extended (SOF1) frame with 16-bit quantisation tables
  ];
  it.each(cases)('%s (%d×%d): the pixels libjpeg decodes, to within rounding; the header read alone says its size', (name, width, height, grey) => {
    const path = fixture(`${name}.jpg`);
    const ours = readJpeg(path);
    const theirs = readPnm(fixture(`${name}.${grey ? 'pgm' : 'ppm'}`));
    expect([ours.width, ours.height]).toEqual([width, height]);
    expect([theirs.width, theirs.height, theirs.channels]).toEqual([width, height, grey ? 1 : 3]);
    let worst = 0;
    let sum = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < 3; ch++) {
          const d = Math.abs(byteAt(ours, x, y, ch) - theirs.data[(y * width + x) * theirs.channels + (grey ? 0 : ch)]);
          worst = Math.max(worst, d);
          sum += d;
        }
        expect(ours.rgba[(y * width + x) * 4 + 3]).toBe(1);
      }
    }
    expect(worst).toBeLessThanOrEqual(grey ? 1 : 3);
    expect(sum / (width * height * 3)).toBeLessThan(1);
    // The pattern is in there: at quality 100 without subsampling, close to what was encoded.
    // (the blue channel: where stored R, G, B read as YCbCr, it is off by some 100)
    const ch = grey ? 0 : 2;
    if (name.includes('q100') || name.startsWith('rgb-stored')) expect(Math.abs(byteAt(ours, 5, 7, ch) - jpegPixel(5, 7, ch))).toBeLessThanOrEqual(3);
    expect(readImageHeader(path)).toEqual({ width, height, grey });
    expect(readImage(path)).toEqual(ours); // told apart from a PNG by its bytes
  });
});

describe("chroma upsampling and colour conversion as libjpeg's defaults make them (jdsample.c, jdcolor.c)", () => {
  // A component of 3×2 samples (its real size), padded as jpeg-js pads to whole blocks with samples
  // that must not be read (250). The samples were searched for so that libjpeg's rounding shows:
  // with any other biases than libjpeg's, some output of each filter below comes out different.
  const component = () => [[137, 228, 1, 250], [134, 186, 168, 250], [250, 250, 250, 250]].map((row) => Uint8Array.from(row));
  /** The component brought to `width` × `height`, its sampling factors `own` of the frame's `max`. */
  const upsampled = (own: Sampling, max: Sampling, width: number, height: number) =>
    upsampleComponent(component(), own, max, width, height).map((row) => Array.from(row.subarray(0, width)));
  const one = { h: 1, v: 1 };
  /** The first `width` samples of the first `height` rows. */
  const cut = (rows: number[][], width: number, height: number) => rows.slice(0, height).map((row) => row.slice(0, width));

  it("interpolates 4:2:0 chroma (h2v2) with libjpeg's rounding, repeating the first and last rows and columns at the edges", () => {
    // Down: 3 × the nearer row + the next (the first or last row itself past the edges, as libjpeg's
    // jdmainct.c arranges); across: 3 × the nearer of those sums + the next, over 16, rounded with
    // 8 left of a sample's centre and 7 right of it. (0, 0): 4 × 4 × 137 = 2192, + 8 >> 4 = 137;
    // (1, 0): 3 × 548 + 912 + 7 = 2563 >> 4 = 160; (0, 1): 4 × (3 × 137 + 134) + 8 = 2188 >> 4 = 136;
    // (5, 1): 4 × (3 × 1 + 168) + 7 = 691 >> 4 = 43; (0, 3): 4 × 4 × 134 + 8 = 2152 >> 4 = 134.
    const want = [
      [137, 160, 205, 171, 58, 1],
      [136, 157, 197, 174, 86, 43],
      [135, 150, 181, 179, 144, 126],
      [134, 147, 173, 181, 173, 168],
    ];
    expect(upsampled(one, { h: 2, v: 2 }, 6, 4)).toEqual(want);
    // A 5×3 picture has the same component (ceil(5 / 2) × ceil(3 / 2) samples): its odd last
    // column and row are the left and upper halves of the last samples'.
    expect(upsampled(one, { h: 2, v: 2 }, 5, 3)).toEqual(cut(want, 5, 3));
    // The ratio is what counts, not the factors: 2×1 of 4×2 is half across and down too.
    expect(upsampled({ h: 2, v: 1 }, { h: 4, v: 2 }, 6, 4)).toEqual(want);
  });

  it('interpolates 4:2:2 (h2v1) and 4:4:0 (h1v2) chroma with their own rounding', () => {
    // Across: (3 × nearer + next + 1) >> 2 left of a sample's centre, + 2 right of it; (2, 0):
    // 3 × 228 + 137 + 1 = 822 >> 2 = 205, (1, 0): 3 × 137 + 228 + 2 = 641 >> 2 = 160.
    const across = [
      [137, 160, 205, 171, 58, 1],
      [134, 147, 173, 182, 172, 168],
    ];
    expect(upsampled(one, { h: 2, v: 1 }, 6, 2)).toEqual(across);
    expect(upsampled(one, { h: 2, v: 1 }, 5, 2)).toEqual(cut(across, 5, 2));
    // Down: + 1 above a row's centre, + 2 below it; (1, 1): 3 × 228 + 186 + 2 = 872 >> 2 = 218,
    // (0, 2): 3 × 134 + 137 + 1 = 540 >> 2 = 135.
    const down = [
      [137, 228, 1],
      [136, 218, 43],
      [135, 196, 126],
      [134, 186, 168],
    ];
    expect(upsampled(one, { h: 1, v: 2 }, 3, 4)).toEqual(down);
    expect(upsampled(one, { h: 1, v: 2 }, 3, 3)).toEqual(cut(down, 3, 3));
    expect(upsampled(one, { h: 1, v: 2 }, 1, 4)).toEqual(cut(down, 1, 4)); // however narrow
  });

  it('repeats samples where libjpeg does: components 2 samples wide or less, and other ratios', () => {
    // libjpeg interpolates across only a component over 2 samples wide (jinit_upsampler).
    expect(upsampled(one, { h: 2, v: 2 }, 4, 4)).toEqual([[137, 137, 228, 228], [137, 137, 228, 228], [134, 134, 186, 186], [134, 134, 186, 186]]);
    expect(upsampled(one, { h: 2, v: 1 }, 3, 2)).toEqual([[137, 137, 228], [134, 134, 186]]);
    // 4:1:1: a quarter across (int_upsample).
    expect(upsampled(one, { h: 4, v: 1 }, 10, 2)).toEqual([[137, 137, 137, 137, 228, 228, 228, 228, 1, 1], [134, 134, 134, 134, 186, 186, 186, 186, 168, 168]]);
    // 2 of 3 across, which libjpeg refuses: the nearest sample to the left, as jpeg-js takes it.
    expect(upsampled({ h: 2, v: 1 }, { h: 3, v: 1 }, 4, 2)).toEqual([[137, 137, 228, 1], [134, 134, 186, 168]]);
    const rows = component();
    expect(upsampleComponent(rows, one, one, 3, 2)).toBe(rows); // full size: the rows as decoded
  });

  it("makes libjpeg's decoding exactly from libjpeg's own component planes (4:2:0, 37×21: chroma 19×11)", () => {
    // make-jpegs.c writes the planes as libjpeg decodes them, before upsampling and colour
    // conversion: from the same samples our upsampling and YCbCr tables must give the same bytes.
    const planes = [1, 2, 3].map((k) => readPnm(fixture(`rgb420-q90-baseline.plane-${k}.pgm`)));
    expect(planes.map((p) => [p.width, p.height])).toEqual([[37, 21], [19, 11], [19, 11]]);
    const rows = (p: { width: number; height: number; data: Uint8Array }) => Array.from({ length: p.height }, (_, y) => p.data.subarray(y * p.width, (y + 1) * p.width));
    const sampling = [{ h: 2, v: 2 }, one, one];
    const rgba = toRgba(planes.map((p, c) => upsampleComponent(rows(p), sampling[c], { h: 2, v: 2 }, 37, 21)), true, 37, 21);
    const theirs = readPnm(fixture('rgb420-q90-baseline.ppm')).data;
    let differing = 0;
    for (let i = 0; i < 37 * 21 * 3; i++) if (rgba[Math.floor(i / 3) * 4 + (i % 3)] !== theirs[i]) differing++;
    expect(differing).toBe(0);
  });
});

describe("the one-scan fast path (nin/jpeg-baseline.ts) gives jpeg-js's planes byte for byte", () => {
  const fixtures = (dir: string) => readdirSync(fileURLToPath(new URL(`./fixtures/${dir}`, import.meta.url))).filter((f) => f.endsWith('.jpg')).map((f) => `${dir}${f}`);
  const planes = (p: ComponentPlanes) => ({ width: p.width, height: p.height, components: p.components.map((c) => c.lines.map((line) => Array.from(line))) });

  it('on every sequential fixture, and leaves the progressive and arithmetic-coded ones to jpeg-js', () => {
    const taken: string[] = [];
    for (const name of [...fixtures(''), ...fixtures('baseline/')]) {
      const bytes = readFileSync(fixture(name));
      const fast = decodeBaselineJpeg(bytes);
      if (!fast) continue;
      taken.push(name);
      expect(planes(fast), name).toEqual(planes(jpegJsPlanes(bytes)));
    }
    const sequential = (name: string) => !/progressive|arithmetic|orientation-8|stored-named/.test(name); // (those two: progressive files)
    expect(taken).toEqual([...fixtures(''), ...fixtures('baseline/')].filter(sequential));
    expect(taken.filter((n) => n.startsWith('baseline/'))).toHaveLength(14);
  });

  it('on damaged files: the same planes, or none, leaving the file (and its error) to jpeg-js', () => {
    const sources = fixtures('baseline/').map((name) => readFileSync(fixture(name)));
    let seed = 5;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    let same = 0;
    for (let t = 0; t < 600; t++) {
      const bytes = Uint8Array.from(sources[t % sources.length]);
      for (let e = Math.floor(rnd() * 3); e >= 0; e--) {
        const at = Math.floor(rnd() * bytes.length);
        const kind = rnd();
        bytes[at] = kind < 0.5 ? Math.floor(rnd() * 256) : kind < 0.75 ? bytes[at] ^ (1 << Math.floor(rnd() * 8)) : kind < 0.9 ? 0xff : 0;
      }
      const fast = decodeBaselineJpeg(bytes);
      if (!fast) continue;
      let theirs: ComponentPlanes | Error;
      try {
        theirs = jpegJsPlanes(bytes);
      } catch (e) {
        theirs = e as Error;
      }
      expect(theirs instanceof Error ? `jpeg-js: ${theirs.message}` : planes(theirs), `edit ${t}`).toEqual(planes(fast));
      same++;
    }
    expect(same).toBeGreaterThan(150); // (a check of something: many damaged files still decode)
  });

  it('reads 16-bit quantisation tables as jpeg-js does: the planes of their 8-bit originals', () => {
    const bytes = readFileSync(fixture('rgb420-q90-baseline.jpg'));
    // Each DQT segment rewritten with its tables' values as 16 bits (precision 1).
    const parts: Buffer[] = [];
    let last = 0;
    for (const dqt of segmentsAt(bytes, 0xdb)) {
      const end = dqt + 2 + bytes.readUInt16BE(dqt + 2);
      const tables: Buffer[] = [];
      for (let p = dqt + 4; p < end; p += 65) {
        expect(bytes[p] >> 4).toBe(0);
        const table = Buffer.alloc(129);
        table[0] = 0x10 | (bytes[p] & 15);
        for (let j = 0; j < 64; j++) table.writeUInt16BE(bytes[p + 1 + j], 1 + 2 * j);
        tables.push(table);
      }
      const body = Buffer.concat(tables);
      const head = Buffer.from([0xff, 0xdb, 0, 0]);
      head.writeUInt16BE(2 + body.length, 2);
      parts.push(bytes.subarray(last, dqt), head, body);
      last = end;
    }
    const wide = Buffer.concat([...parts, bytes.subarray(last)]);
    expect(wide.length).toBeGreaterThan(bytes.length);
    const fast = decodeBaselineJpeg(wide);
    expect(fast).not.toBeNull();
    expect(planes(fast!)).toEqual(planes(jpegJsPlanes(wide)));
    expect(planes(fast!)).toEqual(planes(decodeBaselineJpeg(bytes)!));
  });

  // Headers the fast path does not take (the top of nin/jpeg-baseline.ts), each one edit from a
  // file it takes: left to jpeg-js (null), not decoded as the 8-bit, one-scan sequential file it is not.
  it('leaves to jpeg-js a precision other than 8 bits, a scan other than the whole sequential band, and tables after the scan', () => {
    const bytes = readFileSync(fixture('rgb420-q90-baseline.jpg'));
    expect(decodeBaselineJpeg(bytes)).not.toBeNull();
    const [sof, sos, dqt] = [0xc0, 0xda, 0xdb].map((marker) => segmentsAt(bytes, marker)[0]);
    const edited = (edit: (b: Buffer) => void) => editedCopy(bytes, edit);
    expect(decodeBaselineJpeg(edited((b) => (b[sof + 4] = 12)))).toBeNull(); // 12-bit samples
    const spectral = sos + 5 + 2 * bytes[sos + 4]; // Ss, Se, Ah/Al
    expect(decodeBaselineJpeg(edited((b) => (b[spectral + 1] = 62)))).toBeNull(); // Se 62: coefficients 0…62 only
    // A quantisation table after the scan: jpeg-js dequantises with the tables as they stand at the end.
    const dqtSegment = bytes.subarray(dqt, dqt + 2 + bytes.readUInt16BE(dqt + 2));
    expect(bytes.readUInt16BE(bytes.length - 2)).toBe(0xffd9);
    expect(decodeBaselineJpeg(Buffer.concat([bytes.subarray(0, bytes.length - 2), dqtSegment, bytes.subarray(bytes.length - 2)]))).toBeNull();
  });

  // Damaged files, each made from a file the fast path takes, that jpeg-js refuses (its error, checked
  // here) or reads otherwise than this path would (null: its planes): left to jpeg-js, not decoded.
  it('leaves to jpeg-js damaged headers: fields out of range, a table longer than its segment, a scan that does not decode each component once, no scan', () => {
    const bytes = readFileSync(fixture('rgb420-q90-baseline.jpg'));
    const [sof, sos, dqt] = [0xc0, 0xda, 0xdb].map((marker) => segmentsAt(bytes, marker)[0]);
    const segmentEnd = (b: Buffer, at: number) => at + 2 + b.readUInt16BE(at + 2);
    const segment = (marker: number, body: number[]) => Buffer.from([0xff, marker, (2 + body.length) >> 8, (2 + body.length) & 255, ...body]);
    const cases: [string, Buffer, string | null][] = [];
    // The first DQT's table as 16-bit entries: taken under precision 1; 2 is no precision.
    const widened = (precision: number) => {
      const entries = Array.from(bytes.subarray(dqt + 5, dqt + 69), (v) => [0, v]).flat();
      return Buffer.concat([bytes.subarray(0, dqt), segment(0xdb, [(precision << 4) | (bytes[dqt + 4] & 15), ...entries]), bytes.subarray(segmentEnd(bytes, dqt))]);
    };
    expect(planes(decodeBaselineJpeg(widened(1))!)).toEqual(planes(decodeBaselineJpeg(bytes)!));
    cases.push(['quantisation table precision 2', widened(2), 'DQT: invalid table spec']);
    // A DQT declaring 61 of its table's 65 bytes, whose last 4 open a comment over the next segment:
    // jpeg-js reads the whole table, then the segment after it, here table 0 again with other values.
    const short = Buffer.from(bytes.subarray(dqt, segmentEnd(bytes, dqt)));
    short.writeUInt16BE(63, 2);
    short.set([0xff, 0xfe, 0, 2 + 69], 65);
    const again = Buffer.from(bytes.subarray(dqt, segmentEnd(bytes, dqt))).map((v, i) => (i > 4 ? Math.min(255, v * 2) : v));
    cases.push(['DQT shorter than its table', Buffer.concat([bytes.subarray(0, dqt), short, again, bytes.subarray(segmentEnd(bytes, dqt))]), null]);
    // Huffman tables jpeg-js cannot build (unused here): a code of all 1 bits (two of 1 bit), and more codes than fit.
    for (const [name, counts] of [['a code of all 1 bits', [2]], ['3 codes of 1 bit', [3]], ['3 codes of 2 bits after one of 1', [1, 3]]] as const) {
      const table = segment(0xc4, [0x02, ...Array.from({ length: 16 }, (_, l) => counts[l] ?? 0), ...Array(counts.reduce((s: number, n) => s + n, 0)).fill(0)]);
      cases.push([`DC table 2 with ${name}`, Buffer.concat([bytes.subarray(0, sos), table, bytes.subarray(sos)]), 'Could not recreate Huffman Table']);
    }
    // A fourth component sampled 0×1 (no blocks), in the frame and the scan.
    const frame4 = Buffer.concat([bytes.subarray(sof, segmentEnd(bytes, sof)), Buffer.from([4, 0x01, 0])]);
    frame4.writeUInt16BE(frame4.length - 2, 2);
    frame4[9] = 4;
    const scan4 = Buffer.concat([bytes.subarray(sos, sos + 11), Buffer.from([4, 0x00]), bytes.subarray(sos + 11, segmentEnd(bytes, sos))]);
    scan4.writeUInt16BE(scan4.length - 2, 2);
    scan4[4] = 4;
    cases.push(['sampling 0×1', Buffer.concat([bytes.subarray(0, sof), frame4, bytes.subarray(segmentEnd(bytes, sof), sos), scan4, bytes.subarray(segmentEnd(bytes, sos))]), 'Invalid sampling factor, expected values above 0']);
    cases.push(['a scan of component 1 twice, 3 not at all', editedCopy(bytes, (b) => (b[sos + 7] = b[sos + 5])), null]); // jpeg-js: 3's blocks 0 (128)
    cases.push(['no scan', Buffer.concat([bytes.subarray(0, sos), Buffer.from([0xff, 0xd9])]), null]); // jpeg-js: every block 0
    cases.push(['a progressive frame (SOF2)', editedCopy(bytes, (b) => (b[sof + 1] = 0xc2)), null]); // jpeg-js: DC coefficients only
    // A grey picture's frame with two more components (a 3-component file cut after its first scan).
    const grey = readFileSync(fixture('grey-q100-baseline.jpg'));
    const greySof = segmentsAt(grey, 0xc0)[0];
    const frame3 = Buffer.concat([grey.subarray(greySof, segmentEnd(grey, greySof)), Buffer.from([2, 0x11, 0, 3, 0x11, 0])]);
    frame3.writeUInt16BE(frame3.length - 2, 2);
    frame3[9] = 3;
    cases.push(['one scan of 1 of 3 components', Buffer.concat([grey.subarray(0, greySof), frame3, grey.subarray(segmentEnd(grey, greySof))]), null]); // jpeg-js: 2 and 3 at 128
    for (const [name, file, error] of cases) {
      expect(decodeBaselineJpeg(file), name).toBeNull();
      if (error) expect(() => jpegJsPlanes(file), name).toThrow(error);
      else expect(jpegJsPlanes(file).components.length, name).toBeGreaterThan(0);
    }
  });

  it('leaves to jpeg-js entropy-coded data it reads otherwise: restart markers the DRI does not say, a DC difference of 33 bits, a code no table holds', () => {
    const cases: [string, Buffer, string][] = [];
    // A restart marker and 2 bytes after the last interval: jpeg-js takes them for a marker.
    const bytes = readFileSync(fixture('rgb420-q90-baseline.jpg'));
    cases.push(['bytes after a last restart marker', Buffer.concat([bytes.subarray(0, -2), Buffer.from([0xff, 0xd0, 0x12, 0x34, 0xff, 0xd9])]), 'unknown JPEG marker 1234']);
    // A restart interval of 257 MCUs (a bit flipped in the DRI) over data with a restart marker after every MCU.
    const everyMcu = readFileSync(fixture('rgb444-restart-1.jpg'));
    const dri = segmentsAt(everyMcu, 0xdd)[0];
    expect(everyMcu.readUInt16BE(dri + 4)).toBe(1);
    cases.push(['DRI 257 over intervals of 1', editedCopy(everyMcu, (b) => b.writeUInt16BE(257, dri + 4)), 'unexpected marker: ffd0']);
    // A DC table's value 5 made 33: jpeg-js reads 33 bits for that difference.
    const grey = readFileSync(fixture('baseline/grey-13x7-restart-blocks-1.jpg'));
    const dht = segmentsAt(grey, 0xc4)[0];
    expect([grey[dht + 4], grey[dht + 4 + 17 + 5]]).toEqual([0x00, 5]); // DC table 0, its value 5
    cases.push(['a DC category of 33', editedCopy(grey, (b) => (b[dht + 4 + 17 + 5] = 33)), 'unexpected marker: ffd9']);
    // A byte of the data damaged: an AC code that the table does not hold.
    const optimized = readFileSync(fixture('baseline/rgb422-31x31-q1-optimized.jpg'));
    const sos = segmentsAt(optimized, 0xda)[0];
    cases.push(['a code no AC table holds', editedCopy(optimized, (b) => (b[sos + 2 + b.readUInt16BE(sos + 2) + 7] = 254)), 'invalid huffman sequence']);
    for (const [name, file, error] of cases) {
      expect(decodeBaselineJpeg(file), name).toBeNull();
      expect(() => jpegJsPlanes(file), name).toThrow(error);
    }
  });
});

describe('EXIF orientation: a JPEG is read upright, as viewers show it', () => {
  // The same pictures as grey-q100-baseline and rgb444-q100-progressive, with an EXIF block: the
  // coded pixels are the same, so the views must be those pictures turned exactly. The turns are
  // composed here from a quarter turn and a mirror, as EXIF describes the tags.
  type Grid = { width: number; height: number; at: (x: number, y: number) => number[] };
  const grid = (image: DecodedImage): Grid => ({ width: image.width, height: image.height, at: (x, y) => [0, 1, 2, 3].map((ch) => image.rgba[(y * image.width + x) * 4 + ch]) });
  const clockwise = (g: Grid): Grid => ({ width: g.height, height: g.width, at: (x, y) => g.at(y, g.height - 1 - x) });
  const mirror = (g: Grid): Grid => ({ ...g, at: (x, y) => g.at(g.width - 1 - x, y) });
  const turns = (g: Grid, n: number): Grid => (n === 0 ? g : turns(clockwise(g), n - 1));
  const views: Record<number, (g: Grid) => Grid> = {
    2: mirror, // mirrored left to right
    3: (g) => turns(g, 2), // turned 180°
    4: (g) => turns(mirror(g), 2), // mirrored, then turned 180°: mirrored top to bottom
    5: (g) => turns(mirror(g), 3), // mirrored, then turned 270° clockwise
    6: (g) => turns(g, 1), // turned 90° clockwise
    7: (g) => turns(mirror(g), 1), // mirrored, then turned 90° clockwise
    8: (g) => turns(g, 3), // turned 270° clockwise
  };
  it.each([
    ['grey-orientation-2', 'grey-q100-baseline', 2, true],
    ['grey-orientation-3', 'grey-q100-baseline', 3, true],
    ['grey-orientation-4', 'grey-q100-baseline', 4, true], // big-endian
    ['grey-orientation-5', 'grey-q100-baseline', 5, true], // big-endian EXIF ("MM")
    ['grey-orientation-6', 'grey-q100-baseline', 6, true], // little-endian ("II")
    ['grey-orientation-7', 'grey-q100-baseline', 7, true],
    ['rgb-orientation-8', 'rgb444-q100-progressive', 8, false],
  ] as const)('%s is %s turned as orientation %d says', (name, plain, orientation, grey) => {
    const want = views[orientation](grid(readJpeg(fixture(`${plain}.jpg`))));
    const got = readJpeg(fixture(`${name}.jpg`));
    expect([got.width, got.height]).toEqual([want.width, want.height]);
    expect(want.width).toBe(orientation >= 5 ? 11 : 13); // stored 13×11
    for (let y = 0; y < got.height; y++) for (let x = 0; x < got.width; x++) expect(grid(got).at(x, y), `(${x}, ${y})`).toEqual(want.at(x, y));
    expect(readImageHeader(fixture(`${name}.jpg`))).toEqual({ width: want.width, height: want.height, grey });
    // A model sees the picture upright: the 11×13 model input of orientation 6 is not resized.
    const input = loadImageForModel(fixture(`${name}.jpg`), { height: want.height, width: want.width, channels: 1 });
    expect(input.originalSize).toEqual([want.height, want.width]);
    expect(input.pixels[1]).toBeCloseTo(grey ? want.at(1, 0)[0] : 0.299 * want.at(1, 0)[0] + 0.587 * want.at(1, 0)[1] + 0.114 * want.at(1, 0)[2], 6);
  });

  it('reads the orientation tag in either byte order, and takes a damaged EXIF block as none', () => {
    const block = (order: 'II' | 'MM', entries: [number, number, number][], directory = 8) => {
      const little = order === 'II';
      const b = Buffer.alloc(directory + 2 + 12 * entries.length + 4);
      b.write(order, 0, 'latin1');
      const u16 = (at: number, v: number) => (little ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
      const u32 = (at: number, v: number) => (little ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
      u16(2, 42);
      u32(4, directory);
      u16(directory, entries.length);
      entries.forEach(([tag, type, value], i) => {
        const at = directory + 2 + 12 * i;
        u16(at, tag);
        u16(at + 2, type);
        u32(at + 4, 1);
        u16(at + 8, value);
      });
      return b;
    };
    const make = 0x010f; // another tag before it
    expect(exifOrientation(block('II', [[make, 2, 0x4141], [0x0112, 3, 6]]))).toBe(6);
    expect(exifOrientation(block('MM', [[0x0112, 3, 8]]))).toBe(8);
    expect(exifOrientation(block('MM', [[0x0112, 3, 3]], 20))).toBe(3); // the directory further on
    expect(exifOrientation(block('II', [[make, 2, 0]]))).toBe(1); // no orientation tag
    expect(exifOrientation(block('II', [[0x0112, 3, 9]]))).toBe(1); // no such orientation
    expect(exifOrientation(block('II', [[0x0112, 4, 6]]))).toBe(1); // not a SHORT
    expect(exifOrientation(block('II', [[0x0112, 3, 6]]).subarray(0, 20))).toBe(1); // the entry cut off
    const wrongMagic = block('II', [[0x0112, 3, 6]]);
    wrongMagic[2] = 43;
    expect(exifOrientation(wrongMagic)).toBe(1);
    const pastTheEnd = block('II', [[0x0112, 3, 6]]);
    pastTheEnd.writeUInt32LE(1000, 4);
    expect(exifOrientation(pastTheEnd)).toBe(1);
    expect(exifOrientation(Buffer.from('XX*\0'))).toBe(1);
  });
});

describe('JPEG errors name the file and what is wrong', () => {
  const whole = readFileSync(fixture('rgb444-q100-baseline.jpg'));
  const scan = whole.indexOf(Buffer.from([0xff, 0xda]));
  /** Offset of the frame header (SOF0) in `whole`. */
  const sof = whole.indexOf(Buffer.from([0xff, 0xc0]));
  const patched = (edit: (b: Buffer) => void) => editedCopy(whole, edit);
  /** The bytes of `whole`'s one scan's entropy-coded data: from its header's end to the end marker. */
  const codedBytes = whole.length - 2 - (scan + 2 + whole.readUInt16BE(scan + 2));
  /** The frame header (SOF0) of `whole` with another size. */
  const sofOf = (width: number, height: number) => {
    const header = Buffer.from(whole.subarray(sof, sof + 2 + whole.readUInt16BE(sof + 2)));
    header.writeUInt16BE(height, 5);
    header.writeUInt16BE(width, 7);
    return header;
  };
  it('refuses what it cannot read, by name, before decoding', () => {
    const cases: [string, Uint8Array, string][] = [
      ['arithmetic.jpg', readFileSync(fixture('rgb-arithmetic.jpg')), 'an arithmetic-coded sequential JPEG (frame marker ff c9): only Huffman-coded baseline, extended and progressive JPEGs are read; re-save it as an ordinary JPEG or PNG'],
      ['arithmetic-progressive.jpg', patched((b) => (b[sof + 1] = 0xca)), 'an arithmetic-coded progressive JPEG (frame marker ff ca): only Huffman-coded baseline, extended and progressive JPEGs are read; re-save it as an ordinary JPEG or PNG'],
      ['lossless.jpg', patched((b) => (b[sof + 1] = 0xc3)), 'a lossless JPEG (frame marker ff c3): only Huffman-coded baseline, extended and progressive JPEGs are read; re-save it as an ordinary JPEG or PNG'],
      ['jpeg-ls.jpg', patched((b) => (b[sof + 1] = 0xf7)), 'a JPEG-LS JPEG (frame marker ff f7): only Huffman-coded baseline, extended and progressive JPEGs are read; re-save it as an ordinary JPEG or PNG'],
      ['cmyk.jpg', readFileSync(fixture('cmyk.jpg')), 'a CMYK (or YCCK) JPEG, 4 components: only grey and colour (RGB) JPEGs are read; convert it to RGB'],
      ['12-bit.jpg', patched((b) => (b[sof + 4] = 12)), 'a 12-bit JPEG: only 8-bit samples are read; re-save it at 8 bits'],
      ['dnl.jpg', patched((b) => b.writeUInt16BE(0, sof + 5)), 'the frame header leaves the height to a later DNL marker, which this reader does not take; re-save the image'],
      ['zero-width.jpg', patched((b) => b.writeUInt16BE(0, sof + 7)), 'corrupt JPEG: the frame header gives width 0'],
      ['sampling.jpg', patched((b) => (b[sof + 11] = 0x51)), "corrupt JPEG: component 1's sampling factors are 5×1 (1 to 4 each)"],
      ['sampling-v.jpg', patched((b) => (b[sof + 14] = 0x15)), "corrupt JPEG: component 2's sampling factors are 1×5 (1 to 4 each)"],
      ['sampling-0.jpg', patched((b) => (b[sof + 17] = 0x01)), "corrupt JPEG: component 3's sampling factors are 0×1 (1 to 4 each)"],
      ['short-segment.jpg', patched((b) => b.writeUInt16BE(1, sof + 2)), `corrupt JPEG: segment ff c0 at byte ${sof} declares 1 bytes (at least 2)`],
      ['eoi-first.jpg', Buffer.concat([whole.subarray(0, 2), Buffer.from([0xff, 0xd9]), whole.subarray(2)]), 'corrupt JPEG: marker ff d9 at byte 2 before the image data'],
      // ff d9 in a segment before the image data (an EXIF thumbnail's end) is no end of the image.
      ['cut-after-thumbnail.jpg', Buffer.concat([whole.subarray(0, 2), Buffer.from([0xff, 0xe1, 0, 6, 0xff, 0xd8, 0xff, 0xd9]), whole.subarray(2, (scan + whole.length) >> 1)]), 'corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short'],
      ['not-jpeg-3rd-byte.jpg', Buffer.concat([Buffer.from([0xff, 0xd8, 0x00]), whole.subarray(3)]), `not a PNG or JPEG file: expected PNG's signature 89 50 4e 47 0d 0a 1a 0a or JPEG's ff d8 ff, found ff d8 00 ${Array.from(whole.subarray(3, 8), (v) => v.toString(16).padStart(2, '0')).join(' ')}`],
      ['huge.jpg', patched((b) => (b.writeUInt16BE(8192, sof + 5), b.writeUInt16BE(8193, sof + 7))), 'JPEG is 8193×8192 (67117056 pixels), more than the 33554432 this reader accepts; resize it first'],
      ['cut-header.jpg', whole.subarray(0, 30), 'corrupt JPEG: the file ends at byte 30 inside segment ff db at byte 20, which declares 67 bytes: it is cut short'],
      ['cut-before-scan.jpg', whole.subarray(0, scan), `corrupt JPEG: the file ends at byte ${scan} before its image data: it is cut short`],
      ['cut-in-scan.jpg', whole.subarray(0, (scan + whole.length) >> 1), 'corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short'],
      ['not-a-marker.jpg', patched((b) => (b[sof] = 0x12)), `corrupt JPEG: expected a marker (ff xx) at byte ${sof}, found 12`],
      ['two-frames.jpg', Buffer.concat([whole.subarray(0, scan), whole.subarray(sof, scan), whole.subarray(scan)]), `corrupt JPEG: a second frame header at byte ${scan}`],
      // Past the first scan, found by walking the whole file before jpeg-js decodes it: a second
      // frame of 65535×65535 made jpeg-js allocate until the process ran out of memory; tables that
      // no segment defines reached the user as JavaScript's "Cannot read properties of undefined".
      ['second-frame-after-scan.jpg', Buffer.concat([whole.subarray(0, -2), sofOf(65535, 65535), whole.subarray(-2)]), `corrupt JPEG: a second frame header at byte ${whole.length - 2}`],
      // A size its data cannot fill, within the pixel limit: jpeg-js allocated for it first (570 MB for this file at 4096×4096).
      ['large-for-its-data.jpg', patched((b) => (b.writeUInt16BE(4096, sof + 5), b.writeUInt16BE(4096, sof + 7))), `corrupt JPEG: its 786432 blocks of 8×8 need at least 98304 bytes of image data, it holds ${codedBytes}: the frame header's size is damaged, or the data cut short`],
      ['no-dht.jpg', patched((b) => { for (const at of segmentsAt(b, 0xc4)) b[at + 1] = 0xe5; }), `corrupt JPEG: the scan at byte ${scan} decodes component id 1 with DC Huffman table 0, which no DHT before it defines`],
      ['ac-table-3.jpg', patched((b) => (b[scan + 6] = 0x03)), `corrupt JPEG: the scan at byte ${scan} decodes component id 1 with AC Huffman table 3, which no DHT before it defines`],
      ['no-dqt.jpg', patched((b) => { for (const at of segmentsAt(b, 0xdb)) b[at + 1] = 0xe6; }), 'corrupt JPEG: component id 1 uses quantisation table 0, which no DQT defines'],
      ['quantisation-255.jpg', patched((b) => (b[sof + 18] = 255)), 'corrupt JPEG: component id 3 uses quantisation table 255, which no DQT defines'],
      ['scan-component-9.jpg', patched((b) => (b[scan + 5] = 9)), `corrupt JPEG: the scan at byte ${scan} names component id 9; the frame header's are 1, 2, 3`],
      ['frame-component-twice.jpg', patched((b) => (b[sof + 13] = 1)), `corrupt JPEG: the frame header at byte ${sof} names component id 1 twice`],
      ['scan-of-none.jpg', patched((b) => (b[scan + 4] = 0)), `corrupt JPEG: the scan header at byte ${scan} names 0 components in 10 bytes (1 to 4 components, 2 bytes each and 4 more)`],
      ['no-frame.jpg', Buffer.concat([whole.subarray(0, sof), whole.subarray(scan)]), `corrupt JPEG: image data (a scan at byte ${sof}) before the frame header`],
      // Entropy-coded data with a marker where none may be, and one ended early: jpeg-js's words.
      ['marker-in-scan.jpg', patched((b) => (b[scan + 40] = 0xff, b[scan + 41] = 0x12)), 'corrupt JPEG (unexpected marker: ff12)'],
      ['early-end.jpg', Buffer.concat([whole.subarray(0, (scan + whole.length) >> 1), Buffer.from([0xff, 0xd9])]), 'corrupt JPEG (unexpected marker: ffd9)'],
    ];
    for (const [name, bytes, message] of cases) {
      const path = write(name, bytes);
      expect(() => readImage(path), name).toThrow(new ImageLoadError(path, message.startsWith('not a PNG') ? message + ` ("${describeAscii(bytes.subarray(0, 8))}")` : message));
    }
    // The header alone already says so for what the frame header shows (its size too: a streamed
    // folder met a huge picture only at its batch, on the GPU), and for a file cut short (its last
    // bytes), but not for damage inside the scan.
    expect(() => readImageHeader(join(tmp, 'cmyk.jpg'))).toThrow(new ImageLoadError(join(tmp, 'cmyk.jpg'), 'a CMYK (or YCCK) JPEG, 4 components: only grey and colour (RGB) JPEGs are read; convert it to RGB'));
    expect(() => readImageHeader(join(tmp, 'huge.jpg'))).toThrow(new ImageLoadError(join(tmp, 'huge.jpg'), 'JPEG is 8193×8192 (67117056 pixels), more than the 33554432 this reader accepts; resize it first'));
    for (const cut of ['cut-in-scan.jpg', 'cut-after-thumbnail.jpg']) {
      expect(() => readImageHeader(join(tmp, cut))).toThrow(new ImageLoadError(join(tmp, cut), 'corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short'));
    }
    expect(readImageHeader(join(tmp, 'marker-in-scan.jpg'))).toEqual({ width: 37, height: 21, grey: false });
    // Bytes after the end (a second picture, a camera's trailer, a motion photo's video): the end
    // marker is searched for from the file's end back, 64 KiB at a time, one across two blocks too.
    const trailed = write('trailed.jpg', Buffer.concat([whole, Buffer.from('trailer')]));
    expect(readImageHeader(trailed)).toEqual({ width: 37, height: 21, grey: false });
    expect(readImage(trailed)).toEqual(readJpeg(fixture('rgb444-q100-baseline.jpg')));
    for (const trailer of [65534, 65535, 200_000]) { // 65534: the end marker opens the last 64 KiB block
      const long = write(`trailer-${trailer}.jpg`, Buffer.concat([whole, Buffer.alloc(trailer, 0x11)]));
      expect(readImageHeader(long), `${trailer} bytes after the end`).toEqual({ width: 37, height: 21, grey: false });
    }
    const cutPadded = write('cut-padded.jpg', Buffer.concat([whole.subarray(0, (scan + whole.length) >> 1), Buffer.alloc(200_000)]));
    expect(() => readImageHeader(cutPadded)).toThrow(new ImageLoadError(cutPadded, 'corrupt JPEG: no end-of-image marker (ff d9) after the image data: the file is cut short'));
  });

  it('reads what the standard allows between segments: fill bytes, and restart markers before the image data', () => {
    const want = readJpeg(fixture('rgb444-q100-baseline.jpg'));
    const filled = write('fill.jpg', Buffer.concat([whole.subarray(0, sof), Buffer.from([0xff, 0xff, 0xff]), whole.subarray(sof)]));
    expect(readImage(filled)).toEqual(want);
    expect(readImageHeader(filled)).toEqual({ width: 37, height: 21, grey: false });
    const restart = write('restart-first.jpg', Buffer.concat([whole.subarray(0, 2), Buffer.from([0xff, 0xd0]), whole.subarray(2)]));
    expect(readImageHeader(restart)).toEqual({ width: 37, height: 21, grey: false });
  });

  it('tells PNG and JPEG apart by their bytes, and names other files for what they look like', () => {
    const png = write('really-a-png.jpg', encodePng(2, 1, new Uint8Array([255, 0, 0, 255, 0, 0, 255, 255])));
    expect(readImage(png).rgba.slice(0, 4)).toEqual(new Float32Array([1, 0, 0, 1]));
    expect(readImageHeader(png)).toEqual({ width: 2, height: 1, grey: false });
    const jpeg = write('really-a-jpeg.png', whole);
    expect(readImage(jpeg).width).toBe(37);
    const gif = write('anim.jpg', Buffer.from('GIF89a\0\0\0\0'));
    const notImage = 'not a PNG or JPEG file: expected PNG\'s signature 89 50 4e 47 0d 0a 1a 0a or JPEG\'s ff d8 ff, found 47 49 46 38 39 61 00 00 ("GIF89a.."), which looks like GIF';
    expect(() => readImage(gif)).toThrow(new ImageLoadError(gif, notImage));
    expect(() => readImageHeader(gif)).toThrow(new ImageLoadError(gif, notImage));
    const empty = write('empty.jpg', new Uint8Array(0));
    expect(() => readImage(empty)).toThrow(new ImageLoadError(empty, "not a PNG or JPEG file: expected PNG's signature 89 50 4e 47 0d 0a 1a 0a or JPEG's ff d8 ff, found an empty file"));
    expect(() => readImage(join(tmp, 'nowhere.jpg'))).toThrow(new ImageLoadError(join(tmp, 'nowhere.jpg'), 'file not found'));
    expect(() => readJpeg(png)).toThrow(/really-a-png\.jpg: not a JPEG file: expected ff d8 ff, found 89 50 4e 47/);
  });

  it('reads the header of a JPEG whose frame header lies past its first 4 KiB, or 128 KiB', () => {
    // 40,000-byte APP2 segments (as a large ICC profile or EXIF thumbnail makes) before the rest.
    const app2 = Buffer.alloc(40_002);
    app2.writeUInt16BE(0xffe2, 0);
    app2.writeUInt16BE(40_000, 2);
    for (const segments of [1, 4]) {
      const far = write(`far-${segments}.jpg`, Buffer.concat([whole.subarray(0, 2), ...Array(segments).fill(app2), whole.subarray(2)]));
      expect(readImageHeader(far)).toEqual({ width: 37, height: 21, grey: false });
      expect(readImage(far)).toEqual(readJpeg(fixture('rgb444-q100-baseline.jpg')));
      // Cut off among the segments: named as cut short, whichever part of the file was read.
      const cut = write(`far-cut-${segments}.jpg`, Buffer.concat([whole.subarray(0, 2), ...Array(segments).fill(app2)]).subarray(0, 30_000 + 40_002 * (segments - 1)));
      expect(() => readImageHeader(cut)).toThrow(new ImageLoadError(cut, `corrupt JPEG: the file ends at byte ${30_000 + 40_002 * (segments - 1)} inside segment ff e2 at byte ${2 + 40_002 * (segments - 1)}, which declares 40000 bytes: it is cut short`));
    }
  });
});

describe('image folders of JPEGs', () => {
  it('sizes up and reads a folder of JPEGs and PNGs by their bytes, .jpg, .jpeg and .JPG alike', async () => {
    const root = join(tmp, 'folder');
    const grey = readFileSync(fixture('grey-q100-baseline.jpg'));
    const turned = readFileSync(fixture('grey-orientation-6.jpg'));
    const pngPixels = new Uint8Array(13 * 11 * 4).map((_, i) => (i % 4 === 3 ? 255 : (i >> 2) % 256));
    write('folder/train/cat/a.jpg', grey);
    write('folder/train/cat/b.JPG', grey);
    write('folder/train/dog/c.jpeg', grey);
    write('folder/train/dog/d.png', encodePng(13, 11, pngPixels)); // grey values as RGB
    write('folder/test/dog/e.jpg', grey);
    const train = scanImageFolder(root, 'train');
    expect(train.files.map((f) => [f.path.slice(root.length + 1), f.label])).toEqual([
      ['train/cat/a.jpg', 0],
      ['train/dog/c.jpeg', 1],
      ['train/cat/b.JPG', 0],
      ['train/dog/d.png', 1],
    ]);
    // The PNG is RGB: 3 channels. Grey JPEGs alone: 1.
    expect(folderImageShape(train)).toEqual({ height: 11, width: 13, channels: 3 });
    rmSync(join(root, 'train', 'dog', 'd.png'));
    expect(folderImageShape(scanImageFolder(root, 'train'))).toEqual({ height: 11, width: 13, channels: 1 });
    const data = await readImageFolder(scanImageFolder(root, 'train'), { height: 11, width: 13, channels: 1 }, { note: () => {} });
    const want = readJpeg(fixture('grey-q100-baseline.jpg'));
    expect(data.count).toBe(3);
    expect(Array.from(data.images.subarray(0, 13 * 11))).toEqual(Array.from({ length: 13 * 11 }, (_, p) => Math.fround(want.rgba[p * 4] * 255)));
    // A JPEG turned by its EXIF block is sized as it is viewed (11×13), so the folder's sizes differ.
    write('folder/train/dog/f.jpg', turned);
    expect(() => folderImageShape(scanImageFolder(root, 'train'))).toThrow('its images differ in size (width×height): 3 are 13×11 (e.g. ' + join(root, 'train', 'cat', 'a.jpg') + '), 1 is 11×13');
    // An empty file and one cut short are both named when the folder is sized up, before decoding.
    write('folder/train/cat/empty.jpg', new Uint8Array(0));
    write('folder/train/cat/zz-cut.jpg', grey.subarray(0, grey.length - 40));
    expect(() => folderImageShape(scanImageFolder(root, 'train'))).toThrow(
      new RegExp(`2 of 6 images cannot be read:\\n  ${join(root, 'train', 'cat', 'empty.jpg')}: not a PNG or JPEG file: .*found an empty file\\n  ${join(root, 'train', 'cat', 'zz-cut.jpg')}: corrupt JPEG: no end-of-image marker`),
    );
    rmSync(join(root, 'train', 'cat', 'empty.jpg'));
    rmSync(join(root, 'train', 'cat', 'zz-cut.jpg'));
    // A JPEG beside the class folders has no class.
    write('folder/train/stray.jpeg', grey);
    expect(() => scanImageFolder(root, 'train')).toThrow(`1 image lies outside the class folders: ${join(root, 'train', 'stray.jpeg')}`);
    rmSync(join(root, 'train', 'stray.jpeg'));
    // GIFs named for what they are stay refused as no image; a GIF named .jpg fails when the folder is sized up.
    write('folder/train/dog/g.gif', Buffer.from('GIF89a'));
    expect(() => scanImageFolder(root, 'train')).toThrow(`1 file is not .png, .jpg or .jpeg: ${join(root, 'train', 'dog', 'g.gif')}`);
    rmSync(join(root, 'train', 'dog', 'g.gif'));
    write('folder/train/dog/h.jpg', Buffer.from('GIF89a'));
    expect(() => folderImageShape(scanImageFolder(root, 'train'), { height: 8, width: 8 })).toThrow(`${join(root, 'train', 'dog', 'h.jpg')}: not a PNG or JPEG file`);
  });
});
