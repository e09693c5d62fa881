// The run directory: the metrics log read as the run now stands (resume records supersede what a
// stopped or replaced stretch logged), and the rules that keep a run out of another run's files.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CheckpointDamaged, errorLine, jsonArrayWriter, parseTrainArgs, UsageError } from '../nin/cli.ts';
import { NonFiniteWeights } from '../nin/checkpoint.ts';
import { ImageLoadError } from '../nin/images.ts';
import { JpegFormatError } from '../nin/jpeg.ts';
import { MissingDataError } from '../nin/data/registry.ts';
import { StreamReadError } from '../nin/data/stream.ts';
import { TrainingStopped } from '../nin/run-errors.ts';
import { trainingCurveSeries } from '../nin/plot.ts';
import { checkpointCount, currentHistory, historyOfCheckpoint, isOwnRunDirectory, lockRunDirectory, logOfCheckpoint, moveRunAside, parseMetricsLog, checkpointHeaderFields, removeLeftoverTempFiles, reservedRunFileName, resumeClashes, shuffleChangedWithinEpoch, runDirectoryInUse, snapshotName, snapshotsIn, runDirectoryProblem, runFileKind, runFilesIn, runIdsIn, runLog, RunDirectoryInUse, sameSave, unusedRunDirectory, claimRunDirectory } from '../nin/run-directory.ts';
import { AtomicFile, DataFormatError, danglingLink, doneWithTempPath, makeDirectory, parseTempName, tempPathFor, writeFileAtomic } from '../nin/data/io.ts';
import { SafetensorsError, writeSafetensors } from '../nin/safetensors.ts';
import { RunRefused, type TrainOptions } from '../nin/train.ts';
import { modelConfig } from '../nin/model.ts';
import { shellWord } from '../nin/text.ts';

/** The log of an uninterrupted run: `epochs` epochs of `perEpoch` steps, a step record every `every` steps. */
function log(epochs: number, perEpoch: number, every = 1, from = 0, lossOf = (s: number) => 1 / (1 + s)): object[] {
  const out: object[] = [];
  for (let e = from; e < epochs; e++) {
    for (let s = e * perEpoch; s < (e + 1) * perEpoch; s++) if (s % every === 0) out.push({ kind: 'step', epoch: e, step: s, loss: lossOf(s), lr: 0.1 });
    out.push({ kind: 'epoch', epoch: e + 1, step: (e + 1) * perEpoch, trainLoss: lossOf(e), trainError: 0.5 });
  }
  return out;
}
const resume = (epoch: number, step: number) => ({ kind: 'resume', epoch, step, from: `ckpt-${epoch}` });

describe('the metrics log', () => {
  it('skips blank lines and a line cut off mid-write', () => {
    const text = '{"kind":"step","epoch":0,"step":0,"loss":2.3}\n\n{"kind":"epoch","epoch":1,"st';
    expect(parseMetricsLog(text)).toEqual([{ kind: 'step', epoch: 0, step: 0, loss: 2.3 }]);
    expect(parseMetricsLog('')).toEqual([]);
    // A line nested deeper than any record is (32 levels) holds none: the readers after it recurse.
    expect(parseMetricsLog(`{"kind":"epoch","epoch":1,"x":${'['.repeat(40)}${']'.repeat(40)}}\n`)).toEqual([]);
  });

  it('a resume supersedes the steps a stopped run logged after its last checkpoint', () => {
    const whole = log(3, 10);
    // Killed in epoch 2 (index 1) at step 16; resumed from the checkpoint after epoch 1 (step 10).
    const stopped = whole.filter((r) => (r as { step: number }).step <= 16);
    const records = [...stopped, resume(1, 10), ...log(3, 10, 1, 1)];
    expect(currentHistory(records)).toEqual([...log(1, 10), resume(1, 10), ...log(3, 10, 1, 1)]);
    // The curves then match the uninterrupted run's: each step once, at the same x.
    expect(trainingCurveSeries(records).loss[0].points).toEqual(trainingCurveSeries(whole).loss[0].points);
    // Read raw, the stopped stretch would double steps 10–16.
    const doubled = records.filter((r) => (r as { kind: string }).kind === 'step').map((r) => (r as { step: number }).step);
    expect(doubled.filter((s) => s === 12).length).toBe(2);
  });

  it('a resume from an earlier checkpoint supersedes the later epochs; resumes of resumes too', () => {
    const first = log(4, 5, 2); // epochs 1–4
    const again = log(3, 5, 2, 1, (s) => 10 + s); // epochs 2–3 rerun from the epoch-1 checkpoint, other losses
    const third = log(5, 5, 2, 2, (s) => 20 + s); // then epochs 3–5 from the rerun's epoch-2 checkpoint
    const records = [...first, resume(1, 5), ...again, resume(2, 10), ...third];
    const h = currentHistory(records) as { kind: string; epoch: number; step: number; loss?: number }[];
    expect(h.filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1, 2, 3, 4, 5]);
    expect(h.filter((r) => r.kind === 'resume').map((r) => r.step)).toEqual([5, 10]);
    const steps = h.filter((r) => r.kind === 'step');
    expect(steps.map((r) => r.step)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]);
    expect(steps.map((r) => r.loss)).toEqual([...[0, 2, 4].map((s) => 1 / (1 + s)), ...[6, 8].map((s) => 10 + s), ...[10, 12, 14, 16, 18, 20, 22, 24].map((s) => 20 + s)]);
    // A later resume from the very first checkpoint drops both reruns' records.
    const back = currentHistory([...records, resume(1, 5)]) as { kind: string; epoch: number }[];
    expect(back.filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1]);
    expect(back.filter((r) => r.kind === 'resume').length).toBe(2);
  });

  it('with stretch ids, each resume continues the stretch that saved its checkpoint: a superseded checkpoint gets its own history back', () => {
    const start = { kind: 'start', run: 'R', stretch: 'a', time: '' };
    const resumeOf = (stretch: string, from: string, epoch: number, step: number) => ({ kind: 'resume', run: 'R', stretch, fromStretch: from, epoch, step, from: 'ckpt' });
    const a = log(4, 10); // stretch a: epochs 1–4, its checkpoint at step 40 later superseded
    const b = log(3, 10, 1, 2, (s) => 10 + s); // stretch b: resumed from a's epoch-2 checkpoint, epoch 3 again
    const c = log(5, 10, 1, 4, (s) => 20 + s); // stretch c: resumed from a's step-40 checkpoint (the superseded file)
    const records = [start, ...a, resumeOf('b', 'a', 2, 20), ...b, resumeOf('c', 'a', 4, 40), ...c];
    expect(currentHistory(records)).toEqual([start, ...a, resumeOf('c', 'a', 4, 40), ...c]);
    // Without ids (logs from before stretches), the same log reads as one line: b's epoch 3 in a's place.
    const legacy = records.map((r) => {
      const { stretch: _s, fromStretch: _f, ...rest } = r as Record<string, unknown>;
      return rest;
    });
    const old = currentHistory(legacy) as { kind: string; epoch: number; step: number; loss: number }[];
    expect(old.filter((r) => r.kind === 'step' && r.step === 25).map((r) => r.loss)).toEqual([35]);
    // A log begun before stretch ids, continued by id'd stretches: read as one line up to the first
    // id'd stretch (its checkpoint had no id), then by the links.
    const oldPart = [...log(3, 10), resume(1, 10), ...log(2, 10, 1, 1, (s) => 50 + s)]; // epoch 2 redone, 3 left behind
    const mixed = [...oldPart, resumeOf('b', 'none', 2, 20), ...log(4, 10, 1, 2, (s) => 70 + s), resumeOf('c', 'b', 3, 30), ...log(5, 10, 1, 3, (s) => 90 + s)];
    const mh = currentHistory(mixed.map((r) => ((r as { fromStretch?: string }).fromStretch === 'none' ? { ...r, fromStretch: undefined } : r))) as { kind: string; epoch: number; step: number; loss: number }[];
    expect(mh.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.step])).toEqual([[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]]);
    expect([5, 15, 25, 35, 45].map((st) => mh.find((r) => r.kind === 'step' && r.step === st)!.loss)).toEqual([1 / 6, 65, 95, 125, 135]);
    // A stretch killed after its checkpoint at step 25 (logged to 33): its resume keeps a's steps before 25.
    const killed = log(4, 10).filter((r) => (r as { step: number }).step <= 33 && !((r as { kind: string }).kind === 'epoch' && (r as { epoch: number }).epoch > 2));
    const rest = log(4, 10, 1, 2, (s) => 100 + s).filter((r) => (r as { step: number }).step >= 25);
    const h = currentHistory([start, ...killed, resumeOf('b', 'a', 2, 25), ...rest]) as { kind: string; step: number; loss: number }[];
    expect(h.filter((r) => r.kind === 'step').map((r) => r.loss)).toEqual([...Array.from({ length: 25 }, (_, s) => 1 / (1 + s)), ...Array.from({ length: 15 }, (_, k) => 125 + k)]);
  });
});

