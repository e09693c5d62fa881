// safetensors read/write: round trip of every supported dtype, byte layout per the spec, atomic
// writes, and named errors for truncated or malformed files.
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsError, TENSOR_DATA_CHECKSUM, decodeSafetensors, encodeSafetensors, firstDuplicateKey, readSafetensors, readSafetensorsMetadata, writeSafetensors, type TensorMap } from '../nin/safetensors.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-safetensors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sample(): TensorMap {
  const big = new Float32Array(1000).map((_, i) => Math.sin(i) * 1e3);
  return {
    'conv1.weight': { dtype: 'F32', shape: [10, 10, 10], data: big },
    'zca.whitening': { dtype: 'F64', shape: [2, 2], data: Float64Array.of(1.5, -2e-300, Math.PI, 1e300) },
    'step': { dtype: 'I32', shape: [], data: Int32Array.of(-123456) },
    'mask': { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 128, 255) },
    'empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    // A view into a larger buffer at an odd offset: only the viewed bytes must be written.
    'view': { dtype: 'F32', shape: [2], data: new Float32Array(new Float32Array([9, 1, 2, 9]).buffer, 4, 2) },
  };
}

/** A file made of a custom header and data section, for malformed-file tests. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLenOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('safetensors round trip', () => {
  it('writes and reads back every dtype, shape and the metadata exactly', () => {
    const path = join(tmp, 'model.safetensors');
    const tensors = sample();
    writeSafetensors(path, tensors, { format: 'pt', epoch: '12', note: 'ünïcödé' });
    const back = readSafetensors(path);
    expect(back.metadata).toEqual({ format: 'pt', epoch: '12', note: 'ünïcödé', [TENSOR_DATA_CHECKSUM]: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect(back.tensors[name].dtype, name).toBe(t.dtype);
      expect(back.tensors[name].shape, name).toEqual(t.shape);
      expect(back.tensors[name].data, name).toEqual(t.data);
      expect(back.tensors[name].data.constructor, name).toBe(t.data.constructor);
    }
    expect(Array.from(back.tensors.view.data)).toEqual([1, 2]);
    expect(readdirSync(tmp)).toEqual(['model.safetensors']); // no temp file left behind
  });

  it('byte layout follows the spec: u64 LE header length, JSON header padded to 8, aligned tensors tiling the data', () => {
    const bytes = Buffer.concat(encodeSafetensors(sample(), { a: 'b' }));
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header.__metadata__).toEqual({ a: 'b', [TENSOR_DATA_CHECKSUM]: createHash('sha256').update(bytes.subarray(8 + n)).digest('hex') });
    expect(header['zca.whitening']).toEqual({ dtype: 'F64', shape: [2, 2], data_offsets: [0, 32] });
    const spans = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([, v]) => (v as { data_offsets: [number, number] }).data_offsets)
      .sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [b, e] of spans) {
      expect(b).toBe(at);
      at = e;
    }
    expect(at).toBe(bytes.length - 8 - n);
    // Little-endian data: the I32 scalar reads back directly.
    const step = header.step.data_offsets[0];
    expect(bytes.readInt32LE(8 + n + step)).toBe(-123456);
  });

  it('the bytes written do not depend on the order of the tensor map\'s keys (tensors of one width go by name)', () => {
    const a = { dtype: 'U8' as const, shape: [1], data: Uint8Array.of(1) };
    const b = { dtype: 'U8' as const, shape: [1], data: Uint8Array.of(2) };
    const ab = Buffer.concat(encodeSafetensors({ a, b }));
    expect(Buffer.concat(encodeSafetensors({ b, a }))).toEqual(ab);
    expect(Array.from(ab.subarray(-2))).toEqual([1, 2]);
  });

  it('overwriting replaces the file atomically', () => {
    const path = join(tmp, 'ckpt.safetensors');
    writeSafetensors(path, { x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
    // A second name for the old file's inode: a write in place would truncate and rewrite it, a
    // new file renamed over the path leaves it whole.
    const old = join(tmp, 'ckpt-old.safetensors');
    linkSync(path, old);
    writeSafetensors(path, { y: { dtype: 'U8', shape: [2], data: Uint8Array.of(4, 5) } });
    expect(Object.keys(readSafetensors(path).tensors)).toEqual(['y']);
    expect(Object.keys(readSafetensors(old).tensors)).toEqual(['x']);
  });

  it('refuses to write inconsistent tensors', () => {
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(/shape \[3\] \(3 elements\) but 2 values/);
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array(3) } })).toThrow(new TypeError('safetensors: tensor "a" has shape [2] (2 elements) but 3 values'));
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [1.5, 2], data: new Float32Array(3) } })).toThrow(new TypeError('safetensors: tensor "a" has a bad shape [1.5, 2]'));
    expect(() => encodeSafetensors({ a: { dtype: 'F64', shape: [2], data: new Float32Array(2) } })).toThrow(/says dtype F64 but its data is a Float32Array/);
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(/reserved/);
    expect(() => encodeSafetensors({ a: { dtype: 'BF16' as never, shape: [1], data: new Float32Array(1) } })).toThrow(new TypeError('safetensors: tensor "a" has unsupported dtype BF16 (supported: F32, F64, I32, U8)'));
    expect(() => encodeSafetensors({}, { epoch: 3 as never })).toThrow(new TypeError('safetensors: metadata "epoch" must be a string, got number'));
  });
});

/** The header and data section of safetensors bytes. */
function split(bytes: Buffer): { header: Record<string, Record<string, unknown>>; dataStart: number } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), dataStart: 8 + n };
}

