// File-level helpers shared by the dataset readers: transparent gunzip, digests, atomic writes, and
// the error type every reader throws for a file that is not what it should be.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** A data file that is truncated, of a foreign format, or otherwise not what its reader expects. */
export class DataFormatError extends Error {
  override name = 'DataFormatError';
  /** @param file path (or other name) of the offending file; the message starts with it. */
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** gzip streams start with 1f 8b (RFC 1952). We detect by content, not by the ".gz" suffix. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a file and gunzips it when it is a gzip stream. Returns the uncompressed bytes. */
export function readDataFile(path: string): Buffer {
  const raw = readFileSync(path);
  if (!isGzip(raw)) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new DataFormatError(path, `gzip stream is corrupt or truncated (${(e as Error).message}; compressed size ${raw.length} bytes)`);
  }
}

/** `path` if it is a file, else `path + '.gz'` if that is, else null. A directory (or other
 * non-file) under either name, with no file beside it, is an error naming it: reading it would
 * fail with a bare EISDIR. */
export function existingVariant(path: string): string | null {
  const variants = [path, `${path}.gz`];
  const stat = (p: string) => {
    try {
      return statSync(p, { throwIfNoEntry: false });
    } catch {
      return undefined; // ENOTDIR: a file where a directory of the path should be: nothing here
    }
  };
  const file = variants.find((p) => stat(p)?.isFile());
  if (file) return file;
  const other = variants.find((p) => stat(p) !== undefined);
  if (other) throw new DataFormatError(other, 'is a directory or other non-file, expected a data file');
  return null;
}

export type DigestAlgorithm = 'md5' | 'sha256';

export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

/** Streams a file through a hash (files here are up to ~1.3 GB, too big to read whole for a checksum). */
export async function digestFile(path: string, algorithm: DigestAlgorithm): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The temp paths this process has named (tempPathFor) and not yet finished with (doneWithTempPath). */
const tempPathsInUse = new Set<string>();

/** A temporary path next to `path` (same directory, so the final rename is atomic on POSIX):
 * `.<name>.tmp-<pid>-<random>` (see parseTempName). Call doneWithTempPath once it is renamed or removed. */
export function tempPathFor(path: string): string {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  tempPathsInUse.add(resolve(tmp));
  return tmp;
}

/** A temp path of tempPathFor's that is renamed or removed: no longer this process's write in progress. */
export function doneWithTempPath(tmp: string): void {
  tempPathsInUse.delete(resolve(tmp));
}

/** Whether `tmp` is a temp path this process has named and not finished with (a write in progress). */
export function tempPathInUse(tmp: string): boolean {
  return tempPathsInUse.has(resolve(tmp));
}

/** tempPathFor's names: `.` name `.tmp-` pid `-` up to 8 base-36 digits, nothing before or after. */
const TEMP_NAME = /^\.(.+)\.tmp-([1-9][0-9]{0,9})-([0-9a-z]{1,8})$/;

/** The file a temp file's name (a base name, as tempPathFor makes them) was to become, and the pid
 * of the process that wrote it; null for any other name. */
export function parseTempName(name: string): { target: string; pid: number } | null {
  const m = TEMP_NAME.exec(name);
  if (!m) return null;
  const pid = Number(m[2]);
  return pid <= 0x7fffffff ? { target: m[1], pid } : null;
}

/** A failed write as an error that names the file (Node's write errors do not: "ENOSPC: no space
 * left on device, write"), keeping the system error's code. */
export function writeError(path: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  return Object.assign(new Error(`cannot write ${path}: ${err.message}`), { code: err.code });
}

/**
 * Writes `chunks` to `path` atomically: a temp file in the same directory, fsync, rename, then a
 * best-effort fsync of the directory. A crash leaves either the old file or the new one, never a torn
 * file (a torn checkpoint would otherwise only be noticed when resuming).
 */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = tempPathFor(path);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w', 0o644);
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw writeError(path, e);
  } finally {
    doneWithTempPath(tmp);
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename itself has already happened.
  }
}
