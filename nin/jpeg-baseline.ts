// A fast path for the common JPEG: one Huffman-coded sequential scan (baseline or extended, 8-bit)
// of all its components. It gives jpeg-js's component planes exactly (the same inverse DCT, its
// integer arithmetic copied from jpeg-js 0.4.4's buildComponentData, the same padding to whole
// blocks), 2.3–2.6 times as fast (500×375 4:2:0 pictures, bench/pictures.ts): table-driven Huffman
// decoding instead of a tree walked bit by bit, coefficients dequantised as decoded, and each
// block's inverse DCT straight into its plane instead of a typed array per block kept to the end.
//
// Anything else — progressive, several scans, markers jpeg-js recovers from, a Huffman code no table
// holds, data that runs short or has bytes left before a restart marker — returns null, and the
// caller decodes with jpeg-js, whose result or error then stands: this path never decides what a
// damaged file means.

/** jpeg-js's zig-zag order: coefficient k of a block's entropy-coded order is at dctZigZag[k]. */
const ZIGZAG = Int32Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45,
  38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

/** An image's component planes as jpeg-js gives them: each one's rows padded to whole blocks. */
export interface ComponentPlanes {
  width: number;
  height: number;
  components: { lines: Uint8Array[] }[];
}

/** The first LOOKUP_BITS of a code find it in one step; longer codes (rare) search by length. */
const LOOKUP_BITS = 9;

/** A Huffman table: `lookup[next 9 bits]` = length << 8 | value for codes of up to 9 bits (0: longer);
 * for length L, codes up to `maxCode[L]` are values from `values[valueAt[L] + code − firstCode[L]]`. */
interface HuffmanTable {
  lookup: Uint16Array;
  maxCode: Int32Array;
  firstCode: Int32Array;
  valueAt: Int32Array;
  values: Uint8Array;
}

/** The canonical code (JPEG Annex C) of `counts[L − 1]` codes of each length L; null where the
 * counts overflow their lengths or take a code of all 1 bits, which Annex C reserves: jpeg-js's
 * "Could not recreate Huffman Table" (its tree runs out of nodes at that code). */
function huffmanTable(counts: Uint8Array, values: Uint8Array): HuffmanTable | null {
  const lookup = new Uint16Array(1 << LOOKUP_BITS);
  const maxCode = new Int32Array(18).fill(-1);
  const firstCode = new Int32Array(17);
  const valueAt = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    firstCode[length] = code;
    valueAt[length] = k;
    const n = counts[length - 1];
    if (code + n >= 1 << length) return null;
    for (let i = 0; i < n; i++, code++, k++) {
      if (length <= LOOKUP_BITS) {
        const shift = LOOKUP_BITS - length;
        for (let fill = 0; fill < 1 << shift; fill++) lookup[(code << shift) | fill] = (length << 8) | values[k];
      }
    }
    maxCode[length] = n ? code - 1 : -1;
    code <<= 1;
  }
  return { lookup, maxCode, firstCode, valueAt, values };
}

interface FrameComponent {
  id: number;
  h: number;
  v: number;
  quant: number;
  blocksPerLine: number;
  blocksPerColumn: number;
  plane: Uint8Array;
}

/**
 * The component planes of a one-scan sequential JPEG (jpeg-js's JpegImage.components[].lines,
 * byte for byte), or null where this path does not take the file (see the top).
 */
