// A small streaming tar reader (POSIX ustar, with GNU long names and pax path records), used to pull
// the few members we need out of the official CIFAR .tar.gz archives without unpacking the rest or
// adding a dependency. Feed it the gunzipped byte stream chunk by chunk.
import { DataFormatError } from './io.ts';

const BLOCK = 512;

export interface TarMember {
  /** Full path inside the archive, e.g. "cifar-10-batches-bin/test_batch.bin". */
  name: string;
  size: number;
  /** '0' regular file, '5' directory, … (POSIX typeflag). */
  type: string;
}

/**
 * Reads a tar stream and returns the contents of the regular-file members for which `want(member)`
 * is true. Members not wanted are skipped without being buffered.
 */
export async function readTarMembers(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  want: (member: TarMember) => boolean,
  source: string,
): Promise<Map<string, Buffer>> {
  const parser = new TarParser(want, source);
  for await (const chunk of chunks) parser.push(chunk);
  return parser.finish();
}

class TarParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The entry whose data is being consumed, or null while waiting for a header. */
  private current: { member: TarMember; keep: boolean; parts: Buffer[]; remaining: number; padding: number } | null = null;
  private longName: string | null = null;
  private ended = false;
  private offset = 0;
  readonly found = new Map<string, Buffer>();

  constructor(
    private readonly want: (m: TarMember) => boolean,
    private readonly source: string,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.byteLength;
    this.drain();
    // What is left (part of a header or padding, under a block) is copied: the source may reuse the
    // chunk's buffer for the next one (a header across two chunks then read the second's bytes twice).
    if (this.pendingBytes) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
  }

  finish(): Map<string, Buffer> {
    if (!this.ended && (this.current || this.pendingBytes > 0)) {
      const what = this.current ? `member "${this.current.member.name}" needs ${this.current.remaining} more bytes` : `${this.pendingBytes} bytes of an incomplete header`;
      throw new DataFormatError(this.source, `truncated tar archive: stream ended at offset ${this.offset + this.pendingBytes}, ${what}`);
    }
    return this.found;
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    this.offset += n;
    return out;
  }

  private drain(): void {
    for (;;) {
      if (this.ended) return;
      const cur = this.current;
      if (cur) {
        if (cur.remaining > 0) {
          if (this.pendingBytes === 0) return;
          const n = Math.min(cur.remaining, this.pendingBytes);
          const part = this.take(n);
          if (cur.keep) cur.parts.push(Buffer.from(part)); // copy: `part` may alias a reused chunk
          cur.remaining -= n;
          continue;
        }
        if (cur.padding > 0) {
          if (this.pendingBytes < cur.padding) return;
          this.take(cur.padding);
          cur.padding = 0;
        }
        this.completeEntry(cur.member, cur.keep ? Buffer.concat(cur.parts) : null);
        this.current = null;
        continue;
      }
      if (this.pendingBytes < BLOCK) return;
      const headerOffset = this.offset;
      const header = this.take(BLOCK);
      if (header.every((b) => b === 0)) {
        // End-of-archive marker (two zero blocks); anything after is padding.
        this.ended = true;
        return;
      }
      this.startEntry(header, headerOffset);
    }
  }

  private startEntry(h: Buffer, at: number): void {
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    const stored = parseOctal(h.subarray(148, 156));
    if (stored !== sum) {
      const field = Number.isNaN(stored) ? `a checksum field that is not an octal number (${JSON.stringify(Buffer.from(h.subarray(148, 156)).toString('latin1'))})` : `checksum ${stored}`;
      throw new DataFormatError(this.source, `not a tar archive or corrupt: header at offset ${at} has ${field}, computed ${sum}`);
    }
    const type = String.fromCharCode(h[156] || 0x30);
    let name = cString(h.subarray(0, 100));
    // POSIX ustar ("ustar\0") only: GNU's old header ("ustar  ") keeps atime and ctime there.
    if (h.subarray(257, 263).toString('latin1') === 'ustar\0') {
      const prefix = cString(h.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    if (this.longName !== null) {
      name = this.longName;
      this.longName = null;
    }
    const size = parseSize(h.subarray(124, 136));
    if (!Number.isSafeInteger(size)) {
      throw new DataFormatError(this.source, `corrupt tar header at offset ${at}: size field ${JSON.stringify(h.subarray(124, 136).toString('latin1'))} is not an octal number`);
    }
    const member: TarMember = { name, size, type };
    // GNU long-name ('L') and pax ('x') records carry the next entry's path; keep them to parse.
    const isMeta = type === 'L' || type === 'x';
    const keep = isMeta || ((type === '0' || type === '7') && this.want(member));
    this.current = { member, keep, parts: [], remaining: size, padding: (BLOCK - (size % BLOCK)) % BLOCK };
  }

  private completeEntry(member: TarMember, data: Buffer | null): void {
    if (member.type === 'L' && data) {
      this.longName = cString(data);
    } else if (member.type === 'x' && data) {
      const path = parsePaxPath(data);
      if (path !== null) this.longName = path;
    } else if (data) {
      this.found.set(member.name, data);
    }
  }
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(end < 0 ? b : b.subarray(0, end)).toString('utf8');
}

/** An octal field (NUL- or space-terminated); NaN when it holds anything else. */
function parseOctal(b: Uint8Array): number {
  const s = Buffer.from(b).toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : NaN;
}

/** Size field: octal, or GNU base-256 (high bit set) for members ≥ 8 GiB. */
function parseSize(b: Uint8Array): number {
  if (b[0] & 0x80) {
    let v = b[0] & 0x7f;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i];
    return v;
  }
  return parseOctal(b);
}

/** pax extended header records: "<len> <key>=<value>\n". */
function parsePaxPath(data: Buffer): string | null {
  let off = 0;
  let path: string | null = null;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space < 0) break;
    const len = parseInt(data.subarray(off, space).toString('latin1'), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, off + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    off += len;
  }
  return path;
}
