// Training and evaluation: the checks before a run, the loop (steps, progress, evaluation, watches)
// and resume. What a run writes in its directory (log records, checkpoints) is nin/run-writer.ts.
import { noGrad, zeroGrad } from '../engine/autograd.ts';
import { getGpu, GpuOutOfMemory } from '../engine/device.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { formatProfile, formatScopeProfile, startProfiler, type Profiler } from '../engine/profiler.ts';
import { fmtBytes, pool, profileScope } from '../engine/runtime.ts';
import { labelTensor } from '../kernels/softmax-cross-entropy.ts';
import { SGD } from '../kernels/sgd.ts';
import { checkedMatrixSettings, describeMatrixMode, type MatrixMode } from '../kernels/gemm-matrix.ts';
import { tuningTable } from '../kernels/tuning.ts';
import type { ImageDataset } from './data/formats.ts';
import { DataFormatError } from './data/io.ts';
import { StreamReadError } from './data/stream.ts';
import type { Validation, ValidationFrom } from './data/split.ts';
import { deriveSeed } from './data/rng.ts';
import { BatchLoader } from './data/loader.ts';
import { defaultWorkers } from './data/parallel.ts';
import { fitPreprocessor, type Preprocessor, type PreprocessKind } from './preprocessing.ts';
import { zcaCacheDir } from './data/zca-cache.ts';
import { dataLabel } from './datasets.ts';
import { loadCheckpoint, type Checkpoint, type PartialEpoch } from './checkpoint.ts';
import { batchTooLarge, classMapsOf, modelConfig, NinModel, unusedInitStd, type ModelConfig, type NetworkOptions } from './model.ts';
import { defaultStepEpochs, describeSchedule, learningRate, newPlateauState, plateauAfterEpoch, plateauDone, plateauSettings, PLATEAU_ON_VAL_WITHOUT_VAL, type PlateauState, type ScheduleOptions } from './schedule.ts';
import { claimRunDirectory, nothingToTrain, resumeClashes, shuffleChangedWithinEpoch } from './run-directory.ts';
import type { EpochRecord, ResumeSource, RunLock } from './run-directory.ts';
import { clipToWidth, counted, displayWidth, fmtTime, imageRate, listSome, padEndTo, padStartTo, shellWord } from './text.ts';
import { RunRefused, TrainingInterrupted, TrainingStopped } from './run-errors.ts';
import { bestOnResume, historyEpochs, keepsSnapshot, RunWriter, snapshotsOnResume } from './run-writer.ts';

/** A run's settings: its network (NetworkOptions), schedule, data and run directory. */
export interface TrainOptions extends ScheduleOptions, NetworkOptions {
  dataset: string;
  /** `--dataset folder`: the image folder (absolute), its class names, and its training images'
   * count and list (a resume checks that the folder still holds the run's classes and images). */
  imageFolder?: ImageFolderOptions;
  batchSize: number;
  momentum: number;
  weightDecay: number;
  /** Learning-rate multiplier of the classifier layer (NinModel.classifierParams), on top of the
   * biases' 2×: the authors' SVHN settings give their class-map layer 0.1 (default 1). */
  classLrMult?: number;
  augment: boolean;
  preprocess: PreprocessKind;
  /** Images held out of the training set for validation (0: none; 'paper': the papers' hold-out, see
   * validationPlan), or 'folder': an image folder's val/ beside its test/. */
  validation: Validation;
  /** Where a validation split of N images comes from (validationFromOf: `--val paper` takes the
   * last 10,000, `--val N` draws at random, unless this says otherwise). */
  validationFrom?: ValidationFrom;
  /** SVHN: train on train_32x32.mat and extra_32x32.mat together, as the paper. */
  extra?: boolean;
  /** Use only the first N training / test images (quick runs). */
  trainLimit?: number;
  testLimit?: number;
  seed: number;
  /** The seed that draws a random validation split (splitSeedOf: `seed` unless given), so that a
   * study's repeats over `seed` can validate on the same images. */
  splitSeed?: number;
  outDir: string;
  /** Set by the CLI when it picked `outDir` for a new run (no --out): the series (`runs/mnist-…`)
   * whose next free directory the run takes if another run claims `outDir` first. Not saved. */
  outDirSeries?: string;
  /** Checkpoint to continue from. */
  resume?: string;
  /** A new run's starting weights: a checkpoint's, where name and shape match (Checkpoint.startFrom). */
  weightsFrom?: string;
  /** Start afresh in an `outDir` that holds another run's files (see runDirectoryProblem). */
  overwrite?: boolean;
  /** Stop (with a checkpoint) after this epoch, though the schedule runs over `epochs`. */
  stopAfter?: number;
  profile?: boolean;
  /** `--dataset folder`: read the pictures batch by batch (nin/data/stream.ts), not the whole folder into memory. */
  stream?: boolean;
  /** Also save the checkpoint within an epoch, every this many minutes (0 or unset: at epoch ends only). */
  checkpointMinutes?: number;
  /** Keep the checkpoint of every epoch that is a multiple of this as epoch-<E>.safetensors
   * (snapshotName) beside the latest (unset: the latest and the best only). */
  keepEvery?: number;
  /** Polled with the steps taken after every step, and after each epoch's evaluation: once it
   * returns true, the run saves its checkpoint where it is and stops with TrainingInterrupted (the
   * CLI wires Ctrl-C, SIGTERM and SIGHUP to it). */
  interrupt?: (step: number) => boolean;
  /** Told each checkpoint.safetensors the run writes (the CLI names the last one when it must quit at once). */
  onCheckpoint?: (path: string) => void;
  /** Progress output (default: stderr). */
  log?: (line: string) => void;
  progress?: boolean;
}

export interface ImageFolderOptions {
  dir: string;
  classNames: string[];
  trainImages: number;
  /** folderListDigest of the training images: their paths and classes, in order. */
  trainList: string;
  /** With `--val folder`: val/'s image count and folderListDigest (runs from before session 34 lack them). */
  valImages?: number;
  valList?: string;
  /** Per class, the training (and --val folder's) images: folderClassLists, so that a changed
   * folder is named by class (runs from before session 35 lack them). */
  trainClasses?: ClassList[];
  valClasses?: ClassList[];
}

/** One class folder's image count and the digest of its list (nin/data/folder.ts). */
export interface ClassList {
  images: number;
  list: string;
}

export interface EvalResult {
  loss: number;
  error: number;
  count: number;
  confusion: number[][];
  /** Wall time of the evaluation, and the same at the rate of its batches after the first: a
   * process's first evaluation compiles its kernels in its first batch (18.9 s against 1.4 s later
   * for the main job's test set on lavapipe), which later evaluations do not repeat. A pass of one
   * batch has nothing to go by: with `timeWarm` its batch runs again, timed (else its time as is). */
  seconds: number;
  warmSeconds: number;
}

export interface TrainResult {
  epochs: EpochRecord[];
  stepLosses: number[];
  checkpoint: string;
  /** With a validation split: the epoch of lowest validation error so far, saved as best.safetensors. */
  best: { epoch: number; valError: number; testError?: number; checkpoint: string } | null;
  test: EvalResult | null;
  seconds: number;
}

export type { EpochRecord } from './run-directory.ts';