describe('the tensor data checksum', () => {
  const write = (name: string, bytes: Uint8Array): string => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  /** `bytes` with the checksum key taken out of the header: a file from before checksums. */
  const withoutChecksum = (bytes: Buffer): Buffer => {
    const { header, dataStart } = split(bytes);
    delete header.__metadata__[TENSOR_DATA_CHECKSUM];
    return rawFile(header, bytes.subarray(dataStart));
  };

  it('every file written carries the SHA-256 of its data section; a value passed in is replaced, so a file rewritten with the metadata read from it is consistent', () => {
    const bytes = Buffer.concat(encodeSafetensors(sample(), { note: 'x', [TENSOR_DATA_CHECKSUM]: 'f'.repeat(64) }));
    const { header, dataStart } = split(bytes);
    expect(header.__metadata__).toEqual({ note: 'x', [TENSOR_DATA_CHECKSUM]: createHash('sha256').update(bytes.subarray(dataStart)).digest('hex') });
    const p = write('rewritten.safetensors', bytes);
    const { tensors, metadata } = readSafetensors(p);
    (tensors['conv1.weight'].data as Float32Array)[7] += 1;
    writeSafetensors(p, tensors, metadata);
    expect(readSafetensors(p).tensors['conv1.weight'].data[7]).toBe(tensors['conv1.weight'].data[7]);
    // No tensors: the checksum of no bytes.
    expect(decodeSafetensors(Buffer.concat(encodeSafetensors({}))).metadata).toEqual({ [TENSOR_DATA_CHECKSUM]: createHash('sha256').digest('hex') });
  });

  it('one flipped bit in a tensor\'s data (a finite, wrong value) is refused on read, naming the file', () => {
    const good = Buffer.concat(encodeSafetensors(sample(), { format: 'pt' }));
    const { header, dataStart } = split(good);
    const at = dataStart + (header['conv1.weight'].data_offsets as number[])[0] + 4 * 10; // element 10's lowest byte
    const flipped = Buffer.from(good);
    flipped[at] ^= 1;
    const p = write('flipped.safetensors', flipped);
    const message = `${p}: its tensor data does not match the checksum written with it (${TENSOR_DATA_CHECKSUM} ${split(good).header.__metadata__[TENSOR_DATA_CHECKSUM]}, the data's is ${createHash('sha256').update(flipped.subarray(dataStart)).digest('hex')}): the file was damaged or edited after it was written`;
    expect(() => readSafetensors(p)).toThrow(SafetensorsError);
    expect(() => readSafetensors(p)).toThrow(message);
    // Without the checksum the change would pass: the value is finite, one unit in the last place off.
    const { tensors } = decodeSafetensors(withoutChecksum(flipped));
    const was = sample()['conv1.weight'].data[10];
    expect(Number.isFinite(tensors['conv1.weight'].data[10])).toBe(true);
    expect(tensors['conv1.weight'].data[10]).not.toBe(was);
    expect(Math.abs(tensors['conv1.weight'].data[10] - was)).toBeLessThan(1e-3);
    // The header alone is still readable (what a run directory's header readers need).
    expect(readSafetensorsMetadata(p).format).toBe('pt');
  });

  it("the header reader, asked for the whole file, refuses one shorter or longer than the data its header places", () => {
    const good = Buffer.concat(encodeSafetensors(sample(), { format: 'pt' }));
    const dataStart = 8 + Number(good.readBigUInt64LE(0));
    const dataBytes = good.length - dataStart;
    const cut = write('cut.safetensors', good.subarray(0, good.length - 1));
    expect(() => readSafetensorsMetadata(cut, { whole: true })).toThrow(new SafetensorsError(cut, `truncated: its header places ${dataBytes} bytes of tensor data, the file holds ${dataBytes - 1}`));
    const headerOnly = write('header-only.safetensors', good.subarray(0, dataStart));
    expect(() => readSafetensorsMetadata(headerOnly, { whole: true })).toThrow(`truncated: its header places ${dataBytes} bytes of tensor data, the file holds 0`);
    const longer = write('longer.safetensors', Buffer.concat([good, Buffer.from([0, 0])]));
    expect(() => readSafetensorsMetadata(longer, { whole: true })).toThrow(new SafetensorsError(longer, `data section is ${dataBytes + 2} bytes but the tensors cover ${dataBytes}: 2 trailing bytes`));
    expect(() => readSafetensors(longer)).toThrow(`data section is ${dataBytes + 2} bytes but the tensors cover ${dataBytes}: 2 trailing bytes`); // as the full read says
    expect(readSafetensorsMetadata(write('whole.safetensors', good), { whole: true }).format).toBe('pt');
    // Without it, the header reads (a run directory's names and compare go by headers).
    expect(readSafetensorsMetadata(cut).format).toBe('pt');
    // The data section's end is the furthest any entry places, in whatever order the header lists them.
    const header = JSON.stringify({ b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
    const padded = header.padEnd(Math.ceil(header.length / 8) * 8);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(padded.length));
    const unordered = (data: number) => write(`unordered-${data}.safetensors`, Buffer.concat([length, Buffer.from(padded), Buffer.alloc(data)]));
    expect(() => readSafetensorsMetadata(unordered(8), { whole: true })).toThrow('truncated: its header places 12 bytes of tensor data, the file holds 8');
    expect(readSafetensorsMetadata(unordered(12), { whole: true })).toEqual({});
  });

  it.skipIf(!existsSync('/proc/self/fd'))('the header reader closes the file, read or refused', () => {
    const good = write('fd-good.safetensors', Buffer.concat(encodeSafetensors(sample(), { format: 'pt' })));
    const bad = write('fd-bad.safetensors', Buffer.from('not a safetensors file'));
    const open = () => readdirSync('/proc/self/fd').length;
    const before = open();
    for (let i = 0; i < 20; i++) {
      readSafetensorsMetadata(good, { whole: true });
      expect(() => readSafetensorsMetadata(bad)).toThrow(SafetensorsError);
    }
    expect(open()).toBeLessThan(before + 20);
  });

  it('a file without the key (written before checksums, or by another program) is read as before', () => {
    const old = withoutChecksum(Buffer.concat(encodeSafetensors(sample(), { format: 'pt' })));
    const { tensors, metadata } = decodeSafetensors(old, 'old.st');
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors['conv1.weight'].data).toEqual(sample()['conv1.weight'].data);
  });
});