describe('the history of a checkpoint (its curves in nin visualize)', () => {
  const start = { kind: 'start', run: 'R', stretch: 'a', time: '' };
  const resumeOf = (stretch: string, from: string, epoch: number, step: number) => ({ kind: 'resume', run: 'R', stretch, fromStretch: from, epoch, step, from: 'ckpt' });
  const a = log(4, 10); // stretch a: epochs 1–4
  const b = log(3, 10, 1, 2, (s) => 10 + s); // b: from a's epoch-2 checkpoint, epoch 3 again (its checkpoint later superseded)
  const c = log(5, 10, 1, 4, (s) => 20 + s); // c: from a's step-40 checkpoint
  const records = [start, ...a, resumeOf('b', 'a', 2, 20), ...b, resumeOf('c', 'a', 4, 40), ...c];
  const epochs = (h: object[]) => (h as { kind: string; epoch: number; trainLoss: number }[]).filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.trainLoss]);

  it('a checkpoint on the current line (the last, or an earlier best) draws the run as it now stands', () => {
    const current = currentHistory(records);
    expect(historyOfCheckpoint(records, { stretch: 'c', epoch: 5, step: 50 })).toEqual(current);
    expect(historyOfCheckpoint(records, { stretch: 'a', epoch: 2, step: 20 })).toEqual(current);
  });

  it('a superseded checkpoint draws its own line, up to where it was saved', () => {
    const h = historyOfCheckpoint(records, { stretch: 'b', epoch: 3, step: 30 });
    expect(epochs(h)).toEqual([[1, 1], [2, 1 / 2], [3, 12]]);
    expect(h).toEqual([start, ...a.filter((r) => (r as { step: number }).step < 20 || (r as { kind: string; epoch: number }).kind === 'epoch' && (r as { epoch: number }).epoch <= 2), resumeOf('b', 'a', 2, 20), ...b]);
    // Saved within epoch 3 (step 25): b's steps before 25, no epoch-3 record.
    const mid = historyOfCheckpoint(records, { stretch: 'b', epoch: 2, step: 25 }) as { kind: string; step: number; loss: number }[];
    expect(epochs(mid).map(([e]) => e)).toEqual([1, 2]);
    expect(mid.filter((r) => r.kind === 'step').at(-1)).toMatchObject({ step: 24, loss: 34 });
  });

  it('a checkpoint from before stretch ids draws the current history: without ids it cannot be placed', () => {
    const legacy = [...log(3, 10), resume(1, 10), ...log(4, 10, 1, 1, (s) => 50 + s)];
    expect(epochs(currentHistory(legacy))).toEqual([[1, 1], [2, 51], [3, 52], [4, 53]]);
    // The resumed line's epoch-2 checkpoint, and the first stretch's replaced epoch-3 one alike.
    expect(historyOfCheckpoint(legacy, { stretch: null, epoch: 2, step: 20 })).toEqual(currentHistory(legacy));
    expect(historyOfCheckpoint(legacy, { stretch: null, epoch: 3, step: 30 })).toEqual(currentHistory(legacy));
  });
});

