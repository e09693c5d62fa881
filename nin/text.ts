// Text for the terminal: counts, durations and lists in words (counted, fmtTime, listSome, imageRate), and text in a
// terminal's columns. Class names from image folders may be Chinese, Japanese or Korean
// (two columns a character), carry combining accents (none), or emoji (two). String length and
// padStart count UTF-16 units, which misaligns tables; these count columns as terminals do (the
// common cases of Unicode's East Asian Width, not every one).

/** Code points a terminal draws two columns wide: CJK ideographs, kana, Hangul syllables, fullwidth
 * forms, and emoji (those shown as emoji by default, and the pictographic planes). */
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\ua960-\ua97f\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f000}-\u{1faff}\u{20000}-\u{3fffd}]|\p{Emoji_Presentation}/u;
/** Code points drawn in no column of their own: combining marks, Hangul's medial and final jamo,
 * zero-width spaces and joiners, soft hyphens, variation selectors, emoji skin tones. */
const ZERO = /[\p{M}\u00ad\u1160-\u11ff\ud7b0-\ud7ff\u200b-\u200f\u2060-\u2064\ufeff\ufe00-\ufe0f\u{1f3fb}-\u{1f3ff}]/u;
const JOINER = '\u200d';
const REGIONAL_INDICATOR = /[\u{1f1e6}-\u{1f1ff}]/u;
const EMOJI_STYLE = '\ufe0f';

/** Each code point of `text` with the columns it adds: a pictograph after a zero-width joiner
 * adds none (👨‍👩‍👧 is drawn as one), one asked for as emoji (❤️: U+2764 U+FE0F) takes two, and a
 * flag, two regional indicator letters (🇯🇵: U+1F1EF U+1F1F5), takes two. */
function columns(text: string): [string, number][] {
  const points = [...text];
  let letters = 0; // regional indicators in a row so far: each second one completes a flag
  return points.map((c, i) => {
    letters = REGIONAL_INDICATOR.test(c) ? letters + 1 : 0;
    if (ZERO.test(c) || points[i - 1] === JOINER || (letters > 0 && letters % 2 === 0)) return [c, 0];
    if (WIDE.test(c) || (points[i + 1] === EMOJI_STYLE && /\p{Extended_Pictographic}/u.test(c))) return [c, 2];
    return [c, 1];
  });
}

/** `a, b, c`, or the first `listed` and how many more. */
export function listSome(items: readonly string[], listed = 5): string {
  return items.slice(0, listed).join(', ') + (items.length > listed ? ` and ${items.length - listed} more` : '');
}

/** `1 image`, `2 images`: a count and its noun, plural but for one. */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** img/s to a tenth, two digits below 1 (a tiny run's epoch, mostly compiles: 0.033, not 0.0). */
export function imageRate(imgPerSec: number): string {
  // (below 1, not 0.95: 0.95 is stored as 0.9499…, which toFixed(1) made 0.9, after 0.949's 0.95)
  return imgPerSec > 0 && imgPerSec < 1 ? imgPerSec.toPrecision(2) : imgPerSec.toFixed(1);
}

/** A duration: 45s, 2m05s, 1h31m, 2d04h. */
export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  // Each unit rounded before the larger is taken: 119.6 s is 2m00s, not 1m60s. From an hour on,
  // to the minute (a GPU run's ETA, a dry run's estimate), and from a day on, to the hour.
  const pair = (unit: number, big: string, small: string) => {
    const whole = Math.round(s / unit);
    return `${Math.floor(whole / 60)}${big}${String(whole % 60).padStart(2, '0')}${small}`;
  };
  if (Math.round(s) < 60) return `${Math.round(s)}s`;
  if (Math.round(s) < 3600) return pair(1, 'm', 's');
  if (Math.round(s / 60) < 24 * 60) return pair(60, 'h', 'm');
  const hours = Math.round(s / 3600);
  return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, '0')}h`;
}

/** A path as a shell word, for a command the user may paste: as it is where that is safe, else in
 * single quotes (a run directory named "run 2" or "O'Brien"). */
export function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** The columns `text` takes in a terminal. */
export function displayWidth(text: string): number {
  return columns(text).reduce((sum, [, w]) => sum + w, 0);
}

/** `text` cut to at most `columns` columns, whole characters (a combining mark or a joined emoji
 * stays with what it joins). */
export function clipToWidth(text: string, width: number): string {
  let out = '';
  let used = 0;
  for (const [c, w] of columns(text)) {
    if (used + w > width) break;
    out += c;
    used += w;
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

/** A table's lines in terminal columns: the header, a rule, the rows; the first `leftColumns`
 * columns padded on the right (names), the rest on the left (numbers). */
export function tableLines(header: string[], rows: string[][], leftColumns = 1): string[] {
  const widths = header.map((h, c) => Math.max(displayWidth(h), ...rows.map((row) => displayWidth(row[c]))));
  const line = (cells: string[]) => cells.map((s, c) => (c < leftColumns ? padEndTo(s, widths[c]) : padStartTo(s, widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}
