// `nin train --dry-run`: everything a run checks, then a few of its training steps and evaluation
// batches timed on this adapter, for its GPU memory, its loss's first steps and how long the whole
// run would take; nothing is written. Before hours on a GPU: does the batch fit, and does the
// loss move.
import { gpu, GpuOutOfMemory } from '../engine/device.ts';
import { startProfiler } from '../engine/profiler.ts';
import { fmtBytes, pool } from '../engine/runtime.ts';
import type { BatchLoader } from './data/loader.ts';
import { takeExamples } from './data/split.ts';
import type { ImageDataset } from './data/formats.ts';
import { fitPreprocessor, type Preprocessor } from './preprocessing.ts';
import { runDirectoryProblem } from './run-directory.ts';
import { learningRate } from './schedule.ts';
import type { SGD } from '../kernels/sgd.ts';
import { largestBatch, type NinModel } from './model.ts';
import { counted, fmtTime } from './text.ts';
import {
  checkedRun, dropoutSeed, evaluate, logProfile, memoryLine, modelLines, newModelAndOptimiser, plateauAtStart, PROFILE_WARMUP_STEPS, recipeLine, resumedScheduleNotes, runBatches, runLogger, RunRefused,
  startFromWeights, startingCheckpoints, trainingStep, TrainingStopped, type TrainData, type TrainOptions,
} from './train.ts';

/** Steps timed after the warm-up ones: at least MIN_STEPS and MIN_SECONDS, at most MAX_STEPS. (The
 * main job's dry runs on a shared 2-core VM, one after another, timed 57 to 105 ms a step: such a
 * machine's speed moves by the minute, and timing longer only waits longer.) */
const MIN_STEPS = 3;
const MIN_SECONDS = 5;
const MAX_STEPS = 200;
/** The training sample's size, in batches: its epochs repeat, reshuffled, as the steps go on. */
const SAMPLE_BATCHES = PROFILE_WARMUP_STEPS + 50;
/** Evaluation batches timed (the first compiles the forward pass without gradients, and is left out). */
const EVAL_BATCHES = 3;

export interface DryRunResult {
  adapter: string;
  /** The largest batch whose tensors this adapter binds (model.ts largestBatch). */
  largestBatch: number;
  /** Training steps timed (after PROFILE_WARMUP_STEPS not timed), and their mean wall time. */
  timedSteps: number;
  stepSeconds: number;
  /** Every step's loss, in step order (the warm-up steps' first). */
  losses: number[];
  /** One evaluation batch's time (warm), and the batches of the validation and test sets an epoch. */
  evalBatchSeconds: number;
  evalBatches: number;
  /** What the run has left: its training steps and its epochs' evaluations. */
  stepsLeft: number;
  epochsLeft: number;
  /** Their estimated time: stepsLeft steps and epochsLeft evaluations at the times above. */
  trainSeconds: number;
  evalSeconds: number;
  peakHeldBytes: number;
  peakLiveBytes: number;
}

/**
 * The run `o` describes, checked as train() checks it, then its first steps taken on a sample of
 * its training set (its network, rate, dropout seeds; a resume's weights, optimiser state and
 * preprocessing) and timed, with a few evaluation batches; the run's time estimated from them.
 * Writes nothing.
 */
