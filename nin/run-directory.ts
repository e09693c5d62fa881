// A run directory (`nin train --out`): checkpoint.safetensors (the latest save: at an epoch's end,
// or within an epoch every --checkpoint-every minutes and on Ctrl-C), best.safetensors (with a
// validation split), epoch-<E>.safetensors (with --keep-every), metrics.jsonl (the log), run.lock
// (while a process trains there); and the rules for writing into one.
//
// The metrics log: one JSON record per line, appended by train() and read by the curves (plot.ts)
// and by a resumed run looking for its best epoch.
//
// Records (other kinds and fields are ignored by readers):
//   { kind: 'step', epoch, step, loss, lr }       every 20th step; `step` counts from 0 over the run,
//                                                 `epoch` is the 0-based index of the epoch it falls in
//   { kind: 'epoch', epoch, step, trainLoss, trainError, lr, imgPerSec, seconds,
//     valLoss?, valError?, testLoss?, testError?, testImages?, gpuPeakBytes? }
//                                                 after each epoch; `epoch` is the number of epochs
//                                                 completed (the first epoch's record says 1),
//                                                 `step` the steps done by then, `testImages` the
//                                                 images the test error is over, `gpuPeakBytes`
//                                                 the most the GPU buffers held so far
//   { kind: 'start', run, stretch, time, stepsPerEpoch, provenance }  a new run `run` (its id, also in its
//                                                 checkpoints); its epochs' steps (full batches)
//   { kind: 'resume', run, stretch, fromStretch?, epoch, step, inEpoch?, from, fromRelative?, parent?, stepsPerEpoch, changed?, provenance }
//                                                 run `run` resumed here from checkpoint `from`,
//                                                 saved after `epoch` epochs and `step` steps
//                                                 (`inEpoch` of them in the epoch after: 0 at an
//                                                 epoch's end; absent in older logs) by
//                                                 stretch `fromStretch` (a fork into a new
//                                                 directory: `parent` is the id of the run it
//                                                 continues); `changed`: the settings the resume
//                                                 changed, each as [then, now] (ResumeRecord)
//   { kind: 'stopped', epoch, step, reason }  the run stopped learning there (a NaN loss, dead
//                                                 class maps); `reason` as it was told
// `provenance` (RunProvenance): how the stretch was made, its options, network, adapter and software.
// A stretch is one process's part of a run: the records after its start or resume record, and
// the checkpoints it saved (their header names it).
// Errors are fractions in [0, 1]. A NaN is written as null (JSON has no NaN).
//
// A resume record supersedes what the log holds beyond its point: the steps a crashed or stopped
// run logged after its last checkpoint, or a whole later stretch when a run is resumed from an
// earlier checkpoint. Nothing is deleted from the file; `currentHistory` reads past it, following
// each resume back to the stretch that saved its checkpoint, so resuming a *.superseded checkpoint
// gets that checkpoint's own history back. (Logs from before stretches had ids are read as one
// line of history: there, such a resume takes the stretch that superseded it up to that step.)

import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { readSafetensorsMetadata } from './safetensors.ts';
import { pictureFormat, readStart } from './images.ts';
import { makeDirectory, parseTempName, tempPathInUse, writeError } from './data/io.ts';
import { classMapsOf, parseModelConfig, type ModelConfig } from './model.ts';
import { drawnBySeed, splitSeedOf, validationFromOf, validationPlan } from './data/split.ts';
import { isImageFolderOptions } from './data/folder.ts';
import { counted, shellWord } from './text.ts';
import type { TrainOptions } from './train.ts';

/** The files that make a directory a run directory. */
const RUN_FILES = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'] as const;

/** Where --keep-every keeps epoch E's checkpoint: epoch-010.safetensors (three digits at least, so
 * that a listing sorts them). */
export function snapshotName(dir: string, epoch: number): string {
  return join(dir, `epoch-${String(epoch).padStart(3, '0')}.safetensors`);
}

/** The --keep-every checkpoints a directory holds, by name. */
export function snapshotsIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^epoch-\d{3,}\.safetensors$/.test(n)).sort().map((n) => join(dir, n)) : [];
}

/** The run files a directory holds. A log alone that records no training step (a run stopped while
 * it loaded or preprocessed its data) is no run: nothing of it is lost when a new run replaces it. */
export function runFilesIn(dir: string): string[] {
  const found = RUN_FILES.filter((f) => existsSync(join(dir, f)));
  if (found.length === 1 && found[0] === 'metrics.jsonl' && replaceableLog(join(dir, 'metrics.jsonl'))) return [];
  return found;
}

/** Whether a directory's run files (runFilesIn) are a log alone: a run stopped before its first save, with nothing to resume. */
export function stoppedBeforeFirstSave(files: readonly string[]): boolean {
  return files.length === 1 && files[0] === 'metrics.jsonl';
}

/**
 * Whether a new run may replace a metrics.jsonl found alone: the log of runs stopped before their
 * first step (start, resume and stopped records only), or an empty file. Anything else is kept: a log that
 * records training, and a file of that name that is no nin log at all (a user's own; it was
 * deleted, as a log without training records).
 */
function replaceableLog(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false; // unreadable: assume it matters
  }
  return text.split('\n').every((line) => {
    if (line.trim() === '') return true;
    try {
      const r: unknown = JSON.parse(line);
      return typeof r === 'object' && r !== null && ['start', 'resume', 'stopped'].includes((r as { kind?: unknown }).kind as string);
    } catch {
      return false;
    }
  });
}

/** Whether `path` holds a nin run's log: a record of a kind train() writes. */
export function isRunLog(path: string): boolean {
  try {
    return parseMetricsLog(readFileSync(path, 'utf8')).some((r) => ['start', 'resume', 'step', 'epoch', 'stopped'].includes((r as { kind?: unknown }).kind as string));
  } catch {
    return false;
  }
}

/** The checkpoint a run resumes from, as its header tells (checkpoint.ts writes `run_id`). */
export interface ResumeSource {
  path: string;
  /** The run's id (kept across resumes); null for checkpoints written before runs had one. */
  runId: string | null;
  /** The directory it was trained in. */
  savedOutDir: string;
}