describe('the run directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'nin-rundir-'));
  const held = join(root, 'held');
  mkdirSync(held);
  writeFileSync(join(held, 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'run-A', time: '' }) + '\n' + JSON.stringify({ kind: 'step', epoch: 0, step: 0, loss: 2.3, lr: 0.1 }) + '\n');
  const source = (path: string, runId: string | null, savedOutDir = '/elsewhere/run') => ({ path, runId, savedOutDir });
  const header = (options: object, epoch: number, runId?: string) => ({
    format: 'nin-webgpu/1',
    options: JSON.stringify(options),
    ...('model' in options ? { config: JSON.stringify(modelConfig(options as TrainOptions)) } : {}),
    epoch: String(epoch),
    step: String(epoch * 10),
    saved: `t${epoch}`,
    ...(runId ? { run_id: runId } : {}),
  });

  it('a new run may not write into another run\'s directory without --overwrite; a resumed run may continue in its own', () => {
    expect(runDirectoryProblem({ outDir: join(root, 'new') })).toBeNull();
    // A log that records no step (a run stopped while it loaded or preprocessed its data) is no run.
    const unstarted = join(root, 'unstarted');
    mkdirSync(unstarted);
    writeFileSync(join(unstarted, 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'run-U', time: '' }) + '\n');
    expect(runFilesIn(unstarted)).toEqual([]);
    expect(runDirectoryProblem({ outDir: unstarted })).toBeNull();
    // A log that records training, without a checkpoint (a run that failed before its first): nothing to resume, but a run.
    expect(runFilesIn(held)).toEqual(['metrics.jsonl']);
    expect(runDirectoryProblem({ outDir: held })).toBe(
      `${held} already holds a run (metrics.jsonl) that stopped before its first save (nothing to resume): choose another --out, or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)`,
    );
    expect(runDirectoryProblem({ outDir: held, overwrite: true })).toBeNull();
    // Resumed: the directory of the same run (by the id in its files) is its own, wherever it is ...
    expect(runIdsIn(held)).toEqual(['run-A']);
    expect(runDirectoryProblem({ outDir: held }, source('/elsewhere/copy.safetensors', 'run-A'))).toBeNull();
    // ... another run's is not, even where the checkpoint was trained or now lies.
    expect(runDirectoryProblem({ outDir: held }, source(join(held, 'x.safetensors'), 'run-B', held))).toMatch(
      new RegExp(`^${held} holds another run \\(metrics.jsonl\\) than .*x.safetensors's: resume it into a new directory \\(--out DIR\\)`),
    );
    // Checkpoints from before runs had ids: a directory without an id that holds the checkpoint or
    // is the one it was trained in; never a directory whose files carry an id.
    expect(isOwnRunDirectory(held, source('/elsewhere/copy.safetensors', null, held))).toBe(false);
    const legacy = join(root, 'legacy');
    mkdirSync(legacy);
    writeFileSync(join(legacy, 'metrics.jsonl'), JSON.stringify({ kind: 'epoch', epoch: 1 }) + '\n');
    expect(isOwnRunDirectory(legacy, source('/elsewhere/copy.safetensors', null, legacy))).toBe(true);
    expect(isOwnRunDirectory(legacy, source(join(legacy, 'best.safetensors'), null))).toBe(true);
    expect(isOwnRunDirectory(legacy, source('/elsewhere/copy.safetensors', null))).toBe(false);
    expect(isOwnRunDirectory(legacy, source('/elsewhere/copy.safetensors', 'run-A', legacy))).toBe(false);
    // Another run's checkpoint copied into a run's directory does not make the directory its own
    // (it named the copied checkpoint's run and took the directory's log and best checkpoint).
    /** run-A's log, with checkpoint.safetensors and best.safetensors of the runs named. */
    const runAWith = (name: string, checkpointRun: string, bestRun: string) => {
      const dir = join(root, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'run-A', time: '' }) + '\n' + JSON.stringify({ kind: 'epoch', epoch: 1 }) + '\n');
      writeSafetensors(join(dir, 'best.safetensors'), {}, header({}, 1, bestRun));
      writeSafetensors(join(dir, 'checkpoint.safetensors'), {}, header({}, 1, checkpointRun));
      return dir;
    };
    const mixed = runAWith('mixed', 'run-B', 'run-A');
    expect(runIdsIn(mixed)).toEqual(['run-B', 'run-A']);
    expect(isOwnRunDirectory(mixed, source(join(mixed, 'checkpoint.safetensors'), 'run-B', '/elsewhere/run-b'))).toBe(false);
    expect(isOwnRunDirectory(mixed, source(join(mixed, 'checkpoint.safetensors'), 'run-A'))).toBe(false);
    expect(runDirectoryProblem({ outDir: mixed }, source(join(mixed, 'checkpoint.safetensors'), 'run-B'))).toMatch(new RegExp(`^${mixed} holds another run`));
    // A new run there: the directory holds a checkpoint to continue, and says how (a best checkpoint alone is none).
    expect(runDirectoryProblem({ outDir: mixed })).toBe(`${mixed} already holds a run (checkpoint.safetensors, best.safetensors, metrics.jsonl): continue it with --resume ${shellWord(mixed)}, choose another --out, or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)`);
    rmSync(join(mixed, 'checkpoint.safetensors'));
    expect(runDirectoryProblem({ outDir: mixed })).toBe(`${mixed} already holds a run (best.safetensors, metrics.jsonl): choose another --out, or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)`);
    // Another run's best checkpoint copied in beside a run's own checkpoint and log: its id counts
    // too (a resume there would replace that run's best.safetensors).
    const foreignBest = runAWith('foreign-best', 'run-A', 'run-B');
    expect(runIdsIn(foreignBest)).toEqual(['run-A', 'run-B']);
    expect(runDirectoryProblem({ outDir: foreignBest }, source(join(foreignBest, 'checkpoint.safetensors'), 'run-A'))).toMatch(new RegExp(`^${foreignBest} holds another run`));
    // A log naming two runs counts its latest (the last id it names), not its first.
    const relogged = join(root, 'relogged');
    mkdirSync(relogged);
    writeFileSync(join(relogged, 'metrics.jsonl'), [{ kind: 'start', run: 'run-A', time: '' }, { kind: 'epoch', epoch: 1 }, { kind: 'resume', run: 'run-C', parent: 'run-A', epoch: 1, step: 10, from: '/elsewhere/checkpoint.safetensors' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    expect(runIdsIn(relogged)).toEqual(['run-C']);
  });

  it('a log that records an epoch but no step record (a fork that saved no checkpoint yet) is a run', () => {
    const dir = join(root, 'epoch-only');
    mkdirSync(dir);
    writeFileSync(join(dir, 'metrics.jsonl'), [{ kind: 'resume', run: 'run-F', epoch: 1, step: 15, from: '/elsewhere/checkpoint.safetensors' }, { kind: 'epoch', epoch: 2, step: 30 }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    expect(runFilesIn(dir)).toEqual(['metrics.jsonl']);
    expect(runDirectoryProblem({ outDir: dir })).toMatch(/already holds a run \(metrics.jsonl\)/);
  });

  it("a file named metrics.jsonl that is no nin log (a user's own) is kept: the directory is refused, not the file deleted as a log without steps", () => {
    const dir = join(root, 'notes');
    mkdirSync(dir);
    writeFileSync(join(dir, 'metrics.jsonl'), 'my own notes, not json\n{"kind":"note"}\n');
    expect(runFilesIn(dir)).toEqual(['metrics.jsonl']);
    expect(runDirectoryProblem({ outDir: dir })).toBe(
      `${dir} already holds a metrics.jsonl that is not a nin run's log: choose another --out, or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)`,
    );
    expect(runDirectoryProblem({ outDir: dir }, source('/elsewhere/c.safetensors', 'run-A'))).toMatch(new RegExp(`^${dir} holds a metrics.jsonl that is not a nin run's log, not /elsewhere/c.safetensors's run: resume it into a new directory`));
    // A log of epoch records alone (its other lines cut away) is a run's log all the same.
    const epochsOnly = join(root, 'epochs-only');
    mkdirSync(epochsOnly);
    writeFileSync(join(epochsOnly, 'metrics.jsonl'), JSON.stringify({ kind: 'epoch', epoch: 1, step: 10, trainLoss: 1 }) + '\n');
    expect(runDirectoryProblem({ outDir: epochsOnly })).toMatch(new RegExp(`^${epochsOnly} already holds a run \\(metrics.jsonl\\) that stopped before its first save`));
    // Replaced as before: an empty file, and a log of runs stopped before their first step (a
    // start, a resume, a stop); a torn line among them is no such log.
    for (const [name, text, replaced] of [
      ['log-empty', '', true],
      ['log-stopped', ['start', 'resume', 'stopped'].map((kind) => JSON.stringify({ kind, run: 'run-S' })).join('\n') + '\n', true],
      ['log-torn', JSON.stringify({ kind: 'start', run: 'run-T' }) + '\n{"kind":"sta', false],
    ] as const) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'metrics.jsonl'), text);
      expect(runFilesIn(join(root, name)), name).toEqual(replaced ? [] : ['metrics.jsonl']);
    }
  });

  it("a checkpoint's epoch and step are whole numbers ≥ 0: a negative or blank one is refused, naming the file and the key", () => {
    expect(checkpointCount('/r/c.safetensors', { step: '12' }, 'step')).toBe(12);
    expect(checkpointCount('/r/c.safetensors', { step: '0' }, 'step')).toBe(0);
    for (const v of ['-1', '', ' ', '2.5', '0x10', '1e1', ' 7', undefined]) { // (Number() read '0x10' as 16)
      expect(() => checkpointCount('/r/c.safetensors', v === undefined ? {} : { step: v }, 'step'), String(v)).toThrow(`/r/c.safetensors: metadata "step" must be a whole number ≥ 0, found ${JSON.stringify(v ?? null)}`);
    }
    // The options a header holds are one JSON object (an array has no model, outDir or epochs to read).
    const fields = (options: string) => checkpointHeaderFields('/r/c.safetensors', { ...header({ model: 'mnist-small' }, 1), options });
    expect(fields(JSON.stringify({ model: 'mnist-small' })).epoch).toBe(1);
    expect(() => fields('[{"model":"mnist-small"}]')).toThrow('/r/c.safetensors: metadata "options" must be a JSON object');
  });

  it('two checkpoint files hold the same save only if run, step and time of saving all agree', () => {
    const dir = join(root, 'saves');
    mkdirSync(dir);
    const file = (name: string, meta: Record<string, string>) => {
      writeSafetensors(join(dir, name), {}, meta);
      return join(dir, name);
    };
    const a = file('a.safetensors', header({}, 3, 'R'));
    expect(sameSave(a, file('copy.safetensors', header({}, 3, 'R')))).toBe(true);
    expect(sameSave(a, file('later.safetensors', { ...header({}, 3, 'R'), saved: 'later' }))).toBe(false); // the same step saved again (another stretch)
    expect(sameSave(a, file('other-run.safetensors', header({}, 3, 'S')))).toBe(false);
    expect(sameSave(a, file('other-step.safetensors', { ...header({}, 3, 'R'), step: '31' }))).toBe(false);
    expect(sameSave(a, join(dir, 'missing.safetensors'))).toBe(false);
  });

  it("a forked run's log is read after its parent's only while the parent's directory holds the parent's log", () => {
    const parent = join(root, 'fork-parent'), child = join(root, 'fork-child');
    mkdirSync(parent);
    mkdirSync(child);
    const parentLog = [{ kind: 'start', run: 'P', stretch: 'p1', time: '' }, ...log(2, 10, 5)];
    const childLog = [{ kind: 'resume', run: 'C', parent: 'P', stretch: 'c1', fromStretch: 'p1', epoch: 1, step: 10, from: join(parent, 'checkpoint.safetensors') }, ...log(2, 10, 5, 1, (s) => 10 + s)];
    const write = (dir: string, records: object[]) => writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    write(parent, parentLog);
    write(child, childLog);
    expect(runLog(child)).toEqual([...parentLog, ...childLog]);
    // The parent's directory since taken over by another run (--overwrite): its log is not the parent's.
    write(parent, [{ kind: 'start', run: 'Q', stretch: 'q1', time: '' }, ...log(2, 10, 5, 0, (s) => 50 + s)]);
    expect(runLog(child)).toEqual(childLog);
    // A fork from before run ids (its resume names no parent): its parent's log is followed only
    // while that log has no ids either (a run with ids there since is another run).
    const oldParent = join(root, 'fork-old-parent'), oldChild = join(root, 'fork-old-child');
    mkdirSync(oldParent);
    mkdirSync(oldChild);
    const oldChildLog = [{ kind: 'resume', epoch: 1, step: 10, from: join(oldParent, 'checkpoint.safetensors') }, ...log(2, 10, 5, 1, (s) => 10 + s)];
    write(oldParent, log(2, 10, 5));
    write(oldChild, oldChildLog);
    expect(runLog(oldChild)).toEqual([...log(2, 10, 5), ...oldChildLog]);
    write(oldParent, [{ kind: 'start', run: 'Q', stretch: 'q1', time: '' }, ...log(2, 10, 5, 0, (s) => 50 + s)]);
    expect(runLog(oldChild)).toEqual(oldChildLog);
  });

  it("a fork finds its parent's log after a move: both together (by the relative path), or the parent renamed beside it; always by the parent's id", () => {
    const tree = join(root, 'moved-tree'), parent = join(tree, 'runs', 'parent'), child = join(tree, 'runs', 'nested', 'child');
    mkdirSync(parent, { recursive: true });
    mkdirSync(child, { recursive: true });
    const parentLog = [{ kind: 'start', run: 'P', stretch: 'p1', time: '' }, ...log(2, 10, 5)];
    const childLog = [{ kind: 'resume', run: 'C', parent: 'P', stretch: 'c1', fromStretch: 'p1', epoch: 1, step: 10, from: join(parent, 'checkpoint.safetensors'), fromRelative: join('..', '..', 'parent', 'checkpoint.safetensors') }, ...log(2, 10, 5, 1, (s) => 10 + s)];
    const write = (dir: string, records: object[]) => writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    write(parent, parentLog);
    write(child, childLog);
    expect(runLog(child)).toEqual([...parentLog, ...childLog]);
    // The whole tree moved: `from` now names nothing, the relative path still leads to the parent.
    const moved = join(root, 'moved-tree-2');
    renameSync(tree, moved);
    const movedChild = join(moved, 'runs', 'nested', 'child');
    expect(runLog(movedChild)).toEqual([...parentLog, ...childLog]);
    // Where `from` pointed, something that cannot be read as a log (EISDIR here): passed over too.
    mkdirSync(join(parent, 'metrics.jsonl'), { recursive: true });
    expect(runLog(movedChild)).toEqual([...parentLog, ...childLog]);
    // A log without the relative path (written before it was recorded) finds the parent renamed
    // beside the fork's directory, and only a log that names the parent's id.
    const flat = join(root, 'moved-flat'), flatChild = join(flat, 'child');
    mkdirSync(flatChild, { recursive: true });
    const { fromRelative: _, ...oldResume } = childLog[0] as Record<string, unknown>;
    write(flatChild, [oldResume, ...childLog.slice(1)]);
    mkdirSync(join(flat, 'another'));
    write(join(flat, 'another'), [{ kind: 'start', run: 'Q', stretch: 'q1', time: '' }, ...log(2, 10, 5, 0, (s) => 50 + s)]);
    expect(runLog(flatChild)).toEqual([oldResume, ...childLog.slice(1)]);
    mkdirSync(join(flat, 'a-directory-that-cannot-be-read', 'metrics.jsonl'), { recursive: true }); // read: EISDIR
    renameSync(join(moved, 'runs', 'parent'), join(flat, 'parent-renamed'));
    expect(runLog(flatChild)).toEqual([...parentLog, oldResume, ...childLog.slice(1)]);
    // Beside it as a link to the directory, wherever that went.
    renameSync(join(flat, 'parent-renamed'), join(root, 'moved-parent-store'));
    expect(runLog(flatChild)).toEqual([oldResume, ...childLog.slice(1)]);
    symlinkSync(join(root, 'moved-parent-store'), join(flat, 'parent-linked'));
    expect(runLog(flatChild)).toEqual([...parentLog, oldResume, ...childLog.slice(1)]);
    // A fork made in place (--out the parent's directory, --overwrite) from a copy of the parent's
    // checkpoint kept elsewhere: the parent's log is in the fork's own directory, moved aside.
    const inPlace = join(root, 'in-place', 'runs', 'p');
    mkdirSync(inPlace, { recursive: true });
    writeFileSync(join(inPlace, 'metrics.superseded.jsonl'), parentLog.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const forkLog = [{ ...oldResume, from: join(root, 'in-place', 'backup', 'p.safetensors'), fromRelative: join('..', '..', 'backup', 'p.safetensors') }, ...childLog.slice(1)];
    write(inPlace, forkLog);
    expect(runLog(inPlace)).toEqual([...parentLog, ...forkLog]);
  });

  it('--keep-every snapshots: epoch-NNN.safetensors, three digits at least; only names of exactly that form are listed', () => {
    expect([7, 12, 345, 1234].map((e) => snapshotName('/r', e))).toEqual(['/r/epoch-007.safetensors', '/r/epoch-012.safetensors', '/r/epoch-345.safetensors', '/r/epoch-1234.safetensors']);
    const dir = mkdtempSync(join(tmpdir(), 'nin-snapshots-'));
    for (const name of ['epoch-010.safetensors', 'epoch-002.safetensors', 'epoch-1000.safetensors', 'epoch-02.safetensors', 'epoch-002.safetensors.bak', 'epoch-004.step12.superseded.safetensors', 'xepoch-003.safetensors']) writeFileSync(join(dir, name), '');
    expect(snapshotsIn(dir)).toEqual(['epoch-002.safetensors', 'epoch-010.safetensors', 'epoch-1000.safetensors'].map((n) => join(dir, n)));
    rmSync(dir, { recursive: true, force: true });
  });

  it('--overwrite moves the old run\'s files aside, numbered on; nothing is deleted', () => {
    const dir = join(root, 'aside');
    mkdirSync(dir);
    writeSafetensors(join(dir, 'checkpoint.safetensors'), {}, header({}, 3, 'old'));
    writeFileSync(join(dir, 'metrics.jsonl'), 'old log\n');
    expect(moveRunAside(dir)).toEqual([join(dir, 'checkpoint.step30.superseded.safetensors'), join(dir, 'metrics.superseded.jsonl')]);
    writeFileSync(join(dir, 'metrics.jsonl'), 'newer log\n');
    expect(moveRunAside(dir)).toEqual([join(dir, 'metrics.superseded-2.jsonl')]);
    expect(runFilesIn(dir)).toEqual([]);
    expect(readFileSync(join(dir, 'metrics.superseded.jsonl'), 'utf8')).toBe('old log\n');
    // --keep-every's snapshots go aside too (a new run's epoch 2 would replace the old one's); a
    // checkpoint whose header has no step is named as saved at step 0.
    writeSafetensors(join(dir, 'epoch-002.safetensors'), {}, header({}, 2, 'old'));
    writeSafetensors(join(dir, 'best.safetensors'), {}, { format: 'nin-webgpu/1' });
    expect(moveRunAside(dir)).toEqual([join(dir, 'best.step0.superseded.safetensors'), join(dir, 'epoch-002.step20.superseded.safetensors')]);
    expect(snapshotsIn(dir)).toEqual([]);
  });

  it("a checkpoint's log: the directory's where it names the checkpoint's run, else the one --overwrite moved aside that does, else none", () => {
    const dir = join(root, 'logs-aside');
    mkdirSync(dir);
    const log = (run: string, epochs: number) => [{ kind: 'start', run, stretch: `${run}-s`, time: '' }, ...Array.from({ length: epochs }, (_, i) => ({ kind: 'epoch', epoch: i + 1, step: 10 * (i + 1) }))];
    const write = (name: string, records: object[]) => writeFileSync(join(dir, name), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    write('metrics.superseded.jsonl', log('A', 3));
    write('metrics.superseded-2.jsonl', log('B', 1));
    write('metrics.jsonl', log('C', 2));
    expect(logOfCheckpoint(dir, 'C')).toEqual(log('C', 2));
    expect(logOfCheckpoint(dir, 'A')).toEqual(log('A', 3)); // it read C's log as A's before
    expect(logOfCheckpoint(dir, 'B')).toEqual(log('B', 1));
    expect(logOfCheckpoint(dir, 'D')).toBeNull();
    expect(logOfCheckpoint(dir, null)).toEqual(log('C', 2)); // a checkpoint from before run ids
    // A log from before run ids cannot tell: it is the directory's.
    writeFileSync(join(dir, 'metrics.jsonl'), JSON.stringify({ kind: 'epoch', epoch: 1, step: 10 }) + '\n');
    expect(logOfCheckpoint(dir, 'A')).toEqual([{ kind: 'epoch', epoch: 1, step: 10 }]);
    expect(logOfCheckpoint(join(root, 'no-such-dir'), 'A')).toBeNull();
  });

  it('the default run directory is numbered on past directories that hold a run', () => {
    const base = join(root, 'runs', 'mnist-mnist-small');
    expect(unusedRunDirectory(base)).toBe(base);
    mkdirSync(base, { recursive: true });
    expect(unusedRunDirectory(base)).toBe(base); // empty: no run there
    writeFileSync(join(base, 'checkpoint.safetensors'), '');
    mkdirSync(`${base}-2`);
    writeFileSync(join(`${base}-2`, 'best.safetensors'), '');
    expect(unusedRunDirectory(base)).toBe(`${base}-3`);
    // A run still loading its data (its log has no step yet) holds its directory by its lock.
    mkdirSync(`${base}-3`);
    writeFileSync(join(`${base}-3`, 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'loading', time: '' }) + '\n');
    const lock = lockRunDirectory(`${base}-3`);
    try {
      expect(unusedRunDirectory(base)).toBe(`${base}-4`);
    } finally {
      lock.release();
    }
    expect(unusedRunDirectory(base)).toBe(`${base}-3`); // stopped before its first step: no run
    writeFileSync(join(`${base}-3`, 'metrics.jsonl'), JSON.stringify({ kind: 'step', epoch: 0, step: 0, loss: 2, lr: 0.1 }) + '\n');
    expect(unusedRunDirectory(base)).toBe(`${base}-4`);
    // A file by that name is passed over (reading a lock inside it failed with a bare ENOTDIR).
    writeFileSync(`${base}-4`, '');
    expect(unusedRunDirectory(base)).toBe(`${base}-5`);
    rmSync(`${base}-4`);
    // nin train's default (runs/ is relative to the working directory).
    const cwd = process.cwd();
    try {
      process.chdir(root);
      expect(parseTrainArgs([]).options).toMatchObject({ outDir: join('runs', 'mnist-mnist-small-4'), outDirSeries: join('runs', 'mnist-mnist-small') });
      expect(parseTrainArgs(['--out', 'mine']).options.outDirSeries).toBeUndefined(); // a directory asked for stays the one
    } finally {
      process.chdir(cwd);
    }
  });

  it('two new runs that picked the same default directory at once: the one that locks it second moves on to the next free one; with --out it is refused', () => {
    const base = join(root, 'runs', 'same-moment');
    const picked = unusedRunDirectory(base);
    expect(picked).toBe(base);
    const first = claimRunDirectory(picked, base, () => {});
    const lines: string[] = [];
    try {
      expect(first.dir).toBe(base);
      const second = claimRunDirectory(picked, base, (l) => lines.push(l));
      try {
        expect(second.dir).toBe(`${base}-2`);
        expect(lines).toEqual([`${base} was taken by another run that started meanwhile: this run goes to ${base}-2`]);
        expect(readFileSync(join(`${base}-2`, 'run.lock'), 'utf8')).toContain(`"pid":${process.pid}`);
      } finally {
        second.lock.release();
      }
      expect(() => claimRunDirectory(picked, undefined, () => {})).toThrow(RunDirectoryInUse);
      // The CLI prints it as its message alone, as the refusals train() makes (a RangeError's name told of a fault).
      const refusal = (() => { try { claimRunDirectory(picked, undefined, () => {}); } catch (e) { return e as Error; } })()!;
      expect(errorLine(refusal)).toBe(`nin: ${refusal.message}`);
      expect(errorLine(new RunRefused('r'))).toBe('nin: r');
      expect(errorLine(new TypeError('t'))).toBe('nin: TypeError: t');
      // And every other error of ours: each says what is wrong and where, without its class's name.
      const ours = [
        new CheckpointDamaged('c'), new DataFormatError('f', 'd'), new ImageLoadError('i', 'r'), new JpegFormatError('j'), new MissingDataError('m', [], [], '/d'),
        new SafetensorsError('s', 'd'), new StreamReadError('x'), new TrainingStopped('t'), new NonFiniteWeights('n'),
      ];
      for (const e of ours) expect(errorLine(e), e.name).toBe(`nin: ${e.message}`);
    } finally {
      first.lock.release();
    }
    // Taken and written in by a run that has come and gone (no lock left): passed over too.
    writeFileSync(join(base, 'metrics.jsonl'), JSON.stringify({ kind: 'step', epoch: 0, step: 0, loss: 2, lr: 0.1 }) + '\n');
    const third = claimRunDirectory(picked, base, () => {});
    third.lock.release();
    expect(third.dir).toBe(`${base}-2`);
    expect(existsSync(join(base, 'run.lock'))).toBe(false);
  });

  it('nin train: --out holding a run is a usage error (exit 2, before any GPU work); a resume defaults to the run\'s directory', () => {
    expect(() => parseTrainArgs(['--out', held])).toThrow(/already holds a run/);
    // Its log alone (killed before its first save): --resume says there is nothing to resume.
    expect(() => parseTrainArgs(['--resume', held])).toThrow(new UsageError(`--resume: no checkpoint at '${join(held, 'checkpoint.safetensors')}' (${held} holds the log of a run stopped before its first save: no checkpoint there; nin train --out ${shellWord(held)} --overwrite, with the run's other flags, starts afresh there, keeping that log)`));
    // A run going on there that has not saved yet (its lock held): that run, not a stopped one.
    const going = lockRunDirectory(held);
    try {
      expect(() => parseTrainArgs(['--resume', held])).toThrow(new UsageError(`--resume: no checkpoint at '${join(held, 'checkpoint.safetensors')}' yet: ${held} is in use: process ${process.pid} has been training there since ${JSON.parse(readFileSync(going.path, 'utf8')).since}; wait for its first save (if process ${process.pid} is not a nin run, delete ${join(held, 'run.lock')})`));
    } finally {
      going.release();
    }
    expect(parseTrainArgs(['--out', held, '--overwrite']).options).toMatchObject({ outDir: held, overwrite: true });
    // NIN_ADAPTER naming no adapter: any GPU acquisition fails (exit 1, "No WebGPU adapter found"), on any machine.
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'train', '--out', held], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NIN_ADAPTER: 'no-such-adapter' } });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/already holds a run \(metrics.jsonl\)/);
    expect(r.stderr).not.toMatch(/No WebGPU adapter found/);
    expect(r.stderr).not.toMatch(/maxDynamic/); // Dawn prints this (on lavapipe) when it enumerates adapters
    // A run directory moved after training: the resume continues where the checkpoint now is.
    const trainedIn = join(root, 'gone');
    const options = { ...parseTrainArgs(['--model', 'mnist-small', '--out', trainedIn]).options, epochs: 5 };
    const ckpt = join(held, 'checkpoint.safetensors');
    writeSafetensors(ckpt, {}, header(options, 2, 'run-A'));
    expect(parseTrainArgs(['--resume', ckpt]).options.outDir).toBe(held);
    // A lone checkpoint (no metrics log beside it): the directory it was trained in.
    const lone = join(root, 'lone.safetensors');
    writeSafetensors(lone, {}, header(options, 2, 'run-A'));
    expect(parseTrainArgs(['--resume', lone]).options.outDir).toBe(trainedIn);
    // Another run's checkpoint, resumed into this run's directory: refused, unless --overwrite.
    const other = join(root, 'other.safetensors');
    writeSafetensors(other, {}, header({ ...options, outDir: held }, 2, 'run-B'));
    expect(() => parseTrainArgs(['--resume', other])).toThrow(/holds another run .* than .*other.safetensors's/);
    expect(parseTrainArgs(['--resume', other, '--overwrite']).options.outDir).toBe(held);
    // A run directory stands for its checkpoint.
    expect(parseTrainArgs(['--resume', held]).options).toMatchObject({ resume: ckpt, outDir: held });
    // --overwrite on a resume in the run's own directory would do nothing (it was silently ignored).
    for (const args of [['--resume', ckpt, '--overwrite'], ['--resume', held, '--out', held, '--overwrite']]) {
      expect(() => parseTrainArgs(args), args.join(' ')).toThrow(new UsageError(`--overwrite: --resume ${ckpt} continues its run in ${held}, its own directory, where there is nothing to overwrite (a save the resume replaces is kept anyway); leave out --overwrite, or fork the run with --out DIR`));
    }
    mkdirSync(join(root, 'empty'));
    expect(() => parseTrainArgs(['--resume', join(root, 'empty')])).toThrow(`--resume: no checkpoint at '${join(root, 'empty', 'checkpoint.safetensors')}'`);
    // Nothing left to train: refused before anything is renamed or logged.
    expect(() => parseTrainArgs(['--resume', ckpt, '--stop-after', '2'])).toThrow(`${ckpt} has 2 epochs done, and --stop-after 2 asks for no more: nothing to train (give a larger --stop-after)`);
    expect(() => parseTrainArgs(['--resume', ckpt, '--epochs', '1'])).toThrow(/has 2 epochs done, and --epochs 1 asks for no more: nothing to train \(give a larger --epochs\)$/);
    expect(() => parseTrainArgs(['--resume', ckpt, '--epochs', '2', '--stop-after', '2'])).toThrow(/and --epochs 2 asks for no more: nothing to train \(give a larger --epochs and --stop-after\)$/);
    expect(() => parseTrainArgs(['--resume', ckpt, '--epochs', '2', '--stop-after', '5'])).toThrow(/and --epochs 2 asks for no more: nothing to train \(give a larger --epochs\)$/);
    expect(() => parseTrainArgs(['--resume', ckpt, '--epochs', '2', '--stop-after', '1'])).toThrow(/and --stop-after 1 asks for no more: nothing to train \(give a larger --epochs and --stop-after\)$/);
    // A finished run resumed without --epochs: its --epochs is the checkpoint's, said as such.
    const finished = join(root, 'finished.safetensors');
    writeSafetensors(finished, {}, header({ ...options, epochs: 2 }, 2, 'run-A'));
    expect(() => parseTrainArgs(['--resume', finished])).toThrow(`${finished} has 2 epochs done, and the run's --epochs 2 (the checkpoint's) asks for no more: nothing to train (give a larger --epochs)`);
  });
});

