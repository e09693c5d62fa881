// Dataset registry: data-directory resolution, local lookup (plain or .gz), the offline error, and
// downloads through an injected fetch (never the network): checksum verification and tar extraction.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { dataLabel, loadTestSet } from '../nin/datasets.ts';
import {
  CIFAR10_ARCHIVE,
  DATASETS,
  DataFormatError,
  MissingDataError,
  dataRoots,
  downloadFiles,
  isAvailable,
  loadDataset,
  readTarMembers,
  resolveSplitFiles,
  verifyDataFile,
  type DataFileSpec,
  type FetchLike,
} from '../nin/data/index.ts';

const SHARED = fileURLToPath(new URL('../../shared/data/', import.meta.url));
const HAVE_SHARED = existsSync(join(SHARED, 'mnist')) && existsSync(join(SHARED, 'cifar-10-batches-bin'));
if (!HAVE_SHARED) console.warn(`data-registry: ${SHARED} not found, skipping the tests that use real dataset files`);

const tmp = mkdtempSync(join(tmpdir(), 'nin-registry-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => {
  const d = join(tmp, `d${dirCount++}`);
  mkdirSync(d, { recursive: true });
  return d;
};
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
const offline: FetchLike = async (url) => {
  throw new TypeError(`fetch failed for ${url}`, { cause: new Error('getaddrinfo ENOTFOUND') });
};
const serve =
  (files: Record<string, Uint8Array>, log: string[] = []): FetchLike =>
  async (url) => {
    log.push(url);
    const body = files[url];
    if (!body) return new Response('not found', { status: 404, statusText: 'Not Found' });
    // Deliver in several chunks, as a network body would.
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < body.length; i += 65536) chunks.push(body.subarray(i, i + 65536));
    return new Response(Readable.toWeb(Readable.from(chunks)) as ReadableStream, { status: 200 });
  };
const quiet = { log: () => {}, warn: () => {} };