export async function dryRun(o: TrainOptions, data: TrainData, checkpoints = startingCheckpoints(o)): Promise<DryRunResult> {
  const log = runLogger(o);
  const { matrix, resumed, start, config, source, lastEpoch, epochSteps } = await checkedRun(o, data, checkpoints);
  const dirProblem = runDirectoryProblem(o, source);
  if (dirProblem) throw new RunRefused(dirProblem);
  const B = o.batchSize;
  // The steps timed need only a few batches: a sample of the training set, preprocessed alone.
  const trainSample = firstImages(data.train, B * SAMPLE_BATCHES);
  // A GCN + ZCA fit or LCN takes minutes and changes no step's time: standardised in its place.
  let pre: Preprocessor;
  let preNote: string;
  if (resumed) {
    pre = resumed.preprocessor;
    preNote = "the checkpoint's preprocessing";
  } else {
    pre = await fitPreprocessor(o.preprocess === 'none' ? 'none' : 'standardize', trainSample);
    preNote = o.preprocess === 'none' || o.preprocess === 'standardize' ? `${o.preprocess} preprocessing fitted on the images it trains on` : `standardised images in place of --preprocess ${o.preprocess} (its fit is left out)`;
  }
  log(`dry run: the run's checks, then ${B}-image training steps and evaluation batches timed (${preNote}); nothing is written (the run would write in ${o.outDir})`);
  const { model, opt } = newModelAndOptimiser(o, config);
  if (resumed) resumed.restore(model, opt);
  else if (start) log(startFromWeights(model, start, o));
  log(modelLines(model, matrix));
  log(recipeLine(o, config, epochSteps));
  const plateau = plateauAtStart(o, resumed, log);
  if (resumed) for (const note of resumedScheduleNotes(o, resumed, plateau, epochSteps)) log(note);

  const startEpoch = resumed?.epoch ?? 0;
  const firstBatch = resumed?.partialEpoch?.batches ?? 0;
  const firstStep = resumed?.step ?? 0;
  const stepsLeft = (lastEpoch - startEpoch) * epochSteps - firstBatch;
  const losses: number[] = [];
  let prof = o.profile ? await startProfiler() : null;
  pool().resetPeaks(); // (weights and optimiser state held from here on, as a run's peak counts them)
  try {
    log(`timing training steps (the first ${PROFILE_WARMUP_STEPS} compile their kernels and are not counted)…`);
    const loader = runBatches(await pre.applyTo(trainSample, { inPlace: true }), o);
    // Timed from the last warm-up step's loss read back (the step done on the device) to the last step's.
    let timedFrom = 0;
    const taken = await takeSteps(model, opt, loader, {
      // The rate and dropout masks of the run's own steps from where it starts.
      rate: (k) => learningRate(o, startEpoch * epochSteps + firstBatch + k, epochSteps, plateau?.drops),
      seed: (k) => dropoutSeed(o.seed, firstStep + k),
      onLoss: (k, l) => {
        losses.push(l);
        if (!Number.isFinite(l)) {
          // The step as the run numbers it (from 0, as its log and its own message do), with the dry run's steps before it.
          throw new TrainingStopped(`loss is ${l} at step ${firstStep + k} (after ${counted(k, 'step')} of the dry run): the run would stop there, diverged (a lower --lr or a longer --warmup may help)`);
        }
        if (k === PROFILE_WARMUP_STEPS - 1) timedFrom = performance.now();
      },
      afterStep: async (k) => {
        prof?.markStep();
        if (prof && k === PROFILE_WARMUP_STEPS - 1) await prof.reset();
      },
      more: (taken) => {
        const timed = taken - PROFILE_WARMUP_STEPS;
        return timed < MAX_STEPS && !(timed >= MIN_STEPS && timedFrom > 0 && performance.now() - timedFrom >= MIN_SECONDS * 1000);
      },
    });
    const timedSteps = taken - PROFILE_WARMUP_STEPS;
    const stepSeconds = (performance.now() - timedFrom) / 1000 / timedSteps;
    log(`training: ${timedSteps} steps timed, ${(1000 * stepSeconds).toFixed(1)} ms a step (${(B / stepSeconds).toFixed(1)} img/s); loss ${losses[0].toFixed(4)} at the first step, ${losses.at(-1)!.toFixed(4)} at the last`);
    if (prof) {
      await logProfile(prof, 'dry run', false, log);
      prof = null;
    }

    // Evaluation: the validation and test sets' batches, each as long as the sample's warm ones.
    const judged = [data.validation, data.test].filter((d): d is ImageDataset => d !== undefined);
    const evalBatches = judged.reduce((n, d) => n + Math.ceil(d.count / B), 0);
    let evalBatchSeconds = 0;
    if (judged.length) {
      const sample = firstImages(judged.at(-1)!, EVAL_BATCHES * B);
      const r = await evaluate(model, await pre.applyTo(sample, { inPlace: true }), B, { timeWarm: true });
      evalBatchSeconds = r.warmSeconds / Math.ceil(sample.count / B);
      const sets = [data.validation && `${data.validation.count} validation`, data.test && `${data.test.count} test`].filter(Boolean).join(' and ');
      log(`evaluation: ${(1000 * evalBatchSeconds).toFixed(1)} ms a batch of ${B}: ${duration(evalBatches * evalBatchSeconds)} an epoch for its ${sets} images`);
    }
    const peaks = pool().stats;
    log(memoryLine(peaks, B));
    // WebGPU says nothing of the device's memory; what it does say is the most one buffer binds.
    const bindable = largestBatch(config, Infinity);
    log(`this adapter binds a batch of up to ${bindable} images for ${config.name} (its largest tensor against maxStorageBufferBindingSize, ${fmtBytes(gpu().limits.maxStorageBufferBindingSize)})`);
    const epochsLeft = lastEpoch - startEpoch;
    return {
      adapter: gpu().adapterName, largestBatch: bindable, timedSteps, stepSeconds, losses, evalBatchSeconds, evalBatches, stepsLeft, epochsLeft,
      trainSeconds: stepsLeft * stepSeconds, evalSeconds: epochsLeft * evalBatches * evalBatchSeconds, peakHeldBytes: peaks.peakHeldBytes, peakLiveBytes: peaks.peakLiveBytes,
    };
  } catch (e) {
    throw outOfMemoryAtBatch(e, B);
  } finally {
    prof?.stop();
    model.dispose();
    opt.dispose();
  }
}

