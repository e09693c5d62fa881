// CPU pictures for reports: a small RGBA raster canvas with a built-in bitmap font, the paper's
// Figure 4 (last-mlpconv feature maps per class), and line plots of training curves. Everything is
// drawn in plain TypeScript and encoded with pngjs, so pictures can be made on machines without a
// GPU or any native image library.
import { encodePng } from './images.ts';
import { currentHistory, epochsMissing } from './run-directory.ts';

export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [228, 228, 228];
const MUTED: Rgb = [120, 120, 120];
/** Marks non-finite values in pictures, so a NaN is seen rather than silently drawn as black. */
const NONFINITE: Rgb = [255, 0, 255];
const GOOD: Rgb = [0, 150, 60];
const BAD: Rgb = [215, 25, 28];
const TRUTH: Rgb = [30, 100, 230];
/** Distinct series colours (the Tableau 10 palette); cycled past ten series. */
export const SERIES_COLORS: readonly Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

// ---------------------------------------------------------------------------------------------
// Bitmap font: 5 columns × 8 rows per glyph. Rows 0–6 hold capitals and digits (a classic 5×7
// font); row 7 is only used by descenders (g j p q y , _) so lowercase stays legible.

/** Pixel width and height of one glyph at scale 1. */
export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 8;
/** Horizontal advance per character (glyph + 1 px spacing) and line pitch, at scale 1. */
export const CHAR_ADVANCE = 6;
export const LINE_HEIGHT = 10;

const GLYPH_SOURCE: Record<string, string> = {
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  a: '..... ..... .###. ....# .#### #...# .####',
  b: '#.... #.... #.##. ##..# #...# #...# ####.',
  c: '..... ..... .###. #.... #.... #...# .###.',
  d: '....# ....# .##.# #..## #...# #...# .####',
  e: '..... ..... .###. #...# ##### #.... .###.',
  f: '..##. .#..# .#... ###.. .#... .#... .#...',
  g: '..... ..... .#### #...# #...# .#### ....# .###.',
  h: '#.... #.... #.##. ##..# #...# #...# #...#',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  j: '...#. ..... ..##. ...#. ...#. ...#. #..#. .##..',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#.',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  m: '..... ..... ##.#. #.#.# #.#.# #...# #...#',
  n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.',
  p: '..... ..... ####. #...# #...# ####. #.... #....',
  q: '..... ..... .#### #...# #...# .#### ....# ....#',
  r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .#### #.... .###. ....# ####.',
  t: '.#... .#... ###.. .#... .#... .#..# ..##.',
  u: '..... ..... #...# #...# #...# #..## .##.#',
  v: '..... ..... #...# #...# #...# .#.#. ..#..',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#.',
  x: '..... ..... #...# .#.#. ..#.. .#.#. #...#',
  y: '..... ..... #...# #...# #...# .#### ....# .###.',
  z: '..... ..... ##### ...#. ..#.. .#... #####',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... .###. ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '=': '..... ..... ##### ..... ##### ..... .....',
  _: '..... ..... ..... ..... ..... ..... ..... #####',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  // A few extras that turn up in run names and titles.
  '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...',
  ';': '..... .##.. .##.. ..... .##.. ..#.. .#...',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#',
  '@': '.###. #...# #.### #.#.# #.### #.... .###.',
};