/** The ids of the runs a directory's files belong to, without repeats: its checkpoint's, its best
 * checkpoint's and its log's latest. One id, unless a file was copied in from another run. */
export function runIdsIn(dir: string): string[] {
  const ids: string[] = [];
  for (const f of ['checkpoint.safetensors', 'best.safetensors']) {
    const id = headerField(join(dir, f), 'run_id');
    if (id) ids.push(id);
  }
  const latest = runIdsOfLog(readLog(join(dir, 'metrics.jsonl'))?.records ?? []).at(-1);
  if (latest) ids.push(latest);
  return [...new Set(ids)];
}

/** Whether `outDir` is the resumed run's own directory: all its files carry the run's id (a run
 * resumed into another directory forks under a new id; a checkpoint copied into another run's
 * directory does not make it its own). For checkpoints written before runs had ids: a directory
 * without an id that holds the checkpoint or is the one it was trained in. */
export function isOwnRunDirectory(outDir: string, source: ResumeSource): boolean {
  const ids = runIdsIn(outDir);
  if (ids.length > 0 || source.runId !== null) return ids.length > 0 && ids.every((id) => id === source.runId);
  const dir = resolve(outDir);
  return dir === resolve(dirname(source.path)) || dir === resolve(source.savedOutDir);
}

/**
 * Why a run may not write into `o.outDir`, or null: a new run would replace another run's
 * checkpoint, best checkpoint and metrics log, and a resumed run would mix its log into another
 * run's. `--overwrite` lets it start afresh there (moveRunAside keeps the old files). A resumed run
 * may always continue in its own directory (where its later checkpoints are kept under another name).
 */
export function runDirectoryProblem(o: { outDir: string; overwrite?: boolean }, source?: ResumeSource): string | null {
  const found = runFilesIn(o.outDir);
  if (found.length === 0 || o.overwrite) return null;
  const fresh = 'or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)';
  const resumable = found.includes('checkpoint.safetensors') ? `continue it with --resume ${shellWord(o.outDir)}, ` : '';
  const foreign = stoppedBeforeFirstSave(found) && !isRunLog(join(o.outDir, 'metrics.jsonl')) ? `a metrics.jsonl that is not a nin run's log` : null;
  // (a run killed before its first save: the same command was refused, and --resume found no checkpoint)
  const unsaved = stoppedBeforeFirstSave(found) ? ' that stopped before its first save (nothing to resume)' : '';
  if (!source) return `${o.outDir} already holds ${foreign ?? `a run (${found.join(', ')})${unsaved}`}: ${resumable}choose another --out, ${fresh}`;
  if (isOwnRunDirectory(o.outDir, source)) return null;
  return `${o.outDir} holds ${foreign ? `${foreign}, not ${source.path}'s run` : `another run (${found.join(', ')}) than ${source.path}'s`}: resume it into a new directory (--out DIR), ${fresh}`;
}

/** Starting afresh in a directory that holds a run (--overwrite): its files are renamed, not deleted. */
export function moveRunAside(dir: string): string[] {
  const moved: string[] = [];
  for (const path of [...RUN_FILES.map((f) => join(dir, f)), ...snapshotsIn(dir)]) {
    if (!existsSync(path)) continue;
    const to = path.endsWith('.safetensors') ? supersededName(path, savedStep(path) ?? 0) : freeName(join(dir, 'metrics.superseded'), '.jsonl');
    renameSync(path, to);
    moved.push(to);
  }
  return moved;
}

/** The `format` a nin checkpoint's metadata names. */
export const CHECKPOINT_FORMAT = 'nin-webgpu/1';

/** Why `path` cannot be a nin checkpoint (not a safetensors file, or another program's), read from its header alone; null if it can be.
 * `pictureNote`: the command's own words where `path` is a picture (predict: the arguments' order). */
export function notACheckpoint(path: string, pictureNote = ''): string | null {
  let metadata: Record<string, string>;
  try {
    metadata = readSafetensorsMetadata(path);
  } catch (e) {
    const picture = pictureFormat(path);
    // A picture where the checkpoint goes: most likely the arguments in the wrong order.
    if (picture) return `${path} is a ${picture} picture, not a checkpoint (a run's checkpoint.safetensors or its directory${pictureNote})`;
    return (e as Error).message;
  }
  return formatProblem(path, metadata);
}

/**
 * What a run wrote that `path` is, where an output option names it (`--json`, `--out`): a
 * checkpoint, a run's log or its lock; null for any other file, or none. Writing there would
 * replace it (a checkpoint by a JSON file, a log by an ONNX model), and a resume or `compare` would
 * then read it as damaged or empty.
 */