/**
 * Training steps on a loader's batches, epoch after epoch (a sample's epochs repeat, reshuffled),
 * each step's loss and logits read back a step later, as the run's loop reads them: the device has
 * the next step queued meanwhile. `rate(k)` and `seed(k)`: step k's (from 0) learning rate and
 * dropout seed; `onLoss(k, loss)` hears the losses in step order, and may throw (the step in flight
 * is waited for and freed first); `afterStep(k)` runs once step k is recorded; `more(taken)` says
 * whether to take another. Returns the steps taken.
 */
export async function takeSteps(
  model: NinModel,
  opt: SGD,
  loader: BatchLoader,
  a: { rate: (k: number) => number; seed: (k: number) => number; onLoss: (k: number, loss: number) => void; afterStep?: (k: number) => Promise<void> | void; more: (taken: number) => boolean },
): Promise<number> {
  let pending: Promise<number> | null = null;
  let taken = 0;
  try {
    for (let e = 0; a.more(taken); e++) {
      for await (const batch of loader.epoch(e)) {
        const k = taken++;
        const { loss, logits } = trainingStep(model, opt, batch, a.rate(k), a.seed(k));
        const read = Promise.all([loss.item(), logits.toArray()]).then(([l]) => l).finally(() => {
          loss.dispose();
          logits.dispose();
        });
        read.catch(() => {}); // (awaited a step later)
        await a.afterStep?.(k);
        const prev = pending;
        pending = read;
        if (prev) a.onLoss(k - 1, await prev);
        if (!a.more(taken)) break;
      }
    }
    const last = pending;
    pending = null;
    if (last) a.onLoss(taken - 1, await last);
    return taken;
  } finally {
    await pending?.catch(() => {}); // (a throw: the step in flight freed before the caller hears)
  }
}

/** `e`, or where the device ran out of memory, a TrainingStopped saying the batch (a dry run's, a range test's). */
export function outOfMemoryAtBatch(e: unknown, batchSize: number): unknown {
  return e instanceof GpuOutOfMemory ? new TrainingStopped(`${e.message}; at batch ${batchSize}: a smaller --batch needs less memory`) : e;
}

/** The line `nin train --dry-run` prints last: what the run would take here. */
export function dryRunLine(o: Pick<TrainOptions, 'schedule' | 'batchSize'>, r: DryRunResult): string {
  const bound = o.schedule === 'plateau' ? 'at most ' : ''; // (the plateau schedule may end it sooner)
  const evaluating = r.evalBatches ? `, ${duration(r.evalSeconds)} evaluating` : '';
  return `dry run on ${r.adapter}: the run's ${counted(r.stepsLeft, 'step')} (${counted(r.epochsLeft, 'epoch')}) would take ${bound}about ${duration(r.trainSeconds + r.evalSeconds)} (${duration(r.trainSeconds)} training${evaluating}; loading and preprocessing the data not counted), with ${fmtBytes(r.peakHeldBytes)} of GPU memory at batch ${o.batchSize}`;
}

/** fmtTime, with a tenth of a second below 10 s (a small run's evaluation is not "0s"). */
function duration(s: number): string {
  return s < 9.95 ? `${s.toFixed(1)}s` : fmtTime(s);
}

/** The first n images of a set (all, if it holds fewer), as a set of their own. */
export function firstImages(ds: ImageDataset, n: number): ImageDataset {
  return takeExamples(ds, Int32Array.from({ length: Math.min(ds.count, n) }, (_, i) => i));
}