/** Each glyph as 8 row bitmasks (bit 4 = leftmost column). Checked once at load. */
const GLYPHS = new Map<string, Uint8Array>();
for (const [ch, src] of Object.entries(GLYPH_SOURCE)) {
  const rows = src.split(' ');
  if ((rows.length !== 7 && rows.length !== 8) || rows.some((r) => r.length !== GLYPH_WIDTH || /[^.#]/.test(r))) {
    throw new Error(`font: glyph ${JSON.stringify(ch)} must be 7 or 8 rows of 5 '.'/'#', found ${JSON.stringify(src)}`);
  }
  const bits = new Uint8Array(GLYPH_HEIGHT);
  rows.forEach((r, y) => {
    for (let x = 0; x < GLYPH_WIDTH; x++) if (r[x] === '#') bits[y] |= 1 << (GLYPH_WIDTH - 1 - x);
  });
  GLYPHS.set(ch, bits);
}
/** Any other character is drawn as a hollow box, so a missing glyph is visible, not dropped. */
const MISSING_GLYPH = Uint8Array.from([0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f, 0]);

/** Every character the font has a glyph for, accented letters aside (accentedGlyph). */
export const FONT_CHARS: readonly string[] = [...GLYPHS.keys()];

/** Accents as rows of bits: above a lowercase letter (its rows 0–1 are empty; an i's or j's dot
 * gives way), or under it (row 7: the cedilla). */
const ACCENTS: Record<string, { rows: number[]; below?: boolean }> = {
  '\u0300': { rows: [0b01000, 0b00100] }, // grave
  '\u0301': { rows: [0b00010, 0b00100] }, // acute
  '\u0302': { rows: [0b00100, 0b01010] }, // circumflex
  '\u0303': { rows: [0b01101, 0b10110] }, // tilde
  '\u0308': { rows: [0b01010, 0] }, // diaeresis
  '\u030a': { rows: [0b01110, 0b01010] }, // ring
  '\u030c': { rows: [0b01010, 0b00100] }, // caron
  '\u0327': { rows: [0b00100], below: true }, // cedilla
};
const accentedGlyphs = new Map<string, Uint8Array | null>();

/**
 * An accented letter's glyph (é, ü, ñ, ç, …; class names from an image folder's directories, run
 * names): its letter's with the accent drawn on where the letter leaves room for it, else the
 * letter alone (É as E), which reads better than a box. Null for anything else.
 */
function accentedGlyph(ch: string): Uint8Array | null {
  const known = accentedGlyphs.get(ch);
  if (known !== undefined) return known;
  const [base, mark, ...more] = [...ch.normalize('NFD')];
  const letter = base === undefined ? undefined : GLYPHS.get(base);
  const accent = mark === undefined ? undefined : ACCENTS[mark];
  let glyph: Uint8Array | null = null;
  if (letter && accent && more.length === 0) {
    glyph = letter.slice();
    if (!accent.below && (base === 'i' || base === 'j')) glyph[0] = 0;
    const rows = accent.below ? [7] : [0, 1];
    if (rows.every((y) => glyph![y] === 0)) accent.rows.forEach((bits, k) => (glyph![rows[k]] = bits));
  }
  accentedGlyphs.set(ch, glyph);
  return glyph;
}

/** Width in pixels of `text` drawn on one line at `scale` (no trailing spacing). A letter and
 * its accent written apart (as macOS names files) are one character, as drawn. */
export function textWidth(text: string, scale = 1): number {
  const n = [...text.normalize('NFC')].length;
  return n === 0 ? 0 : (n * CHAR_ADVANCE - 1) * scale;
}

// ---------------------------------------------------------------------------------------------
// Canvas

/** Calls `ink(gx, gy)` for every set pixel of `ch`'s glyph (column gx, row gy). */
function forEachInk(ch: string, ink: (gx: number, gy: number) => void): void {
  const bits = GLYPHS.get(ch) ?? accentedGlyph(ch) ?? MISSING_GLYPH;
  for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
    const row = bits[gy];
    if (row === 0) continue;
    for (let gx = 0; gx < GLYPH_WIDTH; gx++) if (row & (1 << (GLYPH_WIDTH - 1 - gx))) ink(gx, gy);
  }
}

/** An opaque RGBA raster with clipped drawing primitives. Coordinates are pixels, origin top-left. */
export class Canvas {
  readonly rgba: Uint8Array;
  private clipX0 = 0;
  private clipY0 = 0;
  private clipX1: number;
  private clipY1: number;

  constructor(readonly width: number, readonly height: number, background: Rgb = WHITE) {
    if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
      throw new Error(`Canvas: size must be positive integers, found ${width}×${height}`);
    }
    this.rgba = new Uint8Array(width * height * 4);
    this.clipX1 = width;
    this.clipY1 = height;
    this.fillRect(0, 0, width, height, background);
  }

  /** Restricts drawing to [x, x+w) × [y, y+h) (intersected with the canvas) until resetClip. */
  setClip(x: number, y: number, w: number, h: number): void {
    this.clipX0 = Math.max(0, Math.floor(x));
    this.clipY0 = Math.max(0, Math.floor(y));
    this.clipX1 = Math.min(this.width, Math.floor(x + w));
    this.clipY1 = Math.min(this.height, Math.floor(y + h));
  }

  resetClip(): void {
    this.clipX0 = 0;
    this.clipY0 = 0;
    this.clipX1 = this.width;
    this.clipY1 = this.height;
  }

  setPixel(x: number, y: number, c: Rgb): void {
    if (x < this.clipX0 || y < this.clipY0 || x >= this.clipX1 || y >= this.clipY1) return;
    const i = (y * this.width + x) * 4;
    this.rgba[i] = c[0];
    this.rgba[i + 1] = c[1];
    this.rgba[i + 2] = c[2];
    this.rgba[i + 3] = 255;
  }

  /** [r, g, b, a] at (x, y); throws outside the canvas. */
  getPixel(x: number, y: number): [number, number, number, number] {
    if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= this.width || y >= this.height) {
      throw new Error(`Canvas.getPixel: (${x}, ${y}) is outside ${this.width}×${this.height}`);
    }
    const i = (y * this.width + x) * 4;
    return [this.rgba[i], this.rgba[i + 1], this.rgba[i + 2], this.rgba[i + 3]];
  }

  /** Fills the pixels [x, x+w) × [y, y+h) (fractional edges rounded to the nearest pixel). */
  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(this.clipX0, Math.round(x));
    const y0 = Math.max(this.clipY0, Math.round(y));
    const x1 = Math.min(this.clipX1, Math.round(x + w));
    const y1 = Math.min(this.clipY1, Math.round(y + h));
    for (let py = y0; py < y1; py++) {
      let i = (py * this.width + x0) * 4;
      for (let px = x0; px < x1; px++, i += 4) {
        this.rgba[i] = c[0];
        this.rgba[i + 1] = c[1];
        this.rgba[i + 2] = c[2];
        this.rgba[i + 3] = 255;
      }
    }
  }

  /** Outline of [x, x+w) × [y, y+h), `thickness` pixels wide, drawn inwards. */
  strokeRect(x: number, y: number, w: number, h: number, c: Rgb, thickness = 1): void {
    const t = Math.min(thickness, w / 2, h / 2);
    this.fillRect(x, y, w, t, c);
    this.fillRect(x, y + h - t, w, t, c);
    this.fillRect(x, y, t, h, c);
    this.fillRect(x + w - t, y, t, h, c);
  }

  /**
   * Line from (x0, y0) to (x1, y1) in continuous pixel coordinates (pixel (i, j) spans
   * [i, i+1) × [j, j+1)); fills every pixel whose centre lies within thickness/2 of the segment,
   * so ends are round and joints between consecutive segments have no gaps. Non-finite ends skip.
   */
  drawLine(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    if (![x0, y0, x1, y1, thickness].every(Number.isFinite)) return;
    const r = Math.max(thickness, 1) / 2 + 1e-9;
    const bx0 = Math.max(this.clipX0, Math.floor(Math.min(x0, x1) - r));
    const by0 = Math.max(this.clipY0, Math.floor(Math.min(y0, y1) - r));
    const bx1 = Math.min(this.clipX1 - 1, Math.ceil(Math.max(x0, x1) + r));
    const by1 = Math.min(this.clipY1 - 1, Math.ceil(Math.max(y0, y1) + r));
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    const r2 = r * r;
    for (let py = by0; py <= by1; py++) {
      for (let px = bx0; px <= bx1; px++) {
        const cx = px + 0.5 - x0;
        const cy = py + 0.5 - y0;
        const t = len2 === 0 ? 0 : Math.min(1, Math.max(0, (cx * dx + cy * dy) / len2));
        const ex = cx - t * dx;
        const ey = cy - t * dy;
        if (ex * ex + ey * ey <= r2) this.setPixel(px, py, c);
      }
    }
  }

  /** Draws `text` with its top-left corner at (x, y); each font pixel becomes scale×scale.
   * Returns the width drawn. Newlines are not interpreted (one line per call). */
  drawText(text: string, x: number, y: number, c: Rgb, scale = 1): number {
    const s = Math.max(1, Math.round(scale));
    let cx = Math.round(x);
    const cy = Math.round(y);
    for (const ch of text.normalize('NFC')) {
      forEachInk(ch, (gx, gy) => this.fillRect(cx + gx * s, cy + gy * s, s, s, c));
      cx += CHAR_ADVANCE * s;
    }
    return textWidth(text, s);
  }

  /** Text rotated 90° anticlockwise (reads bottom to top), starting at the bottom-left (x, y):
   * used for y-axis labels. Occupies GLYPH_HEIGHT·scale pixels horizontally to the right of x. */
  drawTextUp(text: string, x: number, y: number, c: Rgb, scale = 1): number {
    const s = Math.max(1, Math.round(scale));
    let cy = Math.round(y);
    const cx = Math.round(x);
    for (const ch of text.normalize('NFC')) {
      // Glyph column gx goes upwards, glyph row gy goes rightwards.
      forEachInk(ch, (gx, gy) => this.fillRect(cx + gy * s, cy - (gx + 1) * s, s, s, c));
      cy -= CHAR_ADVANCE * s;
    }
    return textWidth(text, s);
  }

  toPng(): Buffer {
    return encodePng(this.width, this.height, this.rgba);
  }
}

