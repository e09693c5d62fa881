// What one training process writes in its run directory (nin/run-directory.ts has the layout and
// its rules): the metrics log's records, the checkpoints, --keep-every's snapshots, and the files
// of a stretch it replaces, kept aside. Every write checks that the run still holds the directory's
// lock, and every failure to write stops the run naming its last good checkpoint.
import { appendFileSync, closeSync, constants, copyFileSync, existsSync, fstatSync, linkSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { writeError } from './data/io.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import { NonFiniteWeights, runProvenance, saveCheckpoint, type Checkpoint } from './checkpoint.ts';
import type { ModelConfig } from './model.ts';
import { settingsChanged } from './compare.ts';
import { RunRefused, TrainingStopped } from './run-errors.ts';
import type { TrainOptions, TrainResult } from './train.ts';
import { currentHistory, isOwnRunDirectory, moveRunAside, removeLeftoverTempFiles, runDirectoryProblem, runFilesIn, runLog, sameSave, savedEpoch, savedStep, savedStretch, snapshotName, snapshotsIn, supersededName } from './run-directory.ts';
import type { EpochRecord, MetricRecord, ResumeRecord, ResumeSource, RunLock, StartRecord } from './run-directory.ts';

/** A checkpoint's contents but for what the writer adds (the run's options, id and stretch). */
export type CheckpointContents = Omit<Parameters<typeof saveCheckpoint>[1], 'options' | 'runId' | 'stretch'>;

export class RunWriter {
  readonly checkpointPath: string;
  readonly bestPath: string;
  readonly metricsPath: string;
  /** The run's id: a run resumed in its own directory keeps it; one resumed into another directory forks under a new one. */
  readonly runId: string;
  /** This process's part of the run: its log records and its checkpoints. */
  readonly stretch = randomUUID();
  /** The first record this stretch writes: the run's start, or its resume. */
  readonly first: StartRecord | ResumeRecord;
  /** Resumed in the run's own directory (not a fork, not a new run). */
  readonly own: boolean;
  /** What the stop of a run names as where it can go on from: the checkpoint resumed from, then each checkpoint.safetensors saved. */
  lastGood: string;
  /** What waits for the first record or save (claimHistory). */
  private pendingClaim: (() => void)[];
  /** In its own directory, a checkpoint that is not the very save resumed from belongs to a stretch
   * this resume replaces: it is kept under another name when the first save would replace it. */
  private keepOldCheckpoint: boolean;
  private readonly lock: RunLock;

  /**
   * Refuses a directory another run holds (runDirectoryProblem), tidies what earlier processes left,
   * and claims the directory for a new run or a fork at once: its start or resume record, before
   * the minutes a preprocessing fit takes. A resume in the run's own directory changes nothing there
   * until it has something to keep: its resume record (which makes its stretch the run's history)
   * and best.safetensors's repairs (bestOnResume) wait for its first record or save, so a resume
   * stopped before then leaves the run as it was.
   */
  constructor(
    private readonly o: TrainOptions,
    run: { source: ResumeSource | undefined; resumed: Checkpoint | null; config: ModelConfig; epochSteps: number; lock: RunLock },
    private readonly log: (line: string) => void,
  ) {
    const { source, resumed, config, epochSteps } = run;
    this.lock = run.lock;
    this.lastGood = resumed ? o.resume! : '(none yet)';
    const dirProblem = runDirectoryProblem(o, source);
    if (dirProblem) throw new RunRefused(dirProblem);
    for (const left of removeLeftoverTempFiles(o.outDir)) log(`${left.path}: removed, the temp file of a save that process ${left.pid} left unfinished (no process of that id writes it now)`);
    this.checkpointPath = join(o.outDir, 'checkpoint.safetensors');
    this.bestPath = join(o.outDir, 'best.safetensors');
    this.metricsPath = join(o.outDir, 'metrics.jsonl');
    const own = (this.own = source !== undefined && isOwnRunDirectory(o.outDir, source));
    const runId = (this.runId = own ? (resumed!.runId ?? randomUUID()) : randomUUID());
    const stretch = this.stretch;
    if (o.overwrite && !own) for (const kept of moveRunAside(o.outDir)) log(`--overwrite: the previous run's file is kept as ${kept}`);
    this.keepOldCheckpoint = own && existsSync(this.checkpointPath) && !sameSave(this.checkpointPath, o.resume!);
    if (!own && !o.overwrite && existsSync(this.metricsPath) && runFilesIn(o.outDir).length === 0) {
      rmSync(this.metricsPath);
      log(`${this.metricsPath}: replaced the log of a run that stopped before its first step`);
    }
    const changes = resumed ? settingsChanged(resumed.options, o, resumed.config) : {};
    this.first = resumed
      ? { kind: 'resume', run: runId, stretch, ...(resumed.stretch ? { fromStretch: resumed.stretch } : {}), epoch: resumed.epoch, step: resumed.step, inEpoch: resumed.partialEpoch?.batches ?? 0, from: resolve(o.resume!), ...(own ? {} : { fromRelative: relative(resolve(o.outDir), resolve(o.resume!)), parent: resumed.runId }), stepsPerEpoch: epochSteps, ...(Object.keys(changes).length ? { changed: changes } : {}), provenance: runProvenance(o, config) }
      : { kind: 'start', run: runId, stretch, time: new Date().toISOString(), stepsPerEpoch: epochSteps, provenance: runProvenance(o, config) };
    this.pendingClaim = own ? [() => this.writeFirst()] : [];
    if (!own) this.writeFirst();
  }

  /** A stop says where the run can go on from. */
  stopWith(why: string): TrainingStopped {
    return new TrainingStopped(`${why}; last good checkpoint: ${this.lastGood}`);
  }

  /** Before each write: a directory removed mid-run, and perhaps a new run's by now, is not ours to write in. */
  private assertOwnDirectory(): void {
    const lost = this.lock.lost();
    if (lost) throw this.stopWith(`${this.o.outDir}: this run's lock is lost: ${lost}; stopped without writing there`);
  }

  private writeFirst(): void {
    // A process killed mid-write (or a full disk) can leave the log without its last newline: the
    // first record must not be glued to that fragment, or the reader loses it with the fragment.
    const torn = this.own && !endsWithNewline(this.metricsPath);
    try {
      writeFileSync(this.metricsPath, (torn ? '\n' : '') + JSON.stringify(this.first) + '\n', { flag: this.own ? 'a' : 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new RunRefused(`${this.o.outDir}: another run has just started there`);
      throw writeError(this.metricsPath, e);
    }
  }

  /** `claims` run with the first record or save (see the constructor). */
  afterClaim(claims: (() => void)[]): void {
    this.pendingClaim.push(...claims);
  }

  /** Runs what waits for the first record or save; a failure there stops the run like a failed write. */
  private claimHistory(): void {
    const pending = this.pendingClaim;
    this.pendingClaim = [];
    try {
      for (const f of pending) f();
    } catch (e) {
      throw this.stopWith((e as Error).message);
    }
  }

  /** Appends a record to the run's log. */
  writeMetrics(r: MetricRecord): void {
    this.assertOwnDirectory();
    this.claimHistory();
    try {
      appendFileSync(this.metricsPath, JSON.stringify(r) + '\n');
    } catch (e) {
      throw this.stopWith(writeError(this.metricsPath, e).message);
    }
  }

  /**
   * Keeps a file of a stretch this one replaces under another name (supersededName). `replacedNext`:
   * the file is about to be replaced by an atomic save, so it is linked (or copied) aside and stays
   * at its name until then: a process killed in between leaves it there.
   */
  keep(path: string, why: string, replacedNext = false): void {
    const kept = supersededName(path, savedStep(path) ?? 0);
    if (!replacedNext) renameSync(path, kept);
    else linkOrCopy(path, kept);
    this.log(`${path} ${why}: kept as ${kept}`);
  }

  /** Saves a checkpoint (atomically) at `path`: checkpointPath or bestPath. Weights that are not
   * finite, or a failed write, stop the run. */
  async save(path: string, contents: CheckpointContents): Promise<void> {
    this.assertOwnDirectory();
    try {
      this.claimHistory();
      if (this.keepOldCheckpoint && path === this.checkpointPath) {
        this.keep(this.checkpointPath, 'is not the checkpoint this run resumed from', true);
        this.keepOldCheckpoint = false;
      }
      await saveCheckpoint(path, { ...contents, options: this.o, runId: this.runId, stretch: this.stretch });
      if (path === this.checkpointPath) {
        this.lastGood = this.checkpointPath;
        this.o.onCheckpoint?.(this.checkpointPath);
      }
    } catch (e) {
      if (e instanceof NonFiniteWeights) throw this.stopWith(`the weights are not finite: ${e.message}`);
      if ((e as NodeJS.ErrnoException).code) throw this.stopWith((e as Error).message);
      throw e;
    }
  }

  /**
   * --keep-every: epoch E's checkpoint, just saved, linked (else copied) to epoch-<E>.safetensors. A
   * file of that name is from a stretch this resume replaces (or a run --overwrite did not move):
   * kept aside first. Returns the snapshot's path.
   */
  keepSnapshot(epochsDone: number): string {
    this.assertOwnDirectory();
    const path = snapshotName(this.o.outDir, epochsDone);
    try {
      if (existsSync(path)) this.keep(path, `is not epoch ${epochsDone} of this run's history`);
      linkOrCopy(this.checkpointPath, path); // (the next save replaces checkpoint.safetensors by a rename: the link keeps this one)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code) throw this.stopWith(writeError(path, e).message);
      throw e;
    }
    return path;
  }
}

export interface HistoryEpoch {
  record: EpochRecord;
  stretch: string | null;
}

/**
 * The epochs of the run's history as it will stand with this stretch's first record (a fork's
 * parents' logs included; the history cut where each resume took up), each with the stretch that
 * logged it (null for logs from before stretch ids).
 */
export function historyEpochs(files: RunWriter, dir: string): HistoryEpoch[] {
  const records = files.own ? [...runLog(dir), files.first] : runLog(dir, [files.first]);
  const epochs: HistoryEpoch[] = [];
  let stretch: string | null = null; // the history lists each stretch's records after its start or resume record
  for (const r of currentHistory(records) as (Partial<Omit<EpochRecord, 'kind'>> & { kind?: string; stretch?: unknown })[]) {
    if (r.kind === 'start' || r.kind === 'resume') stretch = typeof r.stretch === 'string' ? r.stretch : null;
    if (r.kind === 'epoch' && typeof r.epoch === 'number') epochs.push({ record: r as unknown as EpochRecord, stretch });
  }
  return epochs;
}

/** Whether the run keeps epoch `epoch`'s checkpoint as epoch-<E>.safetensors (--keep-every). */
export function keepsSnapshot(o: Pick<TrainOptions, 'keepEvery'>, epoch: number): boolean {
  return !!o.keepEvery && epoch % o.keepEvery === 0;
}

/** A second name for the file `from` at `to`: a hard link, else (a file system without them) a
 * copy; never over a file already at `to`. */
function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to, constants.COPYFILE_EXCL);
  }
}