export function runFileKind(path: string): string | null {
  if (!existsSync(path) || !statSync(path).isFile()) return null;
  if (basename(path) === LOCK_FILE) return "a run's lock";
  if (notACheckpoint(path) === null) return 'a checkpoint';
  let head: string;
  try {
    head = readStart(path, 4096).toString('utf8');
  } catch {
    return null; // (unreadable: checkOutFile's write check names it)
  }
  // A start or resume record carries the run's options and network (provenance): its line may run
  // past what was read, so the kind, its first key as train() writes it, is read from the line's start.
  const kind = /^\{"kind":"(start|resume|step|epoch)"/.exec(head)?.[1];
  return kind ? "a run's log" : null;
}

/** Why an output option may not name `path` though no file is there yet: run.lock is the name a
 * run's lock takes (a file of that name made a later run in its directory refuse to start, "in
 * use"). Null for any other name. */
export function reservedRunFileName(path: string): string | null {
  const name = basename(path);
  return name === LOCK_FILE || name === `${LOCK_FILE}.break` ? `${name} is the name of a run's lock (a run in that directory would take the file for one, and refuse to start)` : null;
}

/** Why a safetensors file with this metadata is not a nin checkpoint, or null. */
export function formatProblem(path: string, metadata: Record<string, string>): string | null {
  return metadata.format === CHECKPOINT_FORMAT ? null : `${path}: not a nin-webgpu checkpoint (format '${metadata.format ?? 'missing'}', expected '${CHECKPOINT_FORMAT}')`;
}

/** A whole number ≥ 0 from a checkpoint's metadata (epoch, step); the error names the file and the key. */
export function checkpointCount(path: string, metadata: Record<string, string>, key: string): number {
  const v = /^\d+$/.test(metadata[key] ?? '') ? Number(metadata[key]) : NaN; // (digits: Number() read '0x10' as 16)
  if (!Number.isSafeInteger(v)) throw new Error(`${path}: metadata "${key}" must be a whole number ≥ 0, found ${JSON.stringify(metadata[key] ?? null)}`);
  return v;
}

/** A checkpoint header's network (checked as a config file is), training options and epochs done:
 * what loadCheckpoint and a resume's flag check (nin/cli.ts) read. Errors name the file and the key. */
export function checkpointHeaderFields(path: string, metadata: Record<string, string>): { config: ModelConfig; options: TrainOptions; epoch: number } {
  const json = (key: string): unknown => {
    if (metadata[key] === undefined) throw new Error(`${path}: metadata "${key}" is missing`);
    try {
      return JSON.parse(metadata[key]);
    } catch (e) {
      throw new Error(`${path}: metadata "${key}" is not valid JSON (${(e as Error).message})`);
    }
  };
  const config = parseModelConfig(json('config'), `${path} (config)`);
  const options = json('options');
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error(`${path}: metadata "options" must be a JSON object`);
  // The fields a resume reads before the flags' rules apply (nin/cli.ts checks the rest).
  const o = options as Record<string, unknown>;
  if (typeof o.model !== 'string') throw new Error(`${path}: metadata "options": model must be a string, got ${JSON.stringify(o.model) ?? 'undefined'}`);
  if (o.outDir !== undefined && typeof o.outDir !== 'string') throw new Error(`${path}: metadata "options": outDir must be a string, got ${JSON.stringify(o.outDir)}`);
  if (o.weightsFrom !== undefined && typeof o.weightsFrom !== 'string') throw new Error(`${path}: metadata "options": weightsFrom must be a string, got ${JSON.stringify(o.weightsFrom)}`);
  // An image folder's run: its data are read again by eval, visualize, a resume, and a run started from it.
  if (o.dataset === 'folder' && !isImageFolderOptions(o.imageFolder)) {
    throw new Error(`${path}: metadata "options": imageFolder must be { dir, classNames (two or more), trainImages, trainList } and, with --val folder, valImages and valList (and where present, trainClasses and valClasses: one { images, list } per class), got ${JSON.stringify(o.imageFolder) ?? 'undefined'}`);
  }
  const ownConfig = o.config === undefined ? {} : { config: parseModelConfig(o.config, `${path} (options.config)`) };
  return { config, options: { ...o, ...ownConfig } as TrainOptions, epoch: checkpointCount(path, metadata, 'epoch') };
}

/** A checkpoint file's header (safetensors metadata), or null if there is no file or it is unreadable. */
export function checkpointMetadata(path: string): Record<string, string> | null {
  if (!existsSync(path)) return null;
  try {
    return readSafetensorsMetadata(path);
  } catch {
    return null;
  }
}

function headerField(path: string, key: string): string | null {
  return checkpointMetadata(path)?.[key] ?? null;
}

/**
 * What a resume asks that the checkpoint cannot give: a resumed run continues the checkpoint's
 * network (a different head or class maps would otherwise train silently on weights made for the
 * first), its preprocessing (the statistics are stored, not refitted), its data and split (a
 * changed validation split would hold out images the run has trained on, so also the seed that drew
 * it). Empty when none.
 * `savedOptions`: the options the checkpoint was trained with; `o`: the resume's, flags filled
 * from those.
 */
export function resumeClashes(o: TrainOptions, saved: ModelConfig, savedOptions: TrainOptions): string[] {
  const savedMaps = classMapsOf(saved);
  const savedDropout = saved.layers.find((l) => l.type === 'dropout');
  const was = <K extends keyof TrainOptions>(key: K) => savedOptions[key];
  const sameCount = String(o.validation ?? 0) === String(was('validation') ?? 0);
  const [from, savedFrom] = [validationFromOf(o), validationFromOf(savedOptions, true)];
  return [
    o.dataset !== was('dataset') && `--dataset ${o.dataset} (the checkpoint was trained on ${was('dataset')})`,
    o.model !== saved.name && `--model ${o.model} (the checkpoint holds ${saved.name})`,
    o.head !== undefined && o.head !== saved.head && `--head ${o.head} (the checkpoint's is ${saved.head})`,
    o.classMaps !== undefined && o.classMaps !== savedMaps && `--class-maps ${o.classMaps} (the checkpoint's are ${savedMaps})`,
    // A resumed run must repeat the uninterrupted one, so the dropout rate stays too.
    o.dropout !== undefined && savedDropout?.type === 'dropout' && o.dropout !== savedDropout.p && `--dropout ${o.dropout} (the checkpoint's is ${savedDropout.p})`,
    o.init !== undefined && o.init !== saved.init && `--init ${o.init} (the checkpoint's weights were initialised ${saved.init}, and are trained on, not redrawn)`,
    was('preprocess') !== undefined && o.preprocess !== was('preprocess') && `--preprocess ${o.preprocess} (the checkpoint's statistics are for ${was('preprocess')})`,
    !sameCount && `--val ${o.validation ?? 0} (the checkpoint's split held out ${was('validation') ?? 0}: another split would validate on images the run trained on)`,
    sameCount && from !== savedFrom && `--val-from ${from} (the checkpoint's split took ${savedFrom === 'end' ? 'the last images' : 'images at random'}: another split would validate on images the run trained on)`,
    Boolean(o.extra) !== Boolean(was('extra')) && `${o.extra ? '--extra' : 'no --extra'} (the checkpoint was trained ${was('extra') ? 'with' : 'without'} SVHN's extra set)`,
    o.trainLimit !== was('trainLimit') && `--train-limit ${o.trainLimit ?? 'none'} (the checkpoint's was ${was('trainLimit') ?? 'none'}: its training set and split)`,
    // Where the seed draws the validation split (at random, or SVHN's per-class quotas), another
    // seed would validate on images the run trained on. (The RNGs take its low 32 bits.) Elsewhere
    // it may change: a fork with another batch order and dropout masks is an experiment of its own.
    // (--split-seed, saved or given, draws it instead: then --seed may change)
    sameCount && drawnBySeed(validationPlan(o.validation ?? 0, o.dataset, 1, from)) && was('seed') !== undefined && (splitSeedOf(o) >>> 0) !== (splitSeedOf(savedOptions) >>> 0) &&
      `${o.splitSeed === undefined ? `--seed ${o.seed}` : `--split-seed ${o.splitSeed}`} (the checkpoint's validation split was drawn by seed ${splitSeedOf(savedOptions)}: another seed would validate on images the run trained on)`,
  ].filter((c): c is string => typeof c === 'string');
}

/** Why a resume would train nothing: the checkpoint is at or past the run's last epoch. */
export function nothingToTrain(checkpoint: string, epochsDone: number, o: { epochs: number; stopAfter?: number }, given?: { epochs: boolean }): string {
  // A resume without --epochs keeps the checkpoint's: said as its, not as a flag the user gave.
  const epochs = given && !given.epochs ? `the run's --epochs ${o.epochs} (the checkpoint's)` : `--epochs ${o.epochs}`;
  const limit = o.stopAfter !== undefined && o.stopAfter < o.epochs ? `--stop-after ${o.stopAfter}` : epochs;
  // What would let it train: the flags whose values stop it now.
  const stops = [o.epochs <= epochsDone && '--epochs', o.stopAfter !== undefined && o.stopAfter <= epochsDone && '--stop-after'].filter(Boolean).join(' and ');
  return `${checkpoint} has ${counted(epochsDone, 'epoch')} done, and ${limit} asks for no more: nothing to train (give a larger ${stops})`;
}

/** Why a resume cannot finish the epoch its checkpoint was saved within: another batch size or
 * seed (the epoch's batches are cut from the seed's shuffle at that size, so either would repeat
 * some images and skip others; both may change at an epoch's end); null when it can. For the CLI
 * (before loading) and train(). The RNGs take a seed's low 32 bits. */
export function shuffleChangedWithinEpoch(checkpoint: string, epochsDone: number, saved: { batchSize: number; seed: number }, now: { batchSize: number; seed: number }): string | null {
  const changed = [
    saved.batchSize !== now.batchSize && `at batch size ${saved.batchSize}`,
    saved.seed >>> 0 !== now.seed >>> 0 && `with seed ${saved.seed}`,
  ].filter((c): c is string => typeof c === 'string');
  if (changed.length === 0) return null;
  const flags = [saved.batchSize !== now.batchSize && `--batch ${now.batchSize}`, saved.seed >>> 0 !== now.seed >>> 0 && `--seed ${now.seed}`].filter(Boolean).join(' and ');
  return `${checkpoint} was saved within epoch ${epochsDone + 1} ${changed.join(' and ')}; a resume finishes that epoch with the batch size and seed it was saved with (the rest of its batches are cut from that shuffle; both may change at an epoch's end), not with ${flags}`;
}

/** The step a checkpoint file was saved at (from its header), or null if there is none or it is unreadable. */
export function savedStep(path: string): number | null {
  const step = Number(headerField(path, 'step') ?? NaN);
  return Number.isFinite(step) ? step : null;
}

/** The epochs done by a checkpoint file's save (from its header), or null if there is none or it is unreadable. */
export function savedEpoch(path: string): number | null {
  const epoch = Number(headerField(path, 'epoch') ?? NaN);
  return Number.isFinite(epoch) ? epoch : null;
}

/** The stretch that saved a checkpoint file (from its header), or null if it has none or is unreadable. */
export function savedStretch(path: string): string | null {
  return headerField(path, 'stretch');
}

/** Whether two checkpoint files hold the same save (same run, step and time of saving). */
export function sameSave(a: string, b: string): boolean {
  const key = (p: string) => ['run_id', 'step', 'saved'].map((k) => headerField(p, k)).join('|');
  return existsSync(a) && existsSync(b) && key(a) === key(b);
}

/** `dir/checkpoint.safetensors` saved at step 1950 → `dir/checkpoint.step1950.superseded.safetensors` (numbered on if taken). */
export function supersededName(path: string, step: number): string {
  return freeName(`${join(dirname(path), basename(path, '.safetensors'))}.step${step}.superseded`, '.safetensors');
}

function freeName(stem: string, ext: string): string {
  for (let n = 1; ; n++) {
    const name = `${stem}${n > 1 ? `-${n}` : ''}${ext}`;
    if (!existsSync(name)) return name;
  }
}

export interface StepRecord {
  kind: 'step';
  epoch: number;
  step: number;
  loss: number;
  lr: number;
}

export interface EpochRecord {
  kind: 'epoch';
  epoch: number;
  step: number;
  trainLoss: number;
  trainError: number;
  testLoss?: number;
  testError?: number;
  /** The test images evaluated (absent in logs from before session 31): a resume may change --test-limit. */
  testImages?: number;
  valLoss?: number;
  valError?: number;
  lr: number;
  imgPerSec: number;
  seconds: number;
  /** The most bytes the engine's GPU buffers held at once, in this process's stretch of the run so
   * far (weights, optimiser state, the steps' and evaluations' tensors, those kept for reuse);
   * absent in logs from before session 42. */
  gpuPeakBytes?: number;
}

export interface StartRecord {
  kind: 'start';
  run: string;
  /** This process's stretch of the run (see currentHistory); absent in logs from before stretches. */
  stretch?: string;
  time: string;
  /** Steps in each of this stretch's epochs (absent in logs from before it): where a trailing
   * unfinished epoch's step losses sit on an epoch axis. */
  stepsPerEpoch?: number;
  /** What the run was made with (RunProvenance; absent in logs from before session 40). */
  provenance?: RunProvenance;
}

/**
 * How a stretch of a run was made, written in its start or resume record: the run's options and
 * network as its checkpoints save them, the adapter, and the software (nin's version, the git
 * commit of its checkout and whether files git tracks were changed, Node's version). So a log
 * says how its run was made where no checkpoint was saved (a run stopped at a NaN loss), and
 * `nin compare` reads a run's settings from it then.
 */
export interface RunProvenance {
  options: Record<string, unknown>;
  config: ModelConfig;
  adapter: string;
  software: { nin: string; commit?: string; changed?: boolean; node: string };
}

export interface ResumeRecord {
  kind: 'resume';
  run: string;
  /** A run resumed into another directory forks: a new `run` id, the resumed one's here. */
  parent?: string | null;
  /** This process's stretch, and the stretch that saved the checkpoint resumed from. */
  stretch?: string;
  fromStretch?: string;
  epoch: number;
  step: number;
  /** The steps of `step` taken in the epoch after `epoch` (0: saved at an epoch's end). Absent in logs
   * from before session 49, where a reader goes by stepsPerEpoch, which a resume at an epoch's end
   * may have changed with the batch size. */
  inEpoch?: number;
  /** The checkpoint resumed from, an absolute path; `fromRelative`, the same relative to this log's
   * directory (absent in logs from before it): a fork finds its parent after both moved together. */
  from: string;
  fromRelative?: string;
  /** As StartRecord's: a resume may change the batch size at an epoch's end. */
  stepsPerEpoch?: number;
  /** The settings this resume changed (settingsChanged, nin/compare.ts), each as [then, now]: `nin compare` tells
   * that a run's last settings do not hold for all of it (absent where none changed, and in logs
   * from before session 36). */
  changed?: Record<string, [string, string]>;
  provenance?: RunProvenance;
}

/** A run that stopped learning (a NaN loss, dead class maps) at `step`: why, as it was told. Its
 * log says so, where the run may have saved nothing. */
export interface StoppedRecord {
  kind: 'stopped';
  epoch: number;
  step: number;
  reason: string;
}

export type MetricRecord = StepRecord | EpochRecord | StartRecord | ResumeRecord | StoppedRecord;

/** The lines (numbered from 1) of a log's text that hold no record and that parseMetricsLog skips,
 * but for a last line without its newline: a crash mid-write cuts that one, and nothing else. */
export function unreadableLines(text: string): number[] {
  const lines = text.split('\n');
  const bad: number[] = [];
  lines.forEach((line, i) => {
    if (line.trim() !== '' && !(i === lines.length - 1 && !text.endsWith('\n')) && !recordOf(line)) bad.push(i + 1);
  });
  return bad;
}

/** A log line's record, or null where it holds none (cut off mid-write, or damaged: nested deeper
 * than any record is, which JSON.parse reads but the readers after it would overflow the stack on). */
function recordOf(line: string): object | null {
  try {
    const r: unknown = JSON.parse(line);
    return typeof r === 'object' && r !== null && !nestedDeeperThan(r, 32) ? r : null;
  } catch {
    return null;
  }
}

function nestedDeeperThan(v: unknown, levels: number): boolean {
  if (typeof v !== 'object' || v === null) return false;
  return levels === 0 || Object.values(v).some((x) => nestedDeeperThan(x, levels - 1));
}

/** The records of a log's text; lines that do not parse (a crash mid-write cuts the last one) are skipped. */
export function parseMetricsLog(text: string): object[] {
  return text.split('\n').filter((line) => line.trim() !== '').map(recordOf).filter((r): r is object => r !== null);
}

/**
 * A run directory's log, preceded by the logs of the runs it was forked from (a resume into a new
 * directory writes a log that starts with its resume record; its `from` names the checkpoint, in
 * the parent's directory, and `parent` the parent's id). Read it through currentHistory: each
 * resume record drops what the parent logged beyond the fork. A parent's log is the one in its
 * directory that holds the parent's id: its metrics.jsonl, or one --overwrite moved aside there
 * (`metrics.superseded*.jsonl`); for logs from before run ids, a metrics.jsonl without ids.
 * currentHistory finds the forked stretch by its id; for a fork from before stretch ids the
 * parent's log is read only up to where the parent, after the fork, was resumed from an earlier
 * point (what it logged from there on is another stretch than the one forked).
 * `ownRecords`: `dir`'s own log as it will stand (a run about to write its first record), read instead
 * of its metrics.jsonl.
 */
export function runLog(dir: string, ownRecords?: object[], ownPath = join(dir, 'metrics.jsonl')): object[] {
  const seen = new Set<string>(); // log files read (a fork made in place, --out its parent's directory with --overwrite, has its parent's log beside it)
  const logs: object[][] = [];
  let next: { path: string; records: object[] } | null = ownRecords ? { path: ownPath, records: ownRecords } : readLog(ownPath);
  let fork: { step: number; byStretch: boolean } | null = null; // null: the directory asked for
  while (next !== null && !seen.has(resolve(next.path))) {
    seen.add(resolve(next.path));
    let records = next.records;
    if (fork && !fork.byStretch) records = untilRewoundPast(records, fork.step);
    logs.unshift(records);
    const first = records[0] as Partial<ResumeRecord> | undefined;
    const logDir = dirname(next.path);
    next = null;
    if (first?.kind === 'resume' && typeof first.from === 'string' && typeof first.step === 'number') {
      const parentDir = dirname(first.from);
      fork = { step: first.step, byStretch: typeof first.fromStretch === 'string' };
      if (typeof first.parent === 'string') next = parentLogOfFork(logDir, first as ResumeRecord & { parent: string });
      else {
        const legacy = readLog(join(parentDir, 'metrics.jsonl')); // a fork from before run ids: a parent's log without them
        next = legacy && runIdsOfLog(legacy.records).length === 0 ? legacy : null;
      }
    }
  }
  return logs.flat();
}

/** The epochs a history (runLog's) lacks where it starts at a resume: a fork whose parent's log was
 * found nowhere (moved, deleted; a parent without a run id too), or a run resumed in its own
 * directory after its log was deleted. The epoch resumed after, as that first record says; 0 where
 * the history is whole. */
export function epochsMissing(history: object[]): number {
  const first = history[0] as { kind?: unknown; epoch?: unknown } | undefined;
  return first?.kind === 'resume' && typeof first.epoch === 'number' ? first.epoch : 0;
}

/** The log at `path`, parsed; null if there is none, or if `mentioning` is given and its text
 * does not contain it (a search through many logs for one run id parses only the likely ones). */
function readLog(path: string, mentioning?: string): { path: string; records: object[] } | null {
  if (!existsSync(path)) return null;
  if (statSync(path).isDirectory()) throw new Error(`${path} is a directory, not a run's log`); // (was a bare EISDIR)
  const text = readFileSync(path, 'utf8');
  return mentioning === undefined || text.includes(mentioning) ? { path, records: parseMetricsLog(text) } : null;
}

/** The run ids a log's records name, in order (repeats included: the last is the latest). */
export function runIdsOfLog(records: object[]): string[] {
  return records.map((r) => (r as { run?: unknown }).run).filter((id): id is string => typeof id === 'string');
}

/** The log in `dir` whose records name run `runId`: its metrics.jsonl, else a
 * `metrics.superseded*.jsonl` that --overwrite moved aside; null if none does. */
function logNaming(dir: string, runId: string): { path: string; records: object[] } | null {
  const aside = existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((n) => /^metrics\.superseded(-\d+)?\.jsonl$/.test(n)).sort() : [];
  for (const name of ['metrics.jsonl', ...aside]) {
    const log = readLog(join(dir, name), runId);
    if (log && runIdsOfLog(log.records).includes(runId)) return log;
  }
  return null;
}

/**
 * A fork's parent's log: in the directory its resume record names, else where the path relative to
 * the fork's directory leads (the two directories moved or copied together, as a whole runs/ tree),
 * else in a directory beside the fork's (the parent's directory renamed, or linked there) or in the
 * fork's own. Each must name the parent's id, so a log found by a guess is the parent's own.
 */
function parentLogOfFork(forkDir: string, resume: ResumeRecord & { parent: string }): { path: string; records: object[] } | null {
  // A directory or log this user cannot read is not where the parent's log is.
  const readable = (dir: string) => {
    try {
      return logNaming(dir, resume.parent);
    } catch {
      return null;
    }
  };
  const byPath = [dirname(resume.from), ...(typeof resume.fromRelative === 'string' ? [dirname(resolve(forkDir, resume.fromRelative))] : [])];
  for (const dir of byPath) {
    const found = readable(dir);
    if (found) return found;
  }
  // The fork's own directory too: a fork made in place (--out its parent's directory, --overwrite)
  // from a copy of the checkpoint kept elsewhere has its parent's log there, moved aside.
  const around = dirname(resolve(forkDir));
  let siblings: string[] = [];
  try {
    siblings = readdirSync(around, { withFileTypes: true }).filter((e) => e.isDirectory() || (e.isSymbolicLink() && isDirectory(join(around, e.name)))).map((e) => join(around, e.name)).sort();
  } catch {
    return null; // an unreadable parent directory: nothing to look through
  }
  for (const dir of siblings) {
    if (byPath.some((p) => resolve(p) === resolve(dir))) continue;
    const found = readable(dir);
    if (found) return found;
  }
  return null;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // a dangling link
  }
}