/** Shortens `text` to at most `maxChars` characters, marking the cut with a trailing '.'. */
function fitText(text: string, maxChars: number): string {
  const chars = [...text];
  if (chars.length <= maxChars) return text;
  if (maxChars <= 0) return '';
  return chars.slice(0, Math.max(0, maxChars - 1)).join('') + '.';
}

/** Splits a label into at most `maxLines` lines of `maxChars`, preferring breaks after _ - / or space. */
function wrapText(text: string, maxChars: number, maxLines: number): string[] {
  const lines: string[] = [];
  let rest = [...text];
  while (rest.length > 0 && lines.length < maxLines) {
    if (rest.length <= maxChars || lines.length === maxLines - 1) {
      lines.push(fitText(rest.join(''), maxChars));
      break;
    }
    let cut = maxChars;
    for (let i = maxChars; i >= Math.ceil(maxChars / 2); i--) {
      if ('_-/ '.includes(rest[i - 1])) {
        cut = i;
        break;
      }
    }
    lines.push(rest.slice(0, cut).join('').trimEnd());
    rest = rest.slice(cut);
    while (rest[0] === ' ') rest = rest.slice(1);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Figure 4: feature maps of the last mlpconv, one column per class.

export interface FeatureMapGridOptions {
  /** Input images, NHWC [N, h, w, c] with c = 1 or 3, values in [0, 1] (clamped; pass the images
   * before dataset standardisation). */
  images: Float32Array;
  imageShape: [number, number, number];
  /** The last mlpconv's output, NHWC [N, H, W, C]: one map per class (C = classNames.length). */
  maps: Float32Array;
  mapShape: [number, number, number];
  classNames: string[];
  /** True class per image: shown in the row title and as a blue frame around that class's map. */
  labels?: number[];
  /** Predicted class per image: shown in the title; its map is framed green if right, red if wrong. */
  predicted?: number[];
  /** Integer upscaling of each map (nearest neighbour). Default: maps become about 64 px tall. */
  cellScale?: number;
  /** 'gray' (default): black = 0, white = row max. 'hot': black → red → yellow → white. Both draw
   * values at or below 0 black. 'signed', for maps with negative values (linear class maps, whose
   * negative parts count in their GAP logit): each row scaled by its largest magnitude, 0 black,
   * positive black → red → yellow, negative black → blue → cyan. */
  colormap?: 'gray' | 'hot' | 'signed';
  /** Each map's mean, written under it (under GAP: the class's logit). */
  means?: boolean;
  /** Caption above the grid. */
  title?: string;
}

/** How renderFeatureMapGrid scales and colours the maps, for its caption (or a caller's title). */
export function mapScaleText(kind: FeatureMapGridOptions['colormap']): string {
  return kind === 'signed' ? 'each row scaled to its largest magnitude: positive red to yellow, negative blue to cyan, 0 black' : 'each row scaled to its largest value, values at or below 0 black';
}

function colormap(v: number, kind: 'gray' | 'hot' | 'signed'): Rgb {
  if (!Number.isFinite(v)) return NONFINITE;
  if (kind === 'signed') {
    // Two ramps from black, ending apart: the strongest positive yellow, the strongest negative cyan.
    const a = Math.min(1, Math.abs(v));
    const [main, second] = [Math.round(Math.min(1, a * 2) * 255), Math.round(Math.max(0, a * 2 - 1) * 255)];
    return v >= 0 ? [main, second, 0] : [0, second, main];
  }
  const t = Math.min(1, Math.max(0, v));
  if (kind === 'gray') {
    const g = Math.round(t * 255);
    return [g, g, g];
  }
  // Piecewise "hot": red rises over the first third, green the second, blue the last.
  const r = Math.min(1, t * 3);
  const g = Math.min(1, Math.max(0, t * 3 - 1));
  const b = Math.min(1, Math.max(0, t * 3 - 2));
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

function checkShape(what: string, shape: readonly number[], length: number): number {
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(`renderFeatureMapGrid: ${what}Shape must be three positive integers [h, w, c], found [${shape.join(', ')}]`);
  }
  const per = shape[0] * shape[1] * shape[2];
  if (length % per !== 0) {
    throw new Error(`renderFeatureMapGrid: ${what}s has ${length} values, not a multiple of ${shape.join('×')} = ${per}`);
  }
  return length / per;
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Where renderFeatureMapGrid puts things, for callers that annotate or check the picture. */
export interface FeatureMapGridLayout {
  width: number;
  height: number;
  /** Pixels per map value (nearest neighbour) and per input pixel. */
  cellScale: number;
  imageScale: number;
  /** The input image of row `i`. */
  imageRect(i: number): Rect;
  /** The map of class `k` in row `i`. */
  mapRect(i: number, k: number): Rect;
}

interface GridPlan extends FeatureMapGridLayout {
  n: number;
  captionLines: string[];
  headers: string[][];
  inputHeaderChars: number;
  rowTitles: string[];
  margin: number;
  captionH: number;
  headerH: number;
  titleH: number;
}

/** Validates the options and lays the grid out (renderFeatureMapGrid draws exactly this). */
function planGrid(opts: FeatureMapGridOptions): GridPlan {
  const { images, maps, classNames, labels, predicted } = opts;
  const [h, w, c] = opts.imageShape;
  const [H, W, C] = opts.mapShape;
  const n = checkShape('image', opts.imageShape, images.length);
  const nMaps = checkShape('map', opts.mapShape, maps.length);
  if (c !== 1 && c !== 3) throw new Error(`renderFeatureMapGrid: images must have 1 or 3 channels, found ${c}`);
  if (n === 0) throw new Error('renderFeatureMapGrid: no images given');
  if (nMaps !== n) throw new Error(`renderFeatureMapGrid: ${n} images but maps for ${nMaps}`);
  if (classNames.length !== C) {
    throw new Error(`renderFeatureMapGrid: ${C} maps per image (mapShape[2]) but ${classNames.length} class names`);
  }
  for (const [name, arr] of [['labels', labels], ['predicted', predicted]] as const) {
    if (!arr) continue;
    if (arr.length !== n) throw new Error(`renderFeatureMapGrid: ${name} has ${arr.length} entries, expected one per image (${n})`);
    const bad = arr.find((k) => !Number.isInteger(k) || k < 0 || k >= C);
    if (bad !== undefined) throw new Error(`renderFeatureMapGrid: ${name} contains ${bad}, expected a class index in [0, ${C})`);
  }
  const scale = opts.cellScale ?? Math.max(1, Math.round(64 / Math.max(H, W)));
  if (!Number.isInteger(scale) || scale <= 0) throw new Error(`renderFeatureMapGrid: cellScale must be a positive integer, found ${scale}`);

  // Gaps leave room for the 2-px frames drawn one pixel outside a cell.
  const margin = 10;
  const gap = 8;
  const cellW = W * scale;
  const cellH = H * scale;
  // The input is upscaled by a whole factor to about the maps' height, so its pixels stay square.
  const imgScale = Math.max(1, Math.round(cellH / h));
  const imgW = w * imgScale;
  const imgH = h * imgScale;
  const meansH = opts.means ? LINE_HEIGHT + 2 : 0; // a line under each map
  const rowH = Math.max(cellH + meansH, imgH);
  const mapsX = margin + imgW + gap * 2;
  const headerChars = Math.max(1, Math.floor((cellW + gap - 2) / CHAR_ADVANCE));
  const headers = classNames.map((name) => wrapText(name, headerChars, 2));
  const headerLines = Math.max(1, ...headers.map((l) => l.length));
  const captionLines: string[] = [opts.title ?? `last mlpconv feature maps, one per class (${mapScaleText(opts.colormap)})`];
  if (opts.means) captionLines.push("under each map, its mean: the class's logit (global average pooling)");
  if (labels && predicted) captionLines.push('frames: green = predicted and true, red = predicted (wrong), blue = true class');
  else if (predicted) captionLines.push('frames: green = predicted class');
  else if (labels) captionLines.push('frames: blue = true class');
  const rowTitles = Array.from({ length: n }, (_, i) => {
    const parts = [`image ${i}`];
    if (labels) parts.push(`true: ${classNames[labels[i]]}`);
    if (predicted) parts.push(`predicted: ${classNames[predicted[i]]}`);
    return parts.join('   ');
  });
  const captionH = captionLines.length * LINE_HEIGHT + 6;
  const headerH = headerLines * LINE_HEIGHT + 4;
  const titleH = LINE_HEIGHT + 2;
  const rowPitch = titleH + rowH + gap;
  const gridW = mapsX + C * (cellW + gap) - gap + margin;
  const textW = Math.max(...captionLines.map((t) => textWidth(t)), ...rowTitles.map((t) => textWidth(t))) + 2 * margin;
  const rowTop = (i: number) => margin + captionH + headerH + i * rowPitch + titleH;
  return {
    width: Math.max(gridW, textW),
    height: margin + captionH + headerH + n * rowPitch - gap + margin,
    cellScale: scale,
    imageScale: imgScale,
    imageRect: (i) => ({ x: margin, y: rowTop(i), w: imgW, h: imgH }),
    mapRect: (i, k) => ({ x: mapsX + k * (cellW + gap), y: rowTop(i), w: cellW, h: cellH }),
    n,
    captionLines,
    headers,
    inputHeaderChars: Math.max(1, Math.floor((imgW + gap) / CHAR_ADVANCE)),
    rowTitles,
    margin,
    captionH,
    headerH,
    titleH,
  };
}

/** The pixel layout renderFeatureMapGrid(opts) will use (validates opts the same way). */
export function featureMapGridLayout(opts: FeatureMapGridOptions): FeatureMapGridLayout {
  const { width, height, cellScale, imageScale, imageRect, mapRect } = planGrid(opts);
  return { width, height, cellScale, imageScale, imageRect, mapRect };
}

/** The paper's Figure 4 as a PNG: one row per image — the image, then each class's feature map,
 * all maps of a row scaled by that row's largest value (so rows compare classes, not images). */
export function renderFeatureMapGrid(opts: FeatureMapGridOptions): Buffer {
  const plan = planGrid(opts);
  const { images, maps, labels, predicted } = opts;
  const [h, w, c] = opts.imageShape;
  const [H, W, C] = opts.mapShape;
  const kind = opts.colormap ?? 'gray';
  const { margin, cellScale: scale, imageScale: imgScale } = plan;
  const canvas = new Canvas(plan.width, plan.height);

  let y = margin;
  for (const line of plan.captionLines) {
    canvas.drawText(line, margin, y, BLACK);
    y += LINE_HEIGHT;
  }
  y = margin + plan.captionH;
  canvas.drawText(fitText('input', plan.inputHeaderChars), margin, y, MUTED);
  plan.headers.forEach((lines, k) => {
    lines.forEach((line, j) => canvas.drawText(line, plan.mapRect(0, k).x, y + j * LINE_HEIGHT, BLACK));
  });

  const imgSize = h * w * c;
  const mapSize = H * W * C;
  for (let i = 0; i < plan.n; i++) {
    const correct = labels && predicted ? labels[i] === predicted[i] : undefined;
    const imgRect = plan.imageRect(i);
    canvas.drawText(plan.rowTitles[i], margin, imgRect.y - plan.titleH, correct === undefined ? BLACK : correct ? GOOD : BAD);

    // The input image, nearest-neighbour upscaled.
    const img = i * imgSize;
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const p = img + (yy * w + xx) * c;
        const col: Rgb = c === 1 ? colormap(images[p], 'gray') : rgbFrom(images[p], images[p + 1], images[p + 2]);
        canvas.fillRect(imgRect.x + xx * imgScale, imgRect.y + yy * imgScale, imgScale, imgScale, col);
      }
    }

    // One normaliser per row: the largest finite value (magnitude, for 'signed') over all of this image's maps.
    const base = i * mapSize;
    let rowMax = 0;
    for (let j = 0; j < mapSize; j++) {
      const v = kind === 'signed' ? Math.abs(maps[base + j]) : maps[base + j];
      if (Number.isFinite(v) && v > rowMax) rowMax = v;
    }
    const inv = rowMax > 0 ? 1 / rowMax : 0;
    for (let k = 0; k < C; k++) {
      const r = plan.mapRect(i, k);
      for (let yy = 0; yy < H; yy++) {
        for (let xx = 0; xx < W; xx++) {
          const v = maps[base + (yy * W + xx) * C + k];
          canvas.fillRect(r.x + xx * scale, r.y + yy * scale, scale, scale, colormap(Number.isFinite(v) ? v * inv : v, kind));
        }
      }
      if (opts.means) {
        let sum = 0;
        for (let p = 0; p < H * W; p++) sum += maps[base + p * C + k];
        canvas.drawText(fitText(formatMean(sum / (H * W)), Math.max(1, Math.floor((r.w + 6) / CHAR_ADVANCE))), r.x, r.y + r.h + 4, BLACK);
      }
    }
    // Frames: true class (blue) first, so a correct prediction's green frame covers it.
    const frame = (k: number, col: Rgb) => {
      const r = plan.mapRect(i, k);
      canvas.strokeRect(r.x - 3, r.y - 3, r.w + 6, r.h + 6, col, 2);
    };
    if (labels) frame(labels[i], TRUTH);
    if (predicted) frame(predicted[i], labels && labels[i] !== predicted[i] ? BAD : GOOD);
  }
  return canvas.toPng();
}

/** A map's mean as its label: 3 significant digits, plain decimals (a logit is rarely past ±1000). */
function formatMean(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  const text = v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text; // (−0.0004 rounds to 0.000, not to "-0.000")
}

function rgbFrom(r: number, g: number, b: number): Rgb {
  if (!Number.isFinite(r) || !Number.isFinite(g) || !Number.isFinite(b)) return NONFINITE;
  const q = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  return [q(r), q(g), q(b)];
}

// ---------------------------------------------------------------------------------------------
// Line plots

/** A series' colour: its own, else its place in SERIES_COLORS. */
const seriesColor = (s: Series, k: number): Rgb => s.color ?? SERIES_COLORS[k % SERIES_COLORS.length];

export interface Series {
  name: string;
  /** Its colour; by default the series' place in SERIES_COLORS. */
  color?: Rgb;
  /** [x, y] pairs, drawn in the given order; non-finite points (and y ≤ 0 on a log axis) break the line. */
  points: [number, number][];
}

export interface CurveOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  logY?: boolean;
  /** A log10 x axis (a learning rate's): x ≤ 0 is left out, as y ≤ 0 on a log y axis. */
  logX?: boolean;
  /** The x axis reaches down to at least this value (epoch axes start at 0, so that a one-epoch
   * run's point is not drawn on the frame). */
  xFrom?: number;
  /** On a log axis, draw values of exactly 0 on the bottom edge, at a tick '0' below the axis's
   * range, rather than leaving them out: an error curve that reaches 0 % would seem to stop early. */
  zeroOnFloor?: boolean;
}

