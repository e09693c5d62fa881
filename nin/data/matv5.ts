// A minimal reader for MATLAB level-5 MAT-files (the format of SVHN's *_32x32.mat), just enough for
// numeric arrays: uncompressed and zlib-compressed (miCOMPRESSED, MATLAB v7 "-v7" saves) elements,
// either byte order. Cell arrays, structs, sparse and complex arrays are skipped or rejected.
// Reference: MathWorks, "MAT-File Format" (matfile_format.pdf), chapter 1.
import { inflateSync } from 'node:zlib';
import { DataFormatError } from './io.ts';

// Data types of element tags (Table 1-1).
const MI_INT8 = 1;
const MI_UINT8 = 2;
const MI_INT16 = 3;
const MI_UINT16 = 4;
const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_SINGLE = 7;
const MI_DOUBLE = 9;
const MI_INT64 = 12;
const MI_UINT64 = 13;
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;

const ELEMENT_BYTES: Record<number, number> = {
  [MI_INT8]: 1,
  [MI_UINT8]: 1,
  [MI_INT16]: 2,
  [MI_UINT16]: 2,
  [MI_INT32]: 4,
  [MI_UINT32]: 4,
  [MI_SINGLE]: 4,
  [MI_DOUBLE]: 8,
  [MI_INT64]: 8,
  [MI_UINT64]: 8,
};