/** A parent's records up to the first resume record, after its log reached step `step`, that goes back before it. */
function untilRewoundPast(records: object[], step: number): object[] {
  let reached = false;
  for (const [i, r] of records.entries()) {
    const rec = r as Partial<Record<string, unknown>>;
    if (rec.kind === 'resume' && reached && typeof rec.step === 'number' && rec.step < step) return records.slice(0, i);
    if ((rec.kind === 'step' || rec.kind === 'epoch' || rec.kind === 'resume') && typeof rec.step === 'number' && rec.step >= step) reached = true;
  }
  return records;
}

/**
 * The records of the run as it now stands. Each start or resume record begins a stretch (the
 * records one process appended). From the last stretch back: a resume record continues the
 * stretch that saved its checkpoint (`fromStretch`), whose records count up to the resume's point
 * (steps before its step, epochs up to its epoch); a start record, or a log from before stretches
 * had ids, ends the walk (the latter read by linearHistory).
 */
export function currentHistory(records: object[]): object[] {
  type Rec = Partial<Record<string, unknown>>;
  const stretches: { head: Rec | null; records: object[] }[] = [{ head: null, records: [] }];
  for (const r of records) {
    const kind = (r as Rec).kind;
    if (kind === 'start' || kind === 'resume') stretches.push({ head: r as Rec, records: [r] });
    else stretches.at(-1)!.records.push(r);
  }
  const chain: object[][] = [];
  let i = stretches.length - 1;
  let upTo: { step: number; epoch: number } | null = null;
  for (;;) {
    const { head, records: own } = stretches[i];
    chain.unshift(upTo ? before(own, upTo) : own);
    if (head?.kind !== 'resume' || typeof head.step !== 'number' || typeof head.epoch !== 'number') break;
    const from = head.fromStretch;
    let j = i - 1;
    while (j >= 0 && (typeof from !== 'string' || stretches[j].head?.stretch !== from)) j--;
    if (j < 0) {
      // No id to follow: everything before, read as one line of history up to this resume.
      const earlier = linearHistory([...stretches.slice(0, i).flatMap((s) => s.records), head]);
      chain.unshift(earlier.slice(0, -1));
      break;
    }
    upTo = { step: head.step, epoch: head.epoch };
    i = j;
  }
  return chain.flat();
}