/** Axis ticks: the value range shown and the tick positions/labels inside it. */
export interface Axis {
  lo: number;
  hi: number;
  ticks: { value: number; label: string }[];
}

/** Labels for evenly spaced ticks, all in one style: fixed decimals as fine as the step needs, or
 * (when the largest tick is ≥ 1e6 or < 1e-3) exponent form with the mantissa digits the step needs. */
function formatTicks(values: number[], step: number): string[] {
  const maxAbs = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  if (maxAbs >= 1e6 || maxAbs < 1e-3) {
    const digits = Math.max(0, Math.min(6, Math.floor(Math.log10(maxAbs) + 1e-9) - stepExp));
    return values.map((v) => (Math.abs(v) < step * 1e-6 ? '0' : v.toExponential(digits).replace('e+', 'e')));
  }
  const decimals = Math.max(0, Math.min(8, -stepExp));
  return values.map((v) => (Math.abs(v) < step * 1e-6 ? '0' : v.toFixed(decimals)));
}

/** One value to the precision a step of `step` needs (used for log-axis labels). */
function formatTick(v: number, step: number): string {
  return formatTicks([v], step)[0];
}

/** "Nice" linear ticks (steps of 1, 2 or 5 × 10^k) covering [lo, hi]; the range is widened to
 * whole steps so the data never touches the frame between ticks. */
