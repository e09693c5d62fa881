// `nin lr-find`: the learning-rate range test (L. N. Smith, "Cyclical Learning Rates for Training
// Neural Networks", WACV 2017, section 3.3). From the network's initial weights, one step at each
// rate of a geometric sweep from --lr-min to --lr-max; the loss falls once the rate is large enough
// to learn, fastest around a good peak rate, and blows up past the largest that trains. NIN is
// touchy about its rate: with the paper's ReLU'd class maps, its CIFAR-10 recipe's maps died early
// in every run we made (README).
import { zcaCacheDir } from './data/zca-cache.ts';
import { firstImages, outOfMemoryAtBatch, takeSteps } from './dry-run.ts';
import { fitPreprocessor } from './preprocessing.ts';
import { renderCurves, type Series } from './plot.ts';
import { counted } from './text.ts';
import { checkedRun, dropoutSeed, modelLines, newModelAndOptimiser, runBatches, runLogger, startFromWeights, startingCheckpoints, TrainingStopped, type TrainData, type TrainOptions } from './train.ts';

export interface RangeTest {
  lrMin: number;
  lrMax: number;
  steps: number;
}

/** The sweep stops once the moving average of its losses passes this many times its lowest (as fastai's). */
export const DIVERGED_FACTOR = 4;
/** That moving average's factor (bias-corrected): a window of about 10 steps. */
export const STOP_SMOOTHING = 0.9;

/** Step k's rate (from 0): geometric from lrMin at the first step to lrMax at the last. */
export function sweepRate(t: RangeTest, k: number): number {
  return t.steps === 1 ? t.lrMin : t.lrMin * (t.lrMax / t.lrMin) ** (k / (t.steps - 1));
}

/**
 * Each loss replaced by the median of it and its `half` neighbours on either side (fewer at the
 * ends). Centred: an average of the steps before alone lags behind the rate (half a decade at 100
 * steps and a window of 10), and a rate read off it is too large by as much. A median: one batch's
 * spike (a loss of 40 among 2s) does not lift its neighbours.
 */
export function centredMedian(losses: readonly number[], half: number): number[] {
  return losses.map((_, k) => {
    const window = losses.slice(Math.max(0, k - half), k + half + 1).sort((a, b) => a - b);
    const m = window.length >> 1;
    return window.length % 2 ? window[m] : (window[m - 1] + window[m]) / 2;
  });
}

/** The centred window's half width for a sweep of `steps`: a twentieth of it, at least 2. */
export function smoothingHalfWidth(steps: number): number {
  return Math.max(2, Math.round(steps / 20));
}

/** A smoothed loss below this fraction of chance (ln C) is learning: the median of a few batches
 * near chance strays some 2 % either side of it (MNIST, batch 32). */
export const LEARNING_BELOW = 0.95;

export interface Suggestion {
  /** ln C: the loss of a uniform guess over C classes. */
  chance: number;
  /** The lowest smoothed loss, and its step's rate. */
  lowest: { step: number; lr: number; loss: number };
  /** Where the smoothed loss, below LEARNING_BELOW × chance, falls fastest against log10(lr)
   * before its lowest (slope: per decade); null where it never gets there. */
  steepest: { step: number; lr: number; slope: number } | null;
}

/**
 * The rates the smoothed curve suggests. Learning is a loss clearly below chance (ln C): above it, the
 * loss of a net whose initial logits are large (He init, linear class maps: 5.3 for MNIST's 10
 * classes) first falls as they shrink towards a uniform guess, at rates too small to learn
 * anything. Past the lowest the loss rises, and a fall there is a blow-up's noise.
 */
