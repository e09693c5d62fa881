// Where the datasets live: official file names, sizes and checksums, where to look for them on disk,
// and how to fetch them (with checksum verification) when they are missing.
//
// Data directory resolution (first match wins):
//   1. the --data-dir value (options.dataDir), exclusively;
//   2. else $NIN_DATA, exclusively;
//   3. else ./data, then ../shared/data (both relative to the working directory).
// In each root, a file is looked for in <root>/ and in <root>/<dataset subdir>/ (mnist/,
// cifar-10-batches-bin/, cifar-100-binary/, svhn/), as the official name or the name + ".gz".
// Missing files are downloaded into <first root>/<subdir>/; when that fails (offline), the error
// lists the exact files, the URLs to fetch them from, and where to put them.
import { createReadStream, createWriteStream, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import {
  CIFAR10_CLASSES,
  CIFAR100_FINE_CLASSES,
  MNIST_CLASSES,
  SVHN_CLASSES,
  readCifar10,
  readCifar100,
  readMnist,
  readSvhn,
  concatDatasets,
  type ImageDataset,
  type WarningSink,
} from './formats.ts';
import { DataFormatError, digestBytes, digestFile, doneWithTempPath, existingVariant, makeDirectory, readDataFile, tempPathFor, writeFileAtomic } from './io.ts';
import { readTarMembers } from './tar.ts';

export type DatasetName = 'mnist' | 'cifar10' | 'cifar100' | 'svhn';
export type SplitName = 'train' | 'test' | 'extra';

/** Where a file comes from: a plain download, or a member of a .tar.gz archive. */
export interface RemoteSource {
  url: string;
  /** md5 of the downloaded object (the archive, or the .gz, or the file itself). */
  md5: string;
  /** Path inside the archive; absent for plain downloads. */
  member?: string;
  /** Name the downloaded file is saved under (MNIST keeps its .gz: the readers gunzip on the fly). */
  savedAs: string;
}

export interface DataFileSpec {
  /** Official (uncompressed) file name. */
  name: string;
  /** Size of the uncompressed file in bytes (null: not fixed, e.g. a compressed .mat). */
  bytes: number | null;
  /** Images (or labels) the file holds. */
  records: number;
  /** Checksums of the uncompressed file, when published. */
  md5?: string;
  sha256?: string;
  /** Checksum of the official .gz (MNIST ships gzipped). */
  gzMd5?: string;
  source: RemoteSource;
}

export interface SplitSpec {
  files: DataFileSpec[];
  count: number;
  /** A local stand-in used (with a warning) when the official files are absent, e.g. a partial test set. */
  fallback?: { files: DataFileSpec[]; note: string };
}

export interface DatasetSpec {
  name: DatasetName;
  title: string;
  subdir: string;
  height: number;
  width: number;
  channels: number;
  classNames: readonly string[];
  /** The official archive, for the "how to get it" message. */
  homepage: string;
  splits: Partial<Record<SplitName, SplitSpec>>;
}

export const MNIST_BASE_URL = 'https://ossci-datasets.s3.amazonaws.com/mnist/';
export const CIFAR10_ARCHIVE = { url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530' };
export const CIFAR100_ARCHIVE = { url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8' };
export const SVHN_BASE_URL = 'http://ufldl.stanford.edu/housenumbers/';

function mnistFile(name: string, bytes: number, records: number, md5: string, gzMd5: string): DataFileSpec {
  return { name, bytes, records, md5, gzMd5, source: { url: `${MNIST_BASE_URL}${name}.gz`, md5: gzMd5, savedAs: `${name}.gz` } };
}

function cifar10File(name: string, md5: string, sha256: string, records = 10000): DataFileSpec {
  return {
    name,
    bytes: records * 3073,
    records,
    md5,
    sha256,
    source: { ...CIFAR10_ARCHIVE, member: `cifar-10-batches-bin/${name}`, savedAs: name },
  };
}

function svhnFile(name: string, bytes: number, records: number, md5: string): DataFileSpec {
  // The .mat is zlib-compressed inside, so its size is that of the official file, not of the pixels.
  return { name, bytes, records, md5, source: { url: `${SVHN_BASE_URL}${name}`, md5, savedAs: name } };
}

export const DATASETS: Record<DatasetName, DatasetSpec> = {
  mnist: {
    name: 'mnist',
    title: 'MNIST',
    subdir: 'mnist',
    height: 28,
    width: 28,
    channels: 1,
    classNames: MNIST_CLASSES,
    homepage: 'http://yann.lecun.com/exdb/mnist/',
    splits: {
      train: {
        count: 60000,
        files: [
          mnistFile('train-images-idx3-ubyte', 47040016, 60000, '6bbc9ace898e44ae57da46a324031adb', 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
          mnistFile('train-labels-idx1-ubyte', 60008, 60000, 'a25bea736e30d166cdddb491f175f624', 'd53e105ee54ea40749a09fcbcd1e9432'),
        ],
      },
      test: {
        count: 10000,
        files: [
          mnistFile('t10k-images-idx3-ubyte', 7840016, 10000, '2646ac647ad5339dbf082846283269ea', '9fb629c4189551a2d022fa330f9573f3'),
          mnistFile('t10k-labels-idx1-ubyte', 10008, 10000, '27ae3e4e09519cfbb04c329615203637', 'ec29112dd5afa0611ce80d1b7f02629c'),
        ],
      },
    },
  },
  cifar10: {
    name: 'cifar10',
    title: 'CIFAR-10',
    subdir: 'cifar-10-batches-bin',
    height: 32,
    width: 32,
    channels: 3,
    classNames: CIFAR10_CLASSES,
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    splits: {
      train: {
        count: 50000,
        files: [
          cifar10File('data_batch_1.bin', '5dd7e06a14cb22eb9f671a540d1b7c25', 'cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5'),
          cifar10File('data_batch_2.bin', '5ea93a67294ea407fff1d09f752e9692', 'a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed'),
          cifar10File('data_batch_3.bin', '942cd6a4bcdd0dd3c604fbe906cb4421', 'bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67'),
          cifar10File('data_batch_4.bin', 'ae636b3ba5c66a11e91e8cb52e771fcb', '014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48'),
          cifar10File('data_batch_5.bin', '53f37980c15c3d472c316c40844f3f0d', '755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add'),
        ],
      },
      test: {
        count: 10000,
        files: [cifar10File('test_batch.bin', '803d5f7f4d78ea53de84dbe85f74fb6d', '8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b')],
        // The shared data directory only has the first 1000 official test records (see its README).
        fallback: {
          note: 'using test_batch.first1000.bin: only the first 1000 of the 10000 official CIFAR-10 test images, so test accuracy is not comparable to published numbers',
          files: [
            {
              ...cifar10File('test_batch.first1000.bin', '371f65da31ad652f5e24b3699a3e6515', '8314c96d7cd65618193bab23acdd5d4c4af15bf6dd00a1781d55beedf3be1ef5', 1000),
              // Not an official file: the full test_batch.bin is what to download.
              source: { ...CIFAR10_ARCHIVE, member: 'cifar-10-batches-bin/test_batch.bin', savedAs: 'test_batch.bin' },
            },
          ],
        },
      },
    },
  },
  cifar100: {
    name: 'cifar100',
    title: 'CIFAR-100',
    subdir: 'cifar-100-binary',
    height: 32,
    width: 32,
    channels: 3,
    classNames: CIFAR100_FINE_CLASSES,
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    splits: {
      train: {
        count: 50000,
        files: [{ name: 'train.bin', bytes: 50000 * 3074, records: 50000, source: { ...CIFAR100_ARCHIVE, member: 'cifar-100-binary/train.bin', savedAs: 'train.bin' } }],
      },
      test: {
        count: 10000,
        files: [{ name: 'test.bin', bytes: 10000 * 3074, records: 10000, source: { ...CIFAR100_ARCHIVE, member: 'cifar-100-binary/test.bin', savedAs: 'test.bin' } }],
      },
    },
  },
  svhn: {
    name: 'svhn',
    title: 'SVHN (cropped digits)',
    subdir: 'svhn',
    height: 32,
    width: 32,
    channels: 3,
    classNames: SVHN_CLASSES,
    homepage: 'http://ufldl.stanford.edu/housenumbers/',
    splits: {
      train: { count: 73257, files: [svhnFile('train_32x32.mat', 182040794, 73257, 'e26dedcc434d2e4c54c9b2d4a06d8373')] },
      test: { count: 26032, files: [svhnFile('test_32x32.mat', 64275384, 26032, 'eb5a983be6a315427106f1b2b6b0b5e8')] },
      // 531131 images = 6.5 GB as float32 NHWC (`nin train --extra`; Float32Array holds up to 2³² values).
      extra: { count: 531131, files: [svhnFile('extra_32x32.mat', 1329278602, 531131, 'a93ce644f1a588dc4d68dda5feec44a7')] },
    },
  },
};

export function datasetSpec(name: string): DatasetSpec {
  // (own keys only: 'constructor' or 'toString' is no data set)
  const spec = Object.hasOwn(DATASETS, name) ? (DATASETS as Record<string, DatasetSpec>)[name] : undefined;
  if (!spec) throw new RangeError(`unknown dataset "${name}"; known: ${Object.keys(DATASETS).join(', ')}`);
  return spec;
}

function splitSpec(spec: DatasetSpec, split: string): SplitSpec {
  const s = Object.hasOwn(spec.splits, split) ? spec.splits[split as SplitName] : undefined;
  if (!s) throw new RangeError(`${spec.title} has no "${split}" split; it has: ${Object.keys(spec.splits).join(', ')}`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Data directory resolution.

export interface DataDirOptions {
  /** The --data-dir value. */
  dataDir?: string;
  /** Environment to read NIN_DATA from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Directory relative paths are resolved against (default process.cwd()). */
  cwd?: string;
}

/** The data roots to search, in order, and how they were chosen. The first is where downloads go. */
export function dataRoots(opts: DataDirOptions = {}): { roots: string[]; origin: string } {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  // A named root that is a file: said by its name (looking inside it failed with a bare ENOTDIR).
  const named = (dir: string, origin: string) => {
    const root = resolve(cwd, dir);
    let isDir: boolean | undefined;
    try {
      isDir = statSync(root, { throwIfNoEntry: false })?.isDirectory();
    } catch {
      throw new DataFormatError(root, `${origin} names a path through a file`); // ENOTDIR
    }
    if (isDir === false) throw new DataFormatError(root, `${origin} names a file, not a directory`);
    return { roots: [root], origin };
  };
  if (opts.dataDir) return named(opts.dataDir, '--data-dir');
  if (env.NIN_DATA) return named(env.NIN_DATA, 'NIN_DATA');
  return { roots: [resolve(cwd, 'data'), resolve(cwd, '..', 'shared', 'data')], origin: 'default (./data, then ../shared/data)' };
}

/** Directories searched for one dataset: each root and its dataset subdirectory. */
export function searchDirs(spec: DatasetSpec, opts: DataDirOptions = {}): string[] {
  const dirs: string[] = [];
  for (const root of dataRoots(opts).roots) dirs.push(root, join(root, spec.subdir));
  return dirs;
}

/** Finds each file (or its .gz) in the search directories; null for those not found. */
export function locateFiles(files: readonly DataFileSpec[], dirs: readonly string[]): (string | null)[] {
  return files.map((f) => {
    for (const dir of dirs) {
      const p = existingVariant(join(dir, f.name));
      if (p) return p;
    }
    return null;
  });
}

// ---------------------------------------------------------------------------------------------
// Downloading.

/** The subset of `fetch` used here; inject a stub in tests (never hit the network there). */
export type FetchLike = (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;

/** Raised when files are missing and could not be downloaded. The message says exactly what to do. */
export class MissingDataError extends Error {
  override name = 'MissingDataError';
  constructor(
    message: string,
    readonly missing: string[],
    readonly urls: string[],
    readonly targetDir: string,
  ) {
    super(message);
  }
}

export interface DownloadOptions {
  fetch?: FetchLike;
  log?: (message: string) => void;
  /** Give up when a server has not answered (response headers) within this time (default 30 s). */
  responseTimeoutMs?: number;
}

/**
 * Downloads `files` into `targetDir`, grouped by source (one archive download serves all of its
 * members), verifying the md5 of every download and of every extracted member whose md5 is known.
 * Throws on any failure; files already written stay (each is written atomically), and the
 * directories it created stay only if they hold one.
 */
export async function downloadFiles(files: readonly DataFileSpec[], targetDir: string, opts: DownloadOptions = {}): Promise<string[]> {
  const fetchFn = opts.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (!fetchFn) throw new Error('no fetch() available in this runtime');
  const log = opts.log ?? ((m: string) => console.log(m));
  const created = makeDirectory(targetDir); // the topmost directory it made, if any
  // (a mistyped NIN_DATA started a download somewhere new without a word of where)
  if (created !== undefined) log(`note: ${created} did not exist: made it to download into (a new directory: is the data directory's name right?)`);
  try {
    return await downloadInto(files, targetDir, fetchFn, log, opts);
  } catch (e) {
    // A mistyped --data-dir must not be left behind by a download that wrote nothing into it.
    if (created !== undefined) removeEmptyDirectories(targetDir, created);
    throw e;
  }
}

/** Removes `dir` and its parents up to `top` (inclusive), stopping at the first that is not empty. */
function removeEmptyDirectories(dir: string, top: string): void {
  const last = resolve(top);
  for (let d = resolve(dir); d.startsWith(last); d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (a file was written, or someone else uses it), or already gone
    }
  }
}

async function downloadInto(files: readonly DataFileSpec[], targetDir: string, fetchFn: FetchLike, log: (message: string) => void, opts: DownloadOptions): Promise<string[]> {
  const byUrl = new Map<string, DataFileSpec[]>();
  for (const f of files) byUrl.set(f.source.url, [...(byUrl.get(f.source.url) ?? []), f]);
  const written: string[] = [];
  for (const [url, group] of byUrl) {
    const { md5, member } = group[0].source;
    const tmp = tempPathFor(join(targetDir, url.split('/').pop() || 'download'));
    try {
      log(`downloading ${url} into ${targetDir} …`);
      await fetchToFile(fetchFn, url, tmp, md5, opts.responseTimeoutMs ?? 30_000);
      if (member === undefined) {
        const dest = join(targetDir, group[0].source.savedAs);
        renameSync(tmp, dest);
        written.push(dest);
        continue;
      }
      const wanted = new Map(group.map((f) => [f.source.member!, f]));
      const gunzip = createReadStream(tmp).pipe(createGunzip());
      const members = await readTarMembers(gunzip, (m) => wanted.has(m.name), url);
      for (const [memberName, f] of wanted) {
        const data = members.get(memberName);
        if (!data) throw new DataFormatError(url, `archive has no member "${memberName}"`);
        if (f.md5 && f.source.savedAs === f.name) {
          const got = digestBytes(data, 'md5');
          if (got !== f.md5) throw new DataFormatError(url, `member ${memberName}: md5 mismatch, expected ${f.md5}, found ${got}`);
        }
        const dest = join(targetDir, f.source.savedAs);
        writeFileAtomic(dest, [data]);
        written.push(dest);
      }
    } finally {
      rmSync(tmp, { force: true });
      doneWithTempPath(tmp);
    }
  }
  for (const w of written) log(`wrote ${w}`);
  return written;
}

async function fetchToFile(fetchFn: FetchLike, url: string, dest: string, md5: string, responseTimeoutMs: number): Promise<void> {
  // Only the wait for the response is bounded: a 1.3 GB body may legitimately take a long time.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no response within ${responseTimeoutMs / 1000} s`)), responseTimeoutMs);
  let res: Response;
  try {
    res = await fetchFn(url, { signal: abort.signal });
  } catch (e) {
    throw abort.signal.aborted ? new Error(`${url}: ${(abort.signal.reason as Error).message}`) : e;
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  const hash = createHash('md5');
  await pipeline(
    res.body as unknown as AsyncIterable<Uint8Array>,
    async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(dest),
  );
  const got = hash.digest('hex');
  if (got !== md5) throw new Error(`${url}: md5 mismatch, expected ${md5}, found ${got} (corrupt or changed download)`);
}

// ---------------------------------------------------------------------------------------------
// Resolving and loading a split.

export interface ResolveOptions extends DataDirOptions, DownloadOptions {
  /** Try to download missing files (default true). */
  download?: boolean;
  warn?: WarningSink;
}

export interface ResolvedFiles {
  paths: string[];
  specs: DataFileSpec[];
  /** Set when a local stand-in (e.g. a partial test set) is used instead of the official files. */
  fallbackNote?: string;
}

/**
 * Finds the files of one split: the official files anywhere in the search path, else a local
 * fallback (with a warning), else downloads them into <first root>/<subdir>/, else throws a
 * MissingDataError that says which files to fetch from where and where to put them.
 */
export async function resolveSplitFiles(name: DatasetName | string, split: SplitName | string, opts: ResolveOptions = {}): Promise<ResolvedFiles> {
  const spec = datasetSpec(name);
  const s = splitSpec(spec, split);
  const dirs = searchDirs(spec, opts);
  const found = locateFiles(s.files, dirs);
  if (found.every((p) => p !== null)) return { paths: found as string[], specs: s.files };
  if (s.fallback) {
    const fb = locateFiles(s.fallback.files, dirs);
    if (fb.every((p) => p !== null)) {
      (opts.warn ?? ((m: string) => console.warn(`warning: ${m}`)))(`${spec.title} ${split}: ${s.fallback.note}`);
      return { paths: fb as string[], specs: s.fallback.files, fallbackNote: s.fallback.note };
    }
  }
  let missing = s.files.filter((_, i) => found[i] === null);
  const targetDir = join(dataRoots(opts).roots[0], spec.subdir);
  let failure = 'downloading is disabled';
  if (opts.download !== false) {
    try {
      await downloadFiles(missing, targetDir, opts);
      failure = 'download finished but the files are still not found';
    } catch (e) {
      failure = `download failed: ${(e as Error).message}${(e as Error).cause ? ` (${String((e as { cause?: unknown }).cause)})` : ''}`;
    }
    // A download that failed part way kept the files it wrote: the error lists only those still missing.
    const again = locateFiles(s.files, dirs);
    if (again.every((p) => p !== null)) return { paths: again as string[], specs: s.files };
    missing = s.files.filter((_, i) => again[i] === null);
  }
  throw missingDataError(spec, split, missing, dirs, targetDir, failure);
}

function missingDataError(spec: DatasetSpec, split: string, missing: DataFileSpec[], dirs: string[], targetDir: string, failure: string): MissingDataError {
  const urls = [...new Set(missing.map((f) => f.source.url))];
  const lines = [
    `${spec.title} ${split}: missing ${missing.length} file(s): ${missing.map((f) => f.name).join(', ')}`,
    `  looked for each (also with a .gz suffix) in:`,
    ...dirs.map((d) => `    ${d}`),
    `  ${failure}`,
    `  to fix, fetch:`,
  ];
  for (const url of urls) {
    const group = missing.filter((f) => f.source.url === url);
    const { md5, member } = group[0].source;
    if (member !== undefined) {
      lines.push(`    ${url} (md5 ${md5}) and extract ${group.map((f) => f.source.member).join(', ')}`);
    } else {
      lines.push(`    ${url} (md5 ${md5}) saved as ${group[0].source.savedAs}`);
    }
  }
  lines.push(`  and put ${missing.map((f) => f.name).join(', ')} (gzipped with .gz or not) in ${targetDir}/`);
  lines.push(`  (or point --data-dir / NIN_DATA at a directory that has them)`);
  return new MissingDataError(lines.join('\n'), missing.map((f) => f.name), urls, targetDir);
}

/** Checks a local file against the registry's checksums (of the .gz when it is the official .gz, else of the content). */
export async function verifyDataFile(path: string, spec: DataFileSpec): Promise<void> {
  if (path.endsWith('.gz') && spec.gzMd5) {
    const got = await digestFile(path, 'md5');
    if (got === spec.gzMd5) return;
  }
  const bytes = readDataFile(path, spec.bytes === null ? undefined : { bytes: spec.bytes, of: "the official file's size" });
  if (spec.bytes !== null && bytes.length !== spec.bytes) {
    throw new DataFormatError(path, `size mismatch: expected ${spec.bytes} bytes, found ${bytes.length}`);
  }
  if (spec.md5) {
    const got = digestBytes(bytes, 'md5');
    if (got !== spec.md5) throw new DataFormatError(path, `md5 mismatch: expected ${spec.md5}, found ${got}`);
  }
}

export interface LoadOptions extends ResolveOptions {
  /** Verify md5s of the local files before reading (slow for big files; sizes are always checked). */
  verifyChecksums?: boolean;
  /** SVHN only: read the images into this array (the split's count × 32 × 32 × 3 values), so that several splits can share one buffer. */
  into?: Float32Array;
}

/** The number of images a split officially holds. */
export function splitCount(name: DatasetName | string, split: SplitName | string): number {
  return splitSpec(datasetSpec(name), split).count;
}

/** Locates (downloading if needed) and reads one split of a dataset. */
export async function loadDataset(name: DatasetName | string, split: SplitName | string, opts: LoadOptions = {}): Promise<ImageDataset> {
  const spec = datasetSpec(name);
  const files = await resolveSplitFiles(name, split, opts);
  if (opts.verifyChecksums) {
    for (let i = 0; i < files.paths.length; i++) await verifyDataFile(files.paths[i], files.specs[i]);
  }
  const label = `${spec.name}/${split}`;
  // Only a test set may be partial (its error is then measured on the records present); a short
  // training file would silently train on less.
  const requireComplete = split !== 'test';
  if (opts.into && (spec.name !== 'svhn' || files.paths.length !== 1)) throw new RangeError(`loadDataset: ${label} cannot be read into a given array (only SVHN's one-file splits can)`);
  let ds: ImageDataset;
  switch (spec.name) {
    case 'mnist':
      ds = readMnist(files.paths[0], files.paths[1], { name: label, expectedRecords: files.specs[0].records, requireComplete, warn: opts.warn });
      break;
    case 'cifar10':
      // Expect each file's own record count: a fallback's shortfall is already in its note.
      ds = concatDatasets(
        files.paths.map((p, i) => readCifar10([p], { name: label, expectedRecords: files.specs[i].records, requireComplete, warn: opts.warn })),
        label,
      );
      break;
    case 'cifar100':
      ds = readCifar100(files.paths[0], { name: label, expectedRecords: files.specs[0].records, requireComplete, warn: opts.warn });
      break;
    case 'svhn':
      ds = concatDatasets(
        files.paths.map((p, i) => readSvhn(p, { expectedRecords: files.specs[i].records, requireComplete, warn: opts.warn, name: label, into: opts.into })),
        label,
      );
      break;
  }
  if (files.fallbackNote) ds.notes.unshift(files.fallbackNote);
  return ds;
}

/** True when every file of the split is present locally (no download attempted). */
export function isAvailable(name: DatasetName, split: SplitName, opts: DataDirOptions = {}): boolean {
  const spec = datasetSpec(name);
  const s = splitSpec(spec, split);
  const dirs = searchDirs(spec, opts);
  if (locateFiles(s.files, dirs).every((p) => p !== null)) return true;
  return s.fallback !== undefined && locateFiles(s.fallback.files, dirs).every((p) => p !== null);
}