/**
 * The history a checkpoint belongs to, for its curves: the run's current history when the
 * checkpoint lies on it (every record of the checkpoint's own history is there), else the
 * checkpoint's own history up to where it was saved: a `*.superseded` checkpoint's line, which a
 * later resume replaced. Its own history is what a resume from it would continue (currentHistory
 * with such a resume appended). A checkpoint from before stretch ids cannot be placed on a line:
 * it draws the run's current history (the linear reading), as before.
 */
export function historyOfCheckpoint(records: object[], at: { stretch: string | null; epoch: number; step: number }): object[] {
  const current = currentHistory(records);
  const probe = { kind: 'resume', epoch: at.epoch, step: at.step, ...(at.stretch ? { fromStretch: at.stretch } : {}) };
  const own = currentHistory([...records, probe]).slice(0, -1);
  const onCurrent = new Set(current);
  return own.every((r) => onCurrent.has(r)) ? current : own;
}

/**
 * The log of the run a checkpoint in `dir` belongs to (read through historyOfCheckpoint): the
 * directory's runLog where its records name the checkpoint's run (or neither has ids), else a
 * `metrics.superseded*.jsonl` that --overwrite moved aside and that names it (read as the directory's
 * own log, with its parents), else null: no log of that run is there.
 */
export function logOfCheckpoint(dir: string, runId: string | null): object[] | null {
  const own = readLog(join(dir, 'metrics.jsonl'));
  const ownIds = own ? runIdsOfLog(own.records) : [];
  if (own && (runId === null || ownIds.length === 0 || ownIds.includes(runId))) return runLog(dir);
  const found = runId === null ? null : logNaming(dir, runId);
  return found ? runLog(dir, found.records, found.path) : null;
}