export function suggest(lrs: readonly number[], smooth: readonly number[], classes: number): Suggestion {
  const chance = Math.log(classes);
  let low = 0;
  for (let k = 1; k < smooth.length; k++) if (smooth[k] < smooth[low]) low = k;
  let steepest: Suggestion['steepest'] = null;
  for (let k = 1; k < low; k++) {
    if (!(smooth[k] < LEARNING_BELOW * chance)) continue;
    const slope = (smooth[k + 1] - smooth[k - 1]) / (Math.log10(lrs[k + 1]) - Math.log10(lrs[k - 1]));
    if (slope < 0 && (!steepest || slope < steepest.slope)) steepest = { step: k, lr: lrs[k], slope };
  }
  return { chance, lowest: { step: low, lr: lrs[low], loss: smooth[low] }, steepest };
}

export interface RangeTestResult {
  lrs: number[];
  losses: number[];
  smoothed: number[];
  /** Why the sweep ended before --lr-max, or null. */
  stopped: string | null;
  suggestion: Suggestion;
}

/**
 * Runs the range test on the run `o` describes (its network, weights from --weights-from, batch,
 * momentum, weight decay, augmentation, dropout, and its preprocessing fitted as the run fits it),
 * on the first steps × batch images of its training set. Writes nothing.
 */
export async function rangeTest(o: TrainOptions, data: TrainData, t: RangeTest, checkpoints = startingCheckpoints(o)): Promise<RangeTestResult> {
  const log = runLogger(o);
  const { matrix, start, config } = await checkedRun(o, data, checkpoints);
  const B = o.batchSize;
  // The preprocessing's statistics are the run's (fitted on its whole training part): the rate that
  // trains depends on the inputs' scale. Then only the images the sweep trains on are transformed.
  const pre = await fitPreprocessor(o.preprocess, data.train, log, { zcaCache: zcaCacheDir() });
  const sample = await pre.applyTo(firstImages(data.train, B * t.steps), { inPlace: true });
  const { model, opt } = newModelAndOptimiser(o, config);
  if (start) log(startFromWeights(model, start, o));
  log(modelLines(model, matrix));
  log(`learning-rate range test: ${t.steps} steps of ${counted(B, 'image')}, the rate from ${t.lrMin} to ${t.lrMax} (×${((t.lrMax / t.lrMin) ** (1 / Math.max(1, t.steps - 1))).toFixed(4)} a step); momentum ${o.momentum}, weight decay ${o.weightDecay}; ${o.preprocess === 'none' ? 'no' : o.preprocess} preprocessing, augmentation ${o.augment ? 'on' : 'off'}; seed ${o.seed}`);
  const wanted = B * t.steps;
  if (data.train.count < wanted) {
    log(`note: ${t.steps} steps of ${B} take ${wanted} images and the training set holds ${data.train.count}: the sweep goes over them ${(wanted / data.train.count).toFixed(1)} times, so its later losses are of images it has trained on${freshImagesHint(o.trainLimit, t.steps)}`);
  }
  const lrs: number[] = [];
  const losses: number[] = [];
  let stopped: string | null = null;
  let best = Infinity;
  let avg = 0; // (the stopping rule's moving average: it has only the steps before)
  try {
    await takeSteps(model, opt, runBatches(sample, o), {
      rate: (k) => sweepRate(t, k),
      seed: (k) => dropoutSeed(o.seed, k),
      onLoss: (k, l) => {
        if (stopped) return; // (the step taken before the stop was heard)
        if (!Number.isFinite(l)) {
          stopped = `the loss is ${l} at step ${k + 1} (lr ${fmtRate(sweepRate(t, k))})`;
          return;
        }
        lrs.push(sweepRate(t, k));
        losses.push(l);
        avg = STOP_SMOOTHING * avg + (1 - STOP_SMOOTHING) * l;
        const mean = avg / (1 - STOP_SMOOTHING ** losses.length);
        best = Math.min(best, mean);
        if (mean > DIVERGED_FACTOR * best) stopped = `the loss's moving average passed ${DIVERGED_FACTOR}× its lowest at step ${k + 1} (lr ${fmtRate(sweepRate(t, k))})`;
      },
      more: (taken) => taken < t.steps && !stopped,
    });
  } catch (e) {
    throw outOfMemoryAtBatch(e, B);
  } finally {
    model.dispose();
    opt.dispose();
  }
  if (losses.length < 3) throw new TrainingStopped(`the range test has ${losses.length} finite loss${losses.length === 1 ? '' : 'es'} (${stopped}): nothing to suggest; give a lower --lr-min`);
  const smooth = centredMedian(losses, smoothingHalfWidth(t.steps));
  return { lrs, losses, smoothed: smooth, stopped, suggestion: suggest(lrs, smooth, config.classes) };
}