export function decodeBaselineJpeg(data: Uint8Array): ComponentPlanes | null {
  const u16 = (at: number) => (data[at] << 8) | data[at + 1];
  if (u16(0) !== 0xffd8) return null;
  const quant: (Int32Array | undefined)[] = [];
  const dcTables: (HuffmanTable | undefined)[] = [];
  const acTables: (HuffmanTable | undefined)[] = [];
  let restartInterval = 0;
  let frame: { width: number; height: number; components: FrameComponent[]; maxH: number; maxV: number } | null = null;
  let scanned = false;
  for (let at = 2; ; ) {
    if (at + 2 > data.length) return null;
    const marker = u16(at);
    if (marker === 0xffd9) break; // end of image
    if (at + 4 > data.length) return null;
    const length = u16(at + 2);
    const body = at + 4;
    const end = at + 2 + length;
    if (length < 2 || end > data.length) return null;
    const isApp = (marker >= 0xffe0 && marker <= 0xffef) || marker === 0xfffe;
    if (scanned && !isApp) return null; // a second scan, or tables changed after it: jpeg-js
    if (isApp) {
      // (APPn and comments: nin/jpeg.ts reads what matters in them)
    } else if (marker === 0xffdb) {
      for (let p = body; p < end; ) {
        const spec = data[p++];
        if (spec >> 4 > 1) return null;
        const table = new Int32Array(64);
        for (let j = 0; j < 64; j++, p += spec >> 4 ? 2 : 1) table[ZIGZAG[j]] = spec >> 4 ? u16(p) : data[p];
        if (p > end) return null;
        quant[spec & 15] = table;
      }
    } else if (marker === 0xffc4) {
      for (let p = body; p < end; ) {
        const spec = data[p];
        const counts = data.subarray(p + 1, p + 17);
        const total = counts.reduce((s, n) => s + n, 0);
        const values = data.slice(p + 17, p + 17 + total);
        p += 17 + total;
        if (p > end) return null;
        const table = huffmanTable(counts, values);
        if (!table) return null; // jpeg-js refuses the file as it reads the table, used or not
        (spec >> 4 === 0 ? dcTables : acTables)[spec & 15] = table;
      }
    } else if (marker === 0xffdd) {
      restartInterval = u16(body);
    } else if (marker === 0xffc0 || marker === 0xffc1) {
      if (frame || data[body] !== 8) return null;
      const height = u16(body + 1);
      const width = u16(body + 3);
      const count = data[body + 5];
      if (!width || !height || end !== body + 6 + 3 * count) return null;
      const components: FrameComponent[] = [];
      for (let c = 0, p = body + 6; c < count; c++, p += 3) {
        const [h, v] = [data[p + 1] >> 4, data[p + 1] & 15];
        if (h < 1 || v < 1 || components.some((o) => o.id === data[p])) return null;
        components.push({ id: data[p], h, v, quant: data[p + 2], blocksPerLine: 0, blocksPerColumn: 0, plane: new Uint8Array(0) });
      }
      const maxH = Math.max(...components.map((c) => c.h));
      const maxV = Math.max(...components.map((c) => c.v));
      for (const c of components) {
        // jpeg-js's prepareComponents: the blocks that hold the component's samples
        c.blocksPerLine = Math.ceil((Math.ceil(width / 8) * c.h) / maxH);
        c.blocksPerColumn = Math.ceil((Math.ceil(height / 8) * c.v) / maxV);
        c.plane = new Uint8Array(c.blocksPerLine * 8 * c.blocksPerColumn * 8);
      }
      frame = { width, height, components, maxH, maxV };
    } else if (marker === 0xffda) {
      if (!frame) return null;
      const count = data[body];
      if (count !== frame.components.length || end !== body + 1 + 2 * count + 3) return null;
      const scan: { component: FrameComponent; dc: HuffmanTable; ac: HuffmanTable; quant: Int32Array }[] = [];
      for (let i = 0, p = body + 1; i < count; i++, p += 2) {
        const component = frame.components.find((c) => c.id === data[p]);
        const dc = dcTables[data[p + 1] >> 4];
        const ac = acTables[data[p + 1] & 15];
        if (!component || !dc || !ac || scan.some((s) => s.component === component)) return null;
        scan.push({ component, dc, ac, quant: new Int32Array(0) });
      }
      const p = body + 1 + 2 * count;
      if (data[p] !== 0 || data[p + 1] !== 63 || data[p + 2] !== 0) return null; // not a sequential scan
      // The quantisation tables are jpeg-js's as at the end of the file: none may follow the scan.
      for (const s of scan) {
        const table = quant[s.component.quant];
        if (!table) return null;
        s.quant = table;
      }
      const after = decodeScan(data, end, frame, scan, restartInterval);
      if (after < 0) return null;
      scanned = true;
      at = after;
      continue;
    } else {
      return null; // another frame kind, DNL, fill bytes, an unknown marker: jpeg-js's rules
    }
    at = end;
  }
  if (!frame || !scanned) return null;
  return {
    width: frame.width,
    height: frame.height,
    components: frame.components.map((c) => {
      const across = c.blocksPerLine * 8;
      return { lines: Array.from({ length: c.blocksPerColumn * 8 }, (_, y) => c.plane.subarray(y * across, (y + 1) * across)) };
    }),
  };
}

