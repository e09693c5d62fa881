// Text in a terminal's columns: class names from image folders may be Chinese, Japanese or Korean
// (two columns a character), carry combining accents (none), or emoji (two). String length and
// padStart count UTF-16 units, which misaligns tables; these count columns as terminals do (the
// common cases of Unicode's East Asian Width, not every one).

/** Code points a terminal draws two columns wide: CJK ideographs, kana, Hangul, fullwidth forms, emoji. */
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f680}-\u{1f6ff}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
/** Code points drawn in no column of their own: combining marks, zero-width joiners and spaces, variation selectors. */
const ZERO = /[\p{M}\u200b-\u200f\ufe00-\ufe0f]/u;

function columnsOf(codePoint: string): number {
  return ZERO.test(codePoint) ? 0 : WIDE.test(codePoint) ? 2 : 1;
}

/** The columns `text` takes in a terminal. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const c of text) width += columnsOf(c);
  return width;
}

/** `text` cut to at most `columns` columns, whole characters (a combining mark stays with its letter). */
export function clipToWidth(text: string, columns: number): string {
  let out = '';
  let width = 0;
  for (const c of text) {
    const w = columnsOf(c);
    if (width + w > columns) break;
    out += c;
    width += w;
  }
  return out;
}

/** `text` padded with spaces on the right to `columns` columns. */
export function padEndTo(text: string, columns: number): string {
  return text + ' '.repeat(Math.max(0, columns - displayWidth(text)));
}

/** `text` padded with spaces on the left to `columns` columns. */
export function padStartTo(text: string, columns: number): string {
  return ' '.repeat(Math.max(0, columns - displayWidth(text))) + text;
}
