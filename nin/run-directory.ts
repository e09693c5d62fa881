// A run directory (`nin train --out`): checkpoint.safetensors (the last epoch's), best.safetensors
// (with a validation split), metrics.jsonl (the log); and the rules for writing into one.
//
// The metrics log: one JSON record per line, appended by train() and read by the curves (plot.ts)
// and by a resumed run looking for its best epoch.
//
// Records (other kinds and fields are ignored by readers):
//   { kind: 'step', epoch, step, loss, lr }       every 20th step; `step` counts from 0 over the run,
//                                                 `epoch` is the 0-based index of the epoch it falls in
//   { kind: 'epoch', epoch, step, trainLoss, trainError, lr, imgPerSec, seconds,
//     valLoss?, valError?, testLoss?, testError? } after each epoch; `epoch` is the number of epochs
//                                                 completed (the first epoch's record says 1),
//                                                 `step` the steps done by then
//   { kind: 'resume', epoch, step, from }         a run resumed here from checkpoint `from`, saved
//                                                 after `epoch` epochs and `step` steps
// Errors are fractions in [0, 1]. A NaN is written as null (JSON has no NaN).
//
// A resume record supersedes what the log holds beyond its point: the steps a crashed or stopped
// run logged after its last checkpoint, or a whole later stretch when a run is resumed from an
// earlier checkpoint. Nothing is deleted from the file; `currentHistory` reads past it.

import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readSafetensorsMetadata } from './safetensors.ts';

/** The files that make a directory a run directory. */
export const RUN_FILES = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'] as const;

export function runFilesIn(dir: string): string[] {
  return RUN_FILES.filter((f) => existsSync(join(dir, f)));
}

/** A resumed run's own directories: the one holding the checkpoint and the one it was trained in. */
export function isOwnRunDirectory(o: { outDir: string; resume?: string }, savedOutDir: string | undefined): boolean {
  const dir = resolve(o.outDir);
  return o.resume !== undefined && (dir === resolve(dirname(o.resume)) || (savedOutDir !== undefined && dir === resolve(savedOutDir)));
}

/**
 * Why a run may not write into `o.outDir`, or null: a new run would replace another run's
 * checkpoint, best checkpoint and metrics log, and a resumed run would mix its log into another
 * run's. `--overwrite` lets it start afresh there. A resumed run may always continue in its own
 * directory (where its later checkpoints, if any, are kept under another name).
 */
export function runDirectoryProblem(o: { outDir: string; resume?: string; overwrite?: boolean }, savedOutDir?: string): string | null {
  const found = runFilesIn(o.outDir);
  if (found.length === 0 || o.overwrite) return null;
  const holds = `--out ${o.outDir} already holds a run (${found.join(', ')})`;
  const fresh = 'add --overwrite to start afresh there (its metrics log and best.safetensors are deleted, its checkpoint replaced after the first epoch)';
  if (o.resume === undefined) return `${holds}: continue it with --resume ${join(o.outDir, 'checkpoint.safetensors')}, choose another --out, or ${fresh}`;
  if (isOwnRunDirectory(o, savedOutDir)) return null;
  return `${holds} that is not ${o.resume}'s: continue in the checkpoint's own directory (omit --out), choose another --out, or ${fresh}`;
}

/** The step a checkpoint file was saved at (from its header), or null if there is none or it is unreadable. */
export function savedStep(path: string): number | null {
  if (!existsSync(path)) return null;
  try {
    const step = Number(readSafetensorsMetadata(path).step);
    return Number.isFinite(step) ? step : null;
  } catch {
    return null;
  }
}

/** `dir/checkpoint.safetensors` saved at step 1950 → `dir/checkpoint.step1950.superseded.safetensors` (numbered on if taken). */
export function supersededName(path: string, step: number): string {
  const stem = join(dirname(path), basename(path, '.safetensors'));
  for (let n = 1; ; n++) {
    const name = `${stem}.step${step}.superseded${n > 1 ? `-${n}` : ''}.safetensors`;
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
  valLoss?: number;
  valError?: number;
  lr: number;
  imgPerSec: number;
  seconds: number;
}

export interface ResumeRecord {
  kind: 'resume';
  epoch: number;
  step: number;
  from: string;
}

export type MetricRecord = StepRecord | EpochRecord | ResumeRecord;

/** The records of a log's text; lines that do not parse (a crash mid-write cuts the last one) are skipped. */
export function parseMetricsLog(text: string): object[] {
  const records: object[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const r: unknown = JSON.parse(line);
      if (typeof r === 'object' && r !== null) records.push(r);
    } catch {
      // cut off mid-write
    }
  }
  return records;
}

/**
 * The records of the run as it now stands: at each resume record, the step records from its step
 * on and the epoch records after its epoch (logged before it, by the run it replaced) are dropped.
 */
export function currentHistory(records: object[]): object[] {
  let kept: object[] = [];
  for (const r of records) {
    const rec = r as Partial<Record<string, unknown>>;
    if (rec.kind === 'resume' && typeof rec.step === 'number' && typeof rec.epoch === 'number') {
      const { step, epoch } = rec as { step: number; epoch: number };
      kept = kept.filter((k) => {
        const x = k as Partial<Record<string, unknown>>;
        const after = (v: unknown, than: number) => typeof v === 'number' && v > than;
        if (x.kind === 'step') return !after(x.step, step - 1); // step `step` is the first the resumed run takes
        if (x.kind === 'epoch') return !after(x.epoch, epoch);
        if (x.kind === 'resume') return !after(x.step, step);
        return true;
      });
    }
    kept.push(r);
  }
  return kept;
}