// A minimal ustar writer, independent of the reader.
// `gnu`: GNU tar's old header, whose magic is "ustar  " and whose bytes 345… hold atime and
// ctime (incremental archives) where ustar has its name prefix.
function tarHeader(name: string, size: number, type = '0', prefix = '', gnu = false): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  if (gnu) {
    h.write('ustar  \0', 257);
    h.write('15123456701\0', 345); // atime
    h.write('15123456702\0', 357); // ctime
  } else {
    h.write('ustar\0', 257);
    h.write('00', 263);
    h.write(prefix, 345, 155, 'utf8');
  }
  return withChecksum(h);
}
/** A header's checksum written afresh (after a field was set or changed). */
function withChecksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}
const padBlock = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
function tar(entries: { name: string; data?: Buffer; type?: string; prefix?: string; longName?: boolean; pax?: boolean; gnu?: boolean }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    if (e.longName) {
      const nameBytes = Buffer.from(e.name + '\0');
      parts.push(tarHeader('././@LongLink', nameBytes.length, 'L'), padBlock(nameBytes));
    }
    if (e.pax) {
      const rec = ` path=${e.name}\n`;
      let len = rec.length + 2;
      len = rec.length + String(len).length;
      const paxData = Buffer.from(`${len}${rec}`);
      parts.push(tarHeader('PaxHeader', paxData.length, 'x'), padBlock(paxData));
    }
    const shortName = e.longName || e.pax ? e.name.slice(0, 50) : e.name;
    parts.push(tarHeader(shortName, data.length, e.type ?? '0', e.prefix, e.gnu), padBlock(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

describe('data directory resolution', () => {
  it('--data-dir wins, then NIN_DATA, then ./data and ../shared/data', () => {
    const cwd = '/work/proj';
    expect(dataRoots({ dataDir: 'mydata', env: { NIN_DATA: '/env' }, cwd }).roots).toEqual(['/work/proj/mydata']);
    expect(dataRoots({ env: { NIN_DATA: '/env/data' }, cwd }).roots).toEqual(['/env/data']);
    expect(dataRoots({ env: {}, cwd }).roots).toEqual(['/work/proj/data', '/work/shared/data']);
  });

  it('a --data-dir or NIN_DATA that names a file is an error saying so (it failed with a bare ENOTDIR)', () => {
    const file = join(freshDir(), 'a-file');
    writeFileSync(file, 'x');
    expect(() => dataRoots({ dataDir: file })).toThrow(new DataFormatError(file, '--data-dir names a file, not a directory'));
    expect(() => dataRoots({ env: { NIN_DATA: file } })).toThrow(new DataFormatError(file, 'NIN_DATA names a file, not a directory'));
    expect(() => dataRoots({ dataDir: join(file, 'x') })).toThrow(new DataFormatError(join(file, 'x'), '--data-dir names a path through a file'));
  });

  it('finds files in <root> or <root>/<subdir>, plain or .gz', async () => {
    const root = freshDir();
    mkdirSync(join(root, 'svhn'));
    writeFileSync(join(root, 'svhn', 'test_32x32.mat.gz'), 'x');
    const r = await resolveSplitFiles('svhn', 'test', { dataDir: root, download: false, ...quiet });
    expect(r.paths).toEqual([join(root, 'svhn', 'test_32x32.mat.gz')]);
    writeFileSync(join(root, 'test_32x32.mat'), 'y');
    const r2 = await resolveSplitFiles('svhn', 'test', { dataDir: root, download: false, ...quiet });
    expect(r2.paths).toEqual([join(root, 'test_32x32.mat')]);
    expect(isAvailable('svhn', 'test', { dataDir: root })).toBe(true);
    expect(isAvailable('svhn', 'train', { dataDir: root })).toBe(false);
  });

  it('a directory under a data file\'s name is passed over for the file beside it, and alone is an error naming it', async () => {
    const root = freshDir();
    mkdirSync(join(root, 'svhn', 'test_32x32.mat'), { recursive: true });
    writeFileSync(join(root, 'svhn', 'test_32x32.mat.gz'), 'x');
    const r = await resolveSplitFiles('svhn', 'test', { dataDir: root, download: false, ...quiet });
    expect(r.paths).toEqual([join(root, 'svhn', 'test_32x32.mat.gz')]);
    rmSync(join(root, 'svhn', 'test_32x32.mat.gz'));
    await expect(resolveSplitFiles('svhn', 'test', { dataDir: root, download: false, ...quiet })).rejects.toThrow(
      new DataFormatError(join(root, 'svhn', 'test_32x32.mat'), 'is a directory or other non-file, expected a data file'),
    );
  });

  it('a file there both plain and gzipped: the plain one is read', async () => {
    const root = freshDir();
    for (const name of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) for (const file of [name, `${name}.gz`]) writeFileSync(join(root, file), '');
    const r = await resolveSplitFiles('mnist', 'test', { dataDir: root, download: false, ...quiet });
    expect(r.paths).toEqual([join(root, 't10k-images-idx3-ubyte'), join(root, 't10k-labels-idx1-ubyte')]);
  });

  it('unknown dataset or split → clear error', async () => {
    await expect(resolveSplitFiles('imagenet', 'train', { download: false })).rejects.toThrow(/unknown dataset "imagenet"; known: mnist, cifar10, cifar100, svhn/);
    await expect(resolveSplitFiles('mnist', 'extra', { download: false })).rejects.toThrow(/MNIST has no "extra" split; it has: train, test/);
    // A name every object inherits is none either (it was a TypeError from inside the lookup).
    for (const name of ['constructor', 'toString', '__proto__']) {
      await expect(loadDataset(name, 'train', { download: false }), name).rejects.toThrow(new RangeError(`unknown dataset "${name}"; known: mnist, cifar10, cifar100, svhn`));
      await expect(resolveSplitFiles('mnist', name, { download: false }), name).rejects.toThrow(new RangeError(`MNIST has no "${name}" split; it has: train, test`));
    }
  });
});

describe('offline: missing files → an error that says what to fetch and where to put it', () => {
  it('SVHN', async () => {
    const root = freshDir();
    const err = await resolveSplitFiles('svhn', 'train', { dataDir: root, fetch: offline, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingDataError);
    const m = (err as MissingDataError).message;
    console.log(m);
    expect(m).toContain('SVHN (cropped digits) train: missing 1 file(s): train_32x32.mat');
    expect(m).toContain(`    ${root}\n    ${join(root, 'svhn')}`);
    expect(m).toContain('download failed: fetch failed for http://ufldl.stanford.edu/housenumbers/train_32x32.mat');
    expect(m).toContain('http://ufldl.stanford.edu/housenumbers/train_32x32.mat (md5 e26dedcc434d2e4c54c9b2d4a06d8373) saved as train_32x32.mat');
    expect(m).toContain(`and put train_32x32.mat (gzipped with .gz or not) in ${join(root, 'svhn')}/`);
    expect((err as MissingDataError).missing).toEqual(['train_32x32.mat']);
    expect(existsSync(join(root, 'svhn'))).toBe(false); // no partial download, nor the directory made for it, left behind
  });

  it('CIFAR-100 and CIFAR-10: one archive URL for all missing members', async () => {
    const root = freshDir();
    const e100 = (await resolveSplitFiles('cifar100', 'train', { dataDir: root, fetch: offline, ...quiet }).catch((e: unknown) => e)) as MissingDataError;
    expect(e100.urls).toEqual(['https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz']);
    expect(e100.message).toContain('https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz (md5 03b5dce01913d631647c71ecec9e9cb8) and extract cifar-100-binary/train.bin');
    const e10 = (await resolveSplitFiles('cifar10', 'train', { dataDir: root, fetch: offline, ...quiet }).catch((e: unknown) => e)) as MissingDataError;
    expect(e10.missing).toEqual(['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin']);
    expect(e10.urls).toEqual([CIFAR10_ARCHIVE.url]);
    expect(e10.message).toContain(`(md5 c32a1d4ab5d03f1284b67883e8d87530) and extract cifar-10-batches-bin/data_batch_1.bin, `);
    expect(e10.targetDir).toBe(join(root, 'cifar-10-batches-bin'));
  });

  it('MNIST: per-file .gz URLs; download disabled says so', async () => {
    const root = freshDir();
    const e = (await resolveSplitFiles('mnist', 'test', { dataDir: root, download: false, ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(e.message).toContain('downloading is disabled');
    expect(e.urls).toEqual([
      'https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz',
      'https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz',
    ]);
  });

  it('a server that never answers times out', async () => {
    const root = freshDir();
    const hang: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
    const e = (await resolveSplitFiles('svhn', 'test', { dataDir: root, fetch: hang, responseTimeoutMs: 50, ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(e.message).toContain('download failed: http://ufldl.stanford.edu/housenumbers/test_32x32.mat: no response within 0.05 s');
  });

  it('HTTP errors and checksum mismatches are reported as download failures', async () => {
    const root = freshDir();
    const e404 = (await resolveSplitFiles('svhn', 'test', { dataDir: root, fetch: serve({}), ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(e404.message).toContain('download failed: http://ufldl.stanford.edu/housenumbers/test_32x32.mat: HTTP 404 Not Found');
    const bad = serve({ 'http://ufldl.stanford.edu/housenumbers/test_32x32.mat': Buffer.from('garbage') });
    const eMd5 = (await resolveSplitFiles('svhn', 'test', { dataDir: root, fetch: bad, ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(eMd5.message).toContain(`md5 mismatch, expected eb5a983be6a315427106f1b2b6b0b5e8, found ${md5(Buffer.from('garbage'))}`);
    expect(existsSync(join(root, 'svhn'))).toBe(false);
  });

  it('a mistyped --data-dir is not created by a download that fails', async () => {
    const parent = freshDir();
    const mistyped = join(parent, 'x', 'nope');
    const e = (await resolveSplitFiles('mnist', 'train', { dataDir: mistyped, fetch: offline, ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(e).toBeInstanceOf(MissingDataError);
    expect(e.message).toContain(`and put train-images-idx3-ubyte, train-labels-idx1-ubyte (gzipped with .gz or not) in ${join(mistyped, 'mnist')}/`);
    expect(readdirSync(parent)).toEqual([]);
    // The fetch's own cause is said too (a bare "fetch failed" does not say why).
    expect(e.message).toContain('  download failed: fetch failed for https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz (Error: getaddrinfo ENOTFOUND)\n');
  });

  it('a download that fails after writing a file keeps that file and its directory', async () => {
    const root = freshDir();
    const first = Buffer.from('first file');
    const spec = (name: string, data: Buffer): DataFileSpec => ({ name, bytes: data.length, records: 1, source: { url: `https://example.test/${name}`, md5: md5(data), savedAs: name } });
    const files = [spec('a.bin', first), spec('b.bin', Buffer.from('never served'))];
    const target = join(root, 'new', 'dir');
    await expect(downloadFiles(files, target, { fetch: serve({ 'https://example.test/a.bin': first }), log: () => {} })).rejects.toThrow(/b\.bin: HTTP 404/);
    expect(readdirSync(target)).toEqual(['a.bin']);
  });
});

describe('downloads through an injected fetch', () => {
  it.skipIf(!HAVE_SHARED)('MNIST test set: fetched .gz files are md5-checked, stored and readable', async () => {
    const root = freshDir();
    const base = 'https://ossci-datasets.s3.amazonaws.com/mnist/';
    const requested: string[] = [];
    const fetch = serve(
      {
        [`${base}t10k-images-idx3-ubyte.gz`]: readFileSync(join(SHARED, 'mnist/t10k-images-idx3-ubyte.gz')),
        [`${base}t10k-labels-idx1-ubyte.gz`]: readFileSync(join(SHARED, 'mnist/t10k-labels-idx1-ubyte.gz')),
      },
      requested,
    );
    const ds = await loadDataset('mnist', 'test', { dataDir: root, fetch, ...quiet });
    expect(requested).toHaveLength(2);
    expect(ds.count).toBe(10000);
    expect(readdirSync(join(root, 'mnist')).sort()).toEqual(['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']);
    // Second load: found locally, nothing fetched; checksum verification passes.
    await loadDataset('mnist', 'test', { dataDir: root, fetch, verifyChecksums: true, ...quiet });
    expect(requested).toHaveLength(2);
  });

  it.skipIf(!HAVE_SHARED)('a download that fails part way: the error lists only the files still missing', async () => {
    const root = freshDir();
    const images = 'https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz';
    const fetch = serve({ [images]: readFileSync(join(SHARED, 'mnist/t10k-images-idx3-ubyte.gz')) });
    const e = (await resolveSplitFiles('mnist', 'test', { dataDir: root, fetch, ...quiet }).catch((x: unknown) => x)) as MissingDataError;
    expect(e).toBeInstanceOf(MissingDataError);
    expect(readdirSync(join(root, 'mnist'))).toEqual(['t10k-images-idx3-ubyte.gz']);
    expect(e.missing).toEqual(['t10k-labels-idx1-ubyte']);
    expect(e.message).toContain('MNIST test: missing 1 file(s): t10k-labels-idx1-ubyte');
    expect(e.message).toMatch(/download failed: .*t10k-labels-idx1-ubyte.*HTTP 404/);
  });

  it('tar.gz source: extracts only the wanted members (ustar prefix, GNU long name, pax path) and checks their md5', async () => {
    const root = freshDir();
    const a = Buffer.from('member a contents');
    const b = Buffer.alloc(1000, 7);
    const c = Buffer.alloc(513, 9);
    const longDir = `${'deep/'.repeat(25)}dir`;
    const archive = gzipSync(
      tar([
        { name: 'top', type: '5' },
        { name: 'skip.bin', data: Buffer.alloc(5000, 1) },
        { name: 'a.bin', prefix: 'top', data: a },
        { name: `${longDir}/b.bin`, longName: true, data: b },
        { name: `${longDir}/c.bin`, pax: true, data: c },
      ]),
    );
    const url = 'https://example.test/archive.tar.gz';
    const spec = (name: string, member: string, data: Buffer): DataFileSpec => ({ name, bytes: data.length, records: 1, md5: md5(data), source: { url, md5: md5(archive), member, savedAs: name } });
    const specs = [spec('a.bin', 'top/a.bin', a), spec('b.bin', `${longDir}/b.bin`, b), spec('c.bin', `${longDir}/c.bin`, c)];
    const requested: string[] = [];
    const said: string[] = [];
    const written = await downloadFiles(specs, join(root, 'x'), { fetch: serve({ [url]: archive }, requested), log: (m) => said.push(m) });
    expect(requested).toEqual([url]); // one download for all three members
    // Where it goes, and that the directory is new (a mistyped NIN_DATA downloaded without a word of where).
    expect(said.slice(0, 2)).toEqual([`note: ${join(root, 'x')} did not exist: made it to download into (a new directory: is the data directory's name right?)`, `downloading ${url} into ${join(root, 'x')} …`]);
    expect(written.map((p) => p.slice(root.length + 3)).sort()).toEqual(['a.bin', 'b.bin', 'c.bin']);
    expect(readFileSync(join(root, 'x', 'a.bin'))).toEqual(a);
    expect(readFileSync(join(root, 'x', 'b.bin'))).toEqual(b);
    expect(readFileSync(join(root, 'x', 'c.bin'))).toEqual(c);
    expect(readdirSync(join(root, 'x')).sort()).toEqual(['a.bin', 'b.bin', 'c.bin']); // archive removed

    const wrong = [{ ...specs[0], md5: '0'.repeat(32) }];
    await expect(downloadFiles(wrong, join(root, 'y'), { fetch: serve({ [url]: archive }), log: () => {} })).rejects.toThrow(/member top\/a\.bin: md5 mismatch, expected 0{32}/);
    const missing = [{ ...specs[0], source: { ...specs[0].source, member: 'nope.bin' } }];
    await expect(downloadFiles(missing, join(root, 'z'), { fetch: serve({ [url]: archive }), log: () => {} })).rejects.toThrow(/archive has no member "nope\.bin"/);
  });

  it("tar reader: a GNU header's atime and ctime are not read as a ustar name prefix", async () => {
    const data = Buffer.alloc(600, 5);
    const members: string[] = [];
    await readTarMembers([tar([{ name: 'cifar-10-batches-bin/data_batch_1.bin', data, gnu: true }])], (m) => (members.push(m.name), false), 'gnu.tar');
    expect(members).toEqual(['cifar-10-batches-bin/data_batch_1.bin']);
  });

  it('tar reader: truncated and non-tar streams → named errors', async () => {
    const t = tar([{ name: 'a.bin', data: Buffer.alloc(2000, 3) }]);
    await expect(readTarMembers([t.subarray(0, 1200)], () => true, 'cut.tar')).rejects.toThrow(/cut\.tar: truncated tar archive: stream ended at offset 1200, member "a\.bin" needs 1312 more bytes/);
    await expect(readTarMembers([Buffer.alloc(1024, 0x41)], () => true, 'junk.tar')).rejects.toThrow('junk.tar: not a tar archive or corrupt: header at offset 0 has a checksum field that is not an octal number ("AAAAAAAA"), computed 33016');
    const wrongSum = Buffer.from(tar([{ name: 'a.bin', data: Buffer.alloc(10, 3) }]));
    wrongSum.write('0000001\0', 148, 'latin1');
    await expect(readTarMembers([wrongSum], () => true, 'sum.tar')).rejects.toThrow(/^sum\.tar: not a tar archive or corrupt: header at offset 0 has checksum 1, computed \d+$/);
    // A size field that is not octal (with a correct checksum): before, it read as NaN and the member as 0 bytes.
    const badSize = Buffer.from(tar([{ name: 'a.bin', data: Buffer.alloc(10, 3) }]));
    badSize.write('zzzzzzzzzzz\0', 124, 'latin1');
    withChecksum(badSize);
    await expect(readTarMembers([badSize], () => true, 'size.tar')).rejects.toThrow('size.tar: corrupt tar header at offset 0: size field "zzzzzzzzzzz\\u0000" is not an octal number');
    // Byte-by-byte delivery parses the same as one chunk.
    const single = await readTarMembers([t], () => true, 'one');
    const bytes = Array.from({ length: t.length }, (_, i) => t.subarray(i, i + 1));
    const split = await readTarMembers(bytes, () => true, 'many');
    expect(split.get('a.bin')).toEqual(single.get('a.bin'));
  });
});

describe('tar reader: member kinds, names and sizes', () => {
  it('only regular files are read: a directory or symbolic link of a wanted name is not (it would replace the file with 0 bytes)', async () => {
    const t = tar([{ name: 'top/', type: '5' }, { name: 'top/a.bin', data: Buffer.from('real') }, { name: 'top/a.bin', type: '2' }]);
    const found = await readTarMembers([t], () => true, 'kinds.tar');
    expect([...found.keys()]).toEqual(['top/a.bin']);
    expect(found.get('top/a.bin')!.toString()).toBe('real');
  });

  it('a type byte of NUL (pre-POSIX tar) is a regular file', async () => {
    const found = await readTarMembers([tar([{ name: 'old.bin', data: Buffer.from('v7'), type: '\0' }])], () => true, 'v7.tar');
    expect(found.get('old.bin')!.toString()).toBe('v7');
  });

  it('a GNU long name names the next member only', async () => {
    const long = `cifar-10-batches-bin/${'x'.repeat(100)}.bin`;
    const found = await readTarMembers([tar([{ name: long, data: Buffer.from('one'), longName: true }, { name: 'b.bin', data: Buffer.from('two') }])], () => true, 'long.tar');
    expect([...found].map(([k, v]) => [k, v.toString()])).toEqual([[long, 'one'], ['b.bin', 'two']]);
  });

  it("GNU base-256 sizes (members of 8 GiB and more) are read as such", async () => {
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 251));
    const h = tarHeader('big.bin', 0);
    h.fill(0, 124, 136);
    h[124] = 0x80;
    h.writeUInt16BE(300, 134);
    const t = Buffer.concat([withChecksum(h), padBlock(data), Buffer.alloc(1024)]);
    expect((await readTarMembers([t], () => true, 'b256.tar')).get('big.bin')).toEqual(data);
  });

  it('a size field of octal digits followed by junk is refused, not read as its digits', async () => {
    const t = Buffer.from(tar([{ name: 'a.bin', data: Buffer.alloc(10, 3) }]));
    t.write('0000000012z\0', 124, 'latin1');
    withChecksum(t);
    await expect(readTarMembers([t], () => true, 'size.tar')).rejects.toThrow('size.tar: corrupt tar header at offset 0: size field "0000000012z\\u0000" is not an octal number');
  });

  it('a stream cut within a header (between members) is truncated too', async () => {
    const t = tar([{ name: 'a.bin', data: Buffer.alloc(10, 3) }, { name: 'b.bin', data: Buffer.alloc(10, 4) }]);
    await expect(readTarMembers([t.subarray(0, 1124)], () => true, 'cut.tar')).rejects.toThrow('cut.tar: truncated tar archive: stream ended at offset 1124, 100 bytes of an incomplete header');
  });

  it('a source that reuses its chunk buffer leaves each member its own bytes, whatever the chunk size (a header across two chunks read the second twice)', async () => {
    const a = Buffer.alloc(1000, 7);
    const t = tar([{ name: 'a.bin', data: a }, { name: 'b.bin', data: Buffer.from([1, 2, 3]) }]);
    function* reused(size: number): Generator<Uint8Array> {
      const chunk = new Uint8Array(size);
      for (let at = 0; at < t.length; at += size) {
        const part = t.subarray(at, at + size);
        chunk.set(part);
        yield chunk.subarray(0, part.length);
      }
    }
    for (const size of [100, 300, 512, 700]) {
      const found = await readTarMembers(reused(size), () => true, 'reused.tar');
      expect(found.get('a.bin'), `${size}-byte chunks`).toEqual(a);
      expect(found.get('b.bin'), `${size}-byte chunks`).toEqual(Buffer.from([1, 2, 3]));
    }
  });
});

describe('CIFAR files cut at a record boundary', () => {
  /** `records` all-zero records (label 0, black pixels), gzipped: small on disk however many. */
  const zeroRecords = (records: number, recordBytes: number): Buffer => gzipSync(Buffer.alloc(records * recordBytes));

  it('a training file → an error naming it, with the expected and found size', async () => {
    const root = freshDir();
    const c10 = join(root, 'cifar-10-batches-bin');
    mkdirSync(c10);
    writeFileSync(join(c10, 'data_batch_1.bin.gz'), zeroRecords(5000, 3073));
    for (const i of [2, 3, 4, 5]) writeFileSync(join(c10, `data_batch_${i}.bin.gz`), zeroRecords(10000, 3073));
    const warnings: string[] = [];
    const options = { dataDir: root, download: false, warn: (m: string) => warnings.push(m), log: () => {} };
    const e10 = await loadDataset('cifar10', 'train', options).catch((e: unknown) => e);
    expect(e10).toBeInstanceOf(DataFormatError);
    expect((e10 as Error).message).toBe(
      `${join(c10, 'data_batch_1.bin.gz')}: truncated: expected 30730000 bytes (10000 records of 3073), found 15365000 bytes (5000 records); a training file must be complete`,
    );
    const c100 = join(root, 'cifar-100-binary');
    mkdirSync(c100);
    writeFileSync(join(c100, 'train.bin.gz'), zeroRecords(100, 3074));
    await expect(loadDataset('cifar100', 'train', options)).rejects.toThrow(
      `${join(c100, 'train.bin.gz')}: truncated: expected 153700000 bytes (50000 records of 3074), found 307400 bytes (100 records)`,
    );
    expect(warnings).toEqual([]);
  });

  it('a test file → its records are used, with a warning that gives their count', async () => {
    const root = freshDir();
    mkdirSync(join(root, 'cifar-10-batches-bin'));
    writeFileSync(join(root, 'cifar-10-batches-bin', 'test_batch.bin.gz'), zeroRecords(300, 3073));
    mkdirSync(join(root, 'cifar-100-binary'));
    writeFileSync(join(root, 'cifar-100-binary', 'test.bin.gz'), zeroRecords(200, 3074));
    const warnings: string[] = [];
    const options = { dataDir: root, download: false, warn: (m: string) => warnings.push(m), log: () => {} };
    const c10 = await loadDataset('cifar10', 'test', options);
    const c100 = await loadDataset('cifar100', 'test', options);
    expect([c10.count, c100.count]).toEqual([300, 200]);
    expect(warnings).toEqual([
      `${join(root, 'cifar-10-batches-bin', 'test_batch.bin.gz')}: partial file, 300 of 10000 records (using the 300 present)`,
      `${join(root, 'cifar-100-binary', 'test.bin.gz')}: partial file, 200 of 10000 records (using the 200 present)`,
    ]);
    expect(c10.notes).toEqual([warnings[0]]);
    // A --test-limit past the records present (within the official count, which the flags check):
    // said, not taken silently.
    const limitedTo = async (limit: number) => {
      const printed: string[] = [];
      const spies = [vi.spyOn(console, 'warn'), vi.spyOn(console, 'error')].map((spy) => spy.mockImplementation((m: unknown) => void printed.push(String(m))));
      try {
        return { set: await loadTestSet({ dataset: 'cifar10', model: 'cifar10' }, root, limit), printed };
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    };
    const limited = await limitedTo(5000);
    expect(limited.set.count).toBe(300);
    expect(limited.printed).toContain('note: --test-limit 5000: cifar10/test holds 300 images: testing on all 300');
    expect(limited.set.notes.at(-1)).toBe('--test-limit 5000: cifar10/test holds 300 images: testing on all 300');
    // A limit of exactly the records present: all of them, and nothing to say.
    const exactly = await limitedTo(300);
    expect(exactly.set.count).toBe(300);
    expect(exactly.printed.filter((l) => l.includes('--test-limit'))).toEqual([]);
    expect(exactly.set.notes).toEqual([warnings[0]]);
  });
});

describe('MNIST files with the wrong record count or image size', () => {
  /** An idx3 image file (all-black) and its idx1 label file (all zeros), gzipped. */
  const mnistPair = (dir: string, prefix: 'train' | 't10k', count: number, height = 28, width = 28): void => {
    const images = Buffer.alloc(16 + count * height * width);
    [0x803, count, height, width].forEach((v, i) => images.writeUInt32BE(v, 4 * i));
    const labels = Buffer.alloc(8 + count);
    [0x801, count].forEach((v, i) => labels.writeUInt32BE(v, 4 * i));
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), gzipSync(images));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(labels));
  };

  it('a short training file is an error; a short test file is used with a warning and a note', async () => {
    const root = freshDir();
    const dir = join(root, 'mnist');
    mkdirSync(dir);
    mnistPair(dir, 'train', 10000); // e.g. the test files copied over the training files
    mnistPair(dir, 't10k', 100);
    const warnings: string[] = [];
    const options = { dataDir: root, download: false, warn: (m: string) => warnings.push(m), log: () => {} };
    await expect(loadDataset('mnist', 'train', options)).rejects.toThrow(
      `${join(dir, 'train-images-idx3-ubyte.gz')}: truncated: holds 10000 of the official 60000 images; a training file must be complete`,
    );
    const test = await loadDataset('mnist', 'test', options);
    expect(test.count).toBe(100);
    expect(warnings).toEqual([`${join(dir, 't10k-images-idx3-ubyte.gz')}: partial file, 100 of 10000 records (using the 100 present)`]);
    expect(test.notes).toEqual(warnings);
  });

  it('a test file with no records → an error naming it, at loading (not at the first evaluation)', async () => {
    const root = freshDir();
    const dir = join(root, 'mnist');
    mkdirSync(dir);
    mnistPair(dir, 't10k', 0);
    await expect(loadDataset('mnist', 'test', { dataDir: root, download: false, ...quiet })).rejects.toThrow(
      `${join(dir, 't10k-images-idx3-ubyte.gz')}: holds no images (the header says 0)`,
    );
  });

  it('more records than the official file, or images that are not 28×28 → errors naming the file', async () => {
    const root = freshDir();
    const dir = join(root, 'mnist');
    mkdirSync(dir);
    mnistPair(dir, 't10k', 10001);
    const options = { dataDir: root, download: false, ...quiet };
    await expect(loadDataset('mnist', 'test', options)).rejects.toThrow(`${join(dir, 't10k-images-idx3-ubyte.gz')}: holds 10001 images, the official file 10000`);
    mnistPair(dir, 't10k', 100, 14, 56);
    await expect(loadDataset('mnist', 'test', options)).rejects.toThrow(`${join(dir, 't10k-images-idx3-ubyte.gz')}: MNIST images are 28×28, the header says 14×56`);
  });
});

describe('SVHN files with fewer records than the official ones', () => {
  it('a short training file is an error; a short test file is used with a warning and a note, as CIFAR and MNIST', async () => {
    const root = freshDir();
    const dir = join(root, 'svhn');
    mkdirSync(dir);
    const fixture = readFileSync(fileURLToPath(new URL('./fixtures/svhn-scipy-compressed.mat', import.meta.url))); // 6 images
    writeFileSync(join(dir, 'train_32x32.mat'), fixture);
    writeFileSync(join(dir, 'test_32x32.mat'), fixture);
    const warnings: string[] = [];
    const options = { dataDir: root, download: false, warn: (m: string) => warnings.push(m), log: () => {} };
    await expect(loadDataset('svhn', 'train', options)).rejects.toThrow(`${join(dir, 'train_32x32.mat')}: expected 73257 images, found 6; a training file must be complete`);
    const test = await loadDataset('svhn', 'test', options);
    expect(test.count).toBe(6);
    expect(warnings).toEqual([`${join(dir, 'test_32x32.mat')}: partial file, 6 of 26032 records (using the 6 present)`]);
    expect(test.notes).toEqual(warnings);
  });
});

describe.skipIf(!HAVE_SHARED)('loading from ../shared/data', () => {
  it('CIFAR-10 test falls back to the 1000-record partial file, with a warning and a note', async () => {
    const warnings: string[] = [];
    const ds = await loadDataset('cifar10', 'test', { dataDir: SHARED, download: false, warn: (m) => warnings.push(m), log: () => {} });
    expect(ds.count).toBe(1000);
    expect(Array.from(ds.labels.subarray(0, 10))).toEqual([3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('CIFAR-10 test: using test_batch.first1000.bin: only the first 1000 of the 10000 official CIFAR-10 test images');
    expect(ds.notes).toHaveLength(1);
    expect(ds.notes[0]).toMatch(/test_batch\.first1000\.bin/);
  });

  it("a run's loading says the partial test file once: as a warning, not again on the split's line", async () => {
    const printed: string[] = [];
    const spies = [vi.spyOn(console, 'warn'), vi.spyOn(console, 'error')].map((spy) => spy.mockImplementation((m: unknown) => void printed.push(String(m))));
    try {
      await loadTestSet({ dataset: 'cifar10', model: 'cifar10' }, SHARED, 16);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(printed).toEqual([expect.stringMatching(/^warning: CIFAR-10 test: using test_batch\.first1000\.bin: /), 'cifar10/test[:16]: 16 images 32×32×3 (height×width×channels)']);
  });

  it('a split is available with its official files or its stand-in: CIFAR-10 test here by its partial file', () => {
    expect([isAvailable('cifar10', 'test', { dataDir: SHARED }), isAvailable('cifar10', 'train', { dataDir: SHARED }), isAvailable('mnist', 'test', { dataDir: SHARED })]).toEqual([true, true, true]);
    expect(isAvailable('cifar10', 'test', { dataDir: freshDir() })).toBe(false);
  });

  it('only an SVHN split is read into a given array', async () => {
    await expect(loadDataset('mnist', 'test', { dataDir: SHARED, download: false, into: new Float32Array(10000 * 784), ...quiet })).rejects.toThrow(
      new RangeError("loadDataset: mnist/test cannot be read into a given array (only SVHN's one-file splits can)"),
    );
  });

  it('CIFAR-10 train resolves to the five gzipped batches in order', async () => {
    const r = await resolveSplitFiles('cifar10', 'train', { dataDir: SHARED, download: false, ...quiet });
    expect(r.paths).toEqual([1, 2, 3, 4, 5].map((i) => join(SHARED, 'cifar-10-batches-bin', `data_batch_${i}.bin.gz`)));
    expect(r.fallbackNote).toBeUndefined();
  });

  it('default resolution from a cwd next to shared/ finds the data', async () => {
    const r = await resolveSplitFiles('mnist', 'train', { cwd: resolve(SHARED, '..', '..', 'main'), env: {}, download: false, ...quiet });
    expect(r.paths[0]).toBe(join(resolve(SHARED), 'mnist', 'train-images-idx3-ubyte.gz'));
  });

  it('verifyDataFile: official .gz md5 (MNIST), uncompressed md5 (CIFAR), mismatch → error', async () => {
    await verifyDataFile(join(SHARED, 'mnist/t10k-labels-idx1-ubyte.gz'), DATASETS.mnist.splits.test!.files[1]);
    await verifyDataFile(join(SHARED, 'cifar-10-batches-bin/test_batch.first1000.bin.gz'), DATASETS.cifar10.splits.test!.fallback!.files[0]);
    await expect(verifyDataFile(join(SHARED, 'mnist/t10k-labels-idx1-ubyte.gz'), DATASETS.mnist.splits.train!.files[1])).rejects.toThrow(/size mismatch: expected 60008 bytes, found 10008/);
  });
});

describe('registry edge cases', () => {
  it('verifyDataFile refuses a file of the right size whose md5 differs', async () => {
    const p = join(tmp, 't10k-labels-idx1-ubyte');
    writeFileSync(p, Buffer.alloc(10008));
    await expect(verifyDataFile(p, DATASETS.mnist.splits.test!.files[1])).rejects.toThrow(/md5 mismatch/);
  });

  it('every CIFAR file size is its records × the record size (3073 bytes for CIFAR-10, 3074 for CIFAR-100)', () => {
    for (const s of Object.values(DATASETS.cifar100.splits)) for (const f of s!.files) expect(f.bytes).toBe(f.records * 3074);
    for (const s of Object.values(DATASETS.cifar10.splits)) for (const f of [...s!.files, ...(s!.fallback?.files ?? [])]) expect(f.bytes).toBe(f.records * 3073);
  });

  it('a short SVHN extra file is refused, as a training file', async () => {
    const root = join(tmp, 'short-extra');
    mkdirSync(join(root, 'svhn'), { recursive: true });
    writeFileSync(join(root, 'svhn', 'extra_32x32.mat'), readFileSync(fileURLToPath(new URL('./fixtures/svhn-scipy-compressed.mat', import.meta.url))));
    await expect(loadDataset('svhn', 'extra', { dataDir: root, download: false, warn: () => {}, log: () => {} })).rejects.toThrow(/a training file must be complete/);
  });

  it('with no --data-dir or NIN_DATA, a missing data set is to be put in ./data/<its directory>, not in a fallback root', async () => {
    const cwd = join(tmp, 'default-root', 'proj');
    mkdirSync(cwd, { recursive: true });
    const e = await resolveSplitFiles('svhn', 'test', { cwd, env: {}, download: false, warn: () => {}, log: () => {} }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingDataError);
    expect((e as MissingDataError).targetDir).toBe(join(cwd, 'data', 'svhn'));
  });
});

describe("a run's data in a few words", () => {
  it("dataLabel: the data set's name, or 'folder' and the image folder's own name (not its whole path)", () => {
    expect(dataLabel({ dataset: 'cifar10' })).toBe('cifar10');
    expect(dataLabel({ dataset: 'folder', imageFolder: { dir: '/data/photos/shapes', classNames: ['a', 'b'], trainImages: 4, trainList: 'x' } })).toBe('folder shapes');
  });
});
