// Validation split, augmentation and the batch loader, on small synthetic sets whose pixels encode
// the example index, so every check can tell which example ended up where.
import { describe, expect, it } from 'vitest';
import {
  BatchLoader,
  Rng,
  augmentBatch,
  augmentRecord,
  deriveSeed,
  permutation,
  assembleSplits,
  concatDatasets,
  limitParts,
  validationPlan,
  validationSize,
  takeExamples,
  type Batch,
  type ImageDataset,
} from '../nin/data/index.ts';
import { gaussian } from '../nin/data/rng.ts';

/** count images of H×W×C; pixel (n, y, x, c) = n·1000 + y·100 + x·10 + c + 1 (never 0); label n % 10. */
function synthetic(count: number, H = 4, W = 5, C = 3): ImageDataset {
  const images = new Float32Array(count * H * W * C);
  for (let n = 0; n < count; n++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) images[((n * H + y) * W + x) * C + c] = n * 1000 + y * 100 + x * 10 + c + 1;
  const labels = Int32Array.from({ length: count }, (_, n) => n % 10);
  return { name: 'synthetic', images, labels, count, height: H, width: W, channels: C, classNames: [], sources: [], notes: [] };
}
const exampleOf = (ds: Pick<ImageDataset, 'images' | 'height' | 'width' | 'channels'>, i: number): number =>
  Math.floor((ds.images[i * ds.height * ds.width * ds.channels] - 1) / 1000);

