// `nin lr-find`: the learning-rate range test; its sweep, smoothing and suggestion, and that the
// rate it suggests trains.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeGpu, getGpu, gpu } from '../engine/device.ts';
import { pool, trimPool } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { loadSplits } from '../nin/datasets.ts';
import { centredMedian, freshImagesHint, rangeTest, rangeTestLines, smoothingHalfWidth, suggest, sweepRate } from '../nin/lr-find.ts';
import { dropoutSeed, train, TrainingStopped } from '../nin/train.ts';
import { NinModel } from '../nin/model.ts';
import { SGD } from '../kernels/sgd.ts';
import { ALLOCATION_FAULT, runAsync } from './helpers.ts';
import { errorWithStepOutOfMemory, haveMnist, mnistSmallOptions as options, saveUntrained } from './training-runs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-lr-find-'));

describe('the range test\'s sweep and reading', () => {
  it('sweeps the rate geometrically from --lr-min at the first step to --lr-max at the last', () => {
    const t = { lrMin: 1e-5, lrMax: 10, steps: 100 };
    expect(sweepRate(t, 0)).toBe(1e-5);
    expect(sweepRate(t, 99)).toBeCloseTo(10, 12);
    for (let k = 1; k < 100; k++) expect(sweepRate(t, k) / sweepRate(t, k - 1)).toBeCloseTo(1e6 ** (1 / 99), 12);
  });

  it('smooths by a centred median: no lag behind the rate, and one spike does not lift its neighbours', () => {
    expect(centredMedian([5, 4, 3, 2, 1], 1)).toEqual([4.5, 4, 3, 2, 1.5]);
    expect(centredMedian([2, 2, 40, 2, 2], 2)).toEqual([2, 2, 2, 2, 2]);
    expect([20, 100, 300, 1000].map(smoothingHalfWidth)).toEqual([2, 5, 15, 50]);
  });

  it('suggests the steepest fall below chance (ln C), not the fall of large initial logits towards it; none where the loss never gets below', () => {
    // 10 classes: chance 2.3026. A fall from 5 to 2.35 at the smallest rates (the logits shrinking),
    // flat, then a fall to 1.2 steepest around step 30, then a blow-up.
    const lrs = Array.from({ length: 40 }, (_, k) => 1e-5 * 10 ** (k / 6));
    const loss = lrs.map((_, k) => (k < 10 ? 5 - 0.3 * k : k < 25 ? 2.35 : k < 36 ? 2.35 - 1.15 / (1 + Math.exp(-(k - 30))) : 1.2 + (k - 35)));
    const s = suggest(lrs, loss, 10);
    expect(s.chance).toBeCloseTo(Math.log(10), 12);
    expect(s.lowest.step).toBe(35);
    expect(s.steepest?.step).toBe(30);
    expect(s.steepest?.lr).toBe(lrs[30]);
    // The steepest fall overall is the first one (0.3 a step), above chance.
    expect(suggest(lrs, loss.map((l) => Math.max(l, 2.31)), 10).steepest).toBeNull();
  });
  it('a sweep longer than its training set suggests only what the CLI takes: fewer --steps above its least (5), a larger --train-limit where one was given', () => {
    expect(freshImagesHint(64, 10)).toBe(' (fewer --steps, or a larger --train-limit, sees fresh ones)');
    expect(freshImagesHint(undefined, 10)).toBe(' (fewer --steps sees fresh ones)');
    expect(freshImagesHint(64, 5)).toBe(' (a larger --train-limit sees fresh ones)');
    expect(freshImagesHint(undefined, 5)).toBe('');
  });
  it('sorts a window as numbers; reads only falls below 0.95 of chance, before the lowest, that are falls', () => {
    // (a default sort compares as strings: "10" < "2")
    expect(centredMedian([10, 9, 2, 30, 3], 1)).toEqual([9.5, 9, 9, 3, 16.5]);
    expect(smoothingHalfWidth(50)).toBe(3); // (a twentieth, rounded)
    const lrs = Array.from({ length: 36 }, (_, k) => 1e-4 * 10 ** (k / 6));
    // A steep fall from 2.35 to 2.2, between 0.95 × chance (2.187) and chance (2.303), then a gentler one to 1.5 at step 30.
    const loss = lrs.map((_, k) => (k < 10 ? 2.35 : k <= 12 ? 2.35 - 0.05 * (k - 9) : k <= 30 ? 2.2 - (0.7 * (k - 12)) / 18 : 1.5 + 0.5 * (k - 30)));
    const s = suggest(lrs, loss, 10);
    expect(s.lowest.step).toBe(30);
    expect(s.steepest!.step).toBeGreaterThanOrEqual(13);
    expect(loss[s.steepest!.step]).toBeLessThan(0.95 * Math.log(10));
    // Below chance, but only rising before the lowest (step 4): nothing to suggest.
    expect(suggest(lrs.slice(0, 7), [1.0, 1.2, 1.4, 3.0, 0.5, 3, 3], 10).steepest).toBeNull();
    // The lowest's own neighbourhood (a fall into it from a spike) is not "before" it.
    expect(suggest(lrs.slice(0, 6), [2.0, 1.05, 2.0, 1.0, 1.1, 3], 10).steepest?.step).toBe(2);
  });
});