/** Step records before `at.step`, epoch records up to `at.epoch`, and the rest. */
function before(records: object[], at: { step: number; epoch: number }): object[] {
  return records.filter((r) => {
    const x = r as Partial<Record<string, unknown>>;
    if (x.kind === 'step' || x.kind === 'stopped') return !(typeof x.step === 'number' && x.step >= at.step);
    if (x.kind === 'epoch') return !(typeof x.epoch === 'number' && x.epoch > at.epoch);
    return true;
  });
}

/** Logs without stretch ids: at each resume record, the step records from its step on and the
 * epoch records after its epoch (logged before it, by the run it replaced) are dropped. */
function linearHistory(records: object[]): object[] {
  let kept: object[] = [];
  for (const r of records) {
    const rec = r as Partial<Record<string, unknown>>;
    if (rec.kind === 'resume' && typeof rec.step === 'number' && typeof rec.epoch === 'number') {
      const { step, epoch } = rec as { step: number; epoch: number };
      // (step `step` is the first the resumed run takes)
      kept = before(kept, { step, epoch }).filter((k) => {
        const x = k as Partial<Record<string, unknown>>;
        return !(x.kind === 'resume' && typeof x.step === 'number' && x.step > step);
      });
    }
    kept.push(r);
  }
  return kept;
}

