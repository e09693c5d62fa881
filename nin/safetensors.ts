// The safetensors checkpoint format (https://github.com/huggingface/safetensors):
//   8 bytes   N, unsigned little-endian 64-bit: length of the header
//   N bytes   JSON: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
//                     "__metadata__": { "<key>": "<string>", ... } }   (padded with spaces)
//   rest      the tensor bytes, little-endian, offsets relative to the start of this section.
// Supported dtypes: F32, F64, I32, U8. Files are written atomically (temp file, fsync, rename) so a
// crash mid-save never leaves a torn checkpoint; reading validates every offset and size.
// Every file written here carries the SHA-256 of its data section in its metadata
// (TENSOR_DATA_CHECKSUM), which reading checks when present: a flipped bit in a weight is finite and
// fits every offset, so nothing else would notice it. Files without the key (other programs', or
// ours from before it) are read as before.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { writeFileAtomic } from './data/io.ts';

export type SafetensorsDType = 'F32' | 'F64' | 'I32' | 'U8';
export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface TensorEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data: TensorData;
}

export type TensorMap = Record<string, TensorEntry>;

export interface SafetensorsContents {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

/** A safetensors file (or buffer) that is truncated or malformed; the message names the source. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    readonly source: string,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

const DTYPES: Record<SafetensorsDType, { bytes: number; ctor: new (n: number) => TensorData }> = {
  F32: { bytes: 4, ctor: Float32Array },
  F64: { bytes: 8, ctor: Float64Array },
  I32: { bytes: 4, ctor: Int32Array },
  U8: { bytes: 1, ctor: Uint8Array },
};

/** The `__metadata__` key holding the SHA-256 (lowercase hex) of the data section: every tensor's
 * bytes, in file order, i.e. all the bytes after the header. Written by encodeSafetensors (which
 * computes it afresh, replacing any value passed in), checked by decodeSafetensors. */
export const TENSOR_DATA_CHECKSUM = 'tensor_data_sha256';

/** The upstream implementation refuses headers over 100 MB; so do we (a corrupt length would otherwise allocate GBs). */
const MAX_HEADER_BYTES = 100_000_000;

if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported (tensor bytes are stored little-endian)');

/** The dtype matching a typed array. */
export function dtypeOf(data: TensorData): SafetensorsDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint8Array) return 'U8';
  throw new TypeError('safetensors: unsupported array type');
}

