// Text in terminal columns (nin/text.ts) and the confusion matrix that uses it: class names of
// image folders in any script line up.
import { describe, expect, it } from 'vitest';
import { clipToWidth, counted, displayWidth, fmtTime, imageRate, shellWord, listSome, padEndTo, padStartTo, tableLines } from '../nin/text.ts';
import { formatConfusion } from '../nin/train.ts';

describe('terminal columns', () => {
  it('counts CJK and emoji as two columns, combining marks as none', () => {
    expect(displayWidth('cat')).toBe(3);
    expect(displayWidth('猫')).toBe(2);
    expect(displayWidth('\u{2000b}\u{2a6b2}')).toBe(4); // ideographs past the BMP (CJK Extension B)
    expect(displayWidth('ねこ')).toBe(4);
    expect(displayWidth('고양이')).toBe(6);
    expect(displayWidth('Ｃａｔ')).toBe(6); // fullwidth forms
    expect(displayWidth('🐱')).toBe(2); // outside the BMP: one code point, two UTF-16 units
    expect(displayWidth('E\u0301cole')).toBe(5); // É decomposed, as macOS spells file names
    expect(displayWidth('École')).toBe(5);
    expect(displayWidth('한국어'.normalize('NFD'))).toBe(6); // Hangul as jamo: the vowels and finals join the initial
    expect(displayWidth('１２３、。㎏\u3000')).toBe(14); // fullwidth digits, CJK punctuation and units, the ideographic space
    expect(displayWidth('☕⭐🫠🀄🟠')).toBe(10); // emoji outside the first pictographic block
    expect(displayWidth('❤️')).toBe(2); // asked for as emoji (U+FE0F); alone, ❤ is text
    expect(displayWidth('❤')).toBe(1);
    expect(displayWidth('👨‍👩‍👧')).toBe(2); // joined: one picture
    expect(displayWidth('👍🏽')).toBe(2); // a skin tone modifies, takes no column
    expect(displayWidth('🇯🇵🇫🇷')).toBe(4); // a flag is two regional indicator letters, drawn as one
    expect(displayWidth('🇯🇵🇫')).toBe(4); // a letter without its pair is drawn alone
    expect(displayWidth('a\u00adb\u2060c\ufeff\u200b')).toBe(3); // soft hyphen, word joiner, BOM, zero-width space
  });

  it('clips whole characters to a width, and pads to one', () => {
    expect(clipToWidth('airplane', 6)).toBe('airpla');
    expect(clipToWidth('猫猫猫猫', 5)).toBe('猫猫'); // a third would take columns 5 and 6
    expect(clipToWidth('🐱🐶🐭', 3)).toBe('🐱'); // not half a surrogate pair
    expect(clipToWidth('E\u0301E\u0301E\u0301', 2)).toBe('E\u0301E\u0301'); // the accent stays with its letter
    expect(clipToWidth('👨‍👩‍👧x', 2)).toBe('👨‍👩‍👧'); // not cut after a joiner
    expect(clipToWidth('a👨‍👩‍👧', 2)).toBe('a');
    expect(clipToWidth('🇯🇵🇫🇷', 3)).toBe('🇯🇵'); // a flag is not split into its letters
    expect(padStartTo('猫', 4)).toBe('  猫');
    expect(padEndTo('猫', 4)).toBe('猫  ');
    expect(padEndTo('toolong', 3)).toBe('toolong');
  });
});

describe('tables, lists and counts in words', () => {
  it('a table: names padded on the right, numbers on the left, a rule as wide as each column, a header wider than its cells setting the width, no trailing spaces', () => {
    expect(tableLines(['class', 'images'], [['cat', '7'], ['elephant', '1234']])).toEqual([
      'class     images',
      '--------  ------',
      'cat            7',
      'elephant    1234',
    ]);
    // Every column padded on the right: the last cells' padding is trimmed.
    expect(tableLines(['name', 'note'], [['a', 'x'], ['bb', '']], 2)).toEqual(['name  note', '----  ----', 'a     x', 'bb']);
  });

  it('lists five items whole, and the first five of more with how many more', () => {
    expect(listSome(['a', 'b', 'c', 'd', 'e'])).toBe('a, b, c, d, e');
    expect(listSome(['a', 'b', 'c', 'd', 'e', 'f', 'g'])).toBe('a, b, c, d, e and 2 more');
    expect(listSome(['a', 'b', 'c'], 2)).toBe('a, b and 1 more');
    expect(listSome([])).toBe('');
  });

  it('counts with their nouns, plural but for one; img/s to a tenth, two significant digits below 0.95', () => {
    expect([0, 1, 2].map((n) => counted(n, 'image'))).toEqual(['0 images', '1 image', '2 images']);
    expect([0, 0.033, 0.9, 0.94, 0.949, 0.95, 0.96, 0.999, 1, 12.345].map(imageRate)).toEqual(['0.0', '0.033', '0.90', '0.94', '0.95', '0.95', '0.96', '1.0', '1.0', '12.3']);
  });
});