export { RunRefused, TrainingInterrupted, TrainingStopped };

/** A resumed run's network: the checkpoint's config, with an error for any option that asks for another run (resumeClashes). */
function resumedConfig(o: TrainOptions, c: Checkpoint): ModelConfig {
  const clash = resumeClashes(o, c.config, c.options);
  if (clash.length) throw new RunRefused(`--resume ${o.resume}: ${clash.join(', ')}`);
  return c.config;
}

/** Runs the model over a (preprocessed) dataset without gradients: mean loss, error rate, confusion matrix. */
export async function evaluate(model: NinModel, ds: ImageDataset, batchSize: number, opts: { timeWarm?: boolean } = {}): Promise<EvalResult> {
  const C = model.config.classes;
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  let lossSum = 0;
  let wrong = 0;
  // Every batch runs at the first batch's size, the last one padded with blank images: an image's
  // logits do not depend on the others in its batch (no batch statistics; dropout is off), and
  // kernels are compiled per shape, so a shorter last batch would compile the whole forward pass
  // again (on lavapipe about a second a kernel). The loss is then taken here, of the real images.
  const full = Math.min(batchSize, ds.count);
  const loader = new BatchLoader(ds, { batchSize, shuffle: false, dropLast: false });
  const t0 = performance.now();
  let firstBatchEnd = 0;
  let batches = 0;
  const logitsOf = async (images: Float32Array, shape: number[]) => {
    const logits = noGrad(() => tidy(() => model.forward(Tensor.fromArray(images, shape), { train: false })));
    return logits.toArray().finally(() => logits.dispose()); // also when the read fails: the caller may go on with the device
  };
  let last: [Float32Array, number[]] | null = null;
  for await (const b of loader.epoch(0)) {
    const [, height, width, channels] = b.shape;
    const images = b.size === full ? b.images : padded(b.images, full * height * width * channels);
    last = [images, [full, height, width, channels]];
    const lv = await logitsOf(...last);
    for (let i = 0; i < b.size; i++) {
      const label = b.labels[i];
      if (!(label >= 0 && label < C)) throw new RunRefused(`${ds.name}: image ${b.indices[i]} has label ${label}, but the model has ${C} classes (labels 0–${C - 1})`);
      lossSum += logSumExp(lv, i * C, C) - lv[i * C + label];
      const best = argmax(lv, i * C, C);
      confusion[label][best]++;
      if (best !== label) wrong++;
    }
    if (++batches === 1) firstBatchEnd = performance.now();
  }
  const ms = performance.now() - t0;
  let warmMs = warmMilliseconds(ms, firstBatchEnd - t0, batches);
  if (batches === 1 && opts.timeWarm && last) {
    const t1 = performance.now();
    await logitsOf(...last);
    warmMs = Math.min(ms, performance.now() - t1);
  }
  return { loss: lossSum / ds.count, error: wrong / ds.count, count: ds.count, confusion, seconds: ms / 1000, warmSeconds: warmMs / 1000 };
}

/** A pass of `batches` batches that took `ms`, the first `firstMs` of it: its time at the rate of
 * the batches after the first (which carries any kernel compiles), never more than it took. With
 * one batch there is nothing to go by: its time as it was. */
export function warmMilliseconds(ms: number, firstMs: number, batches: number): number {
  return batches > 1 ? Math.min(ms, ((ms - firstMs) * batches) / (batches - 1)) : ms;
}

/** `values` followed by zeros to `length`: a batch padded with blank images (evaluate, predict). */
export function padded(values: Float32Array, length: number): Float32Array {
  const out = new Float32Array(length);
  out.set(values);
  return out;
}

/** ln Σ exp(a[offset .. offset + n)), in float64: a row's cross-entropy is this less its label's logit. */
export function logSumExp(a: ArrayLike<number>, offset: number, n: number): number {
  let max = -Infinity;
  for (let c = 0; c < n; c++) max = Math.max(max, a[offset + c]);
  if (!Number.isFinite(max)) return max; // NaN, or +∞ (−∞: every logit −∞)
  let sum = 0;
  for (let c = 0; c < n; c++) sum += Math.exp(a[offset + c] - max);
  return max + Math.log(sum);
}

/** Index of the largest of a[offset .. offset + n). */
export function argmax(a: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let c = 1; c < n; c++) if (a[offset + c] > a[offset + best]) best = c;
  return best;
}

/**
 * Watches the step losses for a net stuck at chance: `steps` losses in a row within `band` of ln C
 * (every class equally likely) whose mean is within `tol` of it. A mean, because a net that
 * predicts the same for every image still sees its loss move by ±0.02 with each batch's labels
 * (seen on CIFAR-10: one class predicted for every test image after an epoch; the losses logged
 * every 20 steps from step 280 on ran from 2.276 to 2.320, the mean over steps 290–390 was 2.307).
 * `observe` returns a hint the first time that happens (once per train() call: a resumed run may
 * hint again), else null.
 */
export function chancePlateauWatch(classes: number, reluClassMaps: boolean, steps = 100, tol = 0.01, band = 0.1) {
  const chance = Math.log(classes);
  const recent: number[] = [];
  let warned = false;
  return {
    observe(loss: number, step: number): string | null {
      if (!(Math.abs(loss - chance) <= band)) {
        recent.length = 0;
        return null;
      }
      recent.push(loss);
      if (recent.length > steps) recent.shift();
      if (warned || recent.length < steps || Math.abs(recent.reduce((a, b) => a + b, 0) / steps - chance) > tol) return null;
      const since = step - steps + 1;
      warned = true;
      return (
        `note: the loss has averaged ln ${classes} = ${chance.toFixed(4)} (chance: every class equally likely) over ${steps} steps, since step ${since}` +
        (reluClassMaps ? `; the class maps may be dead (ReLU outputs all zero): --class-maps linear, a lower --lr or a longer --warmup usually get past it` : `; a lower --lr or a longer --warmup may get past it`)
      );
    },
  };
}

/** The classes no image of `labels` is of: a --train-limit below the classes, a small class all held out. */
export function classesWithoutImages(labels: ArrayLike<number>, classNames: readonly string[]): string[] {
  const seen = new Set<number>();
  for (let i = 0; i < labels.length; i++) seen.add(labels[i]);
  return classNames.filter((_, k) => !seen.has(k));
}

/** The class an evaluation predicted for every image, where it predicted one only and the images
 * were of several classes (a net whose output no longer depends on its input); else null. */
export function collapsedTo(confusion: number[][]): number | null {
  const predicted = confusion.map((_, c) => confusion.reduce((n, row) => n + row[c], 0));
  const used = predicted.flatMap((n, c) => (n > 0 ? [c] : []));
  const trueClasses = confusion.filter((row) => row.some((n) => n > 0)).length;
  return used.length === 1 && trueClasses > 1 ? used[0] : null;
}

/**
 * Watches for class maps that a ReLU has zeroed everywhere (GAP head): every logit of a batch is
 * then exactly 0, the loss exactly ln C, and no gradient reaches any weight: only weight decay still
 * moves them, by lr·decay a step (1e-5 at the paper's settings), so the run has stopped learning.
 * `observe` returns true once `steps` batches in a row were dead (by then momentum has spent what it
 * carried: 0.9^50 < 1 %).
 */