// One run at a time in a directory: two processes resuming the same run would interleave their
// logs and overwrite each other's checkpoints. `run.lock` names the process training there; it is
// taken before anything in the directory is touched and removed when train() returns or throws
// (and at process exit). A lock left by a killed process on this machine is noticed and replaced:
// its pid no longer runs, or is a zombie, or is this process's own pid while this process does not
// hold it (a restarted container's trainer is often pid 1 again).

const LOCK_FILE = 'run.lock';

interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

export interface RunLock {
  path: string;
  /** The dead process whose lock was replaced, if any. */
  replaced: LockHolder | null;
  /** Removes the lock if it is still this process's. Never throws (it runs in train()'s finally,
   * where an error would replace the one that ended the run): where the lock cannot be removed (a
   * directory made read-only), says so; a later run replaces it, as its process no longer runs. */
  release(): string | null;
  /** Why the lock is no longer this process's (the directory removed, or another run's lock in its
   * place), null while it is: a run checks before it writes there. */
  lost(): string | null;
}

/** The locks this process holds: resolved path → its `since`. */
const heldHere = new Map<string, string>();

/** Why `dir` cannot be trained in now (a live process holds its lock), or null. `advice`: what the
 * caller's command can do meanwhile (a reader of the run has no --out to choose). */
export function runDirectoryInUse(dir: string, advice = TRAINER_ADVICE): string | null {
  const lock = readLock(join(dir, LOCK_FILE));
  return lock.state === 'held' ? inUseMessage(dir, lock.holder, advice) : null;
}

/** What a run that finds its directory in use can do. */
const TRAINER_ADVICE = 'wait for it, or choose another --out';

function inUseMessage(dir: string, holder: LockHolder | null, advice = TRAINER_ADVICE): string {
  const path = join(dir, LOCK_FILE);
  if (holder === null) return `${dir} is in use: ${path} is being written by a run that is starting there (if none is, delete ${path})`;
  const { pid, host, since } = holder;
  if (host !== hostname()) return `${dir} is in use by process ${pid} on ${host} since ${since} (${path}); if no run is going on there, delete ${path}`;
  return `${dir} is in use: process ${pid} has been training there since ${since}; ${advice} (if process ${pid} is not a nin run, delete ${path})`;
}

/** `base`, or `base-2`, `base-3`, … : the first that holds no run. */
export function unusedRunDirectory(base: string): string {
  for (let n = 1; ; n++) {
    const dir = n === 1 ? base : `${base}-${n}`;
    // in use: a run still loading its data; a file by that name: not a directory to train in
    if (existsSync(dir) && !statSync(dir).isDirectory()) continue;
    if (runFilesIn(dir).length === 0 && !runDirectoryInUse(dir)) return dir;
  }
}

/** lockRunDirectory's refusal: a live process holds the lock, or took it first. */
export class RunDirectoryInUse extends RangeError {
  override name = 'RunDirectoryInUse';
}

/**
 * Creates and locks `dir` for a run. `series`: the CLI picked `dir` as `series`'s first free
 * directory (no --out), so when another run started at the same moment took it first (it holds
 * the lock, or has written there since), this run moves to the series' next free one instead of
 * failing after its data has loaded. Returns the directory locked.
 */
export function claimRunDirectory(dir: string, series: string | undefined, log: (line: string) => void): { dir: string; lock: RunLock } {
  for (let attempt = 0; ; attempt++) {
    makeDirectory(dir);
    let lock: RunLock | null = null;
    try {
      lock = lockRunDirectory(dir);
    } catch (e) {
      if (series === undefined || !(e instanceof RunDirectoryInUse) || attempt >= 20) throw e;
    }
    if (lock && (series === undefined || runFilesIn(dir).length === 0)) return { dir, lock };
    const left = lock?.release();
    if (left) log(left);
    const next = unusedRunDirectory(series!);
    log(`${dir} was taken by another run that started meanwhile: this run goes to ${next}`);
    dir = next;
  }
}