/**
 * The entropy-coded data from `start`, in restart intervals: each one's bytes unstuffed (ff 00 → ff)
 * up to the marker that ends it. Returns the offset of the first marker that is not a restart
 * (where the scan ends), with the intervals, or null where the data ends without one.
 */
function intervals(data: Uint8Array, start: number): { parts: Uint8Array[]; end: number } | null {
  const parts: Uint8Array[] = [];
  let out = new Uint8Array(data.length - start);
  let n = 0;
  for (let at = start; at < data.length; at++) {
    const b = data[at];
    if (b !== 0xff) {
      out[n++] = b;
      continue;
    }
    const next = data[at + 1];
    if (next === 0x00) {
      out[n++] = 0xff;
      at++;
      continue;
    }
    parts.push(out.subarray(0, n));
    if (next >= 0xd0 && next <= 0xd7) {
      out = out.subarray(n);
      n = 0;
      at++;
      continue;
    }
    return { parts, end: at };
  }
  return null;
}

/**
 * Decodes a sequential scan's blocks into the components' planes, as jpeg-js's decodeScan with
 * decodeBaseline and then buildComponentData would. Returns the offset of the marker after the scan,
 * or −1 where jpeg-js would read the data otherwise (or fail).
 */
function decodeScan(
  data: Uint8Array,
  start: number,
  frame: { components: FrameComponent[]; width: number; height: number; maxH: number; maxV: number },
  scan: { component: FrameComponent; dc: HuffmanTable; ac: HuffmanTable; quant: Int32Array }[],
  restartInterval: number,
): number {
  const split = intervals(data, start);
  if (!split) return -1;
  const mcusPerLine = Math.ceil(frame.width / 8 / frame.maxH);
  const mcusPerColumn = Math.ceil(frame.height / 8 / frame.maxV);
  const single = scan.length === 1;
  // One component alone: its blocks in order (an MCU is one block); else MCUs of each one's h × v blocks.
  const mcuExpected = single ? scan[0].component.blocksPerLine * scan[0].component.blocksPerColumn : mcusPerLine * mcusPerColumn;
  const interval = restartInterval || mcuExpected;
  // Fewer intervals: jpeg-js stops early; more: it reads on from the first restart marker past them.
  if (split.parts.length !== Math.ceil(mcuExpected / interval)) return -1;
  const zz = new Int32Array(64);
  const pred = new Int32Array(scan.length);

  for (let mcu = 0, part = 0; mcu < mcuExpected; part++) {
    const bits = new BitReader(split.parts[part]);
    pred.fill(0);
    for (let n = 0; n < interval && mcu < mcuExpected; n++, mcu++) {
      for (let s = 0; s < scan.length; s++) {
        const { component, dc, ac, quant } = scan[s];
        const h = single ? 1 : component.h;
        const v = single ? 1 : component.v;
        for (let j = 0; j < v; j++) {
          for (let k = 0; k < h; k++) {
            // jpeg-js's decodeBaseline
            zz.fill(0);
            const t = bits.huffman(dc);
            if (t < 0 || t > 16) return -1;
            pred[s] += t === 0 ? 0 : bits.signed(t);
            zz[0] = pred[s] * quant[0]; // dequantised as decoded: jpeg-js's products, in an Int32Array as there
            for (let i = 1; i < 64; ) {
              const rs = bits.huffman(ac);
              if (rs < 0) return -1;
              const size = rs & 15;
              const run = rs >> 4;
              if (size === 0) {
                if (run < 15) break;
                i += 16;
                continue;
              }
              i += run;
              if (i > 63) return -1; // jpeg-js writes past the block, and drops it
              const z = ZIGZAG[i];
              zz[z] = bits.signed(size) * quant[z];
              i++;
            }
            if (bits.overrun > bits.count) return -1; // read past the interval: jpeg-js meets the marker
            const row = single ? Math.floor(mcu / component.blocksPerLine) : Math.floor(mcu / mcusPerLine) * v + j;
            const col = single ? mcu % component.blocksPerLine : (mcu % mcusPerLine) * h + k;
            // Blocks past the component's samples (an MCU's padding) are decoded and dropped, as there.
            if (row < component.blocksPerColumn && col < component.blocksPerLine) inverseDct(zz, component.plane, (row * 8 * component.blocksPerLine + col) * 8, component.blocksPerLine * 8);
          }
        }
      }
    }
    // Within the scan, the interval's bytes end where its bits do (jpeg-js expects the marker there).
    if (mcu < mcuExpected && bits.used() !== bits.bytes.length) return -1;
  }
  return split.end;
}