/**
 * A resume in the run's own directory: the --keep-every snapshots (epoch-<E>.safetensors) that are
 * not of the run's history as the resume takes it up are kept aside at its first record or save,
 * as the checkpoint it replaces is. Those past the epoch resumed from (a stretch the resume
 * replaces: the run may never reach their epoch again), and those of an earlier epoch saved by
 * another stretch than the history's (a resume from a checkpoint an earlier resume had kept aside).
 * Left, they were taken for the run's own: `nin eval DIR/epoch-003.safetensors` evaluated a
 * replaced stretch's epoch 3.
 */
export function snapshotsOnResume(files: RunWriter, a: { o: TrainOptions; resumed: Checkpoint; startEpoch: number; history: HistoryEpoch[]; log: (line: string) => void }): void {
  const { o, resumed, startEpoch, history, log } = a;
  if (!files.own) return; // (a new run or a fork writes in a directory of no other run's snapshots)
  const stretchOf = new Map(history.filter((e) => e.record.epoch <= startEpoch).map((e) => [e.record.epoch, e.stretch]));
  const claims: (() => void)[] = [];
  let startSnapshotKept = false;
  for (const path of snapshotsIn(o.outDir)) {
    const epoch = Number(/epoch-(\d+)\.safetensors$/.exec(path)![1]);
    const historyStretch = stretchOf.get(epoch);
    const saved = savedStretch(path);
    const replaced = epoch > startEpoch || (historyStretch != null && saved !== null && saved !== historyStretch);
    if (replaced) claims.push(() => files.keep(path, `is not epoch ${epoch} of this run's history`));
    if (replaced && epoch === startEpoch) startSnapshotKept = true;
  }
  // A run killed between an epoch's save and its snapshot (keepSnapshot, which follows the save)
  // left that epoch without its epoch-<E>.safetensors, and a resume from a checkpoint kept aside
  // finds none of its own: the end-of-epoch checkpoint resumed from is that epoch's save.
  const snapshot = snapshotName(o.outDir, startEpoch);
  if (startEpoch > 0 && keepsSnapshot(o, startEpoch) && resumed.partialEpoch === null && (startSnapshotKept || !existsSync(snapshot))) {
    claims.push(() => {
      linkOrCopy(resumed.path, snapshot);
      log(`${snapshot}: epoch ${startEpoch}'s snapshot (--keep-every ${o.keepEvery}) was missing: the checkpoint resumed from, ${resumed.path}, is that epoch's save`);
    });
  }
  files.afterClaim(claims);
}