/** Takes `dir`'s lock (the directory must exist); throws a RunDirectoryInUse naming the holder if a live process has it. */
export function lockRunDirectory(dir: string): RunLock {
  const path = join(dir, LOCK_FILE);
  const mine: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  let replaced: LockHolder | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeNewLock(path, JSON.stringify(mine) + '\n');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const old = readLock(path);
      if (old.state === 'held') throw new RunDirectoryInUse(inUseMessage(dir, old.holder));
      if (old.state === 'stale') {
        removeStaleLock(path, old.text);
        replaced = old.holder;
      }
      continue;
    }
    heldHere.set(resolve(path), mine.since);
    let held = true;
    const release = (): string | null => {
      if (!held) return null;
      held = false;
      process.off('exit', release);
      heldHere.delete(resolve(path));
      try {
        const now = readLock(path);
        if (now.holder?.pid === mine.pid && now.holder.since === mine.since) unlinkSync(path);
        return null;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // (gone meanwhile)
        return `${path}: the run's lock could not be removed (${e instanceof LockUnreadable ? e.reason : (e as Error).message}); a later run in ${dir} replaces it, as this process will not be running`;
      }
    };
    process.on('exit', release); // process.exit() on a second Ctrl-C skips train()'s finally
    const lost = () => {
      let now: ReturnType<typeof readLock>;
      try {
        now = readLock(path);
      } catch (e) {
        return `${path} cannot be read (${e instanceof LockUnreadable ? e.reason : (e as Error).message})`;
      }
      if (now.holder?.pid === mine.pid && now.holder.host === mine.host && now.holder.since === mine.since) return null;
      return now.state === 'none' ? `${path} is gone (the directory was removed or moved)` : `${path} is now another run's${now.holder ? ` (process ${now.holder.pid} on ${now.holder.host}, since ${now.holder.since})` : ''}`;
    };
    return { path, replaced, release, lost };
  }
  throw new RunDirectoryInUse(`${dir}: another run has just started there`);
}

/** Creates `path` holding `text` (the lock, or the guard that replaces a stale one); EEXIST where
 * it is there. A write that fails once the file is made (a full disk) removes it: an empty lock
 * would hold the directory as a run starting there, an empty guard its stale lock for a minute. */
function writeNewLock(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw e;
    throw writeError(path, e);
  }
  try {
    writeSync(fd, text);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw writeError(path, e);
  }
  closeSync(fd);
}

/**
 * Removes a stale lock whose text was `text`, unless it changed meanwhile. Two processes that both
 * found it stale must not both remove it (the second would remove the first's new lock): only the
 * one that creates `run.lock.break` may, and one left for a minute by a killed process is litter.
 */
function removeStaleLock(path: string, text: string): void {
  const guard = `${path}.break`;
  try {
    writeNewLock(guard, String(process.pid)); // (on a full disk, as the lock: named, and no empty guard left)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (ageMs(guard) > 60_000) rmSync(guard, { force: true });
    return; // another process is replacing it: look again
  }
  try {
    let now: string | null = null;
    try {
      now = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (now === text) rmSync(path, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0; // gone: not litter
  }
}

/** A run's lock that cannot be read; `reason` for messages that name the path themselves. */
class LockUnreadable extends Error {
  constructor(path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** A lock file's state: held (by `holder`; null while a starting run writes it), or stale (its
 * process no longer runs, or it was left half written), with the text read. */
function readLock(path: string): { state: 'none' | 'held' | 'stale'; holder: LockHolder | null; text: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'none', holder: null, text: '' };
    // (was a bare EISDIR, naming no file: every default run directory's choice read it)
    throw new LockUnreadable(path, code === 'EISDIR' ? "EISDIR: a directory, not a run's lock (remove it)" : (code ?? (e as Error).message));
  }
  let h: Partial<LockHolder> | null;
  try {
    h = JSON.parse(text);
  } catch {
    h = null;
  }
  if (typeof h?.pid !== 'number' || typeof h.host !== 'string' || typeof h.since !== 'string') {
    // Created but not yet written by a starting run; left like this for a minute, it is litter.
    return { state: ageMs(path) > 60_000 ? 'stale' : 'held', holder: null, text };
  }
  const holder = h as LockHolder;
  if (holder.host !== hostname()) return { state: 'held', holder, text };
  const runs = holder.pid === process.pid ? heldHere.get(resolve(path)) === holder.since : processRuns(holder.pid);
  return { state: runs ? 'held' : 'stale', holder, text };
}

/**
 * Whether process `pid` runs, is gone (no such process, or a zombie), or cannot be told (an
 * unexpected error). The lock treats 'unknown' as stale; the temp-file cleanup keeps the file.
 */
function processState(pid: number): 'runs' | 'gone' | 'unknown' {
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EPERM' ? 'runs' : code === 'ESRCH' ? 'gone' : 'unknown'; // EPERM: exists, owned by another user
  }
  return isZombie(pid) ? 'gone' : 'runs';
}

function processRuns(pid: number): boolean {
  return processState(pid) === 'runs';
}

/** A killed process whose parent has not yet collected it (a zombie) still exists, but does not run. */
function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // no /proc (not Linux), or gone meanwhile
  }
}

/**
 * Removes the temp files that saves killed mid-write (kill -9, a crash, a power cut) left in `dir`:
 * data/io.ts writes each file as `.<name>.tmp-<pid>-<random>` next to it, then renames it, so one
 * killed between the two is left there for good. Removed: only regular files directly in `dir`
 * whose name has exactly that form (parseTempName) and whose process is gone: kill(pid, 0) fails
 * with ESRCH, or it is a zombie. A temp file naming this process's own pid is gone too unless it is
 * this process's write in progress (a restarted container's trainer is often pid 1 again, as the
 * lock's notes say). A pid that exists (or exists under another user: EPERM) keeps its file, and so
 * does every other name. Call it holding `dir`'s lock: the only writer of such files in a run
 * directory is a run, which holds the lock, so a pid from another machine cannot be one that is
 * still writing. A file that cannot be removed is left as it is. Returns the files removed.
 */
export function removeLeftoverTempFiles(dir: string): { path: string; pid: number }[] {
  const removed: { path: string; pid: number }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const temp = parseTempName(entry.name);
    if (!temp || !entry.isFile()) continue; // isFile: not a directory, and not a symbolic link
    const path = join(dir, entry.name);
    if (!(temp.pid === process.pid ? !tempPathInUse(path) : processState(temp.pid) === 'gone')) continue;
    try {
      unlinkSync(path);
      removed.push({ path, pid: temp.pid });
    } catch {
      // gone meanwhile, or not ours to remove: leave it
    }
  }
  return removed;
}