describe('formatConfusion', () => {
  /** Each line's columns, where its cells end: the matrix is aligned when every line's cells end alike. */
  const cellEnds = (line: string) => [...line.matchAll(/\S+/g)].map((m) => displayWidth(line.slice(0, m.index! + m[0].length)));

  it('lines up class names in any script, cut to the cells', () => {
    const names = ['猫', 'ねこ犬犬犬犬', 'École', 'E\u0301cole-2', '🐱cat'];
    const confusion = names.map((_, i) => names.map((__, j) => (i === j ? 1000 + i : j)));
    const lines = formatConfusion(confusion, names).split('\n');
    expect(lines[0]).toBe('confusion matrix (rows: true class, columns: predicted)');
    const [head, ...rows] = lines.slice(1);
    // The header's cells end where each row's count cells do (a row's first match is its name).
    for (const row of rows) expect(cellEnds(row).slice(-names.length), row).toEqual(cellEnds(head));
    expect(head.trim().split(/\s+/)).toEqual(['猫', 'ねこ犬', 'École', 'E\u0301cole-', '🐱cat']);
    expect(rows.map((r) => r.slice(0, r.search(/\s{2}/)))).toEqual(names);
    expect(rows[1].trim().split(/\s+/).slice(1).map(Number)).toEqual([0, 1001, 2, 3, 4]);
  });

  it("cuts long row names to 24 columns, and keeps the rows' names apart from their counts", () => {
    const long = 'a-very-long-class-name-that-goes-on';
    const [, head, first, second] = formatConfusion([[1, 0], [0, 1]], [long, 'x']).split('\n');
    expect(first.startsWith(long.slice(0, 24) + '  ')).toBe(true);
    expect(second.startsWith('x' + ' '.repeat(25))).toBe(true);
    expect(head.startsWith(' '.repeat(26))).toBe(true);
    // Short names: the rows' names take 6 columns at the least, and two spaces follow.
    const [, shortHead, shortRow] = formatConfusion([[1, 0], [0, 1]], ['0', '1']).split('\n');
    expect(shortRow).toBe('0' + ' '.repeat(7) + '      1      0');
    expect(shortHead).toBe(' '.repeat(8) + '      0      1');
  });

  it('numbers the classes where cut names would head two columns alike', () => {
    const names = Array.from({ length: 12 }, (_, i) => `class_${String(i).padStart(2, '0')}`);
    const confusion = names.map((_, i) => names.map((__, j) => (i === j ? 5 : 0)));
    const [, head, ...rows] = formatConfusion(confusion, names).split('\n');
    expect(head.trim().split(/\s+/)).toEqual(names.map((_, i) => String(i)));
    expect(rows[0].startsWith(' 0 class_00  ')).toBe(true);
    expect(rows[11].startsWith('11 class_11  ')).toBe(true);
    for (const row of rows) expect(cellEnds(row).slice(-names.length)).toEqual(cellEnds(head));
    // Distinct when cut: names head the columns, as for the data sets.
    const cifar = ['airplane', 'automobile', 'bird'];
    const [, cifarHead, cifarRow] = formatConfusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], cifar).split('\n');
    expect(cifarHead.trim().split(/\s+/)).toEqual(['airpla', 'automo', 'bird']);
    expect(cifarRow).toBe('airplane'.padEnd('automobile'.length + 2) + '      1      0      0'); // full names, cells of 7
  });
});

describe('shellWord', () => {
  it('leaves a plain path as it is and quotes one a shell would split or expand, so that a suggested command can be pasted', () => {
    expect(shellWord('runs/mnist-small-3/checkpoint.safetensors')).toBe('runs/mnist-small-3/checkpoint.safetensors');
    expect(shellWord('/tmp/a b/checkpoint.safetensors')).toBe("'/tmp/a b/checkpoint.safetensors'");
    expect(shellWord("runs/O'Brien")).toBe("'runs/O'\\''Brien'");
    expect(shellWord('runs/$HOME*')).toBe("'runs/$HOME*'");
    expect(shellWord('runs/café')).toBe("'runs/café'");
  });
});

describe('fmtTime', () => {
  it('rounds each unit before taking the larger: never 60s in a minute, nor 60m in an hour; from an hour on to the minute, from a day on to the hour', () => {
    expect([0, 59.4, 59.6, 61, 119.6, 3599.4, 3599.5, 3629, 3631, 86369, 86371, 1511509].map(fmtTime)).toEqual(
      ['0s', '59s', '1m00s', '1m01s', '2m00s', '59m59s', '1h00m', '1h00m', '1h01m', '23h59m', '1d00h', '17d12h'],
    );
    expect(fmtTime(Infinity)).toBe('?');
  });
});