describe('the run directory lock', () => {
  const root = mkdtempSync(join(tmpdir(), 'nin-runlock-'));
  const lockOf = (dir: string) => join(dir, 'run.lock');
  const holder = (dir: string, h: object) => writeFileSync(lockOf(dir), JSON.stringify(h));
  const fresh = (name: string) => {
    const dir = join(root, name);
    mkdirSync(dir);
    return dir;
  };

  it('one process at a time: a second lock is refused, naming the holder; release lets it go', () => {
    const dir = fresh('one');
    const lock = lockRunDirectory(dir);
    expect(lock.replaced).toBeNull();
    expect(JSON.parse(readFileSync(lockOf(dir), 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    expect(() => lockRunDirectory(dir)).toThrow(new RegExp(`is in use: process ${process.pid} has been training there since`));
    expect(runDirectoryInUse(dir)).toMatch(/wait for it, or choose another --out/);
    lock.release();
    expect(existsSync(lockOf(dir))).toBe(false);
    expect(runDirectoryInUse(dir)).toBeNull();
    // Each lock's exit handler goes with its release (else every run of a process, a sweep's, left one behind).
    const handlers = process.listenerCount('exit');
    lockRunDirectory(dir).release();
    expect(process.listenerCount('exit')).toBe(handlers);
    // A release removes only its own lock (not one that has since been replaced).
    const mine = lockRunDirectory(dir);
    expect(mine.lost()).toBeNull();
    // Lost to a lock of the same pid from another time or machine (a restarted container's trainer has pid 1 again).
    holder(dir, { pid: process.pid, host: 'other-machine', since: JSON.parse(readFileSync(lockOf(dir), 'utf8')).since });
    expect(mine.lost()).toMatch(new RegExp(`^${lockOf(dir)} is now another run's \\(process ${process.pid} on other-machine, since `));
    holder(dir, { pid: process.pid, host: hostname(), since: 'later' });
    expect(mine.lost()).toBe(`${lockOf(dir)} is now another run's (process ${process.pid} on ${hostname()}, since later)`);
    mine.release();
    mine.release();
    expect(existsSync(lockOf(dir))).toBe(true);
  });

  it('a lock left by a process that no longer runs is replaced; one from another machine, or half written, is not', () => {
    const dir = fresh('stale');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    holder(dir, { pid: dead, host: hostname(), since: 'yesterday' });
    expect(runDirectoryInUse(dir)).toBeNull();
    const lock = lockRunDirectory(dir);
    expect(lock.replaced).toEqual({ pid: dead, host: hostname(), since: 'yesterday' });
    lock.release();

    const remote = fresh('remote');
    holder(remote, { pid: dead, host: 'other-machine', since: 'today' });
    expect(() => lockRunDirectory(remote)).toThrow(`${remote} is in use by process ${dead} on other-machine since today (${lockOf(remote)}); if no run is going on there, delete ${lockOf(remote)}`);

    const half = fresh('half');
    writeFileSync(lockOf(half), '');
    expect(() => lockRunDirectory(half)).toThrow(/is being written by a run that is starting there/);
    const minutesAgo = new Date(Date.now() - 120_000);
    utimesSync(lockOf(half), minutesAgo, minutesAgo);
    lockRunDirectory(half).release();
  });

  it("a lock of a process this user may not signal (kill(pid, 0) fails with EPERM: another user's run) is held, not stale", () => {
    const dir = fresh('other-user');
    const pid = spawnSync(process.execPath, ['-e', '']).pid!; // (no such process: only the mocked EPERM says it runs)
    holder(dir, { pid, host: hostname(), since: 'this morning' });
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    });
    try {
      expect(() => lockRunDirectory(dir)).toThrow(`${dir} is in use: process ${pid} has been training there since this morning; wait for it, or choose another --out (if process ${pid} is not a nin run, delete ${lockOf(dir)})`);
    } finally {
      kill.mockRestore();
    }
    expect(JSON.parse(readFileSync(lockOf(dir), 'utf8'))).toEqual({ pid, host: hostname(), since: 'this morning' });
  });

  it('a lock whose process was killed but not yet collected by its parent (a zombie) is stale', async () => {
    const dir = fresh('zombie');
    // sh starts a child that exits a second later, then becomes `sleep`, which never collects it.
    // (A child that exited at once was reaped by sh itself when it ended before sh reached its
    // exec: the test failed so on a loaded machine, the pid gone from /proc.)
    const sh = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((res) => sh.stdout.once('data', (d: Buffer) => res(d.toString()))));
      const zombie = () => /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      for (const deadline = Date.now() + 10_000; !zombie() && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      expect(zombie()).toBe(true);
      holder(dir, { pid, host: hostname(), since: 'killed' });
      expect(runDirectoryInUse(dir)).toBeNull();
      const lock = lockRunDirectory(dir);
      expect(lock.replaced).toEqual({ pid, host: hostname(), since: 'killed' });
      lock.release();
    } finally {
      sh.kill();
    }
  });

  it('a lock naming this process\'s own pid that it does not hold is stale (a restarted container\'s trainer has pid 1 again)', () => {
    const dir = fresh('own-pid');
    holder(dir, { pid: process.pid, host: hostname(), since: 'before the restart' });
    const lock = lockRunDirectory(dir);
    expect(lock.replaced).toEqual({ pid: process.pid, host: hostname(), since: 'before the restart' });
    expect(() => lockRunDirectory(dir)).toThrow(/is in use: process \d+ has been training there/); // now it holds it
    lock.release();
  });

  it('a stale lock is replaced by one process at a time (run.lock.break); a guard left for a minute is litter', () => {
    const dir = fresh('break');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    holder(dir, { pid: dead, host: hostname(), since: 'then' });
    writeFileSync(join(dir, 'run.lock.break'), '1');
    expect(() => lockRunDirectory(dir)).toThrow(`${dir}: another run has just started there`);
    expect(JSON.parse(readFileSync(lockOf(dir), 'utf8')).pid).toBe(dead); // left for the process replacing it
    const minutesAgo = new Date(Date.now() - 120_000);
    utimesSync(join(dir, 'run.lock.break'), minutesAgo, minutesAgo);
    const lock = lockRunDirectory(dir);
    expect(lock.replaced?.pid).toBe(dead);
    expect(existsSync(join(dir, 'run.lock.break'))).toBe(false);
    lock.release();
  });

  it('a process that exits without returning (process.exit, as on a second Ctrl-C) lets its lock go', () => {
    const dir = fresh('exit');
    const script = `import('./nin/run-directory.ts').then((m) => { m.lockRunDirectory(${JSON.stringify(dir)}); console.log('locked'); process.exit(3); })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect([r.status, r.stdout.trim()], r.stderr).toEqual([3, 'locked']);
    expect(existsSync(lockOf(dir))).toBe(false);
  });

  it('nin train: a directory in use is a usage error, before any GPU work', () => {
    const dir = fresh('cli');
    const lock = lockRunDirectory(dir);
    try {
      expect(() => parseTrainArgs(['--out', dir])).toThrow(/is in use: process \d+ has been training there/);
      expect(() => parseTrainArgs(['--out', dir, '--overwrite'])).toThrow(/is in use/);
    } finally {
      lock.release();
    }
    expect(parseTrainArgs(['--out', dir]).options.outDir).toBe(dir);
  });
});

describe('temp files left by a save killed mid-write', () => {
  const root = mkdtempSync(join(tmpdir(), 'nin-leftover-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('tempPathFor\'s names, and only they, parse as temp files with their pid', () => {
    const tmp = tempPathFor(join(root, 'checkpoint.safetensors'));
    doneWithTempPath(tmp);
    expect(parseTempName(tmp.slice(root.length + 1))).toEqual({ target: 'checkpoint.safetensors', pid: process.pid });
    expect(parseTempName('.metrics.jsonl.tmp-12-k3j9x0ab')).toEqual({ target: 'metrics.jsonl', pid: 12 });
    // The largest pid (2³¹ − 1) and one past it.
    expect(parseTempName('.metrics.jsonl.tmp-2147483647-k3j9x0ab')).toEqual({ target: 'metrics.jsonl', pid: 2147483647 });
    expect(parseTempName('.metrics.jsonl.tmp-2147483648-k3j9x0ab')).toBeNull();
    for (const name of ['checkpoint.safetensors', 'checkpoint.safetensors.tmp-12-abc', '.checkpoint.safetensors.tmp-12', '.checkpoint.safetensors.tmp-12-', '.checkpoint.safetensors.tmp-12-ABC',
      '.checkpoint.safetensors.tmp-12-abcdefghi', '.checkpoint.safetensors.tmp-12-abc.bak', '.checkpoint.safetensors.tmp-0-abc', '.checkpoint.safetensors.tmp-012-abc', '.checkpoint.safetensors.tmp-x12-abc', '..tmp-12-abc']) {
      expect(parseTempName(name), name).toBeNull();
    }
    // A write leaves no temp path in use behind it: its temp name, made again (Math.random fixed),
    // names a leftover, not a write in progress.
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.5);
    try {
      writeFileAtomic(join(root, 'written'), [Buffer.from('x')]);
      expect(readdirSync(root)).toEqual(['written']);
      const again = join(root, `.written.tmp-${process.pid}-${(0.5).toString(36).slice(2, 10)}`); // tempPathFor's name for it
      writeFileSync(again, 'left');
      expect(removeLeftoverTempFiles(root)).toEqual([{ path: again, pid: process.pid }]);
    } finally {
      random.mockRestore();
    }
  });

  it('removes those of processes that no longer run, and nothing else: not a live process\'s, not this process\'s write in progress, no other name', () => {
    const dir = join(root, 'run');
    mkdirSync(dir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const live = process.ppid; // vitest's main process
    const files = {
      deadCheckpoint: `.checkpoint.safetensors.tmp-${dead}-k3j9x0ab`,
      deadBest: `.best.safetensors.tmp-${dead}-q`,
      ownPidEarlier: `.checkpoint.safetensors.tmp-${process.pid}-zz0`, // this pid, not this process's write: a restarted container's
      livePid: `.checkpoint.safetensors.tmp-${live}-abcd1234`,
      noDot: `checkpoint.safetensors.tmp-${dead}-abcd1234`,
      noRandom: `.checkpoint.safetensors.tmp-${dead}`,
      upper: `.checkpoint.safetensors.tmp-${dead}-ABCD`,
      suffix: `.checkpoint.safetensors.tmp-${dead}-abcd.bak`,
      pidZero: '.checkpoint.safetensors.tmp-0-abcd',
      checkpoint: 'checkpoint.safetensors',
      notes: 'notes.txt',
    };
    for (const name of Object.values(files)) writeFileSync(join(dir, name), name);
    mkdirSync(join(dir, `.sub.tmp-${dead}-abc`)); // a directory of that name
    writeFileSync(join(root, 'elsewhere'), 'kept');
    symlinkSync(join(root, 'elsewhere'), join(dir, `.link.tmp-${dead}-abc`)); // a link of that name
    const inProgress = tempPathFor(join(dir, 'metrics.jsonl')); // this process's write in progress
    writeFileSync(inProgress, 'half');

    const removed = removeLeftoverTempFiles(dir);
    expect(removed.map((r) => r.path).sort()).toEqual([files.deadCheckpoint, files.deadBest, files.ownPidEarlier].map((n) => join(dir, n)).sort());
    expect(removed.find((r) => r.path.endsWith(files.deadBest))!.pid).toBe(dead);
    const kept = [files.livePid, files.noDot, files.noRandom, files.upper, files.suffix, files.pidZero, files.checkpoint, files.notes, `.sub.tmp-${dead}-abc`, `.link.tmp-${dead}-abc`, inProgress.slice(dir.length + 1)];
    expect(readdirSync(dir).sort()).toEqual(kept.sort());
    expect(readFileSync(join(root, 'elsewhere'), 'utf8')).toBe('kept');
    expect(removeLeftoverTempFiles(dir)).toEqual([]);
    // Once that write is over (renamed, or here: abandoned), what it left is litter too.
    doneWithTempPath(inProgress);
    expect(removeLeftoverTempFiles(dir)).toEqual([{ path: inProgress, pid: process.pid }]);
    // A pid whose state cannot be told (kill(pid, 0) fails otherwise than ESRCH or EPERM): its file is kept.
    const untold = join(dir, `.checkpoint.safetensors.tmp-${dead}-untold`);
    writeFileSync(untold, 'x');
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => {
      throw Object.assign(new Error('kill EINVAL'), { code: 'EINVAL' });
    });
    try {
      expect(removeLeftoverTempFiles(dir)).toEqual([]);
    } finally {
      kill.mockRestore();
    }
    expect(existsSync(untold)).toBe(true);
  });
});

describe('where a write lands, and making directories', () => {
  const root = mkdtempSync(join(tmpdir(), 'nin-writes-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a symbolic link is written through, as a shell\'s > writes it, not replaced by a file; one to nothing makes its target', () => {
    const real = join(root, 'real.json');
    writeFileSync(real, 'old');
    symlinkSync(real, join(root, 'link.json'));
    writeFileAtomic(join(root, 'link.json'), [Buffer.from('new')]);
    expect(lstatSync(join(root, 'link.json')).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toBe('new');
    symlinkSync('made.json', join(root, 'dangling.json')); // relative: beside the link
    writeFileAtomic(join(root, 'dangling.json'), [Buffer.from('made')]);
    expect(lstatSync(join(root, 'dangling.json')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(root, 'made.json'), 'utf8')).toBe('made');
    // A link is dangling only while its target is missing: danglingLink names the target then, null after.
    const later = join(root, 'later.json');
    symlinkSync('later-target.json', later);
    expect(danglingLink(later)).toBe('later-target.json');
    writeFileSync(join(root, 'later-target.json'), '');
    expect(danglingLink(later)).toBeNull();
    expect(readdirSync(root).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(() => writeFileAtomic(root, [Buffer.from('x')])).toThrow(`cannot write ${root}: ${root} is a directory`);
    // The error keeps the system error's code (a caller tells a full disk from a missing directory by it).
    const missing = join(root, 'no-such-directory', 'x.json');
    let caught: NodeJS.ErrnoException | undefined;
    try {
      writeFileAtomic(missing, [Buffer.from('x')]);
    } catch (e) {
      caught = e as NodeJS.ErrnoException;
    }
    expect([caught?.code, caught?.message.startsWith(`cannot write ${missing}: ENOENT: no such file or directory`)]).toEqual(['ENOENT', true]);
  });

  it('a FIFO is written in place (a rename would put a file where it was, and its reader would wait for ever)', async () => {
    const fifo = join(root, 'pipe');
    spawnSync('mkfifo', [fifo]);
    expect(statSync(fifo).isFIFO()).toBe(true);
    const reader = spawn('cat', [fifo]);
    let got = '';
    reader.stdout.on('data', (d) => (got += d));
    const done = new Promise((ok) => reader.on('close', ok));
    const giveUp = setTimeout(() => reader.kill(), 10_000); // (the FIFO replaced: nothing comes)
    writeFileAtomic(fifo, [Buffer.from('{"through": "the pipe"}\n')]);
    await done;
    clearTimeout(giveUp);
    expect(got).toBe('{"through": "the pipe"}\n');
    expect(statSync(fifo).isFIFO()).toBe(true);
  });

  it('AtomicFile: written in parts, nothing at the path until commit; abort leaves the old file and no temp file', () => {
    const path = join(root, 'parts.json');
    writeFileSync(path, 'before');
    const file = new AtomicFile(path);
    file.write('{"a": ');
    file.write(Buffer.from('1}'));
    expect(readFileSync(path, 'utf8')).toBe('before');
    file.commit();
    expect(readFileSync(path, 'utf8')).toBe('{"a": 1}');
    const dropped = new AtomicFile(path);
    dropped.write('half');
    dropped.abort();
    expect(readFileSync(path, 'utf8')).toBe('{"a": 1}');
    expect(readdirSync(root).filter((n) => n.startsWith('.parts.json'))).toEqual([]);
  });

  it('jsonArrayWriter gives the text JSON.stringify(…, null, 2) gives, for no items, one and several', () => {
    const path = join(root, 'array.json');
    const item = (i: number) => ({ image: `p${i}.png`, top5: [{ index: i, name: 'ö"', probability: 0.5 }], probabilities: [0.25, 0.75], notes: i ? ['a note'] : [] });
    for (const count of [0, 1, 3]) {
      const writer = jsonArrayWriter(path, { checkpoint: '/x/c.safetensors', invert: false }, 'predictions');
      const items = Array.from({ length: count }, (_, i) => item(i));
      writer.add(items.slice(0, 1));
      writer.add([]);
      writer.add(items.slice(1));
      writer.finish({ classNames: ['0', '1'], notes: [], unreadable: [{ image: 'j.png', reason: 'not a PNG' }] });
      const whole = { checkpoint: '/x/c.safetensors', invert: false, predictions: items, classNames: ['0', '1'], notes: [], unreadable: [{ image: 'j.png', reason: 'not a PNG' }] };
      expect(readFileSync(path, 'utf8')).toBe(JSON.stringify(whole, null, 2) + '\n');
    }
  });

  it("a run's log whose start record runs past the 4 KiB runFileKind reads (its provenance: an image folder's options) is still a run's log", () => {
    const log = join(root, 'long-start.jsonl');
    writeFileSync(log, JSON.stringify({ kind: 'start', run: 'R', time: '', provenance: { options: { note: 'x'.repeat(10_000) } } }) + '\n');
    expect(runFileKind(log)).toBe("a run's log");
    writeFileSync(log, JSON.stringify({ kinds: 'start', pad: 'x'.repeat(10_000) }) + '\n');
    expect(runFileKind(log)).toBeNull();
    // A log that starts with a step or an epoch record (from before start records) is one too; a
    // lock, by its name; and the names a lock takes are reserved where no file is yet.
    writeFileSync(log, JSON.stringify({ kind: 'step', epoch: 0, step: 0, loss: 2.3, lr: 0.1 }) + '\n');
    expect(runFileKind(log)).toBe("a run's log");
    writeFileSync(log, JSON.stringify({ kind: 'epoch', epoch: 1, step: 10 }) + '\n');
    expect(runFileKind(log)).toBe("a run's log");
    writeFileSync(join(root, 'run.lock'), JSON.stringify({ pid: 1, host: 'h', since: 's' }));
    expect(runFileKind(join(root, 'run.lock'))).toBe("a run's lock");
    expect(['run.lock', 'run.lock.break', 'run.lock.json'].map((n) => reservedRunFileName(join(root, 'none', n)) !== null)).toEqual([true, true, false]);
  });

  it('makeDirectory makes each missing level and returns the topmost; a level that links to nothing, or one the file system will not make (procfs), is named, never looped on', () => {
    const deep = join(root, 'a', 'b', 'c');
    expect(makeDirectory(deep)).toBe(join(root, 'a'));
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(makeDirectory(deep)).toBeUndefined();
    symlinkSync(join(root, 'nowhere'), join(root, 'broken'));
    expect(() => makeDirectory(join(root, 'broken', 'run'))).toThrow(`cannot make the directory ${join(root, 'broken')}: a symbolic link to ${join(root, 'nowhere')}, which does not exist`);
    // Node's mkdirSync(…, { recursive: true }) spins here for ever as root (procfs answers ENOENT).
    expect(() => makeDirectory('/proc/nin-test-run/x')).toThrow(/^cannot make the directory \/proc\/nin-test-run: /);
  });

  it("a directory where a run's lock or log goes is named as such (it was a bare EISDIR, naming no file)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-rundir-'));
    mkdirSync(join(dir, 'run.lock'));
    mkdirSync(join(dir, 'metrics.jsonl'));
    expect(() => lockRunDirectory(dir)).toThrow(`${join(dir, 'run.lock')}: EISDIR: a directory, not a run's lock (remove it)`);
    expect(() => runDirectoryInUse(dir)).toThrow(`${join(dir, 'run.lock')}: EISDIR: a directory, not a run's lock (remove it)`);
    expect(() => runLog(dir)).toThrow(`${join(dir, 'metrics.jsonl')} is a directory, not a run's log`);
  });

  it('a lock that cannot be written (a full disk) is removed and named; the directory stays free', () => {
    const mnt = join(root, 'full');
    mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status !== 0) {
      console.warn('not run: no tmpfs mount here (needs root)');
      return;
    }
    try {
      const dir = join(mnt, 'run');
      mkdirSync(dir);
      writeFileSync(join(mnt, 'fill'), Buffer.alloc(64 * 1024));
      expect(() => lockRunDirectory(dir)).toThrow(`cannot write ${join(dir, 'run.lock')}: ENOSPC`);
      expect(readdirSync(dir)).toEqual([]);
      rmSync(join(mnt, 'fill'));
      lockRunDirectory(dir).release();
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('shuffleChangedWithinEpoch: a resume within an epoch keeps its batch size and seed', () => {
  it('names the epoch it was saved within (1-based) and what changed; the RNGs take a seed\'s low 32 bits', () => {
    expect(shuffleChangedWithinEpoch('c.safetensors', 1, { batchSize: 16, seed: 1 }, { batchSize: 8, seed: 2 })).toBe(
      "c.safetensors was saved within epoch 2 at batch size 16 and with seed 1; a resume finishes that epoch with the batch size and seed it was saved with (the rest of its batches are cut from that shuffle; both may change at an epoch's end), not with --batch 8 and --seed 2",
    );
    expect(shuffleChangedWithinEpoch('c.safetensors', 1, { batchSize: 16, seed: 1 }, { batchSize: 16, seed: 1 })).toBeNull();
    expect(shuffleChangedWithinEpoch('c.safetensors', 1, { batchSize: 16, seed: 1 }, { batchSize: 16, seed: 2 ** 32 + 1 })).toBeNull(); // the same shuffle
  });
});

describe('resumeClashes: another seed', () => {
  it('is refused only where the seed drew the validation split (at random, or SVHN\'s quotas), not for an image folder\'s val/ or the last N', () => {
    const o = parseTrainArgs(['--model', 'mnist-small', '--out', join(tmpdir(), 'nin-unused-run')]).options;
    const clash = (saved: Partial<TrainOptions>) => resumeClashes({ ...o, ...saved, seed: 2 }, modelConfig(o), { ...o, ...saved, seed: 1 }).filter((c) => c.startsWith('--seed'));
    const refused = ["--seed 2 (the checkpoint's validation split was drawn by seed 1: another seed would validate on images the run trained on)"];
    expect(clash({ validation: 500, validationFrom: 'random' })).toEqual(refused);
    expect(clash({ dataset: 'svhn', validation: 'paper', validationFrom: undefined })).toEqual(refused);
    expect(clash({ validation: 500, validationFrom: 'end' })).toEqual([]);
    expect(clash({ validation: 0 })).toEqual([]);
    // val/ is a folder of its own: the seed draws nothing (this was refused before).
    expect(clash({ dataset: 'folder', validation: 'folder', validationFrom: undefined })).toEqual([]);
    // The RNGs take a seed's low 32 bits: 2 and 2³² + 2 draw one split.
    expect(resumeClashes({ ...o, validation: 500, validationFrom: 'random', seed: 2 ** 32 + 2 }, modelConfig(o), { ...o, validation: 500, validationFrom: 'random', seed: 2 })).toEqual([]);
    // A checkpoint that saved no --val (from before it) held nothing out: no --val now is the same split.
    const savedWithoutVal: Partial<TrainOptions> = { ...o };
    delete savedWithoutVal.validation;
    expect(resumeClashes({ ...o, validation: 0 }, modelConfig(o), savedWithoutVal as TrainOptions)).toEqual([]);
  });

  it('names each setting that fixes the run, as given now and as saved; the saved value given again, or one the checkpoint does not say, is no clash', () => {
    const o = parseTrainArgs(['--model', 'mnist', '--out', join(tmpdir(), 'nin-unused-run')]).options;
    const clashes = (now: Partial<TrainOptions>, saved: Partial<TrainOptions> = {}) => resumeClashes({ ...o, ...now }, modelConfig(o), { ...o, ...saved });
    expect(clashes({})).toEqual([]);
    expect(clashes({ dataset: 'cifar10' })).toEqual(['--dataset cifar10 (the checkpoint was trained on mnist)']);
    expect(clashes({ head: 'gap', classMaps: 'linear', init: 'he', dropout: 0.5 })).toEqual([]);
    expect(clashes({ head: 'fc-dropout' })).toEqual(["--head fc-dropout (the checkpoint's is gap)"]);
    expect(clashes({ classMaps: 'relu' })).toEqual(["--class-maps relu (the checkpoint's are linear)"]);
    expect(clashes({ init: 'gaussian' })).toEqual(["--init gaussian (the checkpoint's weights were initialised he, and are trained on, not redrawn)"]);
    expect(clashes({ dropout: 0.3 })).toEqual(["--dropout 0.3 (the checkpoint's is 0.5)"]);
    expect(clashes({ preprocess: 'gcn-zca' }, { preprocess: 'standardize' })).toEqual(["--preprocess gcn-zca (the checkpoint's statistics are for standardize)"]);
    expect(clashes({ preprocess: 'gcn-zca' }, { preprocess: undefined })).toEqual([]);
    // Another count is said once, not also as another --val-from.
    expect(clashes({ validation: 500, validationFrom: 'end' }, { validation: 1000, validationFrom: 'random' })).toEqual([
      "--val 500 (the checkpoint's split held out 1000: another split would validate on images the run trained on)",
    ]);
    // No --extra is the same set as an --extra false or one the checkpoint did not save.
    expect(clashes({ extra: false }, { extra: undefined })).toEqual([]);
    expect(clashes({ extra: true }, { extra: undefined })).toEqual(["--extra (the checkpoint was trained without SVHN's extra set)"]);
    expect(clashes({ trainLimit: 1000 })).toEqual(["--train-limit 1000 (the checkpoint's was none: its training set and split)"]);
  });
});