describe('safetensors validation on read', () => {
  const good = Buffer.concat(encodeSafetensors(sample()));
  const path = (name: string, bytes: Uint8Array): string => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };

  it('file shorter than the length prefix', () => {
    const p = path('tiny.safetensors', good.subarray(0, 5));
    expect(() => readSafetensors(p)).toThrow(SafetensorsError);
    expect(() => readSafetensors(p)).toThrow(`${p}: truncated: 5 bytes, the header length alone needs 8`);
  });

  it('header length beyond the end of the file (truncated or foreign file)', () => {
    const n = Number(good.readBigUInt64LE(0));
    const p = path('cut-header.safetensors', good.subarray(0, 8 + n - 10));
    expect(() => readSafetensors(p)).toThrow(`${p}: header length ${n} runs past the end of the file (${n - 2} bytes, so at most ${n - 10}): truncated or not a safetensors file`);
    const png = path('image.png', Buffer.from('\x89PNG\r\n\x1a\n0000000000000000', 'latin1'));
    expect(() => readSafetensors(png)).toThrow(/header length \d+ runs past the end of the file/);
    // Cut within the header's last 8 bytes (as long as the header, counting the length prefix).
    for (const short of [1, 8]) {
      const q = path(`cut-header-${short}.safetensors`, good.subarray(0, 8 + n - short));
      expect(() => readSafetensors(q)).toThrow(new SafetensorsError(q, `header length ${n} runs past the end of the file (${n + 8 - short} bytes, so at most ${n - short}): truncated or not a safetensors file`));
    }
    // A length no header has is refused by the header reader before it allocates it.
    const huge = Buffer.alloc(64);
    huge.writeBigUInt64LE(2n ** 40n);
    const h = path('huge-header.safetensors', huge);
    expect(() => readSafetensorsMetadata(h)).toThrow(new SafetensorsError(h, 'header length 1099511627776 exceeds the 100000000-byte limit: not a safetensors file'));
    // The full read too, for a buffer that holds that much.
    const over = Buffer.alloc(8 + 100_000_001);
    over.writeBigUInt64LE(100_000_001n);
    expect(() => decodeSafetensors(over, 'over.st')).toThrow(new SafetensorsError('over.st', 'header length 100000001 exceeds the 100000000-byte limit: not a safetensors file'));
    // The header reader names a file cut within its length or its header as the full read does.
    expect(() => readSafetensorsMetadata(path('tiny-header.safetensors', good.subarray(0, 5)))).toThrow('truncated: 5 bytes, the header length alone needs 8');
    const cut = path('cut-header-only.safetensors', good.subarray(0, 8 + n - 10));
    expect(() => readSafetensorsMetadata(cut)).toThrow(new SafetensorsError(cut, `header length ${n} runs past the end of the file: truncated or not a safetensors file`));
  });

  it('truncated data section → the bytes its header places and the bytes the file holds, as the header-only whole-file check says', () => {
    const p = path('cut-data.safetensors', good.subarray(0, good.length - 3));
    const placed = good.length - 8 - Number(good.readBigUInt64LE(0));
    const message = `truncated: its header places ${placed} bytes of tensor data, the file holds ${placed - 3}`;
    expect(() => readSafetensors(p)).toThrow(new SafetensorsError(p, message));
    expect(() => readSafetensorsMetadata(p, { whole: true })).toThrow(new SafetensorsError(p, message));
  });

  it('overlapping tensors, holes and trailing bytes', () => {
    const data = new Uint8Array(16);
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, data.subarray(0, 12)), 'overlap.st')).toThrow(
      'overlap.st: tensor "b": data_offsets [4, 12] overlap the previous tensor (which ends at 8)',
    );
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } }, data.subarray(0, 8)), 'hole.st')).toThrow('hole.st: bytes 0..4 of the data section belong to no tensor (hole before "a")');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, data.subarray(0, 6)), 'tail.st')).toThrow('tail.st: data section is 6 bytes but the tensors cover 4: 2 trailing bytes');
    // An empty tensor may begin where another begins, listed before it or after.
    const sameStart = decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, e: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } }, data.subarray(0, 4)), 'empty.st');
    expect(Object.keys(sameStart.tensors)).toEqual(['w', 'e']);
    expect(sameStart.tensors.e).toEqual({ dtype: 'F32', shape: [0], data: new Float32Array(0) });
  });

  it('malformed headers: bad JSON, unsupported dtype, size mismatch, bad offsets, non-string metadata', () => {
    const d8 = new Uint8Array(8);
    expect(() => decodeSafetensors(rawFile('{"a": ', d8), 'json.st')).toThrow(/json\.st: header is not valid JSON/);
    expect(() => decodeSafetensors(rawFile('[1,2]'), 'arr.st')).toThrow('arr.st: header is not a JSON object');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'BF16', shape: [4], data_offsets: [0, 8] } }, d8), 'bf16.st')).toThrow('bf16.st: tensor "a": unsupported dtype "BF16" (supported: F32, F64, I32, U8)');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8), 'size.st')).toThrow('size.st: tensor "a": F32 [3] needs 12 bytes, data_offsets span 8');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 8] } }, d8), 'wide.st')).toThrow(new SafetensorsError('wide.st', 'tensor "a": F32 [1] needs 4 bytes, data_offsets span 8'));
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, d8), 'rev.st')).toThrow('rev.st: tensor "a": data_offsets [8, 0] end before they begin');
    // A key left out is named as missing (it read "bad shape undefined").
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', data_offsets: [0, 8] } }, d8), 'noshape.st')).toThrow('noshape.st: tensor "a": has no shape');
    expect(() => decodeSafetensors(rawFile({ a: { shape: [2], data_offsets: [0, 8] } }, d8), 'nodtype.st')).toThrow('nodtype.st: tensor "a": has no dtype');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [2] } }, d8), 'nooffsets.st')).toThrow('nooffsets.st: tensor "a": has no data_offsets');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, d8), 'offs.st')).toThrow('offs.st: tensor "a": bad data_offsets [0]');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d8), 'shape.st')).toThrow('shape.st: tensor "a": bad shape [-2]');
    // Two negative dimensions multiply to a positive count.
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'F32', shape: [-1, -1], data_offsets: [0, 4] } }, d8.subarray(0, 4)), 'neg.st')).toThrow(new SafetensorsError('neg.st', 'tensor "a": bad shape [-1,-1]'));
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4, 8] } }, d8.subarray(0, 4)), 'offs3.st')).toThrow(new SafetensorsError('offs3.st', 'tensor "a": bad data_offsets [0,4,8]'));
    expect(() => decodeSafetensors(rawFile({ __metadata__: ['x'] }), 'meta-array.st')).toThrow(new SafetensorsError('meta-array.st', '__metadata__ is not an object'));
    expect(() => decodeSafetensors(rawFile({ __metadata__: '' }), 'meta-empty.st')).toThrow(new SafetensorsError('meta-empty.st', '__metadata__ is not an object'));
    expect(() => decodeSafetensors(rawFile({ a: 'F32' }), 'entry.st')).toThrow(new SafetensorsError('entry.st', 'tensor "a": entry is not an object'));
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [-4, 0] } }), 'negoffs.st')).toThrow(new SafetensorsError('negoffs.st', 'tensor "a": bad data_offsets [-4,0]'));
    expect(() => decodeSafetensors(rawFile({ __metadata__: { epoch: 3 } }), 'meta.st')).toThrow('meta.st: __metadata__["epoch"] is number, expected a string');
    expect(() => decodeSafetensors(rawFile({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 8] } }, d8), 'proto.st')).toThrow('proto.st: tensor "a": unsupported dtype "toString" (supported: F32, F64, I32, U8)');
  });

  it('a tensor named "__proto__" is a tensor like any other', () => {
    const bytes = rawFile('{"__proto__": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', new Uint8Array([7, 9]));
    const { tensors } = decodeSafetensors(bytes, 'proto.st');
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Array.from(Object.getOwnPropertyDescriptor(tensors, '__proto__')!.value.data)).toEqual([7, 9]);
    expect(Object.getPrototypeOf(tensors)).toBe(Object.prototype);
    // Written too, and a metadata key of that name kept: the writer's assignment set the header's
    // prototype (the tensor's bytes written with no entry), and the reader's dropped the key.
    const own: TensorMap = {};
    Object.defineProperty(own, '__proto__', { value: { dtype: 'U8', shape: [2], data: new Uint8Array([7, 9]) }, enumerable: true });
    const meta: Record<string, string> = {};
    Object.defineProperty(meta, '__proto__', { value: 'x', enumerable: true });
    const back = decodeSafetensors(Buffer.concat(encodeSafetensors(own, meta)), 'written.st');
    expect(Array.from(Object.getOwnPropertyDescriptor(back.tensors, '__proto__')!.value.data)).toEqual([7, 9]);
    expect(Object.getOwnPropertyDescriptor(back.metadata, '__proto__')?.value).toBe('x');
  });

  it('a key given twice in one object is refused (JSON.parse kept the last: a U8 [4] audit, an F32 [1] load)', () => {
    const four = new Uint8Array([0, 0, 0x80, 0x3f]);
    const twice = '{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}';
    expect(() => decodeSafetensors(rawFile(twice, four), 'dup.st')).toThrow('dup.st: header has the key ["w"] twice in one object');
    const escaped = '{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "\\u0077": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}';
    expect(() => decodeSafetensors(rawFile(escaped, four), 'esc.st')).toThrow('esc.st: header has the key ["w"] twice');
    const inner = '{"w": {"dtype": "U8", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}';
    expect(() => decodeSafetensors(rawFile(inner, four), 'inner.st')).toThrow('inner.st: header has the key ["w"]["dtype"] twice');
    const meta = '{"__metadata__": {"epoch": "1", "epoch": "2"}}';
    expect(() => decodeSafetensors(rawFile(meta), 'meta.st')).toThrow('meta.st: header has the key ["__metadata__"]["epoch"] twice');
    // The same key in different objects, keys that are values elsewhere, quotes and brackets
    // inside strings, and an object beside arrays are all fine.
    const fine = '{"__metadata__": {"dtype": "a\\"}{[", "w": "dtype"}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}';
    const back = decodeSafetensors(rawFile(fine, four), 'fine.st');
    expect(back.metadata).toEqual({ dtype: 'a"}{[', w: 'dtype' });
    expect(Array.from(back.tensors.w.data)).toEqual([1]);
    expect(() => decodeSafetensors(rawFile(' ' + fine, four), 'lead.st')).toThrow('lead.st: header starts with " ", the format requires "{"');
    // Objects in arrays (a --config file's layers) are named by the array's path and […].
    expect(firstDuplicateKey('{"layers": [{"kernel": 1}, {"kernel": 3, "kernel": 5}]}')).toBe('["layers"][…]["kernel"]');
    expect(firstDuplicateKey('{"layers": [{"kernel": 1}, {"kernel": 3}]}')).toBeUndefined();
  });

  it('a header that is not valid UTF-8 is refused (it read as U+FFFD in a tensor\'s name)', () => {
    const json = Buffer.concat([Buffer.from('{"a'), Buffer.from([0xff]), Buffer.from('": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}')]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    expect(() => decodeSafetensors(Buffer.concat([len, json, new Uint8Array([1])]), 'utf.st')).toThrow('utf.st: header is not valid UTF-8');
  });

  it('reads a file written by another implementation (hand-built, unpadded header, unsorted tensors)', () => {
    const data = Buffer.alloc(12);
    data.writeFloatLE(2.5, 0); // b at [0, 4)
    data.writeInt32LE(-7, 4); // a at [4, 8)
    data.writeFloatLE(-1, 8); // c at [8, 12)
    const bytes = rawFile({ a: { dtype: 'I32', shape: [1], data_offsets: [4, 8] }, b: { dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] }, c: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, data);
    const { tensors, metadata } = decodeSafetensors(bytes, 'hf.st');
    expect(metadata).toEqual({});
    expect(Array.from(tensors.a.data)).toEqual([-7]);
    expect(Array.from(tensors.b.data)).toEqual([2.5]);
    expect(tensors.b.shape).toEqual([1, 1]);
    expect(Array.from(tensors.c.data)).toEqual([-1]);
    expect(readFileSync(path('hf.safetensors', bytes))).toEqual(bytes);
  });
});