export function deadClassMapsWatch(steps = 50, deadSince: number | null = null) {
  let since = deadSince ?? -1; // a resumed run's count goes on from its checkpoint's
  return {
    since: () => since,
    observe(logits: ArrayLike<number>, step: number): boolean {
      for (let i = 0; i < logits.length; i++) {
        if (logits[i] !== 0) {
          since = -1;
          return false;
        }
      }
      if (since < 0) since = step;
      return step - since + 1 >= steps;
    },
  };
}

/** Steps at the start of a profiled epoch that the per-kernel table leaves out. */
export const PROFILE_WARMUP_STEPS = 2;

/** `items`, with `onFailure` called (and awaited: it throws) where their iterator fails; a failure
 * of the loop's own body passes by it. */
async function* orOnFailure<T>(items: AsyncIterable<T>, onFailure: (e: unknown) => Promise<never>): AsyncGenerator<T> {
  try {
    for await (const item of items) yield item;
  } catch (e) {
    await onFailure(e);
  }
}

/** A learning rate in 3 significant digits, 0 as 0 (a cosine's end: toPrecision gives "0.00"). */
function fmtLr(lr: number): string {
  return lr === 0 ? '0' : lr.toPrecision(3);
}

/**
 * The splits to train on, raw (pixels 0..255). `consumable`: the caller hands the image arrays
 * over, so the preprocessing overwrites them instead of copying every split (loadSplits's sets
 * are the caller's alone; SVHN with extra: one 7 GB copy fewer).
 */
export interface TrainData {
  train: ImageDataset;
  validation?: ImageDataset;
  test?: ImageDataset;
  consumable?: boolean;
}

/** Gives a new network the weights `--weights-from` names, and says which it took and why it left each other one. */
export function startFromWeights(model: NinModel, start: Checkpoint, o: TrainOptions): string {
  const { taken, fresh } = start.startFrom(model, o);
  const list = fresh.map((f) => `${f.name} [${f.shape.join(', ')}] (${f.why})`);
  const when = start.partialEpoch ? `within epoch ${start.epoch + 1}, at step ${start.step}` : `after epoch ${start.epoch}`;
  return `weights from ${o.weightsFrom} (${start.config.name} ${when}, trained on ${dataLabel(start.options)}): ${taken.length} of ${model.params.length} parameter tensors` + (list.length ? `; initialised afresh: ${list.join(', ')}` : '');
}

/**
 * The checkpoints a run starts from, read and checked whole (checksum, format, shapes): `--resume`'s,
 * else `--weights-from`'s (a resumed run holds its weights: where they first came from is only on
 * record). The CLI reads them before the data, so that a damaged file is named before minutes of
 * loading and preprocessing, and hands them to train().
 */
export function startingCheckpoints(o: Pick<TrainOptions, 'resume' | 'weightsFrom'>): { resumed: Checkpoint | null; start: Checkpoint | null } {
  const resumed = o.resume ? loadCheckpoint(o.resume) : null;
  return { resumed, start: o.weightsFrom && !resumed ? loadCheckpoint(o.weightsFrom) : null };
}

/** What train() and dryRun() check before they touch the run directory or fit any preprocessing:
 * the run's network, and that the data, the batch and a resume's checkpoint fit it. */
export interface CheckedRun {
  matrix: MatrixMode | null;
  resumed: Checkpoint | null;
  start: Checkpoint | null;
  config: ModelConfig;
  source: ResumeSource | undefined;
  /** The epoch the run stops after (--stop-after, else --epochs). */
  lastEpoch: number;
  /** Full batches in an epoch of the training set (the loader drops the last partial one). */
  epochSteps: number;
}

export async function checkedRun(o: TrainOptions, data: TrainData, checkpoints: ReturnType<typeof startingCheckpoints>): Promise<CheckedRun> {
  await getGpu();
  const matrix = checkedMatrixSettings(); // a bad NIN_MATRIX or NIN_MATRIX_TILE fails here, before any training
  tuningTable(); // so does a bad tuning table (kernels/tuning.ts)
  const { resumed, start } = checkpoints;
  const config = resumed ? resumedConfig(o, resumed) : modelConfig(o);
  const { height, width, channels } = config.input;
  if (data.train.height !== height || data.train.width !== width || data.train.channels !== channels) {
    throw new RunRefused(`model ${config.name} takes ${height}×${width}×${channels} images but ${data.train.name} has ${data.train.height}×${data.train.width}×${data.train.channels}`);
  }
  if (data.train.count < o.batchSize) throw new RunRefused(`batch size ${o.batchSize} is larger than the training set (${data.train.count} images)`);
  // Before the preprocessing (minutes for ZCA on a full set), not at the first step.
  // (a new folder run's built-in network takes the size --image-size gives; --config fixes its own)
  const tooLarge = batchTooLarge(config, o.batchSize, o.imageFolder && !resumed ? ' (with a built-in --model, --image-size)' : '');
  if (tooLarge) throw new Error(`--batch ${o.batchSize}: ${tooLarge}`);
  const savedPartial = resumed?.partialEpoch;
  const shuffleChanged = savedPartial && shuffleChangedWithinEpoch(o.resume!, resumed!.epoch, resumed!.options, o);
  if (shuffleChanged) throw new RunRefused(shuffleChanged);
  const batchesNow = Math.floor(data.train.count / o.batchSize); // the loader drops the last partial batch
  if (savedPartial && savedPartial.stepsPerEpoch !== batchesNow) {
    throw new RunRefused(
      `${o.resume} was saved within epoch ${resumed!.epoch + 1}, after batch ${savedPartial.batches} of ${savedPartial.stepsPerEpoch}; with batch size ${o.batchSize} and ${data.train.count} training images an epoch has ` +
        `${batchesNow} batches, so the run cannot continue that epoch: resume with the batch size and training set it was saved with`,
    );
  }
  const lastEpoch = Math.min(o.epochs, o.stopAfter ?? o.epochs);
  if (resumed && resumed.epoch >= lastEpoch) throw new RunRefused(nothingToTrain(o.resume!, resumed.epoch, o));
  if (o.schedule === 'plateau') {
    const done = resumed?.plateau && plateauDone(o.resume!, resumed.epoch, resumed.plateau, o);
    if (done) throw new RunRefused(done);
    if (plateauSettings(o).on === 'val' && !data.validation) throw new RunRefused(PLATEAU_ON_VAL_WITHOUT_VAL);
  }
  const source: ResumeSource | undefined = resumed ? { path: o.resume!, runId: resumed.runId, savedOutDir: resumed.options.outDir } : undefined;
  return { matrix, resumed, start, config, source, lastEpoch, epochSteps: batchesNow };
}

/**
 * Trains a model. The preprocessing statistics are fitted on the training part only (after the
 * validation split) and applied to every split once, up front.
 */