/**
 * The best epoch so far on validation: on a resumed run, from the run's history in this
 * directory's metrics (the paper picked its settings on a validation split, then reported test).
 * best.safetensors stays only if it holds that epoch, saved by the stretch that logged it (the
 * same epoch number may come from a stretch the history has left); else it is kept aside, and
 * replaced by the checkpoint resumed from if that is the epoch's save, or tracking starts afresh.
 * A fork's history is its parent's up to the checkpoint it was resumed from: its best epoch may
 * be one of the parent's.
 * Returns that epoch (null: tracked afresh); what it does to best.safetensors waits until the run
 * may write in its directory (RunWriter.afterClaim).
 */
export function bestOnResume(files: RunWriter, a: { o: TrainOptions; resumed: Checkpoint | null; startEpoch: number; history: HistoryEpoch[]; testCount: number | undefined; log: (line: string) => void }): TrainResult['best'] {
  const { o, resumed, startEpoch, history, testCount, log } = a;
  const { own, bestPath, runId } = files;
  const claims: (() => void)[] = [];
  let best: TrainResult['best'] = null;
  let bestStretch: string | null = null;
  if (resumed) {
    let lastTest: { epoch: number; images: number } | null = null;
    for (const { record: r, stretch } of history) {
      if (r.epoch > startEpoch) continue;
      if (r.valError != null && (!best || r.valError < best.valError)) {
        best = { epoch: r.epoch, valError: r.valError, testError: r.testError, checkpoint: bestPath };
        bestStretch = stretch;
      }
      if (typeof r.testImages === 'number') lastTest = { epoch: r.epoch, images: r.testImages };
    }
    // A test set that changed (an image folder's test/, --test-limit): its error curve changes sets here.
    if (lastTest && testCount !== undefined && testCount !== lastTest.images) log(`note: the test set holds ${testCount} images now, ${lastTest.images} at epoch ${lastTest.epoch}: the test error from epoch ${startEpoch + 1} on is over other images`);
  }
  const bestSaved = existsSync(bestPath) ? savedEpoch(bestPath) : undefined;
  const savedBy = savedStretch(bestPath); // null where there is no file, or it names no stretch (saved before stretch ids)
  const otherStretch = best !== null && bestStretch !== null && savedBy !== null && savedBy !== bestStretch;
  // Why an existing best.safetensors does not hold the history's best epoch (null: it does, or there is none).
  const bestFileProblem =
    bestSaved === undefined ? null
    : bestSaved === null ? 'has no readable epoch in its header'
    : best === null ? 'is not from this run\'s history'
    : bestSaved !== best.epoch ? `is not the best epoch of the run's history (epoch ${best.epoch})`
    : otherStretch ? `holds epoch ${best.epoch} as saved by a stretch of the run that its history has left`
    : null;
  // A run stopped between its epoch's checkpoint and best.safetensors: the checkpoint resumed from
  // is that best epoch's end-of-epoch save, by the stretch that logged it, so it becomes the file.
  const resumedIsBest = best !== null && resumed !== null && resumed.partialEpoch === null && resumed.epoch === best.epoch && (bestStretch === null || resumed.stretch === bestStretch);
  // The file that holds the best epoch, read now (a fork's parent may go on training and replace
  // it) and written at the first save as this run's (its run id: a fork's directory then holds its
  // own run only, and the file's history is the fork's log); its stretch stays the one that saved it.
  const bestCopiedFrom = (source: string) => {
    const { tensors, metadata } = readSafetensors(source);
    const epoch = best!.epoch;
    return () => {
      writeSafetensors(bestPath, tensors, { ...metadata, run_id: runId });
      log(`${bestPath}: epoch ${epoch}, the run's best so far, copied from ${source}${source === resumed!.path ? ', the checkpoint resumed from' : ''}`);
    };
  };
  if (resumedIsBest && (bestSaved === undefined || bestFileProblem)) {
    const copy = bestCopiedFrom(resumed!.path);
    claims.push(() => {
      if (bestFileProblem) files.keep(bestPath, bestFileProblem);
      copy();
    });
  } else if (bestFileProblem) {
    claims.push(() => files.keep(bestPath, `${bestFileProblem}; the best epoch is tracked afresh from here`));
    best = null;
  } else if (best !== null && bestSaved === undefined) {
    // A fork: the parent's best.safetensors, or one --overwrite or a resume kept aside there
    // (best.step<N>.superseded*), where it holds that epoch as its stretch saved it.
    const parentDir = dirname(resolve(o.resume!));
    const candidates = own ? [] : ['best.safetensors', ...readdirSync(parentDir).filter((n) => /^best\.step\d+\.superseded(-\d+)?\.safetensors$/.test(n)).sort()];
    const parentBest = candidates.map((n) => join(parentDir, n)).find((f) => existsSync(f) && savedEpoch(f) === best!.epoch && (bestStretch === null || savedStretch(f) === bestStretch));
    if (parentBest) {
      claims.push(bestCopiedFrom(parentBest));
    } else {
      log(`${bestPath} (epoch ${best.epoch} of the run's history) is missing: the best epoch is tracked afresh from here`);
      best = null;
    }
  }
  files.afterClaim(claims);
  return best;
}

/** Whether a file is empty or ends with a newline. */
function endsWithNewline(path: string): boolean {
  if (!existsSync(path)) return true;
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