function checkEntry(name: string, t: TensorEntry): void {
  const spec = DTYPES[t.dtype];
  if (!spec) throw new TypeError(`safetensors: tensor "${name}" has unsupported dtype ${String(t.dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
  if (dtypeOf(t.data) !== t.dtype) throw new TypeError(`safetensors: tensor "${name}" says dtype ${t.dtype} but its data is a ${t.data.constructor.name}`);
  for (const d of t.shape) if (!Number.isInteger(d) || d < 0) throw new TypeError(`safetensors: tensor "${name}" has a bad shape [${t.shape.join(', ')}]`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length) throw new TypeError(`safetensors: tensor "${name}" has shape [${t.shape.join(', ')}] (${n} elements) but ${t.data.length} values`);
}

/** Serialises tensors and string metadata to safetensors bytes (header, then data; returned as parts
 * to avoid a copy). The metadata gets the data's checksum (TENSOR_DATA_CHECKSUM) added. */
export function encodeSafetensors(tensors: TensorMap, metadata: Record<string, string> = {}): Uint8Array[] {
  const names = Object.keys(tensors);
  if (names.includes('__metadata__')) throw new TypeError('safetensors: "__metadata__" is reserved and cannot name a tensor');
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
  }
  for (const name of names) checkEntry(name, tensors[name]);
  // Widest elements first, so every tensor starts aligned to its element size (header is padded to 8).
  const order = [...names].sort((a, b) => DTYPES[tensors[b].dtype].bytes - DTYPES[tensors[a].dtype].bytes || (a < b ? -1 : a > b ? 1 : 0));
  const parts = order.map((n) => new Uint8Array(tensors[n].data.buffer, tensors[n].data.byteOffset, tensors[n].data.byteLength));
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part); // the arrays' own bytes: no copy
  const header: Record<string, unknown> = { __metadata__: { ...metadata, [TENSOR_DATA_CHECKSUM]: hash.digest('hex') } };
  let offset = 0;
  for (const name of order) {
    const t = tensors[name];
    const bytes = t.data.byteLength;
    setOwn(header, name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] });
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  return [prefix, headerBytes, ...parts];
}

/** obj[key] = value as an own property, also for key "__proto__" (an assignment would set the
 * object's prototype: a tensor or metadata entry of that name would vanish). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Parses safetensors bytes, validating the header against the buffer. Tensor data is copied out (aligned). */
function parseHeader(json: Buffer, source: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json); // not U+FFFD in a tensor's name
  } catch {
    throw new SafetensorsError(source, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError(source, 'header is not a JSON object');
  if (text[0] !== '{') throw new SafetensorsError(source, `header starts with ${JSON.stringify(text[0])}, the format requires "{"`);
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw new SafetensorsError(source, `header has the key ${duplicate} twice in one object (the format disallows it; readers differ on which one wins)`);
  return header as Record<string, unknown>;
}

/** The first key that appears twice in one object of `json` (already known to be valid JSON), as
 * its path (`["w"]["dtype"]`), or undefined. JSON.parse keeps the last silently, so two entries
 * for one tensor, or a dtype given twice, would read as whichever came last (--config files too). */
export function firstDuplicateKey(json: string): string | undefined {
  const open: { keys: Set<string> | null; path: string }[] = []; // enclosing objects (arrays: keys null)
  let keyPath = ''; // the path of the value that follows the last key read
  let expectKey = false;
  for (let at = 0; at < json.length; at++) {
    const c = json[at];
    if (c === '{' || c === '[') {
      const parent = open[open.length - 1];
      const path = parent === undefined ? '' : parent.keys ? keyPath : `${parent.path}[…]`;
      open.push({ keys: c === '{' ? new Set() : null, path });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      open.pop();
      expectKey = false;
    } else if (c === ',') {
      expectKey = open[open.length - 1].keys !== null;
    } else if (c === '"') {
      let end = at + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const object = open[open.length - 1];
      if (expectKey && object.keys) {
        const key: string = JSON.parse(json.slice(at, end + 1)); // "\u0061" and "a" are one key
        keyPath = `${object.path}[${JSON.stringify(key)}]`;
        if (object.keys.has(key)) return keyPath;
        object.keys.add(key);
        expectKey = false;
      }
      at = end;
    }
  }
  return undefined;
}

function metadataOf(header: Record<string, unknown>, source: string): Record<string, string> {
  const raw = header.__metadata__ ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(source, '__metadata__ is not an object');
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new SafetensorsError(source, `__metadata__["${k}"] is ${typeof v}, expected a string`);
    setOwn(metadata, k, v);
  }
  return metadata;
}

export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContents {
  if (bytes.length < 8) throw new SafetensorsError(source, `truncated: ${bytes.length} bytes, the header length alone needs 8`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) {
    throw new SafetensorsError(source, `header length ${headerLen} runs past the end of the file (${bytes.length} bytes, so at most ${bytes.length - 8}): truncated or not a safetensors file`);
  }
  const n = Number(headerLen);
  if (n > MAX_HEADER_BYTES) throw new SafetensorsError(source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file`);
  const header = parseHeader(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n), source);
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata = metadataOf(header, source);
  const spans: { name: string; begin: number; end: number }[] = [];
  const tensors: TensorMap = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw new SafetensorsError(source, `tensor "${name}": entry is not an object`);
    // (a key left out: "has no shape", not "bad shape undefined")
    for (const key of ['dtype', 'shape', 'data_offsets'] as const) if (info[key] === undefined) throw new SafetensorsError(source, `tensor "${name}": has no ${key}`);
    const dtype = info.dtype as SafetensorsDType;
    const spec = Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : undefined; // not 'toString' and kin
    if (typeof info.dtype !== 'string' || !spec) throw new SafetensorsError(source, `tensor "${name}": unsupported dtype ${JSON.stringify(info.dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(source, `tensor "${name}": bad shape ${JSON.stringify(shape)}`);
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(source, `tensor "${name}": bad data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw new SafetensorsError(source, `tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    // (as readSafetensorsMetadata's whole-file check says it: one message for a file cut short, whoever reads it)
    if (end > dataLen) throw new SafetensorsError(source, `truncated: its header places ${placedBytes(header)} bytes of tensor data, the file holds ${dataLen}`);
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * spec.bytes) {
      throw new SafetensorsError(source, `tensor "${name}": ${dtype} [${shape.join(', ')}] needs ${count * spec.bytes} bytes, data_offsets span ${end - begin}`);
    }
    const data = new spec.ctor(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    setOwn(tensors, name, { dtype, shape: shape as number[], data });
    spans.push({ name, begin, end });
  }
  // The spec requires the tensors to tile the data section exactly: no overlaps, no holes.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of spans) {
    if (s.begin < at) throw new SafetensorsError(source, `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] overlap the previous tensor (which ends at ${at})`);
    if (s.begin > at) throw new SafetensorsError(source, `bytes ${at}..${s.begin} of the data section belong to no tensor (hole before "${s.name}")`);
    at = s.end;
  }
  if (at !== dataLen) throw new SafetensorsError(source, `data section is ${dataLen} bytes but the tensors cover ${at}: ${dataLen - at} trailing bytes`);
  const written = metadata[TENSOR_DATA_CHECKSUM];
  if (written !== undefined) {
    const found = createHash('sha256').update(bytes.subarray(dataStart)).digest('hex'); // a view: no copy
    if (found !== written) {
      throw new SafetensorsError(source, `its tensor data does not match the checksum written with it (${TENSOR_DATA_CHECKSUM} ${written}, the data's is ${found}): the file was damaged or edited after it was written`);
    }
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (temp file in the same directory, fsync, rename). */
export function writeSafetensors(path: string, tensors: TensorMap, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** The end of the data section as a header's entries place it (decodeSafetensors checks each in full). */
function placedBytes(header: Record<string, unknown>): number {
  let placed = 0;
  for (const [name, entry] of Object.entries(header)) {
    const end = name === '__metadata__' ? undefined : (entry as { data_offsets?: unknown[] } | null)?.data_offsets?.[1];
    if (typeof end === 'number' && Number.isSafeInteger(end)) placed = Math.max(placed, end);
  }
  return placed;
}

/** The `__metadata__` of a safetensors file, reading only its header (not the tensors, so their
 * checksum is not checked: for what a header says, not for weights). With `whole`, the file's size
 * must also be the data section its header places: a checkpoint cut off by a full disk or a
 * partial copy, or appended to, is found before a resume or --weights-from starts any work, not
 * when it loads. (Without it, such a file's header still reads: a run directory's file names and
 * `nin compare` go by headers.) */
export function readSafetensorsMetadata(path: string, opts: { whole?: boolean } = {}): Record<string, string> {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    const got = readSync(fd, len, 0, 8, 0);
    if (got < 8) throw new SafetensorsError(path, `truncated: ${got} bytes, the header length alone needs 8`);
    const n = len.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file`);
    const header = Buffer.alloc(Number(n));
    if (readSync(fd, header, 0, header.length, 8) < header.length) throw new SafetensorsError(path, `header length ${n} runs past the end of the file: truncated or not a safetensors file`);
    const parsed = parseHeader(header, path);
    if (opts.whole) {
      const placed = placedBytes(parsed);
      const held = fstatSync(fd).size - 8 - header.length;
      if (held < placed) throw new SafetensorsError(path, `truncated: its header places ${placed} bytes of tensor data, the file holds ${held}`);
      if (held > placed) throw new SafetensorsError(path, `data section is ${held} bytes but the tensors cover ${placed}: ${held - placed} trailing bytes`);
    }
    return metadataOf(parsed, path);
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates a safetensors file. */
export function readSafetensors(path: string): SafetensorsContents {
  return decodeSafetensors(readFileSync(path), path);
}