export async function train(o: TrainOptions, data: TrainData, checkpoints = startingCheckpoints(o)): Promise<TrainResult> {
  const log = runLogger(o);
  const t0 = performance.now();
  const checked = await checkedRun(o, data, checkpoints);
  const claimed = claimRunDirectory(o.outDir, o.outDirSeries, log);
  const lock = claimed.lock;
  o = { ...o, outDir: claimed.dir };
  try {
    if (lock.replaced) log(`${lock.path}: replaced the lock left by process ${lock.replaced.pid} (since ${lock.replaced.since}), which no longer runs`);
    return await trainInDirectory(o, data, { ...checked, log, t0, lock });
  } finally {
    const left = lock.release();
    if (left) log(left);
  }
}

/**
 * The plateau schedule's state at a run's start (null on another schedule): the checkpoint's, going
 * on. A run it ended, resumed with more --lr-drops allowed: the plateau that ended it drops the
 * rate now. Says what changes.
 */
export function plateauAtStart(o: TrainOptions, resumed: Checkpoint | null, log: (line: string) => void): PlateauState | null {
  if (o.schedule !== 'plateau') return null;
  const { on, lrDrops } = plateauSettings(o);
  let plateau = resumed?.plateau ?? newPlateauState(on);
  if (plateau.on !== on) {
    // The lowest error so far was the other set's: the count starts afresh on this one.
    plateau = { ...plateau, on, best: null, sinceBest: 0 };
    log(`the plateau schedule watches the ${on === 'val' ? 'validation' : 'training'} error from here (it watched the ${on === 'val' ? 'training' : 'validation'} error): its lowest is tracked afresh`);
  }
  if (plateau.finished) {
    plateau = { ...plateau, drops: plateau.drops + 1, sinceBest: 0, finished: false };
    log(`the plateau schedule had ended the run at epoch ${resumed?.epoch ?? 0}; with --lr-drops ${lrDrops}: lr ×${o.gamma} now (drop ${plateau.drops} of ${lrDrops})`);
  }
  return plateau;
}

/**
 * Notes on a resume that changes the schedule (--lr, --epochs, --schedule): a cosine over more
 * epochs, for one, restarts part way up. Said, not refused: a warm restart can be what was meant.
 * (The checkpoint's own options may hold a value a flag replaced for being damaged: no note then.)
 */
export function resumedScheduleNotes(o: TrainOptions, resumed: Checkpoint, plateau: PlateauState | null, stepsPerEpoch: number): string[] {
  const notes: string[] = [];
  const at = resumed.epoch * stepsPerEpoch + (resumed.partialEpoch?.batches ?? 0);
  let was = NaN;
  try {
    // Staying on the plateau schedule, this run's drops (a run the schedule ended drops once more
    // now, and says so); leaving it, the checkpoint's (this run's plateau state is null then).
    const drops = o.schedule === 'plateau' ? plateau?.drops : resumed.plateau?.drops;
    was = learningRate(resumed.options, at, stepsPerEpoch, drops);
  } catch {
    // no note
  }
  const now = learningRate(o, at, stepsPerEpoch, plateau?.drops);
  if (Number.isFinite(was) && Math.abs(now - was) > 1e-9 * Math.max(was, now)) notes.push(`note: the learning rate goes on at ${fmtLr(now)} under this run's schedule; the checkpoint's would have it at ${fmtLr(was)} here`);
  // A longer (or shorter) step-schedule run keeps its drops: moved later, they would put the rate
  // back up after epochs already trained at the dropped one. Said where the defaults would differ.
  const saved = resumed.options;
  const fresh = defaultStepEpochs(o.epochs);
  if (o.schedule === 'step' && saved.schedule === 'step' && o.epochs !== saved.epochs && String(o.stepEpochs) === String(saved.stepEpochs) && String(fresh) !== String(o.stepEpochs)) {
    notes.push(`note: the rate still drops at epoch${o.stepEpochs.length === 1 ? '' : 's'} ${o.stepEpochs.join(', ')}, as the checkpoint's run of ${saved.epochs} epochs; a new run of ${o.epochs} would drop at ${fresh.join(', ')} (--lr-steps moves them)`);
  }
  return notes;
}

/** Where a run's lines go: `o.log`, else standard error. */
export function runLogger(o: Pick<TrainOptions, 'log'>): (line: string) => void {
  return o.log ?? ((l: string) => process.stderr.write(l + '\n'));
}

/** A run's training batches from `ds`: shuffled by its seed, the last partial batch dropped, and
 * with --aug translated (up to 4 pixels) and flipped. */
export function runBatches(ds: ImageDataset, o: Pick<TrainOptions, 'batchSize' | 'seed' | 'augment'>): BatchLoader {
  return new BatchLoader(ds, { batchSize: o.batchSize, shuffle: true, dropLast: true, seed: o.seed, augment: o.augment ? { pad: 4, flip: true } : undefined });
}

/** The seed of the dropout masks of a run's global step `step`. */
export function dropoutSeed(seed: number, step: number): number {
  return deriveSeed(seed, 0xd509, step);
}

/** The network, initialised by the run's seed, and its SGD with the parameter groups' multipliers
 * (the class layer's by --class-lr-mult too). */
export function newModelAndOptimiser(o: TrainOptions, config: ModelConfig): { model: NinModel; opt: SGD } {
  const model = new NinModel(config, o.seed);
  const classifier = model.classifierParams();
  const lrMult = (p: (typeof model.params)[number]) => p.lrMult * (classifier.includes(p.name) ? (o.classLrMult ?? 1) : 1);
  return { model, opt: new SGD(model.params.map((p) => ({ param: p.tensor, lrMult: lrMult(p), decayMult: p.decayMult })), { momentum: o.momentum, weightDecay: o.weightDecay }) };
}

/** The GPU memory a run's steps and evaluations took, from the pool's peaks. */
export function memoryLine(peaks: { peakHeldBytes: number; peakLiveBytes: number }, batchSize: number): string {
  return `GPU memory: the engine's buffers held ${fmtBytes(peaks.peakHeldBytes)} at most (${fmtBytes(peaks.peakLiveBytes)} of it in tensors at once), at batch ${batchSize}`;
}

/** One SGD step on a batch (its dropout masks drawn from `seed`): the loss and logits, for the
 * caller to read back and dispose; the gradients are zeroed after the update. */
export function trainingStep(model: NinModel, opt: SGD, batch: { images: Float32Array; shape: number[]; labels: Int32Array }, lr: number, seed: number): { loss: Tensor; logits: Tensor } {
  const out = tidy(() => {
    const x = Tensor.fromArray(batch.images, batch.shape);
    const step = model.lossAndGradients(x, labelTensor(batch.labels, model.config.classes), { train: true, seed });
    profileScope('sgd', () => opt.step(lr));
    return step;
  });
  zeroGrad(model.params.map((p) => p.tensor));
  return out;
}

/** The model's lines at a run's start: its name, head and init, its summary, and unfused GEMMs where NIN_MATRIX asks. */
export function modelLines(model: NinModel, matrix: MatrixMode | null): string {
  const { config } = model;
  return `model ${config.name} (${config.head} head, ${config.init} init)\n${model.describe()}` + (matrix ? `\nGEMMs on ${describeMatrixMode(matrix)} (NIN_MATRIX); mlpconv blocks run unfused` : '');
}