describe.skipIf(!haveMnist)('nin lr-find on MNIST', () => {
  beforeAll(async () => { await getGpu(); });
  afterAll(() => closeGpu());

  it('steps at the sweep\'s rates: the net learns (its loss well below chance) where mnist-small learns, and the suggestion lies there', async () => {
    // (mnist-small at batch 32 learns from about 0.02, and its loss goes back to chance past 0.1)
    const o = options(['--batch', '32', '--seed', '2']);
    const r = await rangeTest(o, await loadSplits(o), { lrMin: 1e-3, lrMax: 1, steps: 200 });
    expect(r.stopped).toBeNull();
    expect(r.lrs).toEqual(Array.from({ length: 200 }, (_, k) => 1e-3 * 1000 ** (k / 199)));
    const { steepest, lowest, chance } = r.suggestion;
    console.log(`lr-find: steepest fall at ${steepest?.lr.toPrecision(3)}, lowest ${lowest.loss.toFixed(3)} at ${lowest.lr.toPrecision(3)}`);
    expect(lowest.loss).toBeLessThan(0.95 * chance);
    expect(steepest).not.toBeNull();
    expect(steepest!.lr).toBeLessThan(lowest.lr);
    expect(r.smoothed[steepest!.step]).toBeLessThan(0.95 * chance);
    expect(rangeTestLines(r).at(-1)).toBe(`suggested --lr: ${Number(steepest!.lr.toPrecision(3))} (the steepest fall below chance; a tenth of the lowest's rate is ${Number((lowest.lr / 10).toPrecision(3))})`);
  });

  it("stops where the loss's moving average (bias-corrected, its steps' weights 0.9 back) passes 4× the lowest it has been, not the lowest loss", async () => {
    const o = { ...options(['--batch', '16', '--train-limit', '320']), log: () => {} };
    const data = await loadSplits(o);
    const sweep = async (fake: number[]) => {
      let calls = 0;
      const spy = vi.spyOn(Tensor.prototype, 'item').mockImplementation(() => Promise.resolve(fake[calls++]));
      try {
        return await rangeTest(o, data, { lrMin: 1e-3, lrMax: 1, steps: fake.length });
      } finally {
        spy.mockRestore();
      }
    };
    // Its averages: 1, 1, 1, 0.738 (its lowest), 0.802, 2.765 < 4 × 0.738. (The lowest loss, 0.1,
    // would stop it at step 4; the last loss's weight 0.9, at step 5.)
    const steps = vi.spyOn(SGD.prototype, 'step');
    const forward = vi.spyOn(NinModel.prototype, 'lossAndGradients');
    const calm = await sweep([1, 1, 1, 0.1, 1, 10]);
    const [rates, seeds] = [steps.mock.calls.map((c) => c[0]), forward.mock.calls.map((c) => c[2]?.seed)];
    steps.mockRestore();
    forward.mockRestore();
    expect(calm.stopped).toBeNull();
    expect(calm.losses).toEqual([1, 1, 1, 0.1, 1, 10]);
    // Each step is taken at the rate it is reported at, with the run's dropout seed for that step.
    expect(rates).toEqual(calm.lrs);
    expect(seeds).toEqual([0, 1, 2, 3, 4, 5].map((k) => dropoutSeed(o.seed, k)));
    // 1, 1, 1, 1, then 4.17 > 4 × 1 at step 5 (13 there: 3.93, it goes on).
    const taken = vi.spyOn(SGD.prototype, 'step');
    const stopped = await sweep([1, 1, 1, 1, 14, 1, 1, 1, 1, 1]);
    const stepsTaken = taken.mock.calls.length;
    taken.mockRestore();
    expect(stopped.stopped).toMatch(/^the loss's moving average passed 4× its lowest at step 5 /);
    expect(stopped.losses).toEqual([1, 1, 1, 1, 14]);
    expect(stepsTaken).toBe(6); // (the step after it, taken before its loss was read), not the rest of the sweep
    expect((await sweep([1, 1, 1, 1, 13, 1])).stopped).toBeNull();
  });

  it('--weights-from: the sweep starts from those weights, and says so', async () => {
    const ckpt = await saveUntrained(options(['--seed', '99', '--out', join(tmp, 'weights-source')]), join(tmp, 'weights-source.safetensors'), 99);
    const lines: string[] = [];
    const base = ['--batch', '16', '--train-limit', '48'];
    const o = { ...options([...base, '--weights-from', ckpt]), log: (l: string) => void lines.push(l) };
    const data = await loadSplits(o);
    const t = { lrMin: 1e-3, lrMax: 1e-2, steps: 3 };
    const r = await rangeTest(o, data, t);
    expect(lines.filter((l) => l.startsWith('weights from '))).toEqual([`weights from ${ckpt} (mnist-small after epoch 1, trained on mnist): 18 of 18 parameter tensors`]);
    const fresh = await rangeTest({ ...options(base), log: () => {} }, data, t);
    expect(r.losses[0]).not.toBe(fresh.losses[0]);
  });

  it('a sweep with fewer than 3 finite losses suggests nothing, and says so; a device out of memory is said with the batch; no GPU buffer is left behind', async (ctx) => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '64']), log: (line: string) => lines.push(line) };
    const data = await loadSplits(o);
    const liveBefore = pool().stats.liveBuffers;
    const item = Tensor.prototype.item;
    let calls = 0;
    const spy = vi.spyOn(Tensor.prototype, 'item').mockImplementation(function (this: Tensor) {
      return ++calls === 3 ? Promise.resolve(NaN) : item.call(this);
    });
    try {
      const err = await rangeTest(o, data, { lrMin: 1e-3, lrMax: 1, steps: 10 }).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(TrainingStopped);
      expect(err.message).toBe('the range test has 2 finite losses (the loss is NaN at step 3 (lr 0.00464)): nothing to suggest; give a lower --lr-min');
    } finally {
      spy.mockRestore();
    }
    // 10 steps of 16 from 64 images: it goes round them, and says so (the CLI test's sweep does not).
    expect(lines).toContain('note: 10 steps of 16 take 160 images and the training set holds 64: the sweep goes over them 2.5 times, so its later losses are of images it has trained on (fewer --steps, or a larger --train-limit, sees fresh ones)');
    expect(pool().stats.liveBuffers).toBe(liveBefore);
    if (gpu().limits.maxBufferSize < ALLOCATION_FAULT) return ctx.skip();
    trimPool();
    const err = await errorWithStepOutOfMemory(() => rangeTest(o, data, { lrMin: 1e-3, lrMax: 1, steps: 10 }));
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toMatch(/^GPU out of memory: the device could not make a buffer of .*; at batch 16: a smaller --batch needs less memory$/);
    expect(pool().stats.liveBuffers).toBe(liveBefore);
  });

  it('from the command line: the lines, the PNG and the JSON', async () => {
    const plot = join(tmp, 'sweep.png');
    const json = join(tmp, 'sweep.json');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'lr-find', '--batch', '16', '--steps', '40', '--lr-min=1e-3', '--lr-max', '1000', '--train-limit', '640', '--plot', plot, '--json', json], { timeout: 300_000 });
    expect(r.stderr).not.toMatch(/nin: |goes over them/);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/\nlearning-rate range test: 40 steps of 16 images, the rate from 0\.001 to 1000 \(×1\.4251 a step\); momentum 0\.9, weight decay 0\.0001; standardize preprocessing, augmentation off; seed 1\n/);
    expect(r.stdout).toMatch(/^stopped after \d+ steps: the loss's moving average passed 4× its lowest at step \d+ \(lr [\d.]+\)\nlowest smoothed loss [\d.]+ at lr [\d.]+ \(step \d+\); chance is 2\.3026.*\n(suggested --lr: |no rate suggested: ).*\nwrote .*sweep\.png\nwrote .*sweep\.json\n$/);
    const png = PNG.sync.read(readFileSync(plot));
    expect([png.width, png.height]).toEqual([800, 500]);
    const saved = JSON.parse(readFileSync(json, 'utf8'));
    expect(saved).toMatchObject({ lrMin: 0.001, lrMax: 1000, steps: 40, batch: 16, model: 'mnist-small', dataset: 'mnist' });
    expect(saved.lrs.length).toBe(saved.losses.length);
    expect(saved.smoothed.length).toBe(saved.losses.length);
    expect(saved.suggestion.chance).toBeCloseTo(Math.log(10), 12);
    // Its 640 training images are its sample whole (40 steps × 16): its first step is the run's
    // (the same network, preprocessing and first batch; the rate changes only what comes after).
    const o = options(['--batch', '16', '--train-limit', '640', '--test-limit', '16', '--out', join(tmp, 'first-step')]);
    expect((await train(o, await loadSplits(o))).stepLosses[0]).toBe(saved.losses[0]);
  });
});