/** A restart interval's bits, the next ones first. Past its end it gives zero bits, counted in
 * `overrun`: bits taken beyond `count − overrun` were never there (jpeg-js would meet the marker). */
class BitReader {
  private pos = 0; // next byte to take into `bits`
  private bits = 0; // up to 32 bits, the next ones highest
  count = 0; // bits held in `bits`
  overrun = 0;

  constructor(readonly bytes: Uint8Array) {}

  private fill(): void {
    while (this.count <= 24) {
      if (this.pos < this.bytes.length) this.bits |= this.bytes[this.pos++] << (24 - this.count);
      else this.overrun += 8;
      this.count += 8;
    }
  }

  /** jpeg-js's receiveAndExtend: `length` bits as a signed value. */
  signed(length: number): number {
    if (this.count < length) this.fill();
    const n = this.bits >>> (32 - length);
    this.bits <<= length;
    this.count -= length;
    return n >= 1 << (length - 1) ? n : n + (-1 << length) + 1;
  }

  /** The next code's value, or −1 where no code of `t` matches (jpeg-js: "invalid huffman sequence"). */
  huffman(t: HuffmanTable): number {
    if (this.count < 16) this.fill();
    const hit = t.lookup[this.bits >>> (32 - LOOKUP_BITS)];
    if (hit) {
      this.bits <<= hit >> 8;
      this.count -= hit >> 8;
      return hit & 255;
    }
    for (let length = LOOKUP_BITS + 1; length <= 16; length++) {
      const code = this.bits >>> (32 - length);
      if (code <= t.maxCode[length]) {
        this.bits <<= length;
        this.count -= length;
        return t.values[t.valueAt[length] + code - t.firstCode[length]];
      }
    }
    return -1;
  }

  /** Bytes read: those whose bits were taken, a partly taken one included. */
  used(): number {
    return this.pos - Math.floor((this.count - this.overrun) / 8);
  }
}

// jpeg-js's constants: the Loeffler–Ligtenberg–Moschytz inverse DCT in 12-bit fixed point.
const COS1 = 4017;
const SIN1 = 799;
const COS3 = 3406;
const SIN3 = 2276;
const COS6 = 1567;
const SIN6 = 3784;
const SQRT2 = 5793;
const SQRT1D2 = 2896;

/** jpeg-js's quantizeAndInverse on a dequantised block `p` (overwritten), with its rounding and
 * shortcuts as they are, writing the 8 × 8 samples into `plane` at `at`, rows `stride` apart.
 * The row and column passes are one algorithm at two precisions (rounding to 8 and 12 fractional
 * bits, inputs 3 and 5 scaled by 16 in rows only), written out twice as jpeg-js writes them: one
 * function taking the precision decoded a 500×375 picture 10–25 % slower (8.3 → 9.4 ms). */