describe('seeded RNG', () => {
  it('is reproducible, seed-sensitive and roughly uniform', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.nextInt(10));
    expect(Array.from({ length: 1000 }, () => b.nextInt(10))).toEqual(xs);
    expect(Array.from({ length: 20 }, () => new Rng(43).nextUint32())).not.toEqual(Array.from({ length: 20 }, () => new Rng(42).nextUint32()));
    const hist = new Array(10).fill(0);
    for (const x of xs) hist[x]++;
    expect(Math.min(...hist)).toBeGreaterThan(60);
    const p = permutation(100, 7);
    expect([...p].sort((u, v) => u - v)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('draws exactly the streams it drew before (golden values: a run resumed by a later version gets the same split, init and shuffles)', () => {
    const r = new Rng(1);
    expect(Array.from({ length: 5 }, () => r.nextUint32())).toEqual([418128060, 3712186797, 1764717425, 4181822725, 4195548534]);
    expect([deriveSeed(1, 2), deriveSeed(1, 2, 3)]).toEqual([2989509622, 3799802083]);
    // Seed 7's expanded state has an even fourth word (made odd by the constructor).
    expect(Array.from(permutation(10, 7))).toEqual([4, 5, 0, 7, 3, 2, 6, 8, 9, 1]);
    expect(gaussian(4, 1, 1)).toEqual(Float32Array.of(0.29783740639686584, -0.3407937288284302, 1.0146538019180298, -0.1694975197315216));
  });

  it('nextInt refuses a bound that is not an integer in [1, 2^32]; nextFloat stays below 1 even for the largest 32-bit draw', () => {
    const r = new Rng(1);
    expect(() => r.nextInt(2.5)).toThrow(new RangeError('Rng.nextInt: bound 2.5 must be an integer in [1, 2^32]'));
    expect(() => r.nextInt(2 ** 32 + 1)).toThrow(new RangeError('Rng.nextInt: bound 4294967297 must be an integer in [1, 2^32]'));
    expect(() => r.nextInt(0)).toThrow(new RangeError('Rng.nextInt: bound 0 must be an integer in [1, 2^32]'));
    class Largest extends Rng {
      override nextUint32(): number {
        return 0xffffffff;
      }
    }
    expect(new Largest(1).nextFloat()).toBe(4294967295 / 4294967296);
    expect(new Largest(1).nextFloat()).toBeLessThan(1);
  });

  it('nextInt rejects exactly the draws past the last whole multiple of its bound (no modulo bias); 2^32 itself is a bound', () => {
    class Scripted extends Rng {
      draws: number[] = [];
      override nextUint32(): number {
        return this.draws.shift()!;
      }
    }
    const r = new Scripted(1);
    const n = 3 * 2 ** 30; // 2^32 % n = 2^30: a third of the draws past the limit would fold onto 0..2^30−1
    r.draws = [n, 2 ** 32 - 1, n - 1, 5];
    expect(r.nextInt(n)).toBe(n - 1); // draws n and 2^32 − 1 rejected, n − 1 taken
    expect(r.draws).toEqual([5]);
    r.draws = [2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32 - 3]; // 2^32 % 3 = 1: only 2^32 − 1 is past the limit
    expect([r.nextInt(3), r.nextInt(3)]).toEqual([(2 ** 32 - 2) % 3, (2 ** 32 - 3) % 3]);
    expect(new Rng(1).nextInt(2 ** 32)).toBe(418128060); // the first draw, whole
  });

  it('gaussian: N(0, std²), its two Box–Muller halves independent of each other', () => {
    const n = 100000;
    const std = 0.05;
    const g = gaussian(n, 1, std);
    let sum = 0;
    let squares = 0;
    for (const v of g) {
      sum += v;
      squares += v * v;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.01 * std);
    expect(Math.abs(Math.sqrt(squares / n) / std - 1)).toBeLessThan(0.02);
    // The cosine (even) and sine (odd) halves of each pair: uncorrelated.
    let cross = 0;
    for (let i = 0; i < n; i += 2) cross += g[i] * g[i + 1];
    expect(Math.abs(cross / (n / 2) / (std * std))).toBeLessThan(0.02);
  });
});

describe('validation split', () => {
  const ds = synthetic(50);
  /** The original example numbers in a set built from `ds` (or from parts numbered on from it). */
  const examples = (set: ImageDataset) => Array.from({ length: set.count }, (_, i) => exampleOf(set, i));

  it('sizes, disjointness, coverage, and images/labels that follow their examples', () => {
    const { train, validation } = assembleSplits([ds], { count: 10, from: 'random' }, 1, 'synthetic');
    expect(train.count).toBe(40);
    expect(validation!.count).toBe(10);
    const [t, v] = [examples(train), examples(validation!)];
    expect([...t, ...v].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(t.filter((i) => v.includes(i))).toEqual([]);
    for (let i = 0; i < 10; i++) expect(validation!.labels[i]).toBe(v[i] % 10);
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(train.name).toBe('synthetic[train 40]');
  });

  it('a random split compacted in place: every training image is its example\'s, beside its label', () => {
    const whole = new Float32Array(new SharedArrayBuffer(ds.images.byteLength));
    whole.set(ds.images);
    const { train, validation } = assembleSplits([{ ...ds, images: whole }], { count: 10, from: 'random' }, 1, 'synthetic', { inPlace: true });
    expect(train.images.buffer).toBe(whole.buffer);
    const copied = assembleSplits([ds], { count: 10, from: 'random' }, 1, 'synthetic');
    expect(examples(validation!)).toEqual(examples(copied.validation!));
    // Example 4 is held out (the golden split below): slot 4 takes example 5, a move of one slot.
    expect(train.images).toEqual(copied.train.images);
    const per = ds.height * ds.width * ds.channels;
    for (let i = 0; i < train.count; i++) {
      const g = examples(train)[i];
      expect(train.images.subarray(i * per, (i + 1) * per)).toEqual(ds.images.subarray(g * per, (g + 1) * per));
      expect(train.labels[i]).toBe(g % 10);
    }
  });

  it('draws the split it drew before (golden values: a resumed run validates on the same images)', () => {
    expect(examples(assembleSplits([ds], { count: 10, from: 'random' }, 1, 'synthetic').validation!)).toEqual([4, 12, 14, 15, 24, 29, 32, 38, 39, 43]);
    // Per class, each class by its own stream.
    const tenClasses = { ...ds, classNames: Array.from({ length: 10 }, (_, k) => `${k}`) };
    expect(examples(assembleSplits([tenClasses], { perClass: [2] }, 1, 'synthetic').validation!)).toEqual([7, 8, 10, 11, 12, 13, 14, 15, 18, 19, 21, 22, 26, 30, 35, 37, 43, 44, 46, 49]);
  });

  it('parts without a plan are joined, not the first alone; a limit of exactly the first part is that part, uncopied; the sets name every part\'s sources', () => {
    const a = { ...takeExamples(ds, Array.from({ length: 30 }, (_, i) => i)), name: 'a', sources: ['a.bin'] };
    const b = { ...takeExamples(ds, Array.from({ length: 20 }, (_, i) => 30 + i)), name: 'b', sources: ['b.bin'] };
    const joined = assembleSplits([a, b], null, 1, 'a+b').train;
    expect(joined.count).toBe(a.count + b.count);
    expect(examples(joined)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const limited = limitParts([a, b], a.count);
    expect(limited).toHaveLength(1);
    expect(limited[0]).toBe(a);
    const split = assembleSplits([a, b], { count: 5, from: 'end' }, 1, 'a+b');
    expect(split.train.sources).toEqual(['a.bin', 'b.bin']);
    expect(split.validation!.sources).toEqual(['a.bin', 'b.bin']);
    // Their notes too (a partial file's), not the first part's alone.
    const noted = assembleSplits([{ ...a, notes: ['a is partial'] }, { ...b, notes: ['b is partial'] }], { count: 5, from: 'end' }, 1, 'a+b');
    expect([noted.train.notes, noted.validation!.notes]).toEqual([['a is partial', 'b is partial'], ['a is partial', 'b is partial']]);
    // Parts in one buffer but not one after the other (a gap between them) are no one array: copied, not compacted.
    const per = ds.height * ds.width * ds.channels;
    const spaced = new Float32Array(new SharedArrayBuffer((ds.images.length + per) * 4));
    spaced.set(a.images);
    spaced.set(b.images, a.images.length + per);
    const views = [{ ...a, images: spaced.subarray(0, a.images.length) }, { ...b, images: spaced.subarray(a.images.length + per) }];
    const apart = assembleSplits(views, { count: 5, from: 'random' }, 1, 'a+b', { inPlace: true });
    expect(apart.train.images.buffer).not.toBe(spaced.buffer);
    expect(apart.train.images).toEqual(assembleSplits([a, b], { count: 5, from: 'random' }, 1, 'a+b').train.images);
  });

  it('a class one image short of its per-class quota is refused', () => {
    const tenClasses = { ...ds, name: 'svhn/train', classNames: Array.from({ length: 10 }, (_, k) => `${k}`) }; // 5 images of each class
    expect(() => assembleSplits([tenClasses], { perClass: [6] }, 1, 'svhn')).toThrow(new RangeError('svhn/train: the validation set takes 6 images of class 0 (0) from it, but it has 5'));
    expect(assembleSplits([tenClasses], { perClass: [4] }, 1, 'svhn').validation!.count).toBe(40);
    // A class with exactly its quota gives all of it.
    const fiveOrSix = { ...synthetic(55), name: 'svhn/train', classNames: tenClasses.classNames }; // classes 0..4: 6 images, 5..9: 5
    const exact = assembleSplits([fiveOrSix], { perClass: [5] }, 1, 'svhn');
    expect([exact.validation!.count, exact.train.count]).toEqual([50, 5]);
    expect(Array.from(exact.train.labels).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it("a streamed set (an image folder read batch by batch) splits by its pictures' paths, each label beside its picture; one part only", () => {
    const paths = Array.from({ length: 12 }, (_, i) => `p${i}.png`);
    const streamed: ImageDataset = { ...synthetic(0), name: 'pics', labels: Int32Array.from({ length: 12 }, (_, i) => i % 3), count: 12, classNames: ['a', 'b', 'c'], stream: { paths } };
    const labelOf = (p: string) => Number(p.slice(1, -4)) % 3;
    const { train, validation } = assembleSplits([streamed], { count: 4, from: 'end' }, 1, 'pics');
    expect([train.count, train.stream!.paths, Array.from(train.labels)]).toEqual([8, paths.slice(0, 8), paths.slice(0, 8).map(labelOf)]);
    expect([validation!.count, validation!.stream!.paths, Array.from(validation!.labels)]).toEqual([4, paths.slice(8), [2, 0, 1, 2]]);
    const drawn = assembleSplits([streamed], { count: 5, from: 'random' }, 1, 'pics').validation!;
    expect(Array.from(drawn.labels)).toEqual(drawn.stream!.paths.map(labelOf));
    expect(() => takeExamples(streamed, [3, 12])).toThrow(new RangeError('index 12 outside 0..11 of pics'));
    expect(() => assembleSplits([streamed, streamed], null, 1, 'two')).toThrow(new RangeError("two[train 24]: a streamed set is one part (an image folder's split), not pics + pics"));
  });

  it("'end' holds out the last N examples, across parts too, in order; the rest train in order, compacted in place", () => {
    const { train, validation } = assembleSplits([ds], { count: 12, from: 'end' }, 1, 'synthetic');
    expect(examples(validation!)).toEqual(Array.from({ length: 12 }, (_, i) => 38 + i));
    expect(examples(train)).toEqual(Array.from({ length: 38 }, (_, i) => i));
    expect(Array.from(validation!.labels)).toEqual(Array.from({ length: 12 }, (_, i) => (38 + i) % 10));
    // The seed plays no part.
    expect(examples(assembleSplits([ds], { count: 12, from: 'end' }, 2, 'synthetic').validation!)).toEqual(examples(validation!));
    // Two parts in one buffer (SVHN's train + extra): the last N of the second, the first part and the rest of the second untouched in place.
    const whole = new Float32Array(new SharedArrayBuffer(ds.images.byteLength));
    whole.set(ds.images);
    const per = ds.height * ds.width * ds.channels;
    const a = { ...takeExamples(ds, Array.from({ length: 30 }, (_, i) => i)), images: whole.subarray(0, 30 * per) };
    const b = { ...takeExamples(ds, Array.from({ length: 20 }, (_, i) => 30 + i)), images: whole.subarray(30 * per) };
    const split = assembleSplits([a, b], { count: 25, from: 'end' }, 1, 'a+b', { inPlace: true });
    expect(examples(split.validation!)).toEqual(Array.from({ length: 25 }, (_, i) => 25 + i));
    expect(examples(split.train)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(split.train.images.buffer).toBe(whole.buffer);
  });

  it('is reproducible by seed and changes with it; no plan means the set itself, uncopied', () => {
    const val = (seed: number) => examples(assembleSplits([ds], { count: 10, from: 'random' }, seed, 'synthetic').validation!);
    expect(val(1)).toEqual(val(1));
    expect(val(2)).not.toEqual(val(1));
    expect(assembleSplits([ds], null, 1, 'synthetic')).toEqual({ train: ds });
    expect(validationPlan(0, 'mnist', 1)).toBeNull();
  });

  it('SVHN with extra, as the paper: 400 of each class from train and 200 from extra held out, the rest trained on', () => {
    const classNames = Array.from({ length: 10 }, (_, k) => `${k}`);
    const train = { ...synthetic(4100, 2, 2, 1), name: 'svhn/train', classNames };
    const extra = synthetic(4100 + 2500, 2, 2, 1);
    // extra's examples are numbered on from train's, so exampleOf gives the global number.
    const extraPart = { ...takeExamples(extra, Array.from({ length: 2500 }, (_, i) => 4100 + i)), name: 'svhn/extra', classNames };
    const plan = validationPlan('paper', 'svhn', 2)!;
    expect(plan).toEqual({ perClass: [400, 200] });
    expect(validationSize(plan, 10)).toBe(6000);
    const { train: t, validation: v } = assembleSplits([train, extraPart], plan, 3, 'svhn/train+extra');
    expect(v!.count).toBe(6000);
    expect(t.count).toBe(4100 + 2500 - 6000);
    // In shared memory, so that LCN's worker threads normalise the gathered sets in place.
    expect(t.images.buffer).toBeInstanceOf(SharedArrayBuffer);
    const [te, ve] = [examples(t), examples(v!)];
    expect([...te, ...ve].sort((a, b) => a - b)).toEqual(Array.from({ length: 6600 }, (_, i) => i));
    for (let k = 0; k < 10; k++) {
      expect(ve.filter((g, i) => g < 4100 && v!.labels[i] === k).length).toBe(400);
      expect(ve.filter((g, i) => g >= 4100 && v!.labels[i] === k).length).toBe(200);
    }
    for (let i = 0; i < t.count; i++) expect(t.labels[i]).toBe(te[i] % 10);
    expect(t.name).toBe('svhn/train+extra[train 600]');
    // In place (loadSplits with --extra): the parts are one buffer, and the training set is
    // compacted at its front instead of copied; the same sets, the validation set copied out first.
    const whole = new Float32Array(new SharedArrayBuffer(6600 * 4 * 4));
    whole.set(train.images);
    whole.set(extraPart.images, train.images.length);
    const views = [{ ...train, images: whole.subarray(0, train.images.length) }, { ...extraPart, images: whole.subarray(train.images.length) }];
    const inPlace = assembleSplits(views, plan, 3, 'svhn/train+extra', { inPlace: true });
    expect(inPlace.train.images.buffer).toBe(whole.buffer);
    expect(inPlace.train.images.byteOffset).toBe(0);
    expect(inPlace.train.images).toEqual(t.images);
    expect(inPlace.train.labels).toEqual(t.labels);
    expect(inPlace.validation!.images).toEqual(v!.images);
    // Parts in separate buffers cannot be compacted: copied, and left as they were.
    const before = new Float32Array(extraPart.images);
    expect(assembleSplits([train, extraPart], plan, 3, 'x', { inPlace: true }).train.images).toEqual(t.images);
    expect(extraPart.images).toEqual(before);
    // Another seed, other images; the same seed, the same.
    expect(examples(assembleSplits([train, extraPart], plan, 4, 'x').validation!)).not.toEqual(ve);
    expect(examples(assembleSplits([train, extraPart], plan, 3, 'x').validation!)).toEqual(ve);
    // A random count draws from both parts; --train-limit cuts the parts in order.
    const r = examples(assembleSplits([train, extraPart], { count: 3000, from: 'random' }, 1, 'x').validation!);
    expect(r.some((g) => g < 4100) && r.some((g) => g >= 4100)).toBe(true);
    const limited = limitParts([train, extraPart], 4200);
    expect(limited.map((p) => p.count)).toEqual([4100, 100]);
    expect(limitParts([train, extraPart], 50).map((p) => p.count)).toEqual([50]);
    expect(() => assembleSplits(limited, plan, 3, 'x')).toThrow(/svhn\/extra\[:100\]: the validation set takes 200 images of class 0 \(0\) from it, but it has 10/);
  });

  it('the paper plan elsewhere is 10,000 images; impossible sizes are refused; CIFAR-100 coarse labels stay aligned', () => {
    // The last 10,000 (maxout's protocol, which NIN followed), unless told otherwise; --val N at random.
    expect(validationPlan('paper', 'cifar10', 1)).toEqual({ count: 10000, from: 'end' });
    expect(validationPlan('paper', 'mnist', 1, 'random')).toEqual({ count: 10000, from: 'random' });
    expect(validationPlan(500, 'cifar10', 1)).toEqual({ count: 500, from: 'random' });
    expect(validationPlan(500, 'svhn', 2, 'end')).toEqual({ count: 500, from: 'end' });
    expect(validationPlan('paper', 'svhn', 1)).toEqual({ perClass: [400] });
    expect(() => assembleSplits([ds], { count: 50, from: 'random' }, 1, 'synthetic')).toThrow(/validation size 50 must be an integer in 0\.\.49 \(synthetic has 50 examples\)/);
    expect(() => assembleSplits([ds], { count: 2.5, from: 'random' }, 1, 'synthetic')).toThrow(/must be an integer/);
    expect(() => assembleSplits([ds, synthetic(3, 4, 4, 3)], null, 1, 'mixed')).toThrow(/mixed: synthetic has images 4×4×3, synthetic has 4×5×3/);
    expect(() => assembleSplits([ds, synthetic(3, 4, 5, 1)], null, 1, 'mixed')).toThrow(new RangeError('mixed: synthetic has images 4×5×1, synthetic has 4×5×3'));
    expect(() => assembleSplits([], { count: 1, from: 'random' }, 1, 'svhn/train')).toThrow(new RangeError('svhn/train: no training data'));
    expect(() => assembleSplits([ds, ds], { perClass: [4] }, 1, 'two')).toThrow(new RangeError('two: a per-class validation quota for each of 2 parts is needed, got 1'));
    const withCoarse = { ...ds, coarseLabels: Int32Array.from({ length: 50 }, (_, i) => 100 + i) };
    const sub = takeExamples(withCoarse, [7, 3]);
    expect(Array.from(sub.coarseLabels!)).toEqual([107, 103]);
    expect(Array.from(sub.labels)).toEqual([7, 3]);
    expect(Array.from(sub.images.subarray(0, 3))).toEqual(Array.from(ds.images.subarray(7 * 60, 7 * 60 + 3)));
    expect(() => takeExamples(ds, [3, 50])).toThrow(/index 50 outside 0\.\.49 of synthetic/);
    expect(() => takeExamples(ds, [1.5])).toThrow(/index 1\.5 outside/);
    const { validation } = assembleSplits([withCoarse], { count: 5, from: 'random' }, 1, 'c');
    expect(Array.from(validation!.coarseLabels!)).toEqual(examples(validation!).map((g) => 100 + g));
    // Coarse labels only where every part has them.
    const mixed = assembleSplits([withCoarse, synthetic(5)], { count: 5, from: 'end' }, 1, 'c');
    expect([mixed.train.coarseLabels, mixed.validation!.coarseLabels]).toEqual([undefined, undefined]);
  });
});

describe('concatDatasets', () => {
  it('joins sets of one shape in order, with their coarse labels, sources and notes; no sets, or another shape, are refused naming them', () => {
    const a = { ...synthetic(2), name: 'a', coarseLabels: Int32Array.of(7, 8), sources: ['a.bin'], notes: ['a is partial'] };
    const b = { ...synthetic(3), name: 'b', coarseLabels: Int32Array.of(9, 9, 9), sources: ['b.bin'] };
    const ab = concatDatasets([a, b]);
    expect({ name: ab.name, count: ab.count, sources: ab.sources, notes: ab.notes }).toEqual({ name: 'a+b', count: 5, sources: ['a.bin', 'b.bin'], notes: ['a is partial'] });
    expect(Array.from(ab.labels)).toEqual([0, 1, 0, 1, 2]);
    expect(Array.from(ab.coarseLabels!)).toEqual([7, 8, 9, 9, 9]);
    expect(ab.images).toEqual(Float32Array.from([...a.images, ...b.images]));
    const named = concatDatasets([a, { ...b, coarseLabels: undefined }], 'svhn/train');
    expect([named.name, named.coarseLabels]).toEqual(['svhn/train', undefined]); // coarse labels only when every set has them
    expect(() => concatDatasets([])).toThrow(new RangeError('concatDatasets: no datasets given'));
    expect(() => concatDatasets([a, { ...synthetic(1, 4, 5, 1), name: 'grey' }])).toThrow(new RangeError('concatDatasets: grey has images 4×5×1, a has 4×5×3'));
  });
});

describe('augmentation (translation + flip)', () => {
  const ds = synthetic(8, 6, 7, 2);
  const dims = { count: 8, height: 6, width: 7, channels: 2 };
  const px = (a: Float32Array, n: number, y: number, x: number, c: number): number => a[((n * 6 + y) * 7 + x) * 2 + c];

  it('each output pixel is the shifted (and possibly mirrored) input pixel, or 0 outside', () => {
    const rec = augmentRecord(8);
    const out = augmentBatch(ds.images, dims, { pad: 2, flip: true }, new Rng(5), undefined, rec);
    for (let n = 0; n < 8; n++) {
      expect(Math.abs(rec.dy[n])).toBeLessThanOrEqual(2);
      expect(Math.abs(rec.dx[n])).toBeLessThanOrEqual(2);
      for (let y = 0; y < 6; y++) {
        for (let x = 0; x < 7; x++) {
          const sy = y - rec.dy[n];
          const sx = (rec.flipped[n] ? 6 - x : x) - rec.dx[n];
          for (let c = 0; c < 2; c++) {
            const want = sy >= 0 && sy < 6 && sx >= 0 && sx < 7 ? px(ds.images, n, sy, sx, c) : 0;
            expect(px(out, n, y, x, c)).toBe(want);
          }
        }
      }
    }
    // With 8 images some are flipped, some not, and the shifts vary.
    expect(new Set(rec.flipped).size).toBe(2);
    expect(new Set(rec.dx).size).toBeGreaterThan(1);
  });

  it('is reproducible by seed; pad 0 without flip is the identity; the input is not modified', () => {
    const before = ds.images.slice();
    const a = augmentBatch(ds.images, dims, { pad: 3, flip: true }, new Rng(9));
    const b = augmentBatch(ds.images, dims, { pad: 3, flip: true }, new Rng(9));
    const c = augmentBatch(ds.images, dims, { pad: 3, flip: true }, new Rng(10));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(augmentBatch(ds.images, dims, {}, new Rng(1))).toEqual(ds.images);
    expect(ds.images).toEqual(before);
    expect(() => augmentBatch(ds.images, dims, { pad: 6 }, new Rng(1))).toThrow(/pad 6 must be an integer in 0\.\.5/);
    expect(() => augmentBatch(ds.images, dims, { pad: 1 }, new Rng(1), ds.images)).toThrow(/must not overlap/);
  });

  it('every flip-only output is either the image or its mirror', () => {
    const out = augmentBatch(ds.images, dims, { flip: true }, new Rng(3));
    for (let n = 0; n < 8; n++) {
      const same = [0, 1, 2, 3, 4, 5, 6].every((x) => px(out, n, 2, x, 1) === px(ds.images, n, 2, x, 1));
      const mirrored = [0, 1, 2, 3, 4, 5, 6].every((x) => px(out, n, 2, x, 1) === px(ds.images, n, 2, 6 - x, 1));
      expect(same !== mirrored).toBe(true);
    }
  });

  it('draws per image dy, then dx (only with a pad), then the flip (only with flip): the top bit of a 32-bit draw', () => {
    const rec = augmentRecord(8);
    augmentBatch(ds.images, dims, { pad: 2, flip: true }, new Rng(5), undefined, rec);
    const r = new Rng(5);
    for (let n = 0; n < 8; n++) expect([rec.dy[n], rec.dx[n], rec.flipped[n]], String(n)).toEqual([r.nextInt(5) - 2, r.nextInt(5) - 2, r.nextUint32() >>> 31]);
    const flipOnly = augmentRecord(8);
    augmentBatch(ds.images, dims, { flip: true }, new Rng(3), undefined, flipOnly);
    const f = new Rng(3);
    expect([Array.from(flipOnly.dy), Array.from(flipOnly.dx)]).toEqual([new Array(8).fill(0), new Array(8).fill(0)]);
    expect(Array.from(flipOnly.flipped)).toEqual(Array.from({ length: 8 }, () => f.nextUint32() >>> 31));
  });

  it('refuses arrays of another size, a pad that is negative or not an integer, and an output overlapping the input by one value; an output just after it is taken', () => {
    expect(() => augmentBatch(ds.images.subarray(1), dims, {}, new Rng(1))).toThrow(new RangeError('augmentBatch: 671 values, expected 8×6×7×2 = 672'));
    expect(() => augmentBatch(ds.images, dims, {}, new Rng(1), new Float32Array(671))).toThrow(new RangeError('augmentBatch: output has 671 values, input 672'));
    for (const pad of [-1, 1.5]) expect(() => augmentBatch(ds.images, dims, { pad }, new Rng(1)), String(pad)).toThrow(new RangeError(`augmentBatch: pad ${pad} must be an integer in 0..5`));
    const buffer = new Float32Array(2 * 672);
    buffer.set(ds.images);
    const src = buffer.subarray(0, 672);
    expect(() => augmentBatch(src, dims, { pad: 1 }, new Rng(1), buffer.subarray(671, 1343))).toThrow(new RangeError('augmentBatch: output must not overlap the input'));
    const after = buffer.subarray(672);
    expect(augmentBatch(src, dims, { pad: 1 }, new Rng(1), after)).toBe(after);
    expect(after).toEqual(augmentBatch(ds.images, dims, { pad: 1 }, new Rng(1)));
  });
});

describe('BatchLoader', () => {
  const ds = synthetic(23);
  const collect = async (it: AsyncIterable<Batch>): Promise<Batch[]> => {
    const out: Batch[] = [];
    for await (const b of it) out.push(b);
    return out;
  };

  it('one epoch visits every example once; labels stay with their images; the last batch is partial', async () => {
    const loader = new BatchLoader(ds, { batchSize: 5, seed: 3 });
    expect(loader.batchesPerEpoch).toBe(5);
    const batches = await collect(loader.epoch(0));
    expect(batches.map((b) => b.size)).toEqual([5, 5, 5, 5, 3]);
    const seen: number[] = [];
    for (const b of batches) {
      expect(b.shape).toEqual([b.size, 4, 5, 3]);
      for (let i = 0; i < b.size; i++) {
        const n = exampleOf({ images: b.images, height: 4, width: 5, channels: 3 }, i);
        expect(n).toBe(b.indices[i]);
        expect(b.labels[i]).toBe(n % 10);
        seen.push(n);
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
  });

  it('dropLast drops the remainder; no shuffle iterates in order', async () => {
    const dropped = await collect(new BatchLoader(ds, { batchSize: 5, dropLast: true }).epoch(0));
    expect(dropped.map((b) => b.size)).toEqual([5, 5, 5, 5]);
    const ordered = await collect(new BatchLoader(ds, { batchSize: 10, shuffle: false }).epoch(4));
    expect(Array.from(ordered[0].indices)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => new BatchLoader(ds, { batchSize: 30, dropLast: true })).toThrow(/23 examples give no batch of 30 with dropLast/);
  });

  it('order depends only on (seed, epoch); prefetching gives the same batches as building them directly', async () => {
    const opts = { batchSize: 4, seed: 11, augment: { pad: 1, flip: true } };
    const a = await collect(new BatchLoader(ds, opts).epoch(2));
    const b = await collect(new BatchLoader(ds, { ...opts, prefetch: false }).epoch(2));
    expect(a.map((x) => Array.from(x.indices))).toEqual(b.map((x) => Array.from(x.indices)));
    expect(a.map((x) => x.images)).toEqual(b.map((x) => x.images));
    const loader = new BatchLoader(ds, opts);
    expect(loader.makeBatch(2, 3).images).toEqual(a[3].images); // resumable at any batch
    const other = await collect(new BatchLoader(ds, opts).epoch(3));
    expect(other.map((x) => Array.from(x.indices))).not.toEqual(a.map((x) => Array.from(x.indices)));
    // Augmentation keeps labels: each image, shifted and flipped, is still its example's (every
    // pixel that is not padding encodes the example id n, as n·1000 + …), and its label is n's.
    const per = ds.height * ds.width * ds.channels;
    for (const batch of a) {
      for (let i = 0; i < batch.size; i++) {
        const pixels = batch.images.subarray(i * per, (i + 1) * per).filter((v) => v !== 0);
        expect(pixels.length).toBeGreaterThan(0);
        const ids = new Set(Array.from(pixels, (v) => Math.floor((v - 1) / 1000)));
        expect([...ids]).toEqual([batch.indices[i]]);
        expect(batch.labels[i]).toBe(batch.indices[i] % 10);
      }
    }
  });

  it('prepares the next batch ahead: it is ready before it is asked for', async () => {
    let built = 0;
    const loader = new BatchLoader(ds, { batchSize: 5, preprocess: () => void built++ });
    const it = loader.epoch(0);
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(1); // batch 0 prepared without being requested
    await it.next();
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(2); // taking batch 0 started batch 1
    await it.return();
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(2);
    expect((await it.next()).done).toBe(true);
    // Stopped right after taking a batch (a `break` in the loop), before the next one was started:
    // nothing more is prepared.
    let built2 = 0;
    const stopped = new BatchLoader(ds, { batchSize: 5, preprocess: () => void built2++ }).epoch(0);
    await stopped.next();
    await stopped.return();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(built2).toBe(1);
  });

  it('applies the preprocess hook before augmentation (padding is 0 in preprocessed units)', async () => {
    const loader = new BatchLoader(ds, {
      batchSize: 23,
      shuffle: false,
      // Every preprocessed pixel is ≤ −0.5, so a 0 can only be padding added after the hook (were
      // the padding added first, the hook would have made it −0.5).
      preprocess: (x) => x.forEach((v, i) => (x[i] = -v - 0.5)),
      augment: { pad: 2 },
    });
    const [batch] = await collect(loader.epoch(0));
    expect(batch.images.every((v) => v === 0 || v <= -0.5)).toBe(true);
    expect(batch.images.some((v) => v === 0)).toBe(true);
    expect(batch.images.some((v) => v <= -0.5)).toBe(true);
  });

  it('refuses a source whose arrays do not match its count, and a batch or a start batch outside the epoch; a start at its end gives no batch', async () => {
    expect(() => new BatchLoader({ ...ds, labels: ds.labels.subarray(0, 22) }, { batchSize: 5 })).toThrow(
      new RangeError('BatchLoader: source claims 23 images of 4×5×3, but has 1380 values and 22 labels'),
    );
    expect(() => new BatchLoader({ ...ds, images: ds.images.subarray(0, 22 * 60) }, { batchSize: 5 })).toThrow(/source claims 23 images of 4×5×3, but has 1320 values and 23 labels/);
    const loader = new BatchLoader(ds, { batchSize: 5, seed: 3 });
    for (const from of [6, -1, 1.5]) expect(() => loader.epoch(2, from), String(from)).toThrow(new RangeError(`BatchLoader: cannot start epoch 2 at batch ${from} of 5`));
    expect(() => loader.makeBatch(2, 5)).toThrow(new RangeError('BatchLoader: batch 5 outside 0..4'));
    // A resume at batch 3 gets the epoch's last two batches; one saved after the last batch, none.
    const whole = await collect(loader.epoch(2));
    expect((await collect(loader.epoch(2, 3))).map((b) => Array.from(b.indices))).toEqual(whole.slice(3).map((b) => Array.from(b.indices)));
    expect(await collect(loader.epoch(2, 5))).toEqual([]);
  });

  it('a failing preprocess hook surfaces from next()', async () => {
    const loader = new BatchLoader(ds, { batchSize: 5, preprocess: () => { throw new Error('boom'); } });
    await expect(loader.epoch(0).next()).rejects.toThrow('boom');
  });

  it('a batch holds its examples\' images value for value', async () => {
    for (const b of await collect(new BatchLoader(ds, { batchSize: 5, seed: 3 }).epoch(0))) {
      expect(b.images).toEqual(Float32Array.from(Array.from(b.indices).flatMap((n) => Array.from(ds.images.subarray(n * 60, (n + 1) * 60)))));
    }
  });

  it('shuffles as it did before (golden values: a run resumed by a later version sees the same batches)', () => {
    const loader = new BatchLoader(ds, { batchSize: 5, seed: 3 });
    expect(Array.from(loader.epochOrder(0))).toEqual([4, 12, 17, 9, 13, 1, 19, 8, 18, 22, 6, 16, 21, 5, 15, 14, 20, 10, 2, 3, 0, 7, 11]);
    expect(Array.from(loader.epochOrder(1))).toEqual([15, 0, 16, 19, 5, 12, 21, 22, 4, 2, 6, 10, 14, 8, 18, 3, 1, 9, 17, 20, 13, 11, 7]);
  });

  it('refuses a batch size of 0 or a fraction, and batch −1', () => {
    for (const batchSize of [0, 2.5]) expect(() => new BatchLoader(ds, { batchSize }), String(batchSize)).toThrow(new RangeError(`BatchLoader: batch size ${batchSize} must be a positive integer`));
    expect(() => new BatchLoader(ds, { batchSize: 5 }).makeBatch(0, -1)).toThrow(new RangeError('BatchLoader: batch -1 outside 0..4'));
  });

  it('counts the batches still to come, the one being prepared among them; stopped, none comes, prefetching or not', async () => {
    for (const prefetch of [true, false]) {
      const it = new BatchLoader(ds, { batchSize: 5, prefetch }).epoch(0);
      const remaining = [it.remaining];
      for (let k = 0; k < 2; k++) {
        await it.next();
        remaining.push(it.remaining);
      }
      expect(remaining, String(prefetch)).toEqual([5, 4, 3]);
      await it.return();
      expect(await it.next(), String(prefetch)).toEqual({ done: true, value: undefined });
    }
  });
});

// Distributions, not only bounds: a shift range cut at one end, crops biased to one side, shifts
// tied between the axes, a skewed flip or shuffle all stay "within bounds" and pass pixel checks
// made against the recorded shifts. Seeds are fixed, so these counts are deterministic; the
// margins are about 4 standard deviations of a fair draw.
describe('augmentation and shuffling draw what they should', () => {
  it('translations are uniform over −P..P on each axis, independent of each other; flips have probability 1/2', () => {
    const n = 4500;
    const rec = augmentRecord(n);
    augmentBatch(new Float32Array(n * 64), { count: n, height: 8, width: 8, channels: 1 }, { pad: 4, flip: true }, new Rng(1), undefined, rec);
    for (const a of [rec.dy, rec.dx]) {
      const h = new Map<number, number>();
      for (const v of a) h.set(v, (h.get(v) ?? 0) + 1);
      expect([...h.keys()].sort((x, y) => x - y)).toEqual([-4, -3, -2, -1, 0, 1, 2, 3, 4]);
      for (const c of h.values()) expect(Math.abs(c - n / 9)).toBeLessThan(120);
    }
    let same = 0;
    for (let i = 0; i < n; i++) if (rec.dx[i] === rec.dy[i]) same++;
    expect(Math.abs(same - n / 9)).toBeLessThan(120);
    const flips = rec.flipped.reduce((a, b) => a + b, 0);
    expect(Math.abs(flips - n / 2)).toBeLessThan(150);
  });

  it('the same images augment differently in another batch and in another epoch', () => {
    const per = 5 * 5;
    const one = Float32Array.from({ length: per }, (_, i) => i + 1);
    const images = new Float32Array(8 * per);
    for (let k = 0; k < 8; k++) images.set(one, k * per);
    const loader = new BatchLoader({ ...synthetic(8, 5, 5, 1), images }, { batchSize: 4, shuffle: false, seed: 1, augment: { pad: 2, flip: true } });
    expect(loader.makeBatch(0, 1).images).not.toEqual(loader.makeBatch(0, 0).images);
    expect(loader.makeBatch(1, 0).images).not.toEqual(loader.makeBatch(0, 0).images);
  });

  it('permutations are uniform (all 6 orders of 3, equally often) and every deriveSeed stream counts', () => {
    const counts = new Map<string, number>();
    for (let s = 0; s < 27000; s++) {
      const k = Array.from(permutation(3, s)).join('');
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    for (const c of counts.values()) expect(Math.abs(c - 4500)).toBeLessThan(250);
    expect(deriveSeed(1, 2, 3, 4)).not.toBe(deriveSeed(1, 2, 3, 5));
  });
});