/** The recipe as it runs: a data set's defaults, an image folder's, a resumed run's and the flags' make it. */
export function recipeLine(o: TrainOptions, config: ModelConfig, stepsPerEpoch: number): string {
  const warmup = o.warmupEpochs ? `, ${o.warmupEpochs}-epoch warm-up` : '';
  // (a data set's or an FC head's default, not only a flag: a recipe read off this line should hold it)
  const classRate = (o.classLrMult ?? 1) === 1 ? '' : `, ${config.head === 'gap' ? 'the class maps' : 'the FC layer'} at ${o.classLrMult}× it`;
  return `training: ${counted(o.epochs, 'epoch')} of ${counted(stepsPerEpoch, 'step')} of ${counted(o.batchSize, 'image')}; lr ${o.lr}, ${describeSchedule(o as unknown as Record<string, unknown>)}${warmup}${classRate}; momentum ${o.momentum}, weight decay ${o.weightDecay}; ${o.preprocess === 'none' ? 'no' : o.preprocess} preprocessing, augmentation ${o.augment ? 'on' : 'off'}; seed ${o.seed}`;
}

/** --profile's tables (per kernel, then per layer) of `what` (an epoch; a dry run), stopping the profiler first. `cold`:
 * too few steps to leave out the process's first, whose GPU times include compiling their kernels.
 * A failed timestamp readback is said, and the epoch goes on to be evaluated and saved. */
export async function logProfile(prof: Profiler, what: string, cold: boolean, log: (line: string) => void): Promise<void> {
  prof.stop();
  const rows = await prof.collect().catch((e: Error) => {
    log(`warning: no per-kernel profile for ${what}: ${e.message}`);
    return null;
  });
  if (!rows) return;
  const steps = `per step (mean over its last ${rows[0]?.steps ?? 0} steps)`;
  const coldNote = `note: these steps include this process's first, whose GPU times include compiling their kernels; an epoch of ${PROFILE_WARMUP_STEPS + 1} or more steps (a smaller --batch) leaves them out`;
  log(formatProfile(rows, { title: `per-kernel GPU time, ${what}, ${steps}`, notes: [...prof.notes(), ...(cold ? [coldNote] : [])] }));
  // The same time by layer (forward, and its backward apart) and the loss and optimiser.
  const scopes = await prof.collectByScope().catch(() => null); // (collect() said why, if it failed)
  if (scopes) log(formatScopeProfile(scopes, { title: `per-layer GPU time, ${what}, ${steps}` }));
}