/** The fewest --steps the CLI takes (cli.ts parseRangeTestArgs). */
const LEAST_STEPS = 5;

/** What would let a sweep that goes over its training set more than once see fresh images: fewer
 * --steps (above the least), a larger --train-limit (where one cut the set); '' where neither can. */
export function freshImagesHint(trainLimit: number | undefined, steps: number): string {
  const ways = [steps > LEAST_STEPS && 'fewer --steps', trainLimit !== undefined && 'a larger --train-limit'].filter(Boolean);
  if (ways.length === 2) return ` (${ways.join(', or ')}, sees fresh ones)`;
  return ways.length ? ` (${ways[0]} sees fresh ones)` : '';
}

/** What `nin lr-find` says of a sweep, its last line the suggestion. */
export function rangeTestLines(r: RangeTestResult): string[] {
  const { chance, lowest, steepest } = r.suggestion;
  const learning = LEARNING_BELOW * chance;
  const lines = [
    r.stopped ? `stopped after ${r.losses.length} steps: ${r.stopped}` : `swept all ${r.losses.length} steps`,
    `lowest smoothed loss ${lowest.loss.toFixed(4)} at lr ${fmtRate(lowest.lr)} (step ${lowest.step + 1}); chance is ${chance.toFixed(4)}` +
      (steepest ? `; below ${learning.toFixed(4)} (${LEARNING_BELOW} of it), the steepest fall at lr ${fmtRate(steepest.lr)} (step ${steepest.step + 1}, ${steepest.slope.toFixed(3)} a decade)` : ''),
  ];
  if (steepest) lines.push(`suggested --lr: ${fmtRate(steepest.lr)} (the steepest fall below chance; a tenth of the lowest's rate is ${fmtRate(lowest.lr / 10)})`);
  else lines.push(`no rate suggested: the smoothed loss never fell below ${learning.toFixed(4)} (${LEARNING_BELOW} of chance) before its lowest: the net learned too little for the sweep to see (more --steps, a larger --batch, or a narrower --lr-min to --lr-max)`);
  return lines;
}

/** The sweep as a PNG: each step's loss and the smoothed curve against the rate (log axis), and the suggested rates marked. */
export function rangeTestPlot(r: RangeTestResult, title: string): Buffer {
  const { chance, lowest, steepest } = r.suggestion;
  // Up to the first smoothed loss or 4× the lowest: a blow-up's last losses (1e10) would flatten the rest.
  const cap = Math.max(r.smoothed[0], DIVERGED_FACTOR * lowest.loss);
  const upTo = (y: number) => (y <= cap ? y : NaN);
  const series: Series[] = [
    { name: 'loss', color: [190, 190, 190], points: r.lrs.map((lr, k) => [lr, upTo(r.losses[k])]) },
    { name: 'smoothed', points: r.lrs.map((lr, k) => [lr, upTo(r.smoothed[k])]) },
    { name: `chance: ln C = ${chance.toFixed(2)}`, color: [120, 120, 120], points: [[r.lrs[0], chance], [r.lrs.at(-1)!, chance]] },
    { name: `lowest: lr ${fmtRate(lowest.lr)}`, points: [[lowest.lr, lowest.loss]] },
    ...(steepest ? [{ name: `steepest: lr ${fmtRate(steepest.lr)}`, points: [[steepest.lr, r.smoothed[steepest.step]]] as [number, number][] }] : []),
  ];
  return renderCurves(series, { title, xLabel: 'learning rate', yLabel: 'training loss', logX: true });
}

/** A rate to 3 significant digits. */
export function fmtRate(lr: number): string {
  return Number(lr.toPrecision(3)).toString();
}