// Array classes (Table 1-3), for messages and for picking the output array type.
const CLASS_NAMES: Record<number, string> = {
  1: 'cell',
  2: 'struct',
  3: 'object',
  4: 'char',
  5: 'sparse',
  6: 'double',
  7: 'single',
  8: 'int8',
  9: 'uint8',
  10: 'int16',
  11: 'uint16',
  12: 'int32',
  13: 'uint32',
  14: 'int64',
  15: 'uint64',
};
const MX_UINT8_CLASS = 9;
const NUMERIC_CLASSES = new Set([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);

/** A numeric MATLAB array. `data` is in MATLAB's column-major order (first index fastest). */
export interface MatArray {
  name: string;
  /** MATLAB class, e.g. 'uint8', 'double'. */
  className: string;
  dims: number[];
  /** uint8 arrays stay Uint8Array (SVHN's X is 235 MB as bytes); every other class becomes Float64Array. */
  data: Uint8Array | Float64Array;
}

interface Tag {
  type: number;
  size: number;
  dataOffset: number;
  /** Offset of the element after this one. */
  next: number;
}

/**
 * Parses the numeric variables of a MAT v5 file. `wanted` limits decoding to those names (others are
 * still decompressed, since the name sits inside the compressed stream, but not converted).
 */
export function readMatV5(bytes: Uint8Array, source: string, wanted?: ReadonlySet<string>): Map<string, MatArray> {
  if (bytes.length < 128) throw new DataFormatError(source, `too short for a MAT-file: ${bytes.length} bytes, the header alone is 128`);
  const text = Buffer.from(bytes.subarray(0, 116)).toString('latin1');
  if (text.startsWith('MATLAB 7.3')) {
    throw new DataFormatError(source, 'is a MATLAB v7.3 MAT-file (HDF5); only level-5 MAT-files (saved with -v7 or older) are supported');
  }
  const endian = String.fromCharCode(bytes[126], bytes[127]);
  if (!text.startsWith('MATLAB 5.0 MAT-file') || (endian !== 'IM' && endian !== 'MI')) {
    throw new DataFormatError(
      source,
      `not a MATLAB 5.0 MAT-file: expected header text "MATLAB 5.0 MAT-file" and endian mark "IM"/"MI", found ${JSON.stringify(text.slice(0, 19))} and ${JSON.stringify(endian)}`,
    );
  }
  const le = endian === 'IM';
  const out = new Map<string, MatArray>();
  let off = 128;
  while (off < bytes.length) {
    if (bytes.length - off < 8) throw new DataFormatError(source, `truncated: ${bytes.length - off} stray bytes at offset ${off} (an element tag needs 8)`);
    const tag = readTag(bytes, off, le, source, bytes.length);
    let element = bytes;
    let elementTag = tag;
    if (tag.type === MI_COMPRESSED) {
      let inflated: Buffer;
      try {
        inflated = inflateSync(bytes.subarray(tag.dataOffset, tag.dataOffset + tag.size));
      } catch (e) {
        throw new DataFormatError(source, `compressed element at offset ${off} does not inflate (${(e as Error).message})`);
      }
      element = inflated;
      elementTag = readTag(inflated, 0, le, `${source} (compressed element at offset ${off})`, inflated.length);
      // MATLAB does not pad compressed elements to 8 bytes.
      tag.next = tag.dataOffset + tag.size;
    }
    if (elementTag.type === MI_MATRIX) {
      const arr = parseMatrix(element, elementTag, le, source, wanted);
      if (arr) out.set(arr.name, arr);
    }
    off = tag.next;
  }
  return out;
}

function readTag(bytes: Uint8Array, off: number, le: boolean, source: string, end: number): Tag {
  if (off + 8 > end) throw new DataFormatError(source, `truncated: an element tag at offset ${off} needs 8 bytes, only ${Math.max(0, end - off)} remain`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = view.getUint32(off, le);
  if (first >>> 16 !== 0) {
    // Small data element: type and size packed in 4 bytes, up to 4 data bytes follow.
    const size = first >>> 16;
    if (size > 4) throw new DataFormatError(source, `bad small data element at offset ${off}: size ${size} > 4`);
    return { type: first & 0xffff, size, dataOffset: off + 4, next: off + 8 };
  }
  const size = view.getUint32(off + 4, le);
  const dataOffset = off + 8;
  if (dataOffset + size > end) {
    throw new DataFormatError(source, `truncated: element at offset ${off} declares ${size} data bytes, but only ${end - dataOffset} remain`);
  }
  return { type: first, size, dataOffset, next: dataOffset + size + ((8 - (size % 8)) % 8) };
}

function parseMatrix(bytes: Uint8Array, tag: Tag, le: boolean, source: string, wanted?: ReadonlySet<string>): MatArray | null {
  if (tag.size === 0) return null; // an empty array
  const end = tag.dataOffset + tag.size;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sub = (off: number, what: string): Tag => {
    if (off + 8 > end) throw new DataFormatError(source, `truncated array: missing its ${what} subelement`);
    return readTag(bytes, off, le, source, end);
  };
  const flagsTag = sub(tag.dataOffset, 'array flags');
  if (flagsTag.type !== MI_UINT32 || flagsTag.size !== 8) {
    throw new DataFormatError(source, `array flags subelement: expected miUINT32 of 8 bytes, found type ${flagsTag.type} of ${flagsTag.size} bytes`);
  }
  const flags = view.getUint32(flagsTag.dataOffset, le);
  const classId = flags & 0xff;
  const isComplex = (flags & 0x0800) !== 0;
  const dimsTag = sub(flagsTag.next, 'dimensions');
  if (dimsTag.type !== MI_INT32 || dimsTag.size % 4 !== 0) {
    throw new DataFormatError(source, `dimensions subelement: expected miINT32, found type ${dimsTag.type} of ${dimsTag.size} bytes`);
  }
  const dims: number[] = [];
  for (let i = 0; i < dimsTag.size / 4; i++) dims.push(view.getInt32(dimsTag.dataOffset + 4 * i, le));
  const nameTag = sub(dimsTag.next, 'array name');
  const name = Buffer.from(bytes.subarray(nameTag.dataOffset, nameTag.dataOffset + nameTag.size)).toString('latin1');
  if (wanted && !wanted.has(name)) return null;
  const className = CLASS_NAMES[classId] ?? `class#${classId}`;
  if (!NUMERIC_CLASSES.has(classId)) throw new DataFormatError(source, `variable "${name}" is a ${className} array; only numeric arrays are supported`);
  if (isComplex) throw new DataFormatError(source, `variable "${name}" is complex; only real arrays are supported`);
  const count = dims.reduce((a, b) => a * b, 1);
  const realTag = sub(nameTag.next, `real part of "${name}"`);
  const elemBytes = ELEMENT_BYTES[realTag.type];
  if (elemBytes === undefined) throw new DataFormatError(source, `variable "${name}": unsupported storage type ${realTag.type}`);
  if (realTag.size !== count * elemBytes) {
    throw new DataFormatError(
      source,
      `variable "${name}" [${dims.join('×')}]: expected ${count * elemBytes} data bytes (${count} elements × ${elemBytes}), found ${realTag.size}`,
    );
  }
  const raw = bytes.subarray(realTag.dataOffset, realTag.dataOffset + realTag.size);
  // MATLAB stores numbers in the smallest type that holds them (a double label vector is often miUINT8).
  if (classId === MX_UINT8_CLASS && realTag.type === MI_UINT8) return { name, className, dims, data: raw };
  const data = convertToFloat64(raw, realTag.type, le, count);
  if (classId === MX_UINT8_CLASS) {
    // A uint8 array stored in a wider type: its values must still be bytes (Uint8Array.from would wrap them).
    const bad = data.findIndex((v) => !(Number.isInteger(v) && v >= 0 && v <= 255));
    if (bad >= 0) throw new DataFormatError(source, `variable "${name}" is uint8 but element ${bad} holds ${data[bad]} (stored as storage type ${realTag.type})`);
    return { name, className, dims, data: Uint8Array.from(data) };
  }
  return { name, className, dims, data };
}

function convertToFloat64(raw: Uint8Array, type: number, le: boolean, count: number): Float64Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (type) {
      case MI_INT8: out[i] = v.getInt8(i); break;
      case MI_UINT8: out[i] = v.getUint8(i); break;
      case MI_INT16: out[i] = v.getInt16(2 * i, le); break;
      case MI_UINT16: out[i] = v.getUint16(2 * i, le); break;
      case MI_INT32: out[i] = v.getInt32(4 * i, le); break;
      case MI_UINT32: out[i] = v.getUint32(4 * i, le); break;
      case MI_SINGLE: out[i] = v.getFloat32(4 * i, le); break;
      case MI_DOUBLE: out[i] = v.getFloat64(8 * i, le); break;
      case MI_INT64: out[i] = Number(v.getBigInt64(8 * i, le)); break;
      case MI_UINT64: out[i] = Number(v.getBigUint64(8 * i, le)); break;
    }
  }
  return out;
}
