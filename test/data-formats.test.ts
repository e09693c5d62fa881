// Dataset file readers: the real MNIST / CIFAR-10 files in ../shared/data (skipped when absent),
// synthetic CIFAR-100 and SVHN .mat files, and corrupted / truncated / foreign files.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  CIFAR10_CLASSES,
  DataFormatError,
  readCifar10,
  readCifar100,
  readMatV5,
  readMnist,
  readMnistImages,
  readMnistLabels,
  readSvhn,
} from '../nin/data/index.ts';
import { allocImages } from '../nin/data/formats.ts';

const SHARED = fileURLToPath(new URL('../../shared/data/', import.meta.url));
const HAVE_SHARED = existsSync(join(SHARED, 'mnist')) && existsSync(join(SHARED, 'cifar-10-batches-bin'));
if (!HAVE_SHARED) console.warn(`data-formats: ${SHARED} not found, skipping the tests on real dataset files`);

const tmp = mkdtempSync(join(tmpdir(), 'nin-formats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tmpFile = (name: string, bytes: Uint8Array): string => {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
};

function range(a: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

describe.skipIf(!HAVE_SHARED)('real files in ../shared/data', () => {
  it('MNIST train: 60000 28×28 images, labels 5,0,4,1,9,2,1,3,1,4…', () => {
    const ds = readMnist(join(SHARED, 'mnist/train-images-idx3-ubyte.gz'), join(SHARED, 'mnist/train-labels-idx1-ubyte.gz'));
    expect([ds.count, ds.height, ds.width, ds.channels]).toEqual([60000, 28, 28, 1]);
    expect(ds.images.length).toBe(60000 * 784);
    expect(Array.from(ds.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(range(ds.images)).toEqual([0, 255]);
    // Every class is present, in roughly equal numbers.
    const hist = new Array(10).fill(0);
    for (const l of ds.labels) hist[l]++;
    expect(Math.min(...hist)).toBeGreaterThan(5000);
    // Image 0 (a "5") has ink in the middle and a blank border.
    expect(ds.images[14 * 28 + 14]).toBeGreaterThan(0);
    expect(ds.images[0]).toBe(0);
  });

  it('MNIST test: 10000 images and labels', () => {
    const img = readMnistImages(join(SHARED, 'mnist/t10k-images-idx3-ubyte.gz'));
    const labels = readMnistLabels(join(SHARED, 'mnist/t10k-labels-idx1-ubyte.gz'));
    expect([img.count, img.height, img.width]).toEqual([10000, 28, 28]);
    expect(labels.length).toBe(10000);
    expect(Array.from(labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
  });

  it('CIFAR-10 data_batch_1: 10000 NHWC 32×32×3 images, pixel order R,G,B', () => {
    const path = join(SHARED, 'cifar-10-batches-bin/data_batch_1.bin.gz');
    const ds = readCifar10([path]);
    expect([ds.count, ds.height, ds.width, ds.channels]).toEqual([10000, 32, 32, 3]);
    expect(ds.classNames).toEqual(CIFAR10_CLASSES);
    expect(range(ds.images)).toEqual([0, 255]);
    expect(ds.notes).toEqual([]);
    // Cross-check the planar → NHWC conversion against the raw record bytes.
    const raw = gunzipSync(readFileSync(path));
    expect(ds.labels[0]).toBe(raw[0]);
    for (const [r, y, x, c] of [[0, 0, 0, 0], [0, 31, 31, 2], [1, 5, 7, 1], [9999, 16, 3, 2]]) {
      expect(ds.images[((r * 32 + y) * 32 + x) * 3 + c]).toBe(raw[r * 3073 + 1 + c * 1024 + y * 32 + x]);
    }
  });

  it('CIFAR-10 partial test file: 1000 records accepted with a warning, labels 3,8,8,0,6,6,1,6,3,1…', () => {
    const warnings: string[] = [];
    const ds = readCifar10([join(SHARED, 'cifar-10-batches-bin/test_batch.first1000.bin.gz')], { warn: (m) => warnings.push(m) });
    expect(ds.count).toBe(1000);
    expect(Array.from(ds.labels.subarray(0, 10))).toEqual([3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/test_batch\.first1000\.bin\.gz: partial file, 1000 of 10000 records/);
    expect(ds.notes).toEqual(warnings);
  });
});

describe('MNIST idx validation', () => {
  const idxImages = (n: number, magic = 0x803): Buffer => {
    const b = Buffer.alloc(16 + n * 784);
    b.writeUInt32BE(magic, 0);
    b.writeUInt32BE(n, 4);
    b.writeUInt32BE(28, 8);
    b.writeUInt32BE(28, 12);
    for (let i = 16; i < b.length; i++) b[i] = i % 256;
    return b;
  };
  const idxLabels = (labels: number[]): Buffer => {
    const b = Buffer.alloc(8 + labels.length);
    b.writeUInt32BE(0x801, 0);
    b.writeUInt32BE(labels.length, 4);
    labels.forEach((l, i) => (b[8 + i] = l));
    return b;
  };

  it('reads a plain and a gzipped synthetic file identically', () => {
    const plain = readMnistImages(tmpFile('img-idx3-ubyte', idxImages(3)));
    const gz = readMnistImages(tmpFile('img-gz-idx3-ubyte.gz', gzipSync(idxImages(3))));
    expect(plain.count).toBe(3);
    expect(gz.images).toEqual(plain.images);
    expect(plain.images[0]).toBe(16);
  });

  it('gzip is detected by content, not by the name: a gzipped file without .gz, a plain one named .gz', () => {
    const plain = readMnistImages(tmpFile('plain2-idx3-ubyte', idxImages(2)));
    const gzNoSuffix = readMnistImages(tmpFile('gz-nosuffix-idx3-ubyte', gzipSync(idxImages(2))));
    expect(gzNoSuffix.count).toBe(2);
    expect(gzNoSuffix.images).toEqual(plain.images);
    expect(readMnistImages(tmpFile('plain-named-idx3-ubyte.gz', idxImages(2))).images).toEqual(plain.images);
  });

  it('a gzip stream that expands past twice what the official file holds is refused as it expands (a 1 MB file went to 1 GiB first); a little over, in the reader\'s words', () => {
    // 3 images' header and pixels are 2368 bytes; 3 official records allow twice that.
    const bomb = tmpFile('bomb-idx3-ubyte.gz', gzipSync(Buffer.concat([idxImages(3), Buffer.alloc(10_000_000)])));
    expect(() => readMnistImages(bomb, 3)).toThrow(new DataFormatError(bomb, 'gzip stream expands past 4736 bytes, twice the most the file holds (a 16-byte header and 3 images of 28×28): not the official file, or damaged'));
    expect(() => readMnistImages(bomb)).toThrow(/size mismatch: header says \[3, 28, 28\]/); // (no official count: expanded whole, then refused)
    const labels = tmpFile('over-idx1-ubyte.gz', gzipSync(idxLabels(Array.from({ length: 13 }, (_, i) => i % 10))));
    expect(() => readMnistLabels(labels, 2)).toThrow(new DataFormatError(labels, 'gzip stream expands past 20 bytes, twice the most the file holds (an 8-byte header and 2 labels): not the official file, or damaged'));
    expect(readMnistLabels(labels, 13)).toHaveLength(13);
    expect(readMnistLabels(labels, 7)).toHaveLength(13); // 21 bytes of 2 × 15 allowed: the reader's own checks judge the count
  });

  it('extra trailing bytes → error with expected and found size', () => {
    const p = tmpFile('long-idx3-ubyte', Buffer.concat([idxImages(3), Buffer.alloc(5)]));
    expect(() => readMnistImages(p)).toThrow(DataFormatError);
    expect(() => readMnistImages(p)).toThrow(`${p}: size mismatch: header says [3, 28, 28], so expected 2368 bytes (16 header + 2352 data), found 2373`);
  });

  it('truncated image file → error with expected and found size', () => {
    const p = tmpFile('trunc-idx3-ubyte', idxImages(3).subarray(0, 16 + 3 * 784 - 5));
    expect(() => readMnistImages(p)).toThrow(DataFormatError);
    expect(() => readMnistImages(p)).toThrow(`${p}: size mismatch: header says [3, 28, 28], so expected 2368 bytes (16 header + 2352 data), found 2363`);
  });

  it('foreign magic → error naming expected and found magic', () => {
    const p = tmpFile('labels-as-images', idxLabels([1, 2, 3]));
    expect(() => readMnistImages(p)).toThrow(`${p}: bad idx magic: expected 0x00000803, found 0x00000801`);
    const q = tmpFile('png-as-idx', Buffer.from('\x89PNG\r\n\x1a\n\0\0\0\rIHDR', 'latin1'));
    expect(() => readMnistLabels(q)).toThrow(/bad idx magic: expected 0x00000801, found 0x89504e47/);
  });

  it('header shorter than its dimensions → truncated', () => {
    const p = tmpFile('short-idx', idxImages(1).subarray(0, 10));
    expect(() => readMnistImages(p)).toThrow(/truncated idx file: 10 bytes, the header alone needs 16/);
    // Shorter than the magic number: the same error, not a bare RangeError from reading past the bytes.
    const three = tmpFile('three-bytes-idx', idxImages(1).subarray(0, 3));
    expect(() => readMnistImages(three)).toThrow(new DataFormatError(three, 'truncated idx file: 3 bytes, the header alone needs 16'));
  });

  it('corrupt gzip → error naming the file', () => {
    const gz = gzipSync(idxImages(2));
    const p = tmpFile('cut.gz', gz.subarray(0, gz.length - 30));
    expect(() => readMnistImages(p)).toThrow(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: gzip stream is corrupt or truncated`));
  });

  it('label outside 0..9 and count mismatch between the two files', () => {
    expect(() => readMnistLabels(tmpFile('bad-labels', idxLabels([1, 12])))).toThrow(/record 1: label 12 outside the expected range 0\.\.9/);
    const imgs = tmpFile('two-idx3', idxImages(2));
    const labs = tmpFile('three-idx1', idxLabels([1, 2, 3]));
    expect(() => readMnist(imgs, labs)).toThrow(/holds 3 labels, but .*two-idx3 holds 2 images/);
  });

  it('images not 28×28 in one dimension only → error naming the file and the size', () => {
    const narrow = idxImages(1);
    narrow.writeUInt32BE(27, 12);
    const p = tmpFile('narrow-idx3', narrow.subarray(0, 16 + 28 * 27));
    expect(() => readMnist(p, tmpFile('one-idx1', idxLabels([1])))).toThrow(new DataFormatError(p, 'MNIST images are 28×28, the header says 28×27'));
  });
});

describe('CIFAR binary validation', () => {
  const cifar10 = (labels: number[]): Buffer => {
    const b = Buffer.alloc(labels.length * 3073);
    labels.forEach((l, r) => {
      b[r * 3073] = l;
      for (let p = 0; p < 3072; p++) b[r * 3073 + 1 + p] = (r * 7 + p) % 256;
    });
    return b;
  };

  it('size that is not a whole number of records → error with counts', () => {
    const p = tmpFile('data_batch_x.bin', cifar10([1, 2]).subarray(0, 3073 * 2 - 100));
    expect(() => readCifar10([p])).toThrow(
      `${p}: size mismatch: expected 30730000 bytes (10000 records of 3073), found 6046 bytes (1 records + 2973 stray bytes)`,
    );
  });

  it('one record more than expected (10001) → size error, also for a test file that may be partial', () => {
    const p = tmpFile('data_batch_long.bin', Buffer.alloc(10001 * 3073));
    const warned = (m: string) => {
      throw new Error(`warned instead: ${m}`);
    };
    for (const requireComplete of [false, true]) {
      expect(() => readCifar10([p], { requireComplete, warn: warned })).toThrow(`${p}: size mismatch: expected 30730000 bytes (10000 records of 3073), found 30733073 bytes (10001 records)`);
    }
  });

  it('label byte ≥ 10 → foreign file', () => {
    const p = tmpFile('foreign.bin', cifar10([3, 200]));
    expect(() => readCifar10([p], { warn: () => {} })).toThrow(/record 1: label 200 outside the expected range 0\.\.9/);
    // 10 is the first label past CIFAR-10's ten classes.
    const ten = tmpFile('label-10.bin', cifar10([9, 10]));
    expect(() => readCifar10([ten], { warn: () => {} })).toThrow(new DataFormatError(ten, 'record 1: label 10 outside the expected range 0..9 (not a file of this dataset?)'));
  });

  it('a plain file whose first byte is gzip\'s first (0x1f) is read as it is, not as a gzip stream', () => {
    const p = tmpFile('label-31.bin', cifar10([0x1f, 1]));
    expect(() => readCifar10([p], { warn: () => {} })).toThrow(new DataFormatError(p, 'record 0: label 31 outside the expected range 0..9 (not a file of this dataset?)'));
  });

  it('CIFAR-100: a coarse label of 20, past the 20 superclasses → foreign file', () => {
    const b = Buffer.alloc(3074);
    b[0] = 20;
    b[1] = 5;
    const p = tmpFile('coarse-20.bin', b);
    expect(() => readCifar100(p, { warn: () => {} })).toThrow(new DataFormatError(p, 'record 0: coarse label 20 outside the expected range 0..19 (not a file of this dataset?)'));
  });

  it('an empty file → size error, not a partial file of no records', () => {
    const p = tmpFile('empty.bin', Buffer.alloc(0));
    const warned = (m: string) => {
      throw new Error(`warned instead: ${m}`);
    };
    expect(() => readCifar10([p], { warn: warned })).toThrow(new DataFormatError(p, 'size mismatch: expected 30730000 bytes (10000 records of 3073), found 0 bytes (0 records + 0 stray bytes)'));
  });

  it('several files concatenate in order; partial files are reported', () => {
    const warnings: string[] = [];
    const a = tmpFile('a.bin', cifar10([1, 2]));
    const b = tmpFile('b.bin.gz', gzipSync(cifar10([3])));
    const ds = readCifar10([a, b], { warn: (m) => warnings.push(m) });
    expect(ds.count).toBe(3);
    expect(Array.from(ds.labels)).toEqual([1, 2, 3]);
    expect(warnings.length).toBe(2);
    expect(ds.images[2 * 3072 + 3]).toBe(1); // record 2 = b's record 0: pixel 1, channel R = (0·7 + 1)
    expect(ds.images[1 * 3072 + 3]).toBe(8); // a's record 1: (1·7 + 1)
  });

  it('synthetic CIFAR-100: coarse and fine labels, NHWC pixels, class names', () => {
    const n = 5;
    const b = Buffer.alloc(n * 3074);
    for (let r = 0; r < n; r++) {
      b[r * 3074] = r * 4; // coarse
      b[r * 3074 + 1] = r * 20 + 3; // fine
      for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) b[r * 3074 + 2 + c * 1024 + p] = (r + c * 50 + p) % 251;
    }
    const warnings: string[] = [];
    const ds = readCifar100(tmpFile('train.bin', b), { expectedRecords: 50000, warn: (m) => warnings.push(m) });
    expect(ds.count).toBe(5);
    expect(Array.from(ds.coarseLabels!)).toEqual([0, 4, 8, 12, 16]);
    expect(Array.from(ds.labels)).toEqual([3, 23, 43, 63, 83]);
    expect(warnings[0]).toMatch(/partial file, 5 of 50000 records/);
    expect(ds.classNames).toHaveLength(100);
    expect(ds.coarseClassNames).toHaveLength(20);
    expect(new Set(CIFAR100_FINE_CLASSES).size).toBe(100);
    expect(CIFAR100_FINE_CLASSES[ds.labels[1]]).toBe('cloud');
    expect(CIFAR100_COARSE_CLASSES[ds.coarseLabels![1]]).toBe('fruit_and_vegetables');
    for (const [r, y, x, c] of [[0, 0, 0, 0], [2, 3, 4, 1], [4, 31, 31, 2]]) {
      expect(ds.images[((r * 32 + y) * 32 + x) * 3 + c]).toBe((r + c * 50 + y * 32 + x) % 251);
    }
  });

  it('requireComplete (training files): whole records but fewer than expected → error with the expected and found size', () => {
    const warned = (m: string) => {
      throw new Error(`warned instead: ${m}`);
    };
    const c10 = tmpFile('data_batch_short.bin', cifar10([1, 2]));
    expect(() => readCifar10([c10], { requireComplete: true, warn: warned })).toThrow(DataFormatError);
    expect(() => readCifar10([c10], { requireComplete: true, warn: warned })).toThrow(
      `${c10}: truncated: expected 30730000 bytes (10000 records of 3073), found 6146 bytes (2 records); a training file must be complete`,
    );
    const c100 = tmpFile('train_short.bin', Buffer.alloc(3 * 3074));
    expect(() => readCifar100(c100, { expectedRecords: 50000, requireComplete: true, warn: warned })).toThrow(
      `${c100}: truncated: expected 153700000 bytes (50000 records of 3074), found 9222 bytes (3 records); a training file must be complete`,
    );
    // A complete file passes.
    expect(readCifar10([c10], { expectedRecords: 2, requireComplete: true, warn: warned }).count).toBe(2);
  });

  it('CIFAR-100: 3073-byte records (a CIFAR-10 file) are rejected', () => {
    const p = tmpFile('c10-as-c100.bin', cifar10([1, 2, 3]));
    expect(() => readCifar100(p)).toThrow(/expected a whole number of 3074-byte records, found 9219 bytes/);
  });
});

// ---------------------------------------------------------------------------------------------
// A minimal MAT v5 writer (independent of the reader) for synthetic SVHN files.

type Endian = 'LE' | 'BE';
const MI = { INT8: 1, UINT8: 2, INT16: 3, INT32: 5, UINT32: 6, DOUBLE: 9, MATRIX: 14, COMPRESSED: 15 };

function tag(type: number, size: number, e: Endian): Buffer {
  const b = Buffer.alloc(8);
  if (e === 'LE') {
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(size, 4);
  } else {
    b.writeUInt32BE(type, 0);
    b.writeUInt32BE(size, 4);
  }
  return b;
}
const pad8 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
function element(type: number, data: Buffer, e: Endian): Buffer {
  if (data.length <= 4 && type === MI.INT8) {
    // Small data element format (used by MATLAB for short names).
    const b = Buffer.alloc(8);
    if (e === 'LE') b.writeUInt32LE(((data.length << 16) | type) >>> 0, 0);
    else b.writeUInt32BE(((data.length << 16) | type) >>> 0, 0);
    data.copy(b, 4);
    return b;
  }
  return Buffer.concat([tag(type, data.length, e), pad8(data)]);
}
function matrix(name: string, classId: number, dims: number[], storageType: number, data: Buffer, e: Endian): Buffer {
  const flags = Buffer.alloc(8);
  const dimBuf = Buffer.alloc(4 * dims.length);
  if (e === 'LE') {
    flags.writeUInt32LE(classId, 0);
    dims.forEach((d, i) => dimBuf.writeInt32LE(d, 4 * i));
  } else {
    flags.writeUInt32BE(classId, 0);
    dims.forEach((d, i) => dimBuf.writeInt32BE(d, 4 * i));
  }
  const body = Buffer.concat([element(MI.UINT32, flags, e), element(MI.INT32, dimBuf, e), element(MI.INT8, Buffer.from(name, 'latin1'), e), element(storageType, data, e)]);
  return Buffer.concat([tag(MI.MATRIX, body.length, e), body]);
}
function matFile(elements: Buffer[], e: Endian = 'LE', text = 'MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: nin test'): Buffer {
  const header = Buffer.alloc(128, 0x20);
  header.write(text, 0, 'latin1');
  header.fill(0, 116, 124);
  if (e === 'LE') {
    header.writeUInt16LE(0x0100, 124);
    header.write('IM', 126, 'latin1');
  } else {
    header.writeUInt16BE(0x0100, 124);
    header.write('MI', 126, 'latin1');
  }
  return Buffer.concat([header, ...elements]);
}
const compressed = (el: Buffer, e: Endian): Buffer => {
  const z = deflateSync(el);
  return Buffer.concat([tag(MI.COMPRESSED, z.length, e), z]);
};

/** Pixel (r, c, ch) of image n in the synthetic SVHN set. */
const svhnPixel = (n: number, r: number, c: number, ch: number): number => (n * 31 + r * 7 + c * 3 + ch * 85) % 256;
const SVHN_LABELS = [10, 1, 2, 9, 10, 5];

/** Every pixel of the first `count` SVHN images read from `source` is svhnPixel's (HWC order). */
function expectSvhnPixels(ds: { images: Float32Array }, count: number, source: string): void {
  for (let n = 0; n < count; n++) for (let r = 0; r < 32; r++) for (let c = 0; c < 32; c++) for (let ch = 0; ch < 3; ch++) {
    const found = ds.images[((n * 32 + r) * 32 + c) * 3 + ch];
    if (found !== svhnPixel(n, r, c, ch)) throw new Error(`${source}: pixel (${n}, ${r}, ${c}, ${ch}) is ${found}, expected ${svhnPixel(n, r, c, ch)}`);
  }
}

function svhnMat(opts: { compress: boolean; yType: 'uint8-storage' | 'double'; e?: Endian }): Buffer {
  const e = opts.e ?? 'LE';
  const n = SVHN_LABELS.length;
  const X = Buffer.alloc(32 * 32 * 3 * n);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < 3; ch++) for (let c = 0; c < 32; c++) for (let r = 0; r < 32; r++) X[r + 32 * c + 1024 * ch + 3072 * i] = svhnPixel(i, r, c, ch);
  let yData: Buffer;
  let yStorage: number;
  if (opts.yType === 'double') {
    yData = Buffer.alloc(8 * n);
    SVHN_LABELS.forEach((l, i) => (e === 'LE' ? yData.writeDoubleLE(l, 8 * i) : yData.writeDoubleBE(l, 8 * i)));
    yStorage = MI.DOUBLE;
  } else {
    yData = Buffer.from(SVHN_LABELS); // MATLAB stores small whole doubles as miUINT8
    yStorage = MI.UINT8;
  }
  const xEl = matrix('X', 9 /* uint8 */, [32, 32, 3, n], MI.UINT8, X, e);
  const yEl = matrix('y', 6 /* double */, [n, 1], yStorage, yData, e);
  return matFile(opts.compress ? [compressed(xEl, e), compressed(yEl, e)] : [xEl, yEl], e);
}

describe('SVHN .mat (synthetic MAT v5)', () => {
  const variants = [
    { compress: false, yType: 'double' as const },
    { compress: true, yType: 'uint8-storage' as const },
    { compress: true, yType: 'double' as const, e: 'BE' as const },
  ];
  for (const v of variants) {
    it(`reads X and y (${v.compress ? 'miCOMPRESSED' : 'uncompressed'}, y stored as ${v.yType}, ${v.e ?? 'LE'})`, () => {
      const ds = readSvhn(tmpFile(`svhn-${v.compress}-${v.yType}-${v.e ?? 'LE'}.mat`, svhnMat(v)));
      expect([ds.count, ds.height, ds.width, ds.channels]).toEqual([6, 32, 32, 3]);
      expect(Array.from(ds.labels)).toEqual([0, 1, 2, 9, 0, 5]); // 10 means digit 0
      expectSvhnPixels(ds, 6, 'synthetic');
    });
  }

  // Files from SciPy's MAT v5 writer (test/fixtures/make-svhn-scipy.py): an independent writer, with
  // its own choices (small-element names, y as miDOUBLE, zlib per variable), against our reader.
  it.each([['svhn-scipy-compressed.mat', 6], ['svhn-scipy-plain.mat', 2]])('reads %s, written by SciPy', (file, count) => {
    const ds = readSvhn(fileURLToPath(new URL(`./fixtures/${file}`, import.meta.url)));
    expect([ds.count, ds.height, ds.width, ds.channels]).toEqual([count, 32, 32, 3]);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 9, 0, 5].slice(0, count));
    expectSvhnPixels(ds, count, file);
  });

  it('reads into a given array (train and extra sharing one buffer); a wrong length is refused', () => {
    const file = fileURLToPath(new URL('./fixtures/svhn-scipy-compressed.mat', import.meta.url));
    const whole = new Float32Array(8 * 3072).fill(-1);
    const ds = readSvhn(file, { into: whole.subarray(3072, 7 * 3072) });
    expect(ds.images.buffer).toBe(whole.buffer);
    expect(ds.images).toEqual(readSvhn(file).images);
    expect(whole.subarray(0, 3072).every((v) => v === -1) && whole.subarray(7 * 3072).every((v) => v === -1)).toBe(true);
    expect(() => readSvhn(file, { into: new Float32Array(5 * 3072) })).toThrow(/svhn-scipy-compressed\.mat: holds 6 images \(18432 values\), but the array to read them into has 15360 values/);
    // Too large is as wrong: the rest of it would be left as it was, read as images.
    expect(() => readSvhn(file, { into: new Float32Array(7 * 3072) })).toThrow(new RangeError(`${file}: holds 6 images (18432 values), but the array to read them into has 21504 values`));
  });

  it('gzipped .mat is read too', () => {
    const ds = readSvhn(tmpFile('test_32x32.mat.gz', gzipSync(svhnMat({ compress: true, yType: 'double' }))));
    expect(ds.count).toBe(6);
  });

  it('readMatV5 lists variables with their MATLAB class and dims', () => {
    const vars = readMatV5(svhnMat({ compress: true, yType: 'uint8-storage' }), 'mem.mat');
    expect(vars.get('X')!.className).toBe('uint8');
    expect(vars.get('X')!.dims).toEqual([32, 32, 3, 6]);
    expect(vars.get('y')!.className).toBe('double');
    expect(vars.get('y')!.data).toBeInstanceOf(Float64Array);
  });

  it('foreign, truncated, v7.3 and wrong-shape files → named errors', () => {
    const good = svhnMat({ compress: false, yType: 'double' });
    const notMat = tmpFile('not.mat', Buffer.alloc(200, 0x41));
    expect(() => readSvhn(notMat)).toThrow(`${notMat}: not a MATLAB 5.0 MAT-file: expected header text "MATLAB 5.0 MAT-file" and endian mark "IM"/"MI", found "AAAAAAAAAAAAAAAAAAA" and "AA"`);
    const short = tmpFile('short.mat', good.subarray(0, 100));
    expect(() => readSvhn(short)).toThrow(/too short for a MAT-file: 100 bytes, the header alone is 128/);
    const trunc = tmpFile('trunc.mat', good.subarray(0, good.length - 5000));
    expect(() => readSvhn(trunc)).toThrow(/truncated: element at offset 128 declares \d+ data bytes, but only \d+ remain/);
    const z = svhnMat({ compress: true, yType: 'double' });
    const ztrunc = tmpFile('ztrunc.mat', z.subarray(0, 128 + 8 + 100));
    expect(() => readSvhn(ztrunc)).toThrow(DataFormatError);
    const v73 = tmpFile('v73.mat', matFile([], 'LE', 'MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00'));
    expect(() => readSvhn(v73)).toThrow(/MATLAB v7\.3 MAT-file \(HDF5\)/);
    const wrongShape = tmpFile('shape.mat', matFile([matrix('X', 9, [32, 32, 1, 2], MI.UINT8, Buffer.alloc(2048), 'LE'), matrix('y', 6, [2, 1], MI.UINT8, Buffer.from([1, 2]), 'LE')]));
    expect(() => readSvhn(wrongShape)).toThrow(`${wrongShape}: X: expected dimensions [32, 32, 3, N], found [32, 32, 1, 2]`);
    const noY = tmpFile('noy.mat', matFile([matrix('X', 9, [32, 32, 3, 1], MI.UINT8, Buffer.alloc(3072), 'LE')]));
    expect(() => readSvhn(noY)).toThrow(`${noY}: expected variables X and y, found X`);
    const badLabel = tmpFile('badlabel.mat', matFile([matrix('X', 9, [32, 32, 3, 1], MI.UINT8, Buffer.alloc(3072), 'LE'), matrix('y', 6, [1, 1], MI.UINT8, Buffer.from([11]), 'LE')]));
    expect(() => readSvhn(badLabel)).toThrow(/y\[0\] = 11, expected an integer label 1\.\.10/);
    const zeroLabel = tmpFile('zerolabel.mat', matFile([matrix('X', 9, [32, 32, 3, 1], MI.UINT8, Buffer.alloc(3072), 'LE'), matrix('y', 6, [1, 1], MI.UINT8, Buffer.from([0]), 'LE')]));
    expect(() => readSvhn(zeroLabel)).toThrow(new DataFormatError(zeroLabel, 'y[0] = 0, expected an integer label 1..10')); // SVHN's digit 0 is label 10
    // y must be a column (or row) of count labels: [2, 1, 1] holds two, in the wrong shape.
    const yShape = tmpFile('yshape.mat', matFile([matrix('X', 9, [32, 32, 3, 2], MI.UINT8, Buffer.alloc(2 * 3072), 'LE'), matrix('y', 6, [2, 1, 1], MI.UINT8, Buffer.from([1, 2]), 'LE')]));
    expect(() => readSvhn(yShape)).toThrow(new DataFormatError(yShape, 'y: expected dimensions [2, 1], found [2, 1, 1]'));
    const yWide = tmpFile('ywide.mat', matFile([matrix('X', 9, [32, 32, 3, 4], MI.UINT8, Buffer.alloc(4 * 3072), 'LE'), matrix('y', 6, [2, 2], MI.UINT8, Buffer.from([1, 2, 3, 4]), 'LE')]));
    expect(() => readSvhn(yWide)).toThrow(new DataFormatError(yWide, 'y: expected dimensions [4, 1], found [2, 2]'));
    // More images than the official file holds is an error whether or not the file must be complete.
    const six = fileURLToPath(new URL('./fixtures/svhn-scipy-compressed.mat', import.meta.url));
    for (const requireComplete of [false, true]) {
      expect(() => readSvhn(six, { expectedRecords: 5, requireComplete, warn: () => {} })).toThrow(new DataFormatError(six, 'expected 5 images, found 6'));
    }
  });

  it('pixels that are not bytes, no images, and a compressed element too short for a tag → named errors', () => {
    const y = matrix('y', 6, [1, 1], MI.UINT8, Buffer.from([1]), 'LE');
    const doubles = Buffer.alloc(3072 * 8);
    doubles.writeDoubleLE(-3.5, 8);
    const asDouble = tmpFile('x-double.mat', matFile([matrix('X', 6 /* double */, [32, 32, 3, 1], MI.DOUBLE, doubles, 'LE'), y]));
    expect(() => readSvhn(asDouble)).toThrow(`${asDouble}: X: expected a uint8 array of pixels, found class double`);
    const wide = Buffer.alloc(3072 * 2);
    wide.writeInt16LE(1000, 4);
    const wrapped = tmpFile('x-int16.mat', matFile([matrix('X', 9 /* uint8 */, [32, 32, 3, 1], MI.INT16, wide, 'LE'), y]));
    expect(() => readSvhn(wrapped)).toThrow(`${wrapped}: variable "X" is uint8 but element 2 holds 1000 (stored as storage type ${MI.INT16})`);
    const empty = tmpFile('x-empty.mat', matFile([matrix('X', 9, [32, 32, 3, 0], MI.UINT8, Buffer.alloc(0), 'LE'), matrix('y', 6, [0, 1], MI.UINT8, Buffer.alloc(0), 'LE')]));
    expect(() => readSvhn(empty)).toThrow(`${empty}: X holds no images (dimensions [32, 32, 3, 0])`);
    for (const bytes of [0, 3, 6]) {
      const z = deflateSync(Buffer.alloc(bytes));
      const tiny = tmpFile(`z${bytes}.mat`, matFile([Buffer.concat([tag(MI.COMPRESSED, z.length, 'LE'), z])]));
      expect(() => readSvhn(tiny)).toThrow(`${tiny} (compressed element at offset 128): truncated: an element tag at offset 0 needs 8 bytes, only ${bytes} remain`);
    }
  });
});

describe('MAT v5 reader: storage types, rarer elements and malformed arrays', () => {
  /** `values` stored as MATLAB storage type `kind` in byte order `e`. */
  function packed(kind: string, values: number[], e: Endian): { type: number; data: Buffer } {
    const spec: Record<string, [number, number, (b: Buffer, v: number, at: number) => unknown]> = {
      int8: [1, 1, (b, v, at) => b.writeInt8(v, at)],
      int16: [3, 2, (b, v, at) => (e === 'LE' ? b.writeInt16LE(v, at) : b.writeInt16BE(v, at))],
      uint16: [4, 2, (b, v, at) => (e === 'LE' ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at))],
      int32: [5, 4, (b, v, at) => (e === 'LE' ? b.writeInt32LE(v, at) : b.writeInt32BE(v, at))],
      uint32: [6, 4, (b, v, at) => (e === 'LE' ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at))],
      single: [7, 4, (b, v, at) => (e === 'LE' ? b.writeFloatLE(v, at) : b.writeFloatBE(v, at))],
      double: [9, 8, (b, v, at) => (e === 'LE' ? b.writeDoubleLE(v, at) : b.writeDoubleBE(v, at))],
      int64: [12, 8, (b, v, at) => (e === 'LE' ? b.writeBigInt64LE(BigInt(v), at) : b.writeBigInt64BE(BigInt(v), at))],
      uint64: [13, 8, (b, v, at) => (e === 'LE' ? b.writeBigUInt64LE(BigInt(v), at) : b.writeBigUInt64BE(BigInt(v), at))],
    };
    const [type, bytes, write] = spec[kind];
    const data = Buffer.alloc(bytes * values.length);
    values.forEach((v, i) => write(data, v, bytes * i));
    return { type, data };
  }
  /** A matrix element of the given subelements (for arrays matrix() cannot write). */
  const rawMatrix = (body: Buffer[], e: Endian = 'LE'): Buffer => {
    const b = Buffer.concat(body);
    return Buffer.concat([tag(MI.MATRIX, b.length, e), b]);
  };
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v, 0);
    return b;
  };
  const dims = (...d: number[]): Buffer => Buffer.from(new Int32Array(d).buffer);

  for (const e of ['LE', 'BE'] as const) {
    it(`reads every numeric storage type, signed and unsigned, as its values (${e})`, () => {
      const cases: [string, number, string, string, number[]][] = [
        ['a', 8, 'int8', 'int8', [-5, 7, -128, 127, 0]],
        ['b', 11, 'uint16', 'uint16', [65535, 1, 300]],
        ['c', 10, 'int16', 'int16', [-300, 2, 32767]],
        ['d', 12, 'int32', 'int32', [-70000, 3]],
        ['f', 13, 'uint32', 'uint32', [4294967295, 0]],
        ['g', 7, 'single', 'single', [1.5, -2.25]],
        ['h', 14, 'int64', 'int64', [-(2 ** 40), 5]],
        ['i', 15, 'uint64', 'uint64', [2 ** 40 + 3, 6]],
        ['j', 6, 'double', 'int8', [-1, 2]], // a double array of small whole numbers, stored as miINT8
        ['u', 9, 'uint8', 'uint16', [255, 0, 17]], // a uint8 array stored wider: still bytes
      ];
      const vars = readMatV5(matFile(cases.map(([name, classId, , kind, values]) => {
        const { type, data } = packed(kind, values, e);
        return matrix(name, classId, [1, values.length], type, data, e);
      }), e), 'types.mat');
      for (const [name, , className, , values] of cases) {
        const v = vars.get(name)!;
        expect([v.name, v.className, v.dims]).toEqual([name, className, [1, values.length]]);
        expect(v.data).toEqual(className === 'uint8' ? Uint8Array.from(values) : Float64Array.from(values));
      }
    });
  }

  it('skips empty arrays, elements that are not arrays and variables not asked for; a struct or complex array is refused only when read', () => {
    const x = matrix('X', 9, [32, 32, 3, 1], MI.UINT8, Buffer.alloc(3072, 7), 'LE');
    const y = matrix('y', 6, [1, 1], MI.UINT8, Buffer.from([3]), 'LE');
    const struct = matrix('meta', 2 /* struct */, [1, 1], MI.UINT8, Buffer.from([1]), 'LE');
    const complex = matrix('z', 6 | 0x0800 /* complex double */, [1, 1], MI.DOUBLE, Buffer.alloc(8), 'LE');
    const notAnArray = element(MI.UINT32, Buffer.alloc(16, 0xff), 'LE');
    const empty = tag(MI.MATRIX, 0, 'LE');
    const file = tmpFile('extras.mat', matFile([notAnArray, struct, x, empty, complex, y]));
    const ds = readSvhn(file);
    expect([ds.count, Array.from(ds.labels), ds.images[0]]).toEqual([1, [3], 7]);
    const all = (...els: Buffer[]) => () => readMatV5(matFile(els), 'all.mat');
    expect(all(x, empty, y)().size).toBe(2);
    expect(all(notAnArray, y)().get('y')!.data).toEqual(Float64Array.of(3));
    expect(all(x, struct)).toThrow(new DataFormatError('all.mat', 'variable "meta" is a struct array; only numeric arrays are supported'));
    expect(all(complex)).toThrow(new DataFormatError('all.mat', 'variable "z" is complex; only real arrays are supported'));
  });

  it('malformed headers, tags and arrays → named errors', () => {
    const y = matrix('y', 6, [1, 1], MI.UINT8, Buffer.from([3]), 'LE');
    const read = (bytes: Buffer) => () => readMatV5(bytes, 'bad.mat');
    const badMark = matFile([y]);
    badMark.write('XX', 126, 'latin1');
    expect(read(badMark)).toThrow(new DataFormatError('bad.mat', 'not a MATLAB 5.0 MAT-file: expected header text "MATLAB 5.0 MAT-file" and endian mark "IM"/"MI", found "MATLAB 5.0 MAT-file" and "XX"'));
    const at = 128 + y.length;
    expect(read(Buffer.concat([matFile([y]), Buffer.alloc(5)]))).toThrow(new DataFormatError('bad.mat', `truncated: 5 stray bytes at offset ${at} (an element tag needs 8)`));
    // Cut just after an element's tag: its data is missing, not the element.
    expect(read(Buffer.concat([matFile([y]), tag(MI.MATRIX, 100, 'LE')]))).toThrow(new DataFormatError('bad.mat', `truncated: element at offset ${at} declares 100 data bytes, but only 0 remain`));
    const small5 = Buffer.alloc(8);
    small5.writeUInt32LE(((5 << 16) | MI.INT8) >>> 0, 0);
    expect(read(matFile([y, small5]))).toThrow(new DataFormatError('bad.mat', `bad small data element at offset ${at}: size 5 > 4`));
    const name = element(MI.INT8, Buffer.from('q'), 'LE');
    expect(read(matFile([rawMatrix([element(MI.UINT32, u32(6), 'LE')])]))).toThrow(new DataFormatError('bad.mat', 'truncated array: missing its dimensions subelement'));
    expect(read(matFile([rawMatrix([element(MI.UINT32, u32(6).subarray(0, 4), 'LE'), element(MI.INT32, dims(1, 1), 'LE'), name])]))).toThrow(
      new DataFormatError('bad.mat', 'array flags subelement: expected miUINT32 of 8 bytes, found type 6 of 4 bytes'),
    );
    expect(read(matFile([rawMatrix([element(MI.INT32, u32(6), 'LE'), element(MI.INT32, dims(1, 1), 'LE'), name])]))).toThrow(
      new DataFormatError('bad.mat', 'array flags subelement: expected miUINT32 of 8 bytes, found type 5 of 8 bytes'),
    );
    expect(read(matFile([rawMatrix([element(MI.UINT32, u32(6), 'LE'), element(MI.UINT32, dims(1, 1), 'LE'), name])]))).toThrow(
      new DataFormatError('bad.mat', 'dimensions subelement: expected miINT32, found type 6 of 8 bytes'),
    );
    expect(read(matFile([matrix('q', 6, [1, 1], 8 /* reserved */, Buffer.alloc(8), 'LE')]))).toThrow(new DataFormatError('bad.mat', 'variable "q": unsupported storage type 8'));
    expect(read(matFile([matrix('q', 6, [1, 1], MI.UINT8, Buffer.from([1, 2]), 'LE')]))).toThrow(new DataFormatError('bad.mat', 'variable "q" [1×1]: expected 1 data bytes (1 elements × 1), found 2'));
    const half = Buffer.alloc(8);
    half.writeDoubleLE(1.5, 0);
    expect(read(matFile([matrix('q', 9, [1, 1], MI.DOUBLE, half, 'LE')]))).toThrow(new DataFormatError('bad.mat', 'variable "q" is uint8 but element 0 holds 1.5 (stored as storage type 9)'));
  });
});

describe('memory for a data set', () => {
  it("refuses, naming the source and what makes it smaller, images needing more than half the machine's memory, before allocating them", () => {
    expect(() => allocImages('my-folder/train', 10_000_000_000, { memory: 79_999_999_999, hint: 'fewer with --train-limit' })).toThrow(
      new DataFormatError('my-folder/train', "its images need 40.0 GB of memory as float32, more than half of this machine's 80.0 GB: fewer with --train-limit"),
    );
    expect(allocImages('my-folder/train', 10, { memory: 80 })).toHaveLength(10);
    expect(allocImages('shared', 10, { memory: 80, shared: true }).buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});