/** train() once it holds the run directory's lock. */
async function trainInDirectory(
  o: TrainOptions,
  data: TrainData,
  run: CheckedRun & { log: (line: string) => void; t0: number; lock: RunLock },
): Promise<TrainResult> {
  const { log, t0, matrix, resumed, start, config, lastEpoch, epochSteps } = run;
  const files = new RunWriter(o, run, log);
  const { checkpointPath: ckptPath, bestPath } = files;
  const stopWith = (why: string) => files.stopWith(why);

  const { model, opt } = newModelAndOptimiser(o, config);
  let pre: Preprocessor;
  let startEpoch = 0;
  let step = 0;
  if (resumed) {
    resumed.restore(model, opt);
    pre = resumed.preprocessor;
    startEpoch = resumed.epoch;
    step = resumed.step;
    // (epochs counted from 1, as the progress line and an interrupt name them)
    const within = resumed.partialEpoch;
    log(`resumed from ${o.resume}: ` + (!within ? `after epoch ${startEpoch}, at step ${step}` : within.batches === epochSteps ? `after epoch ${startEpoch + 1}'s training, at step ${step}: its evaluation first` : `within epoch ${startEpoch + 1}, at step ${step} (batch ${within.batches} of ${epochSteps})`));
  } else {
    if (start) log(startFromWeights(model, start, o));
    pre = await fitPreprocessor(o.preprocess, data.train, log, { zcaCache: zcaCacheDir() });
  }
  let plateau = plateauAtStart(o, resumed, log);
  const plateauOpts = plateauSettings(o);
  // A resume's history (its epochs, and the stretches that logged them): the best epoch so far on
  // validation, and the snapshots and best.safetensors it keeps.
  const history = resumed ? historyEpochs(files, o.outDir) : [];
  let best = bestOnResume(files, { o, resumed, startEpoch, history, testCount: data.test?.count, log });
  if (resumed) snapshotsOnResume(files, { o, resumed, startEpoch, history, log });
  if (pre.kind === 'gcn-lcn') log(`local contrast normalisation of ${data.train.count + (data.validation?.count ?? 0) + (data.test?.count ?? 0)} images on ${defaultWorkers()} CPU threads (about 0.2 ms each on one)…`);
  const inPlace = { inPlace: data.consumable ?? false };
  const trainSet = await pre.applyTo(data.train, inPlace);
  const valSet = data.validation && (await pre.applyTo(data.validation, inPlace));
  const testSet = data.test && (await pre.applyTo(data.test, inPlace));
  const loader = runBatches(trainSet, o);
  log(`run directory ${o.outDir}`);
  if (o.augment && (o.dataset === 'mnist' || o.dataset === 'svhn')) log(`note: --aug flips images left to right, which changes what a digit is (the paper augmented CIFAR-10 only; ${o.dataset}'s default is no augmentation)`);
  if (o.lr === 0) log('note: --lr 0: no step changes the weights (every epoch evaluates the same model)');
  const unseen = classesWithoutImages(data.train.labels, data.train.classNames);
  if (unseen.length) log(`note: no training image is of class${unseen.length > 1 ? 'es' : ''} ${listSome(unseen, 10)} (${counted(data.train.count, 'training image')}${o.trainLimit !== undefined ? `, --train-limit ${o.trainLimit}` : ''}): the net cannot learn ${unseen.length > 1 ? 'them' : 'it'}`);
  const unusedStd = resumed ? null : unusedInitStd(config);
  if (unusedStd) log(`note: ${unusedStd}`);
  log(modelLines(model, matrix));
  const stepsPerEpoch = loader.batchesPerEpoch;
  log(recipeLine(o, config, stepsPerEpoch));
  if (stepsPerEpoch !== epochSteps) throw new Error(`internal: the loader makes ${stepsPerEpoch} batches an epoch, the log's ${files.first.kind} record says ${epochSteps}`);
  // A tiny run (an image folder of a few dozen images, one epoch) may never leave its warm-up.
  if (o.warmupEpochs && Math.ceil(o.warmupEpochs * stepsPerEpoch) >= o.epochs * stepsPerEpoch) {
    log(`note: every step of this run is in its ${o.warmupEpochs}-epoch warm-up (${counted(o.epochs * stepsPerEpoch, 'step')} in all): the lr never reaches ${o.lr}; give more --epochs, or --warmup 0`);
  }
  const epochs: EpochRecord[] = [];
  const stepLosses: number[] = [];
  let prof: Profiler | null = o.profile ? await startProfiler() : null; // the first epoch with a step to time
  const save = (path: string, epochsDone: number, partialEpoch?: PartialEpoch) =>
    files.save(path, { model, opt, preprocessor: pre, epoch: epochsDone, step, partialEpoch, plateau: plateau ?? undefined, deadMapsSince: deadMaps && deadMaps.since() >= 0 ? deadMaps.since() : undefined });
  // A picture that cannot be read (a streamed folder's file, damaged past its header) stops the run,
  // but first saves it where it stands: --resume, once the picture is mended, goes on from there,
  // and an epoch whose evaluation failed is evaluated first.
  const stopUnreadable = async (e: unknown, where: string, epochsDone: number, partialEpoch: PartialEpoch | null): Promise<never> => {
    if (!(e instanceof DataFormatError) && !(e instanceof StreamReadError)) throw e;
    if (!partialEpoch) throw stopWith(`${e.message}; ${where}`);
    await save(ckptPath, epochsDone, partialEpoch); // (a failure to save says the last good one)
    throw new TrainingStopped(`${e.message}; ${where}; checkpoint ${ckptPath} saved there: --resume ${shellWord(ckptPath)} continues from there once the picture reads`);
  };
  const reluClassMaps = classMapsOf(config) === 'relu';
  // (--lr 0, said at the start: the watches' advice, a lower --lr or a longer warm-up, is for a net that trains)
  const chancePlateau = o.lr === 0 ? null : chancePlateauWatch(config.classes, reluClassMaps);
  const deadMaps = reluClassMaps && config.head === 'gap' ? deadClassMapsWatch(50, resumed?.deadMapsSince) : null;
  let testResult: EvalResult | null = null;
  let collapseNoted = false; // (once a run: a collapsed net stays so)

  // The steps left to --stop-after's epoch (or --epochs'), for the ETA.
  const stepsLeft = (epoch: number, inEpoch: number) => (lastEpoch - epoch) * stepsPerEpoch - inEpoch;
  // The schedule goes by epochs (epoch + inEpoch / stepsPerEpoch), not by the run's step count: a
  // resume may change the batch size at an epoch's end, and so the number of steps in an epoch.
  const lrAt = (epoch: number, inEpoch: number, drops = plateau?.drops) => learningRate(o, epoch * stepsPerEpoch + inEpoch, stepsPerEpoch, drops);
  if (resumed) for (const note of resumedScheduleNotes(o, resumed, plateau, stepsPerEpoch)) log(note);
  // The progress line's img/s times the training steps only: not the data preparation before them
  // (a ZCA fit or LCN can take minutes), nor each epoch's evaluation and saves, which its ETA adds
  // as long as the last epoch's took, less the first evaluation's kernel compiles.
  const trained = { ms: 0, steps: 0 }; // in the epochs of this process finished so far
  // The process's first steps compile most kernels (seconds on lavapipe): the ETA is timed from
  // its third step on, and is '…' until then (img/s counts them, as the epoch's record does).
  const RATE_FROM_STEP = 3;
  let rateFrom: { ms: number; images: number } | null = null;
  let epochEndSeconds = 0;
  const saveEveryMs = (o.checkpointMinutes ?? 0) * 60_000;
  let lastSave = performance.now();
  let stop = false; // o.interrupt's answer after the last step
  let pending: Promise<void> | null = null;
  let lastReads: Promise<unknown> | null = null; // the newest step's readback, which frees its loss and logits
  pool().resetPeaks(); // the run's own peak (weights and optimiser state included), for its records
  let memoryNoted = false;
  try {
    // A live progress bar on stderr's terminal (elsewhere, a progress line every 10 s).
    const liveBar = process.stderr.isTTY === true && o.progress !== false;
    for (let epoch = startEpoch; epoch < lastEpoch; epoch++) {
      const te = performance.now();
      const firstStep = step;
      // Resumed from a checkpoint saved within this epoch: its first batches are done, its sums go on.
      const partial = epoch === startEpoch ? (resumed?.partialEpoch ?? null) : null;
      let lossSum = partial?.lossSum ?? 0;
      let wrong = partial?.wrong ?? 0;
      let seen = partial?.seen ?? 0;
      // The epoch's training seconds up to `t`: a resumed epoch's saved ones and this process's since te.
      const epochSeconds = (t: number) => (partial?.seconds ?? 0) + (t - te) / 1000;
      pending = null;
      let lastPrint = -Infinity; // a line at the epoch's first step (with 0, it came only once the process had run 10 s: performance.now() counts from its start)
      const firstBatch = partial?.batches ?? 0;
      let inEpoch = firstBatch; // batches done in this epoch
      let lr = lrAt(epoch, inEpoch);
      // The first steps' GPU times include one-off work (lavapipe compiles shaders on first use): the
      // profile covers the steps after them, and leaves at least one step to time. (A run resumed at
      // an epoch's end, with no step left in it, profiles the next.)
      const profileFrom = firstBatch + Math.min(PROFILE_WARMUP_STEPS, stepsPerEpoch - firstBatch - 1);
      const partialSums = (): PartialEpoch => ({ batches: inEpoch, stepsPerEpoch, lossSum, wrong, seen, seconds: epochSeconds(performance.now()) });
      const batches = orOnFailure(loader.epoch(epoch, inEpoch), async (e) => {
        if (pending) await pending; // the last step's loss in the sums (or its own failure first)
        pending = null;
        return stopUnreadable(e, `at step ${step} (epoch ${epoch + 1}, batch ${inEpoch + 1} of ${stepsPerEpoch})`, epoch, inEpoch > firstBatch ? partialSums() : null);
      });
      for await (const batch of batches) {
        lr = lrAt(epoch, inEpoch);
        const thisStep = step;
        const thisLr = lr; // for the log: `lr` moves on to the next step before this readback resolves
        const { loss, logits } = trainingStep(model, opt, batch, lr, dropoutSeed(o.seed, thisStep));
        prof?.markStep();
        if (prof && inEpoch === profileFrom - 1) await prof.reset();
        // Read this step's loss while the next batch is prepared and recorded: wait only for the
        // previous step's readback, so the GPU always has the next step queued behind it.
        const prev: Promise<void> | null = pending;
        const labels = batch.labels;
        // Freed once read, whatever became of the steps before (a stopped run leaks nothing).
        const reads = Promise.all([loss.item(), logits.toArray()]).finally(() => {
          loss.dispose();
          logits.dispose();
        });
        reads.catch(() => {}); // its failure reaches the loop through `pending`; no unhandled rejection
        lastReads = reads;
        // Steps are taken in step order, whichever readback lands first: the losses, sums and log
        // (and so a resumed run's losses) must not depend on the GPU's timing.
        pending = (prev ?? Promise.resolve()).then(() => reads).then(([l, lg]) => {
          // Said in the log too: a run stopped before its first save leaves nothing else that says it diverged.
          const stopped = (why: string) => {
            const e = stopWith(why);
            files.writeMetrics({ kind: 'stopped', epoch, step: thisStep, reason: e.message });
            return e;
          };
          if (!Number.isFinite(l)) {
            throw stopped(`loss is ${l} at step ${thisStep} (epoch ${epoch + 1}): the run diverged (a lower --lr or a longer --warmup may help)`);
          }
          if (deadMaps?.observe(lg, thisStep)) {
            throw stopped(
              `the class maps are dead at step ${thisStep} (epoch ${epoch + 1}): the last mlpconv's ReLU has output only zeros since step ${deadMaps.since()}, so every logit is 0, the loss is ln ${config.classes} and no gradient reaches any weight: the run has stopped learning. ` +
                'Start again with --class-maps linear, or a lower --lr or a longer --warmup',
            );
          }
          stepLosses.push(l);
          const hint = chancePlateau?.observe(l, thisStep);
          if (hint) log(liveBar ? `\n${hint}` : hint); // off the progress bar's line
          lossSum += l * labels.length;
          for (let i = 0; i < labels.length; i++) if (argmax(lg, i * config.classes, config.classes) !== labels[i]) wrong++;
          seen += labels.length;
          if (thisStep % 20 === 0) files.writeMetrics({ kind: 'step', epoch, step: thisStep, loss: l, lr: thisLr });
        });
        // Awaited a step later: a failure meanwhile (a GPU error at the readback, found while the
        // loop waits for the next batch) is not an unhandled rejection, which ended the process.
        pending.catch(() => {});
        if (prev) await prev;
        step++;
        inEpoch++;
        if (inEpoch === stepsPerEpoch && pending) {
          await pending; // the epoch's last line shows its whole mean loss
          pending = null;
        }
        const now = performance.now();
        const trainedMs = trained.ms + now - te;
        const trainedImages = (trained.steps + step - firstStep) * o.batchSize;
        if (!rateFrom && trained.steps + step - firstStep >= RATE_FROM_STEP) rateFrom = { ms: trainedMs, images: trainedImages };
        // A live bar on a terminal; a line every 10 s in logs.
        const interval = process.stderr.isTTY ? 1000 : 10_000;
        if (o.progress !== false && (now - lastPrint > interval || inEpoch === stepsPerEpoch)) {
          lastPrint = now;
          // The epoch's rate so far, as its line will give it (a rate since the process began would
          // carry the first epoch's compiles on: 3.7 img/s shown beside an epoch line's 227).
          // Only the steps read back count: the one just recorded may still be on the device. (At an
          // epoch's first step nothing has finished: one step queued over the time to queue it read
          // 900–4,200 img/s on lavapipe, beside the epoch line's 150–300.) At its end all are read.
          const done = inEpoch === stepsPerEpoch ? inEpoch : inEpoch - 1;
          const rate = done > firstBatch ? (done * o.batchSize) / epochSeconds(now) : null;
          const { etaSeconds: eta } = progressEstimate({
            trainedMs,
            trainedImages,
            imagesLeft: stepsLeft(epoch, inEpoch) * o.batchSize,
            evaluationsLeft: lastEpoch - epoch,
            evaluationSeconds: epochEndSeconds,
            warmFrom: rateFrom,
          });
          const line = progressLine({ epoch, epochs: o.epochs, inEpoch, stepsPerEpoch, imgPerSec: rate, meanLoss: seen ? lossSum / seen : null, lr, etaSeconds: eta, etaAtMost: o.schedule === 'plateau' });
          if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K`);
          else log(line);
        }
        // Within the epoch, on request or every --checkpoint-every minutes: a checkpoint where the run stands.
        stop = o.interrupt?.(step) ?? false;
        if ((stop || (saveEveryMs > 0 && now - lastSave >= saveEveryMs)) && inEpoch < stepsPerEpoch) {
          if (pending) await pending; // this step's loss in the sums
          pending = null;
          await save(ckptPath, epoch, partialSums());
          lastSave = performance.now();
          if (stop) {
            if (liveBar) process.stderr.write('\n');
            throw new TrainingInterrupted(`interrupted at step ${step} (epoch ${epoch + 1}, batch ${inEpoch} of ${stepsPerEpoch}); checkpoint ${ckptPath}: --resume ${shellWord(ckptPath)} continues from there`, ckptPath);
          }
        }
      }
      if (pending) await pending;
      if (liveBar) process.stderr.write('\n');
      const stepsDoneAt = performance.now(); // (before the profile's readback and table: not training time)
      if (prof && inEpoch > firstBatch) {
        await logProfile(prof, `epoch ${epoch + 1}`, profileFrom - firstBatch < PROFILE_WARMUP_STEPS, log);
        prof = null;
      }
      const epochEndFrom = performance.now(); // (the evaluations and saves, for the ETA: not the profile's once)
      trained.ms += stepsDoneAt - te;
      trained.steps += step - firstStep;
      const seconds = epochSeconds(stepsDoneAt);
      const rec: EpochRecord = { kind: 'epoch', epoch: epoch + 1, step, trainLoss: lossSum / seen, trainError: wrong / seen, lr, imgPerSec: seen / seconds, seconds };
      let compileSeconds = 0; // of the evaluations' kernels, the first time: not for the ETA
      let judged: EvalResult | undefined; // the test set's evaluation, else the validation set's
      // On a terminal, a line while it evaluates (the first time, its kernels compile: 19 s on lavapipe).
      const evaluating = liveBar && (valSet || testSet);
      if (evaluating) process.stderr.write(`evaluating on ${[valSet && `${valSet.count} validation`, testSet && `${testSet.count} test`].filter(Boolean).join(' and ')} images…`);
      try {
        if (valSet) {
          const v = (judged = await evaluate(model, valSet, o.batchSize, { timeWarm: true })); // (for the ETA)
          compileSeconds += v.seconds - v.warmSeconds;
          rec.valLoss = v.loss;
          rec.valError = v.error;
        }
        if (testSet) {
          testResult = judged = await evaluate(model, testSet, o.batchSize, { timeWarm: true });
          compileSeconds += testResult.seconds - testResult.warmSeconds;
          rec.testLoss = testResult.loss;
          rec.testError = testResult.error;
          rec.testImages = testResult.count;
        }
      } catch (e) {
        await stopUnreadable(e, `while evaluating epoch ${epoch + 1}`, epoch, { ...partialSums(), seconds }); // (its training time)
      } finally {
        if (evaluating) process.stderr.write('\r\x1b[K');
      }
      // The plateau schedule looks at the finished epoch; the checkpoint keeps what it decided.
      let scheduleNote = '';
      if (plateau) {
        const { on, patience, lrDrops } = plateauOpts;
        const { state, event } = plateauAfterEpoch(plateau, (on === 'val' ? rec.valError : rec.trainError) ?? NaN, o);
        plateau = state;
        const quiet = `no new lowest ${on === 'val' ? 'validation' : 'training'} error for ${counted(patience, 'epoch')}`;
        if (event === 'dropped') scheduleNote = `; ${quiet}: lr ×${o.gamma}, now ${fmtLr(lrAt(epoch + 1, 0, state.drops))} (drop ${state.drops} of ${lrDrops})`;
        if (event === 'finished') scheduleNote = `; ${quiet} after the last lr drop: the run is done`;
      }
      // The epoch's record first: a process killed while saving leaves a record beyond its last
      // checkpoint, which the resume from that checkpoint supersedes; the other way round, the
      // epoch would be missing from the history for good.
      const memory = { ...pool().stats }; // (as the record says it, for the line below)
      rec.gpuPeakBytes = memory.peakHeldBytes;
      files.writeMetrics(rec);
      await save(ckptPath, epoch + 1);
      const snapshot = keepsSnapshot(o, epoch + 1) ? files.keepSnapshot(epoch + 1) : null;
      const improved = rec.valError !== undefined && (!best || rec.valError < best.valError);
      if (improved) {
        await save(bestPath, epoch + 1);
        best = { epoch: epoch + 1, valError: rec.valError!, testError: rec.testError, checkpoint: bestPath };
      }
      epochs.push(rec);
      log(epochLine(rec, { checkpoint: ckptPath, snapshot, best: improved ? bestPath : null }) + scheduleNote);
      if (!memoryNoted) {
        memoryNoted = true; // (after the first epoch's evaluation: its batches are as large as training's)
        log(memoryLine(memory, o.batchSize));
      }
      // The chance watch misses a collapsed net whose batch losses stray past its band (small batches).
      const collapsed = judged && !collapseNoted ? collapsedTo(judged.confusion) : null;
      if (collapsed !== null) {
        collapseNoted = true;
        const names = (data.test ?? data.train).classNames;
        const fcRate = config.head !== 'gap' ? ' or a lower --class-lr-mult' : '';
        log(`note: every one of the ${judged!.count} ${judged === testResult ? 'test' : 'validation'} images was predicted as ${names[collapsed]}: the net's output does not depend on the image ${o.lr === 0 ? '(--lr 0: no step changes the weights)' : `(it has collapsed to one class, or has not started to learn); if that lasts, a lower --lr${fcRate}, or a longer --warmup, may get past it`}`);
      }
      lastSave = performance.now();
      epochEndSeconds = (lastSave - epochEndFrom) / 1000 - compileSeconds;
      if (plateau?.finished) break;
      stop ||= o.interrupt?.(step) ?? false; // a request during the evaluation
      if (epoch + 1 < lastEpoch && stop) {
        throw new TrainingInterrupted(`interrupted after epoch ${epoch + 1} (step ${step}); checkpoint ${ckptPath}: --resume ${shellWord(ckptPath)} continues from there`, ckptPath);
      }
    }
  } catch (e) {
    // A failed step (e.g. a NaN loss) may leave the next step's readback in flight: wait for it,
    // so that its tensors are freed before the caller hears of the failure.
    pending?.catch(() => {});
    await lastReads?.catch(() => {});
    if (e instanceof GpuOutOfMemory) {
      // (found at the step's readback, or an evaluation's: by then, not at)
      throw stopWith(`${e.message}; by step ${step}, at batch ${o.batchSize}: a smaller --batch needs less memory`);
    }
    throw e;
  } finally {
    prof?.stop();
    model.dispose();
    opt.dispose();
  }
  if (testResult) log(formatConfusion(testResult.confusion, data.test!.classNames));
  if (best) {
    log(`best validation error ${(100 * best.valError).toFixed(2)}% at epoch ${best.epoch}` + (best.testError !== undefined ? ` (test error there ${(100 * best.testError).toFixed(2)}%)` : '') + `: ${best.checkpoint}`);
  }
  return { epochs, stepLosses, checkpoint: ckptPath, best, test: testResult, seconds: (performance.now() - t0) / 1000 };
}

/** The progress line: the epoch's bar and step, its img/s and mean loss so far, the rate, and the
 * ETA ('…' until it is timed; "≤" where the plateau schedule may end the run sooner). */
export function progressLine(p: { epoch: number; epochs: number; inEpoch: number; stepsPerEpoch: number; imgPerSec: number | null; meanLoss: number | null; lr: number; etaSeconds: number | null; etaAtMost: boolean }): string {
  const bar = '█'.repeat(Math.round((20 * p.inEpoch) / p.stepsPerEpoch)).padEnd(20, '·');
  const eta = p.etaSeconds === null ? '…' : `${p.etaAtMost ? '≤ ' : ''}${fmtTime(p.etaSeconds)}`;
  return `epoch ${p.epoch + 1}/${p.epochs} ${bar} step ${p.inEpoch}/${p.stepsPerEpoch}  ${p.imgPerSec === null ? '…' : imageRate(p.imgPerSec)} img/s  loss ${p.meanLoss === null ? '…' : p.meanLoss.toFixed(4)}  lr ${fmtLr(p.lr)}  ETA ${eta}`;
}

/** An epoch's line in the log: its errors and losses, speed and time, and the checkpoints it saved. */
export function epochLine(rec: EpochRecord, saved: { checkpoint: string; snapshot: string | null; best: string | null }): string {
  return (
    `epoch ${rec.epoch}: train loss ${rec.trainLoss.toFixed(4)} error ${(100 * rec.trainError).toFixed(2)}%` +
    (rec.valError !== undefined ? `, validation error ${(100 * rec.valError).toFixed(2)}%` : '') +
    (rec.testError !== undefined ? `, test loss ${rec.testLoss!.toFixed(4)} error ${(100 * rec.testError).toFixed(2)}%` : '') +
    `, ${imageRate(rec.imgPerSec)} img/s, ${fmtTime(rec.seconds)}; checkpoint ${saved.checkpoint}` +
    (saved.snapshot ? ` (also ${saved.snapshot})` : '') +
    (saved.best ? ` (best validation error so far: also ${saved.best})` : '')
  );
}

/** The progress line's ETA: the images left at the training steps' rate (timed by the caller
 * without the evaluations and saves between epochs), plus each epoch's evaluation and saves left as
 * long as the last one's took. With `warmFrom` (the totals when the process's kernels were
 * compiled: its third step), at the rate since then, and null before it (the first steps' compiles
 * would make it many times too long). */
export function progressEstimate(p: { trainedMs: number; trainedImages: number; imagesLeft: number; evaluationsLeft: number; evaluationSeconds: number; warmFrom?: { ms: number; images: number } | null }): { etaSeconds: number | null } {
  const eta = (rate: number) => p.imagesLeft / rate + p.evaluationsLeft * p.evaluationSeconds;
  if (p.warmFrom === undefined) return { etaSeconds: eta(p.trainedImages / (p.trainedMs / 1000)) };
  if (p.warmFrom === null || p.trainedImages <= p.warmFrom.images) return { etaSeconds: null };
  return { etaSeconds: eta((p.trainedImages - p.warmFrom.images) / ((p.trainedMs - p.warmFrom.ms) / 1000)) };
}

/**
 * Rows: true class; columns: predicted class, headed by the class names cut to the columns' width
 * (counted in terminal columns: an image folder's classes may be named in CJK). Where cut names
 * would head two columns alike (class_01, class_02), the classes are numbered instead, and each
 * row says its number.
 */
export function formatConfusion(confusion: number[][], names: readonly string[]): string {
  const cell = Math.max(6, ...confusion.flat().map((v) => String(v).length));
  const clipped = names.map((n) => clipToWidth(n, cell));
  const numbered = new Set(clipped).size < names.length;
  const heads = numbered ? names.map((_, i) => String(i)) : clipped;
  const rowNames = names.map((n, i) => (numbered ? `${String(i).padStart(String(names.length - 1).length)} ` : '') + clipToWidth(n, 24));
  const lead = Math.max(6, ...rowNames.map(displayWidth)) + 2;
  const head = ' '.repeat(lead) + heads.map((n) => padStartTo(n, cell + 1)).join('');
  const rows = confusion.map((r, i) => padEndTo(rowNames[i], lead) + r.map((v) => String(v).padStart(cell + 1)).join(''));
  return ['confusion matrix (rows: true class, columns: predicted)', head, ...rows].join('\n');
}