function inverseDct(p: Int32Array, plane: Uint8Array, at: number, stride: number): void {
  let v0, v1, v2, v3, v4, v5, v6, v7, t;
  for (let row = 0; row < 64; row += 8) {
    if (p[1 + row] === 0 && p[2 + row] === 0 && p[3 + row] === 0 && p[4 + row] === 0 && p[5 + row] === 0 && p[6 + row] === 0 && p[7 + row] === 0) {
      t = (SQRT2 * p[row] + 512) >> 10;
      for (let i = 0; i < 8; i++) p[row + i] = t;
      continue;
    }
    v0 = (SQRT2 * p[0 + row] + 128) >> 8;
    v1 = (SQRT2 * p[4 + row] + 128) >> 8;
    v2 = p[2 + row];
    v3 = p[6 + row];
    v4 = (SQRT1D2 * (p[1 + row] - p[7 + row]) + 128) >> 8;
    v7 = (SQRT1D2 * (p[1 + row] + p[7 + row]) + 128) >> 8;
    v5 = p[3 + row] << 4;
    v6 = p[5 + row] << 4;
    t = (v0 - v1 + 1) >> 1;
    v0 = (v0 + v1 + 1) >> 1;
    v1 = t;
    t = (v2 * SIN6 + v3 * COS6 + 128) >> 8;
    v2 = (v2 * COS6 - v3 * SIN6 + 128) >> 8;
    v3 = t;
    t = (v4 - v6 + 1) >> 1;
    v4 = (v4 + v6 + 1) >> 1;
    v6 = t;
    t = (v7 + v5 + 1) >> 1;
    v5 = (v7 - v5 + 1) >> 1;
    v7 = t;
    t = (v0 - v3 + 1) >> 1;
    v0 = (v0 + v3 + 1) >> 1;
    v3 = t;
    t = (v1 - v2 + 1) >> 1;
    v1 = (v1 + v2 + 1) >> 1;
    v2 = t;
    t = (v4 * SIN3 + v7 * COS3 + 2048) >> 12;
    v4 = (v4 * COS3 - v7 * SIN3 + 2048) >> 12;
    v7 = t;
    t = (v5 * SIN1 + v6 * COS1 + 2048) >> 12;
    v5 = (v5 * COS1 - v6 * SIN1 + 2048) >> 12;
    v6 = t;
    p[0 + row] = v0 + v7;
    p[7 + row] = v0 - v7;
    p[1 + row] = v1 + v6;
    p[6 + row] = v1 - v6;
    p[2 + row] = v2 + v5;
    p[5 + row] = v2 - v5;
    p[3 + row] = v3 + v4;
    p[4 + row] = v3 - v4;
  }
  for (let col = 0; col < 8; col++) {
    if (p[8 + col] === 0 && p[16 + col] === 0 && p[24 + col] === 0 && p[32 + col] === 0 && p[40 + col] === 0 && p[48 + col] === 0 && p[56 + col] === 0) {
      t = (SQRT2 * p[col] + 8192) >> 14;
      for (let i = 0; i < 64; i += 8) p[col + i] = t;
      continue;
    }
    v0 = (SQRT2 * p[0 + col] + 2048) >> 12;
    v1 = (SQRT2 * p[32 + col] + 2048) >> 12;
    v2 = p[16 + col];
    v3 = p[48 + col];
    v4 = (SQRT1D2 * (p[8 + col] - p[56 + col]) + 2048) >> 12;
    v7 = (SQRT1D2 * (p[8 + col] + p[56 + col]) + 2048) >> 12;
    v5 = p[24 + col];
    v6 = p[40 + col];
    t = (v0 - v1 + 1) >> 1;
    v0 = (v0 + v1 + 1) >> 1;
    v1 = t;
    t = (v2 * SIN6 + v3 * COS6 + 2048) >> 12;
    v2 = (v2 * COS6 - v3 * SIN6 + 2048) >> 12;
    v3 = t;
    t = (v4 - v6 + 1) >> 1;
    v4 = (v4 + v6 + 1) >> 1;
    v6 = t;
    t = (v7 + v5 + 1) >> 1;
    v5 = (v7 - v5 + 1) >> 1;
    v7 = t;
    t = (v0 - v3 + 1) >> 1;
    v0 = (v0 + v3 + 1) >> 1;
    v3 = t;
    t = (v1 - v2 + 1) >> 1;
    v1 = (v1 + v2 + 1) >> 1;
    v2 = t;
    t = (v4 * SIN3 + v7 * COS3 + 2048) >> 12;
    v4 = (v4 * COS3 - v7 * SIN3 + 2048) >> 12;
    v7 = t;
    t = (v5 * SIN1 + v6 * COS1 + 2048) >> 12;
    v5 = (v5 * COS1 - v6 * SIN1 + 2048) >> 12;
    v6 = t;
    p[0 + col] = v0 + v7;
    p[56 + col] = v0 - v7;
    p[8 + col] = v1 + v6;
    p[48 + col] = v1 - v6;
    p[16 + col] = v2 + v5;
    p[40 + col] = v2 - v5;
    p[24 + col] = v3 + v4;
    p[32 + col] = v3 - v4;
  }
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const sample = 128 + ((p[y * 8 + x] + 8) >> 4);
      plane[at + y * stride + x] = sample < 0 ? 0 : sample > 255 ? 255 : sample;
    }
  }
}