export function niceAxis(lo: number, hi: number, target = 6): Axis {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new Error(`niceAxis: range must be finite, found [${lo}, ${hi}]`);
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * p;
  const k0 = Math.floor(lo / step + 1e-9);
  const k1 = Math.ceil(hi / step - 1e-9);
  const values: number[] = [];
  for (let k = k0; k <= k1; k++) values.push(k * step);
  const labels = formatTicks(values, step);
  return { lo: k0 * step, hi: k1 * step, ticks: values.map((value, i) => ({ value, label: labels[i] })) };
}

/** Ticks for a log10 axis; `lo`/`hi` and tick values are log10 of the data (labels show the data).
 * Whole decades for wide ranges, 1-2-5 (or 1…9) multiples for narrower ones. */
export function logAxis(minPositive: number, maxPositive: number): Axis {
  if (!(minPositive > 0 && maxPositive > 0 && Number.isFinite(minPositive) && Number.isFinite(maxPositive))) {
    throw new Error(`logAxis: range must be finite and positive, found [${minPositive}, ${maxPositive}]`);
  }
  let lo = Math.log10(Math.min(minPositive, maxPositive));
  let hi = Math.log10(Math.max(minPositive, maxPositive));
  const label = (m: number, e: number) => (e > 5 || e < -4 ? `${m}e${e}` : formatTick(m * 10 ** e, 10 ** e));
  const multiples = (ms: number[]): Axis['ticks'] => {
    const out: Axis['ticks'] = [];
    for (let e = Math.floor(lo) - 1; e <= Math.ceil(hi); e++) {
      for (const m of ms) {
        const v = e + Math.log10(m);
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push({ value: v, label: label(m, e) });
      }
    }
    return out;
  };
  if (hi - lo >= 1 - 1e-9) {
    lo = Math.floor(lo + 1e-9);
    hi = Math.ceil(hi - 1e-9);
    if (hi - lo <= 3) return { lo, hi, ticks: multiples([1, 2, 5]) };
    const every = Math.max(1, Math.ceil((hi - lo) / 8));
    const ticks: Axis['ticks'] = [];
    for (let e = lo; e <= hi; e += every) ticks.push({ value: e, label: label(1, e) });
    return { lo, hi, ticks };
  }
  // Less than a decade: pad a little; 1-2-5 multiples if they give 4 ticks, else 1…9 if 3, where
  // neither end of the axis is left without a label over more than 30 % of it (errors of 5.5 to
  // 16 % had 6…10 labelled, and nothing by the points above 10); else linear ticks.
  const pad = hi === lo ? 0.05 : (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const covers = (t: Axis['ticks']) => t.length > 0 && t[0].value - lo <= 0.3 * (hi - lo) && hi - t[t.length - 1].value <= 0.3 * (hi - lo);
  const coarse = multiples([1, 2, 5]);
  if (coarse.length >= 4 && covers(coarse)) return { lo, hi, ticks: coarse };
  const fine = multiples([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  if (fine.length >= 3 && covers(fine)) return { lo, hi, ticks: fine };
  // Linear ticks: the niceAxis range is widened to whole steps, so those outside the axis go; a
  // finer step where the coarser one leaves an end unlabelled.
  let ticks: Axis['ticks'] = [];
  for (const target of [5, 8]) {
    ticks = niceAxis(10 ** lo, 10 ** hi, target).ticks
      .filter((t) => t.value > 0 && Math.log10(t.value) >= lo - 1e-9 && Math.log10(t.value) <= hi + 1e-9)
      .map((t) => ({ value: Math.log10(t.value), label: t.label }));
    if (covers(ticks)) break;
  }
  return { lo, hi, ticks };
}

/** Draws one complete plot (title, axes, ticks, grid, series, legend) inside `area` of `canvas`. */
export function drawPlot(canvas: Canvas, area: Rect, series: Series[], opts: CurveOptions): void {
  const logY = opts.logY ?? false;
  const logX = opts.logX ?? false;
  const onFloor = (y: number) => logY && opts.zeroOnFloor === true && y === 0;
  const plotted = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0 || onFloor(y)) && (!logX || x > 0);
  const usable = series.map((s) => ({
    name: s.name,
    points: s.points.filter(([x, y]) => plotted(x, y)),
  }));
  const drawn = usable.filter((s) => s.points.length > 0);
  const floored = drawn.some((s) => s.points.some(([, y]) => onFloor(y)));

  // Data ranges (y in log10 space on a log axis).
  let xAxis: Axis;
  let yAxis: Axis;
  if (drawn.length === 0) {
    xAxis = logX ? logAxis(0.1, 10) : niceAxis(0, 1);
    yAxis = logY ? logAxis(0.1, 10) : niceAxis(0, 1);
  } else {
    // Loops, not Math.min(...xs): a long series would overflow the argument list.
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of drawn) {
      for (const [x, y] of s.points) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (onFloor(y)) continue; // the axis spans the values it can show
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
    xAxis = logX ? logAxis(x0, x1) : niceAxis(Math.min(x0, opts.xFrom ?? x0), x1);
    yAxis = logY ? (y0 <= y1 ? logAxis(y0, y1) : logAxis(0.1, 10)) : niceAxis(y0, y1);
    if (floored) {
      // 0 gets a tick of its own below the log axis, apart from the lowest value shown.
      const zero = yAxis.lo - 0.1 * (yAxis.hi - yAxis.lo);
      yAxis = { lo: zero, hi: yAxis.hi, ticks: [{ value: zero, label: '0' }, ...yAxis.ticks] };
    }
  }
  const ty = (y: number) => (onFloor(y) ? yAxis.lo : logY ? Math.log10(y) : y);
  const tx = (x: number) => (logX ? Math.log10(x) : x);

  // Layout: title on top, y label + tick labels left, x tick labels + x label below, legend right.
  const pad = 8;
  const titleScale = textWidth(opts.title, 2) <= area.w - 2 * pad ? 2 : 1;
  const titleH = GLYPH_HEIGHT * titleScale + 8;
  const yTickW = Math.max(...yAxis.ticks.map((t) => textWidth(t.label)), 6);
  const legendNames = usable.map((s) => (s.points.length > 0 ? s.name : `${s.name} (no data)`));
  const legendW = usable.length === 0 ? 0 : Math.min(Math.floor(area.w * 0.4), Math.max(...legendNames.map((n) => textWidth(n))) + 30);
  const left = area.x + pad + GLYPH_HEIGHT + 6 + yTickW + 6;
  const top = area.y + pad + titleH;
  const right = area.x + area.w - pad - (legendW > 0 ? legendW + 10 : 0);
  const bottom = area.y + area.h - pad - LINE_HEIGHT - 4 - LINE_HEIGHT - 6;
  const pw = right - left;
  const ph = bottom - top;
  if (pw < 20 || ph < 20) throw new Error(`drawPlot: ${area.w}×${area.h} px is too small for a plot (plot area ${pw}×${ph})`);
  // Data and ticks sit INSET px inside the frame: a marker (5 px) on the axis's first or last value,
  // such as the last epoch's test error, was cut in half by the clip.
  const INSET = 4;
  const sx = (x: number) => left + INSET + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * (pw - 2 * INSET);
  const sy = (v: number) => bottom - INSET - ((v - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (ph - 2 * INSET);

  canvas.drawText(opts.title, area.x + Math.max(pad, Math.round((area.w - textWidth(opts.title, titleScale)) / 2)), area.y + pad, BLACK, titleScale);

  // Grid lines and ticks.
  for (const t of xAxis.ticks) {
    const px = Math.round(sx(t.value));
    canvas.fillRect(px, top, 1, ph, GRID);
    canvas.fillRect(px, bottom, 1, 4, BLACK);
    canvas.drawText(t.label, px - Math.floor(textWidth(t.label) / 2), bottom + 6, BLACK);
  }
  for (const t of yAxis.ticks) {
    const py = Math.round(sy(t.value));
    canvas.fillRect(left, py, pw, 1, GRID);
    canvas.fillRect(left - 4, py, 4, 1, BLACK);
    canvas.drawText(t.label, left - 6 - textWidth(t.label), py - 3, BLACK);
  }
  canvas.strokeRect(left, top, pw + 1, ph + 1, BLACK);
  canvas.drawText(opts.xLabel, left + Math.round((pw - textWidth(opts.xLabel)) / 2), bottom + 6 + LINE_HEIGHT + 4, BLACK);
  canvas.drawTextUp(opts.yLabel, area.x + pad, top + Math.round((ph + textWidth(opts.yLabel)) / 2), BLACK);

  if (drawn.length === 0) {
    const msg = 'no data';
    canvas.drawText(msg, left + Math.round((pw - textWidth(msg, 2)) / 2), top + Math.round(ph / 2) - GLYPH_HEIGHT, MUTED, 2);
  }

  // Series, clipped to the frame's inside. Points are kept in the caller's order; a dropped point
  // (non-finite, or ≤ 0 on a log axis) breaks the line rather than bridging the gap.
  canvas.setClip(left + 1, top + 1, pw - 1, ph - 1);
  series.forEach((s, k) => {
    const color = seriesColor(s, k);
    const finite = usable[k].points.length;
    let prev: [number, number] | null = null;
    for (const [x, y] of s.points) {
      if (!plotted(x, y)) {
        prev = null;
        continue;
      }
      const p: [number, number] = [sx(tx(x)) + 0.5, sy(ty(y)) + 0.5];
      if (prev) canvas.drawLine(prev[0], prev[1], p[0], p[1], color, 2);
      // Markers make short series (and single points) visible.
      if (finite <= 40) canvas.fillRect(p[0] - 2.5, p[1] - 2.5, 5, 5, color);
      prev = p;
    }
  });
  canvas.resetClip();

  // Legend to the right of the frame.
  if (legendW > 0) {
    const lx = right + 10;
    let ly = top + 4;
    usable.forEach((s, k) => {
      const has = s.points.length > 0;
      const color = seriesColor(series[k], k);
      if (has) canvas.fillRect(lx, ly + 3, 20, 3, color);
      canvas.drawText(fitText(legendNames[k], Math.floor((legendW - 26) / CHAR_ADVANCE)), lx + 26, ly, has ? BLACK : MUTED);
      ly += LINE_HEIGHT + 4;
    });
  }
}

/** A line plot as a PNG: axes, numeric ticks, grid, legend, one colour per series. Empty and
 * non-finite data are skipped; with no data at all the axes are drawn with a "no data" note. */
export function renderCurves(series: Series[], opts: CurveOptions): Buffer {
  const canvas = new Canvas(opts.width ?? 800, opts.height ?? 500);
  drawPlot(canvas, { x: 0, y: 0, w: canvas.width, h: canvas.height }, series, opts);
  return canvas.toPng();
}

// ---------------------------------------------------------------------------------------------
// Training curves from the metrics log

/**
 * The curves read the metrics log's records (format and numbering: nin/run-directory.ts). The x
 * axis is "epochs completed": an epoch record sits at its `epoch`, and a step of epoch index e at
 * e + (steps done in that epoch) / (its steps), within (e, e + 1]. A resumed run's log, which
 * starts later, lands where it belongs; what a resume superseded is left out. A null where a
 * number belongs (JSON's spelling of NaN) becomes a gap in the curve. Errors (fractions) are
 * plotted as percentages.
 */
export interface TrainingCurveOptions {
  title?: string;
  width?: number;
  height?: number;
  /** Log-scale loss axis (default false). */
  logLoss?: boolean;
  /** Log-scale error axis (default true: errors fall from tens of % to under 1%, as on MNIST/SVHN,
   * and a linear axis flattens the end of training; epochs with exactly 0 error are then left out). */
  logError?: boolean;
}

type Rec = Record<string, unknown>;

function field(r: Rec, key: string): number | undefined {
  const v = r[key];
  if (typeof v === 'number') return v;
  if (v === null) return NaN;
  return undefined;
}

/** Centred moving average over an odd `window` of finite values (non-finite ones are left out). */
function movingAverage(values: number[], window: number): number[] {
  const n = values.length;
  const sum = new Float64Array(n + 1);
  const cnt = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const ok = Number.isFinite(values[i]);
    sum[i + 1] = sum[i] + (ok ? values[i] : 0);
    cnt[i + 1] = cnt[i] + (ok ? 1 : 0);
  }
  const half = Math.floor(window / 2);
  return values.map((_, i) => {
    const a = Math.max(0, i - half);
    const b = Math.min(n, i + half + 1);
    const k = cnt[b] - cnt[a];
    return k > 0 ? (sum[b] - sum[a]) / k : NaN;
  });
}

/** The moving average's window over `points` step losses: about 2 % of them, odd, so the centred
 * window holds the count its label says (an even one took one more). */
export function stepLossWindow(points: number): number {
  return 2 * Math.floor(Math.round(points / 50) / 2) + 1;
}

/** The curves of a metrics log (`opts.window`: the step losses' moving average over that many,
 * else stepLossWindow of their count): loss vs epoch (smoothed step losses, per-epoch train/val/test
 * loss) and error % vs epoch (train/val/test, whichever the records have). */
export function trainingCurveSeries(records: object[], opts: { window?: number } = {}): { loss: Series[]; error: Series[] } {
  const recs = currentHistory(records).filter((r): r is Rec => typeof r === 'object' && r !== null) as Rec[];
  const steps = recs.filter((r) => r.kind === 'step' && typeof r.epoch === 'number');
  const epochs = recs.filter((r) => r.kind === 'epoch' && typeof r.epoch === 'number');

  // Steps: grouped by epoch index, each placed by its `step` within its epoch: epoch e spans the
  // steps from the end of epoch e − 1 to its own end (the epoch records' `step`, steps done). A
  // trailing unfinished epoch takes the last start or resume record's stepsPerEpoch, else the
  // previous epoch's length. Logs without either: spread evenly over (e, e + 1], an unfinished
  // epoch at the pace of a typical finished one.
  const groups = new Map<number, Rec[]>();
  for (const r of steps) {
    const e = r.epoch as number;
    if (!groups.has(e)) groups.set(e, []);
    groups.get(e)!.push(r);
  }
  const stepsDone = new Map<number, number>([[0, 0]]); // epochs completed → steps done then
  for (const r of epochs) {
    const s = field(r, 'step');
    if (s !== undefined && Number.isFinite(s)) stepsDone.set(r.epoch as number, s);
  }
  const stretchPace = recs.filter((r) => r.kind === 'start' || r.kind === 'resume').map((r) => field(r, 'stepsPerEpoch')).filter((v) => v !== undefined && v > 0).at(-1);
  const finished = new Set(epochs.map((r) => (r.epoch as number) - 1)); // indices of logged epochs
  const keys = [...groups.keys()].sort((a, b) => a - b);
  const fullSizes = keys.filter((e, i) => finished.has(e) || i < keys.length - 1).map((e) => groups.get(e)!.length).sort((a, b) => a - b);
  const typical = fullSizes.length > 0 ? fullSizes[Math.floor(fullSizes.length / 2)] : 0;
  const stepPoints: [number, number][] = [];
  for (const [i, e] of keys.entries()) {
    const g = groups.get(e)!.sort((a, b) => (field(a, 'step') ?? 0) - (field(b, 'step') ?? 0));
    const start = stepsDone.get(e);
    const previous = e > 0 && stepsDone.has(e - 1) && start !== undefined ? start - stepsDone.get(e - 1)! : undefined;
    const length = stepsDone.has(e + 1) && start !== undefined ? stepsDone.get(e + 1)! - start : (stretchPace ?? previous);
    if (start !== undefined && length !== undefined && length > 0 && g.every((r) => field(r, 'step') !== undefined)) {
      for (const r of g) stepPoints.push([e + Math.min(1, Math.max(0, (field(r, 'step')! - start + 1) / length)), field(r, 'loss') ?? NaN]);
      continue;
    }
    const denom = finished.has(e) || i < keys.length - 1 ? g.length : Math.max(g.length, typical);
    g.forEach((r, j) => stepPoints.push([e + (j + 1) / denom, field(r, 'loss') ?? NaN]));
  }
  const window = opts.window ?? stepLossWindow(stepPoints.length);
  const smooth = movingAverage(stepPoints.map((p) => p[1]), window);
  // Thin to about 800 points: the curve is already smooth, and the plot is not that wide.
  const every = Math.max(1, Math.ceil(stepPoints.length / 800));
  const smoothed: [number, number][] = [];
  for (let i = 0; i < stepPoints.length; i += every) smoothed.push([stepPoints[i][0], smooth[i]]);
  if (stepPoints.length > 0 && (stepPoints.length - 1) % every !== 0) smoothed.push([stepPoints[stepPoints.length - 1][0], smooth[stepPoints.length - 1]]);

  // One colour per split in both panels (CURVE_COLORS), whichever curves a log has.
  const epochSeries = (name: string, key: string, color: Rgb, factor = 1): Series | null => {
    if (!epochs.some((r) => key in r)) return null;
    const pts = epochs.map((r): [number, number] => [r.epoch as number, (field(r, key) ?? NaN) * factor]);
    return { name, color, points: pts.sort((a, b) => a[0] - b[0]) };
  };
  const present = (s: (Series | null)[]) => s.filter((x): x is Series => x !== null);
  const c = CURVE_COLORS;
  const lossSeries = present([
    steps.length > 0 ? { name: window > 1 ? `step loss (mean of ${window})` : 'step loss', color: c.steps, points: smoothed } : null,
    epochSeries('train loss (epoch)', 'trainLoss', c.train),
    epochSeries('validation loss', 'valLoss', c.validation),
    epochSeries('test loss', 'testLoss', c.test),
  ]);
  const errorSeries = present([
    epochSeries('train error', 'trainError', c.train, 100),
    epochSeries('validation error', 'valError', c.validation, 100),
    epochSeries('test error', 'testError', c.test, 100),
  ]);
  return { loss: lossSeries, error: errorSeries };
}

/** The training curves' colours, the same in the loss and error panels. */
export const CURVE_COLORS = { steps: SERIES_COLORS[7], train: SERIES_COLORS[0], validation: SERIES_COLORS[1], test: SERIES_COLORS[2] } as const;

/** The note a run's curves need where its test set changed (a resume with another --test-limit, or
 * test/ folder): its test error curve mixes them. Null where it did not. */
export function testSetChange(records: object[]): string | null {
  const sizes = [...new Set(currentHistory(records).map((r) => ((r as Rec).kind === 'epoch' ? (r as Rec).testImages : undefined)).filter((n) => typeof n === 'number'))];
  return sizes.length > 1 ? `the test set changed during the run (${sizes.join(', ')} images): its test error curve mixes them` : null;
}

/** The note curves need where their history starts at a resume (epochsMissing): a fork whose
 * parent's log was found nowhere, or a run whose own log before its resume was deleted. */
export function historyGap(records: object[]): string | null {
  const history = currentHistory(records);
  const missing = epochsMissing(history);
  if (missing === 0) return null;
  const fork = (history[0] as { parent?: unknown }).parent !== undefined;
  return `${fork ? `a fork after epoch ${missing} whose parent's log was not found` : `a run resumed after epoch ${missing} whose log before that was not found`}: epochs 1–${missing} are missing`;
}

/** Two panels in one PNG: trainingCurveSeries' loss and error curves, under `opts.title` and
 * testSetChange's and historyGap's notes. */
export function renderTrainingCurves(records: object[], opts: TrainingCurveOptions = {}): Buffer {
  const { loss: lossSeries, error: errorSeries } = trainingCurveSeries(records);
  const width = opts.width ?? 1400;
  const height = opts.height ?? 520;
  const canvas = new Canvas(width, height);
  let y0 = 0;
  const titles = [opts.title, testSetChange(records), historyGap(records)].filter((t): t is string => Boolean(t));
  for (const [i, title] of titles.entries()) {
    const scale = i === 0 && opts.title ? 2 : 1; // (a note in the small type)
    canvas.drawText(title, Math.max(8, Math.round((width - textWidth(title, scale)) / 2)), y0 + 8, BLACK, scale);
    y0 += GLYPH_HEIGHT * scale + 12;
  }
  const half = Math.floor(width / 2);
  drawPlot(canvas, { x: 0, y: y0, w: half, h: height - y0 }, lossSeries, {
    title: 'loss',
    xLabel: 'epoch',
    xFrom: 0,
    yLabel: opts.logLoss ? 'loss (log scale)' : 'loss',
    logY: opts.logLoss,
  });
  const logError = opts.logError ?? true;
  drawPlot(canvas, { x: half, y: y0, w: width - half, h: height - y0 }, errorSeries, {
    title: 'error',
    xLabel: 'epoch',
    xFrom: 0,
    yLabel: logError ? 'error (%, log scale)' : 'error (%)',
    logY: logError,
    zeroOnFloor: true,
  });
  return canvas.toPng();
}
