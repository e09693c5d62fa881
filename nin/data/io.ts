// File-level helpers shared by the dataset readers: transparent gunzip, digests, atomic writes, and
// the error type every reader throws for a file that is not what it should be.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
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

/**
 * Reads a file and gunzips it when it is a gzip stream. Returns the uncompressed bytes. `most`:
 * the bytes the file can hold (an official file's records and header) and what they are; a
 * stream that expands past twice them is refused as it goes (a 1 MB file expanded to 1 GiB first).
 */
export function readDataFile(path: string, most?: { bytes: number; of: string }): Buffer {
  const raw = readFileSync(path);
  if (!isGzip(raw)) return raw;
  try {
    // (up to twice that: a file a little over says how in its reader's words, "holds 10001 images")
    return gunzipSync(raw, most ? { maxOutputLength: 2 * most.bytes } : {});
  } catch (e) {
    if (most && (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DataFormatError(path, `gzip stream expands past ${2 * most.bytes} bytes, twice the most the file holds (${most.of}): not the official file, or damaged`);
    }
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
 * Where a write to `path` lands. A symbolic link's final target, written as a shell's `>` writes
 * it, not the link replaced by a file. A pipe or device (/dev/null, a FIFO, a shell's `>(…)`) is
 * `inPlace`: written straight, as no temp file can be renamed over it (the rename would put a
 * file in its place, root's /dev/null too). A directory is refused naming the path.
 */
function writeTarget(path: string): { target: string; inPlace: boolean } {
  let st: Stats | null = null;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (st?.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
  if (st && !st.isFile()) return { target: path, inPlace: true };
  let target = path;
  for (let hops = 0; hops < 40; hops++) {
    let link: Stats;
    try {
      link = lstatSync(target);
    } catch {
      break; // nothing there yet
    }
    if (!link.isSymbolicLink()) break;
    target = resolve(dirname(target), readlinkSync(target)); // (a dangling link: its target is made)
  }
  return { target, inPlace: false };
}

/**
 * A file written atomically: a temp file in the target's directory, fsync, rename, then a
 * best-effort fsync of the directory. A crash leaves either the old file or the new one, never a
 * torn file (a torn checkpoint would otherwise only be noticed when resuming). Written in parts
 * (`write`), so a long output (a JSON of every picture's probabilities) need not be held whole.
 * Errors name `path`; `abort` (also after a failed write) removes the temp file.
 */
export class AtomicFile {
  private fd: number;
  private readonly tmp: string | null;
  private readonly target: string;

  constructor(readonly path: string) {
    let tmp: string | null = null;
    try {
      const { target, inPlace } = writeTarget(path);
      tmp = inPlace ? null : tempPathFor(target);
      this.fd = openSync(tmp ?? target, 'w', 0o644);
      this.target = target;
      this.tmp = tmp;
    } catch (e) {
      if (tmp) doneWithTempPath(tmp);
      throw writeError(path, e);
    }
  }

  write(data: Uint8Array | string): void {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (e) {
      this.abort();
      throw writeError(this.path, e);
    }
  }

  /** Renames the finished file into place (a pipe or device: closes it). */
  commit(): void {
    try {
      if (this.tmp) fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = -1;
      if (this.tmp) renameSync(this.tmp, this.target);
    } catch (e) {
      this.abort();
      throw writeError(this.path, e);
    }
    if (this.tmp) {
      doneWithTempPath(this.tmp);
      fsyncDirectory(dirname(this.target));
    }
  }

  /** Drops the write: the temp file removed, what was at the path left as it was. */
  abort(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    if (this.tmp) {
      rmSync(this.tmp, { force: true });
      doneWithTempPath(this.tmp);
    }
  }
}

/** Writes `chunks` to `path` atomically (AtomicFile). */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const file = new AtomicFile(path);
  for (const chunk of chunks) file.write(chunk);
  file.commit();
}

function fsyncDirectory(dir: string): void {
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename itself has already happened.
  }
}

/** Where `path` is a symbolic link to nothing, what it points to; else null. */
export function danglingLink(path: string): string | null {
  try {
    return lstatSync(path).isSymbolicLink() && !existsSync(path) ? readlinkSync(path) : null;
  } catch {
    return null;
  }
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdirSync loops for ever, blocking signals too,
 * where a file system answers ENOENT for a directory it will not make (procfs does, even to root).
 * A level that is a link to nothing is named. Returns the topmost directory made, if any.
 */
export function makeDirectory(dir: string): string | undefined {
  const missing: string[] = [];
  for (let at = resolve(dir); !existsSync(at); at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  missing.reverse();
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      let detail = err.message;
      if (err.code === 'EEXIST') {
        const link = danglingLink(d);
        if (link === null) continue; // made meanwhile by another process
        detail = `a symbolic link to ${link}, which does not exist`;
      }
      throw Object.assign(new Error(`cannot make the directory ${d}: ${detail}`), { code: err.code });
    }
  }
  return missing[0];
}
