// `nin compare` and the run lineage it reads (runLog): no GPU, synthetic run directories.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { comparisonJson, comparisonPanels, comparisonRecords, comparisonTable, readRun, readRuns, renderComparison, settingsChanged } from '../nin/compare.ts';
import { MODELS, type ModelConfig } from '../nin/model.ts';
import { SERIES_COLORS, type Rgb } from '../nin/plot.ts';
import { currentHistory, moveRunAside, runLog } from '../nin/run-directory.ts';
import { writeSafetensors } from '../nin/safetensors.ts';
import { displayWidth, fmtTime } from '../nin/text.ts';
import { runAsync } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'nin-compare-'));

/** A run directory: its log (records) and, unless `options` is null, a checkpoint header. */
function runDir(name: string, records: object[], options: Record<string, unknown> | null = {}, config = MODELS['cifar10-small'], metadata: Record<string, string> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  if (options) {
    const o = { dataset: 'cifar10', model: config.name, batchSize: 128, lr: 0.05, schedule: 'cosine', gamma: 0.1, warmupEpochs: 0, momentum: 0.9, weightDecay: 1e-4, augment: true, preprocess: 'gcn-zca', validation: 0, seed: 1, epochs: 4, ...options };
    writeSafetensors(join(dir, 'checkpoint.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify(o), config: JSON.stringify(config), epoch: '2', step: '20', adapter: 'test adapter', ...metadata });
  }
  return dir;
}

/** Epochs `from`..`to`-1 of 10 steps each, a step record every 5 steps; errors from `err(epoch)`. */
function epochs(from: number, to: number, err: (e: number) => Partial<Record<'testError' | 'valError', number>>): object[] {
  const out: object[] = [];
  for (let e = from; e < to; e++) {
    for (let s = e * 10; s < (e + 1) * 10; s += 5) out.push({ kind: 'step', epoch: e, step: s, loss: 2 / (1 + s), lr: 0.05 });
    out.push({ kind: 'epoch', epoch: e + 1, step: (e + 1) * 10, trainLoss: 1 / (e + 1), trainError: 0.5, lr: 0.05, imgPerSec: 100 + e, seconds: 60, ...err(e + 1) });
  }
  return out;
}

const countColor = (png: Buffer, c: Rgb) => {
  const { data } = PNG.sync.read(png);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] === c[0] && data[i + 1] === c[1] && data[i + 2] === c[2]) n++;
  return n;
};

describe('runLog: a forked run\'s history starts at its first epoch', () => {
  it('follows a fork to its parent\'s log, which the resume record cuts at the fork', () => {
    const parent = runDir('lineage/parent', [{ kind: 'start', run: 'A', time: '' }, ...epochs(0, 3, (e) => ({ testError: 0.5 - e / 100 }))]);
    const child = runDir('lineage/child', [{ kind: 'resume', run: 'B', parent: 'A', epoch: 2, step: 20, from: join(parent, 'checkpoint.safetensors') }, ...epochs(2, 4, (e) => ({ testError: 0.3 - e / 100 }))]);
    const history = currentHistory(runLog(child)) as { kind: string; epoch: number; testError?: number }[];
    expect(history.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.testError])).toEqual([[1, 0.49], [2, 0.48], [3, 0.27], [4, 0.26]]);
    expect(history.filter((r) => r.kind === 'step').length).toBe(8);
    // The parent resumed later in its own directory from before the fork (epoch 1): that stretch
    // is not the child's history.
    const rewound = runDir('lineage/rewound', [{ kind: 'start', run: 'R', time: '' }, ...epochs(0, 3, (e) => ({ testError: 0.5 - e / 100 })), { kind: 'resume', run: 'R', epoch: 1, step: 10, from: 'x' }, ...epochs(1, 3, () => ({ testError: 0.9 }))]);
    const forked = runDir('lineage/forked', [{ kind: 'resume', run: 'F', parent: 'R', epoch: 3, step: 30, from: join(rewound, 'checkpoint.safetensors') }, ...epochs(3, 5, (e) => ({ testError: 0.3 - e / 100 }))]);
    const forkedHistory = currentHistory(runLog(forked)) as { kind: string; epoch: number; testError?: number }[];
    expect(forkedHistory.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.testError])).toEqual([[1, 0.49], [2, 0.48], [3, 0.47], [4, 0.26], [5, 0.25]]);
    // With stretch ids: a fork from the parent's second stretch (it had rewound to epoch 2 before
    // reaching epoch 5 again) continues that stretch.
    const rewinding = runDir('lineage/rewinding', [
      { kind: 'start', run: 'P', stretch: 'p1', time: '' }, ...epochs(0, 6, () => ({ testError: 0.5 })),
      { kind: 'resume', run: 'P', stretch: 'p2', fromStretch: 'p1', epoch: 2, step: 20, from: 'x' }, ...epochs(2, 7, () => ({ testError: 0.4 })),
    ]);
    const fromSecond = runDir('lineage/from-second', [{ kind: 'resume', run: 'C', parent: 'P', stretch: 'c1', fromStretch: 'p2', epoch: 5, step: 50, from: join(rewinding, 'checkpoint.safetensors') }, ...epochs(5, 7, () => ({ testError: 0.3 }))]);
    const secondHistory = currentHistory(runLog(fromSecond)) as { kind: string; epoch: number; testError?: number }[];
    expect(secondHistory.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.testError])).toEqual([[1, 0.5], [2, 0.5], [3, 0.4], [4, 0.4], [5, 0.4], [6, 0.3], [7, 0.3]]);
    // A parent directory that now holds another run (started afresh there) is not followed.
    runDir('lineage/parent', [{ kind: 'start', run: 'C', time: '' }, ...epochs(0, 1, () => ({}))], null);
    expect((currentHistory(runLog(child)) as { kind: string; epoch: number }[]).filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([3, 4]);
    // Logs from before run ids: followed when neither side has one; a resume from its own directory is not a fork.
    const old = runDir('lineage/old', epochs(0, 2, () => ({})), null);
    const oldChild = runDir('lineage/old-child', [{ kind: 'resume', epoch: 1, step: 10, from: join(old, 'checkpoint.safetensors') }, ...epochs(1, 3, () => ({}))], null);
    expect((currentHistory(runLog(oldChild)) as { kind: string; epoch: number }[]).filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1, 2, 3]);
    const self = runDir('lineage/self', [{ kind: 'resume', epoch: 1, step: 10, from: join(root, 'lineage/self/checkpoint.safetensors') }, ...epochs(1, 2, () => ({}))], null);
    expect(runLog(self).length).toBe(4);
  });
});

describe('nin compare', () => {
  const gap = runDir('study/gap', epochs(0, 3, (e) => ({ testError: 0.4 - e / 20, valError: [0.3, 0.2, 0.25][e - 1] })), { validation: 5000 });
  const fc = runDir('study/fc', epochs(0, 2, (e) => ({ testError: 0.5 - e / 20, valError: 0.35 })), { validation: 5000, lr: 0.01 }, { ...MODELS['cifar10-small'], head: 'fc' });
  const bare = runDir('study/bare', epochs(0, 1, () => ({ testError: 0.6 })), null);

  it("an fc-dropout head's own dropout is said beside the blocks'; a train time of 119.6 s is 2m00s, not 1m60s", () => {
    const slow = epochs(0, 1, () => ({ testError: 0.5 })).map((r) => ((r as { kind: string }).kind === 'epoch' ? { ...r, seconds: 119.6 } : r));
    const fcDrop = runDir('study/fc-dropout', slow, { lr: 0.01 }, { ...MODELS['cifar10-small'], head: 'fc-dropout' });
    const lines = comparisonTable(readRuns([gap, fcDrop])).split('\n');
    const dropout = lines[0].split(/\s{2,}/).indexOf('dropout');
    expect(dropout).toBeGreaterThan(0);
    expect([lines[2], lines[3]].map((l) => l.split(/\s{2,}/)[dropout])).toEqual(['0', '0, FC 0.5']);
    expect(lines[3].split(/\s{2,}/).at(-1)).toBe('2m00s');
  });

  it("a train time over an hour is rounded to the minute as nin train's lines round it: 5459 s is 1h31m, not 1h30m", () => {
    const long = epochs(0, 1, () => ({ testError: 0.5 })).map((r) => ((r as { kind: string }).kind === 'epoch' ? { ...r, seconds: 5459 } : r));
    const lines = comparisonTable(readRuns([gap, runDir('study/long', long, { lr: 0.01 })])).split('\n');
    expect(lines[3].split(/\s{2,}/).at(-1)).toBe('1h31m');
    expect(lines[3].split(/\s{2,}/).at(-1)).toBe(fmtTime(5459));
  });

  it('tabulates the runs with the settings they differ in as columns, and what they share below', () => {
    const table = comparisonTable(readRuns([gap, fc]));
    const lines = table.split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['run', 'head', 'params', 'lr', 'epochs', 'train loss', 'test loss', 'test error', 'best val (epoch)', 'test there', 'img/s', 'train time']);
    // gap: 3 of 4 epochs, the last one's train loss 1/3 (no test loss logged), last test error 25 %,
    // best validation at epoch 2 (20 %, test 30 % there), img/s the median of epochs 2 and 3 (the
    // first compiled the process's kernels). Parameters as
    // parameterSpecs counts them for each head (the FC classifier's weights beside GAP's none).
    expect(lines[2].split(/\s{2,}/)).toEqual(['gap', 'gap', '93,610', '0.05', '3/4', '0.3333', '–', '25.00%', '20.00% (2)', '30.00%', '101.5', '3m00s']);
    expect(lines[3].split(/\s{2,}/)).toEqual(['fc', 'fc', '100,020', '0.01', '2/4', '0.5000', '–', '40.00%', '35.00% (1)', '45.00%', '101.0', '2m00s']);
    expect(table).toContain('same in all: dataset cifar10, model cifar10-small, input (h×w×c) 32×32×3, init he, class maps linear, dropout 0, batch 128, schedule cosine, warm-up 0, momentum 0.9, weight decay 0.0001, class lr mult 1, aug on, preprocess gcn-zca, train limit all, val 5000 (random, by seed), seed 1, adapter test adapter');
    // A split drawn by --split-seed: the same for runs of other seeds, and said so.
    expect(readRun(runDir('study/split-seed', epochs(0, 1, () => ({ testError: 0.3 })), { validation: 5000, splitSeed: 7 })).settings.val).toBe('5000 (random, split seed 7)');
    // A run started from another's weights: that checkpoint by its directory and name.
    expect(readRun(runDir('study/from-weights', epochs(0, 1, () => ({ testError: 0.3 })), { weightsFrom: '/runs/base/best.safetensors' })).settings['weights from']).toBe('base/best.safetensors');
    expect(readRun(runDir('study/svhn-split-seed', epochs(0, 1, () => ({ testError: 0.3 })), { dataset: 'svhn', validation: 'paper', splitSeed: 7 })).settings.val).toBe('paper (split seed 7)');
    // A run without a checkpoint: its settings are unknown ('?'), said below, and do not make columns.
    const withBare = comparisonTable(readRuns([gap, bare]));
    expect(withBare.split('\n')[0].split(/\s{2,}/)).toEqual(['run', 'epochs', 'train loss', 'test loss', 'test error', 'best val (epoch)', 'test there', 'img/s', 'train time']);
    expect(withBare).toContain('same in all with known settings: dataset cifar10');
    expect(withBare).toContain('no checkpoint, nor a log record of its settings (written from session 40 on), to read the settings from: bare');
    // Beside runs that differ: its cells in their columns are '?' (unknown), not '–' (a setting a run has not).
    const withBareLines = comparisonTable(readRuns([gap, fc, bare])).split('\n');
    expect(withBareLines[0].split(/\s{2,}/).slice(0, 4)).toEqual(['run', 'head', 'params', 'lr']);
    expect(withBareLines.find((l) => l.startsWith('bare'))!.split(/\s{2,}/).slice(0, 4)).toEqual(['bare', '?', '?', '?']);
    // A run stopped before its first save (a NaN loss): its settings from its log's start record.
    const provenance = { options: { dataset: 'cifar10', model: 'cifar10-small', batchSize: 128, lr: 0.5, schedule: 'cosine', warmupEpochs: 0, momentum: 0.9, weightDecay: 1e-4, augment: true, preprocess: 'gcn-zca', validation: 5000, seed: 1, epochs: 4 }, config: MODELS['cifar10-small'], adapter: 'test adapter', software: { nin: '0.1.0', node: 'v20' } };
    const reason = 'loss is NaN at step 8 (epoch 1): the run diverged (a lower --lr or a longer --warmup may help); last good checkpoint: (none yet)';
    const diverged = runDir('study/diverged', [{ kind: 'start', run: 'D', time: '', provenance }, { kind: 'step', epoch: 0, step: 0, loss: 2.3, lr: 0.5 }, { kind: 'stopped', epoch: 0, step: 8, reason }], null);
    const withDiverged = comparisonTable(readRuns([gap, diverged])).split('\n');
    expect(withDiverged[0].split(/\s{2,}/).slice(0, 2)).toEqual(['run', 'lr']);
    expect(withDiverged.slice(2, 4).map((l) => l.split(/\s{2,}/).slice(0, 2))).toEqual([['gap', '0.05'], ['diverged', '0.5']]);
    // …and, as its log says, where and why it stopped.
    expect(withDiverged).toContain('note: diverged stopped at step 8: loss is NaN at step 8 (epoch 1): the run diverged (a lower --lr or a longer --warmup may help)');
    // A stop a resume has replaced (resumed from a checkpoint before it) is history: no note.
    expect(currentHistory([{ kind: 'start', run: 'D', stretch: 'a', time: '' }, { kind: 'stopped', epoch: 1, step: 18, reason }, { kind: 'resume', run: 'D', stretch: 'b', fromStretch: 'a', epoch: 1, step: 10, from: 'x' }]).map((x) => (x as { kind: string }).kind)).toEqual(['start', 'resume']);
    // Runs on different data sets, and repeated directory names (labelled by path).
    const mnist = runDir('other/gap', epochs(0, 1, () => ({ testError: 0.01 })), { dataset: 'mnist' });
    const mixed = comparisonTable(readRuns([gap, mnist]));
    expect(mixed).toContain('note: the runs are on different data sets (cifar10, mnist): their errors do not compare');
    expect(mixed.split('\n')[2]).toMatch(/^\S*study\/gap\s/);
    // Runs fitted to other image sizes (--image-size) differ in their input.
    const bigger = runDir('study/bigger', epochs(0, 1, () => ({ testError: 0.3 })), { validation: 5000 }, { ...MODELS['cifar10-small'], input: { height: 48, width: 40, channels: 3 } });
    const sized = comparisonTable(readRuns([gap, bigger])).split('\n');
    expect(sized[0].split(/\s{2,}/).slice(0, 2)).toEqual(['run', 'input (h×w×c)']);
    expect(sized.slice(2, 4).map((l) => l.split(/\s{2,}/)[1])).toEqual(['32×32×3', '48×40×3']);
    // Runs on two image folders of one name: each named by as much of its path as tells them apart.
    const folder = (dir: string, trainList = 'x') => ({ dataset: 'folder', imageFolder: { dir, classNames: ['a', 'b'], trainImages: 10, trainList } });
    const onA = runDir('folders/on-a', epochs(0, 1, () => ({ testError: 0.2 })), folder('/data/a/images'));
    const onB = runDir('folders/on-b', epochs(0, 1, () => ({ testError: 0.3 })), folder('/data/b/images', 'y'));
    const onAagain = runDir('folders/on-a-again', epochs(0, 1, () => ({ testError: 0.25 })), folder('/data/a/images'));
    const folders = comparisonTable(readRuns([onA, onB, onAagain])).split('\n');
    expect(folders.slice(2, 5).map((l) => l.split(/\s{2,}/).slice(0, 2))).toEqual([['on-a', 'folder a/images'], ['on-b', 'folder b/images'], ['on-a-again', 'folder a/images']]);
    expect(folders).toContain('note: the runs are on different data sets (folder a/images, folder b/images): their errors do not compare');
    expect(comparisonTable(readRuns([onA, onAagain]))).toContain('same in all: dataset folder images,');
    // The same images by another path (the folder moved, or a link): named apart, but the same data set.
    const moved = runDir('folders/moved', epochs(0, 1, () => ({ testError: 0.2 })), folder('/usb/a/images'));
    const samePictures = comparisonTable(readRuns([onA, moved]));
    expect(samePictures.split('\n').slice(2, 4).map((l) => l.split(/\s{2,}/)[1])).toEqual(['folder data/a/images', 'folder usb/a/images']);
    expect(samePictures).not.toContain('different data sets');
    // A run named in CJK (two terminal columns a character) lines up with the others.
    const cat = runDir('study/猫の実験', epochs(0, 2, () => ({ testError: 0.2 })), { validation: 5000, lr: 0.01 });
    const wide = comparisonTable(readRuns([cat, gap])).split('\n');
    expect(wide[2].startsWith('猫の実験  ')).toBe(true);
    const testErrorEnd = (line: string) => displayWidth(line.slice(0, line.indexOf('%') + 1));
    expect(testErrorEnd(wide[2])).toBe(testErrorEnd(wide[3]));
    // The fewest trailing path parts that tell them apart: a long shared prefix, cut to fit the
    // legend, hid the part that differs.
    const deep = ['gap', 'fc'].map((h) => runDir(`a-long-study-directory-name/seed-one/${h}/run`, epochs(0, 1, () => ({ testError: 0.1 }))));
    expect(readRuns([...deep, gap]).map((r) => r.label)).toEqual(['gap/run', 'fc/run', 'gap']);
    // A run moved aside by --overwrite, named by its log or its checkpoint: that run, with its own
    // settings (the directory's current run was shown under its name before).
    const reused = runDir('reused', [{ kind: 'start', run: 'old', stretch: 'o', time: '' }, ...epochs(0, 3, () => ({ testError: 0.3 }))], { lr: 0.01 }, undefined, { run_id: 'old', stretch: 'o', epoch: '3', step: '30' });
    moveRunAside(reused);
    writeFileSync(join(reused, 'metrics.jsonl'), [{ kind: 'start', run: 'new', stretch: 'n', time: '' }, ...epochs(0, 1, () => ({ testError: 0.7 }))].map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeSafetensors(join(reused, 'checkpoint.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10', lr: 0.05 }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '1', step: '10', run_id: 'new', stretch: 'n' });
    // (a best file of the old run, saved earlier with another lr, does not give the log its settings)
    writeSafetensors(join(reused, 'best.step10.superseded.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10', lr: 0.5 }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '1', step: '10', run_id: 'old', stretch: 'o' });
    const [current, oldLog] = readRuns([reused, join(reused, 'metrics.superseded.jsonl')]);
    const [, oldCheckpoint] = readRuns([reused, join(reused, 'checkpoint.step30.superseded.safetensors')]);
    expect(current.epochs.map((e) => e.testError)).toEqual([0.7]);
    for (const old of [oldLog, oldCheckpoint]) {
      expect(old.epochs.map((e) => e.testError)).toEqual([0.3, 0.3, 0.3]);
      expect(old.settings.lr).toBe('0.01');
    }
    expect([current, oldLog, oldCheckpoint].map((r) => r.label)).toEqual(['reused', 'metrics.superseded', 'checkpoint.step30.superseded']);
    // The moved-aside log and a checkpoint of it name one run, the old one as it stands.
    expect(() => readRuns([join(reused, 'metrics.superseded.jsonl'), join(reused, 'checkpoint.step30.superseded.safetensors')])).toThrow(/checkpoint\.step30\.superseded\.safetensors is the run .*metrics\.superseded\.jsonl is: give each run once/);
    // A moved-aside log's settings are its last stretch's: a stretch the run replaced (resumed to 4
    // epochs, then rewound to epoch 2 with 3) kept its later checkpoint aside, of the same run id.
    const rewound = runDir('rewound', [
      { kind: 'start', run: 'R', stretch: 'a', time: '' }, ...epochs(0, 2, () => ({ testError: 0.4 })),
      { kind: 'resume', run: 'R', stretch: 'b', epoch: 2, step: 20, from: 'x', changed: { epochs: ['2', '4'] } }, ...epochs(2, 4, () => ({ testError: 0.9 })),
      { kind: 'resume', run: 'R', stretch: 'c', epoch: 2, step: 20, from: 'x', changed: { epochs: ['2', '3'] }, provenance: { options: { dataset: 'cifar10', epochs: 3, lr: 0.02 }, config: MODELS['cifar10-small'], adapter: 'test adapter' } },
      ...epochs(2, 3, () => ({ testError: 0.2 })),
    ], { epochs: 3, lr: 0.02 }, undefined, { run_id: 'R', stretch: 'c', epoch: '3', step: '30' });
    writeSafetensors(join(rewound, 'checkpoint.step40.superseded.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10', epochs: 4, lr: 0.01 }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '4', step: '40', run_id: 'R', stretch: 'b' });
    moveRunAside(rewound);
    const [rewoundLog] = readRuns([join(rewound, 'metrics.superseded.jsonl')]);
    expect(rewoundLog.epochs.map((e) => e.testError)).toEqual([0.4, 0.4, 0.2]);
    expect([rewoundLog.epochsPlanned, rewoundLog.settings.lr]).toEqual([3, '0.02']);
    // Without a save of that stretch (the run's last checkpoint deleted), its log's own provenance.
    rmSync(join(rewound, 'checkpoint.step30.superseded.safetensors'));
    expect(readRuns([join(rewound, 'metrics.superseded.jsonl')])[0].epochsPlanned).toBe(3);
    expect(() => readRuns([join(reused, 'run.txt')])).toThrow(`${join(reused, 'run.txt')}: no such run directory, log or checkpoint`);
    writeFileSync(join(reused, 'notes.txt'), 'x');
    expect(() => readRuns([join(reused, 'notes.txt')])).toThrow(`${join(reused, 'notes.txt')}: not a run directory, a run's log (.jsonl) or a checkpoint (.safetensors)`);
    // `nin compare . ../other`: named by the directories they stand for, not "." and "..".
    const cwd = process.cwd();
    try {
      process.chdir(deep[1]);
      expect(readRuns(['.', '../../gap/run']).map((r) => r.label)).toEqual(['fc/run', 'gap/run']);
    } finally {
      process.chdir(cwd);
    }
    // Schedules with their parameters.
    const stepRun = runDir('sched/step', epochs(0, 1, () => ({})), { schedule: 'step', stepEpochs: [50, 75] });
    const plateauRun = runDir('sched/plateau', epochs(0, 1, () => ({})), { schedule: 'plateau', patience: 3, lrDrops: 2, plateauOn: 'train' });
    expect(readRuns([stepRun, plateauRun]).map((r) => r.settings.schedule)).toEqual(['step at 50,75 ×0.1', 'plateau on train, patience 3, 2 drops ×0.1']);
    // A plateau run's --epochs is a cap; once the schedule ended it, it is done.
    const ended = runDir('sched/ended', epochs(0, 2, () => ({})), { schedule: 'plateau', gamma: 0.5 }, undefined, { plateau: JSON.stringify({ on: 'train', drops: 2, best: 0.1, sinceBest: 3, finished: true }) });
    const rows = comparisonTable(readRuns([stepRun, plateauRun, ended])).split('\n').slice(2, 5).map((l) => l.split(/\s{2,}/));
    expect(rows.map((r) => r[1])).toEqual(['step at 50,75 ×0.1', 'plateau on train, patience 3, 2 drops ×0.1', 'plateau on train, patience 3, 2 drops ×0.5']); // whole, however long
    expect(rows.map((r) => r[2])).toEqual(['1/4', '1/≤4', '2, done']);
    // The same run twice (by another spelling, or as its log) would draw one curve over the other.
    expect(() => readRuns([gap, `${gap}/`])).toThrow(`${gap}/ is the run ${gap} is: give each run once`);
    expect(() => readRuns([gap, join(gap, 'metrics.jsonl')])).toThrow(/is the run .* is: give each run once/);
    // Its log named alone is its directory: the same label and settings (from its checkpoint).
    const [byLog] = readRuns([join(gap, 'metrics.jsonl')]);
    expect([byLog.label, byLog.settings.lr, byLog.epochsPlanned]).toEqual(['gap', '0.05', 4]);
    // A path that is not there is named as such (a missing checkpoint read as a directory without a log).
    expect(() => readRun(join(root, 'nowhere'))).toThrow(`${join(root, 'nowhere')}: no such run directory, log or checkpoint`);
    expect(() => readRun(join(gap, 'best.safetensors'))).toThrow(`${join(gap, 'best.safetensors')}: no such run directory, log or checkpoint`);
    mkdirSync(join(root, 'empty-dir'));
    expect(() => readRun(join(root, 'empty-dir'))).toThrow(`${join(root, 'empty-dir')}: no run there (no ${join(root, 'empty-dir', 'metrics.jsonl')})`);
    // A log written over by something else (an ONNX model) is named, not shown as a run of no epochs.
    writeFileSync(join(root, 'empty-dir', 'metrics.jsonl'), Buffer.from([8, 7, 0x12, 4, 0x6e, 0x69, 0x6e, 10, 0xff]));
    expect(() => readRun(join(root, 'empty-dir'))).toThrow(`${join(root, 'empty-dir', 'metrics.jsonl')}: holds no log records: not a run's log, or damaged`);
  });

  it('runs that differ only in their seed are summarised over seeds: mean ± sample sd, range; a run that stopped early is left out, and said', () => {
    const errors = [['gap', [0.3, 0.34, 0.32]], ['fc', [0.4, 0.5]]] as const;
    const seeded = errors.flatMap(([head, errs]) => errs.map((err, i) =>
      runDir(`seeds/${head}-${i + 1}`, epochs(0, 2, (e) => ({ testError: e === 2 ? err : 0.6, valError: e === 2 ? err - 0.01 : 0.5 })), { seed: i + 1, validation: 500 }, { ...MODELS['cifar10-small'], head })));
    // fc's third seed stopped at a NaN loss in its second epoch.
    const stoppedRecords = [...epochs(0, 1, () => ({ testError: 0.9 })), { kind: 'stopped', epoch: 1, step: 13, reason: 'loss is NaN at step 13 (epoch 2)' }];
    const stopped = runDir('seeds/fc-3', stoppedRecords, { seed: 3, validation: 500 }, { ...MODELS['cifar10-small'], head: 'fc' });
    const lines = comparisonTable(readRuns([...seeded, stopped])).split('\n');
    const at = lines.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):');
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1].split(/\s{2,}/)).toEqual(['head', 'params', 'runs', 'seeds', 'epochs', 'test error', 'min–max', 'test loss', 'best val', 'test there']);
    // gap: 30, 34, 32 % → mean 32 %, sd 2 %; fc: 40 and 50 % → 45 ± 7.07 %; fc-3 left out.
    expect(lines[at + 3].split(/\s{2,}/)).toEqual(['gap', '93,610', '3', '1,2,3', '2/4', '32.00 ± 2.00%', '30.00–34.00%', '–', '31.00 ± 2.00%', '32.00 ± 2.00%']);
    expect(lines[at + 4].split(/\s{2,}/)).toEqual(['fc', '100,020', '2 of 3', '1,2', '2/4', '45.00 ± 7.07%', '40.00–50.00%', '–', '44.00 ± 7.07%', '45.00 ± 7.07%']);
    expect(lines).toContain('note: over seeds, fc-3 (stopped at step 13) is left out: it did not reach epoch 2, as the others did');
    // Seeds that all stopped before their first epoch: none reached one, none is counted.
    const early = [1, 2].map((seed) => runDir(`seeds/early-${seed}`, [{ kind: 'step', epoch: 0, step: 0, loss: 2.3, lr: 0.5 }, { kind: 'stopped', epoch: 0, step: 3, reason: 'loss is NaN at step 3 (epoch 1)' }], { seed, lr: 0.5 }));
    const earlyLines = comparisonTable(readRuns(early)).split('\n');
    expect(earlyLines[earlyLines.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):') + 3].split(/\s{2,}/).slice(0, 5)).toEqual(['all', '0 of 2', '–', '–', '–']);
    // The group's epochs are its counted runs', whichever run is given first.
    const stoppedFirst = comparisonTable(readRuns([stopped, ...seeded])).split('\n');
    const overSeedsRows = stoppedFirst.slice(stoppedFirst.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):') + 3).map((l) => l.split(/\s{2,}/));
    expect(overSeedsRows.find((r) => r[0] === 'fc')!.slice(0, 5)).toEqual(['fc', '100,020', '2 of 3', '1,2', '2/4']);
    // No seed differs, or each setting ran once: no summary.
    expect(comparisonTable(readRuns(seeded.slice(2, 4)))).not.toContain('over seeds');
    expect(comparisonTable(readRuns([seeded[0], seeded[4]]))).not.toContain('over seeds');
    // A setting run twice with one seed (a rerun) beside another setting: no seed differs, no summary.
    const rerun = runDir('seeds/gap-1-again', epochs(0, 2, () => ({ testError: 0.3 })), { seed: 1, validation: 500 }, { ...MODELS['cifar10-small'], head: 'gap' });
    expect(comparisonTable(readRuns([seeded[0], rerun, seeded[3]]))).not.toContain('over seeds');
    // One group of them all: named 'all'.
    const all = comparisonTable(readRuns(seeded.slice(0, 3))).split('\n');
    expect(all[all.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):') + 3].split(/\s{2,}/).slice(0, 3)).toEqual(['all', '3', '1,2,3']);
    // As data (--json): the groups with the numbers unrounded.
    const { overSeeds } = comparisonJson(readRuns([...seeded, stopped]));
    expect(overSeeds.map((g) => [g.settings, g.runs, g.counted, g.seeds, g.epochs, g.leftOut])).toEqual([
      [{ head: 'gap', params: '93,610' }, ['gap-1', 'gap-2', 'gap-3'], ['gap-1', 'gap-2', 'gap-3'], ['1', '2', '3'], 2, []],
      [{ head: 'fc', params: '100,020' }, ['fc-1', 'fc-2', 'fc-3'], ['fc-1', 'fc-2'], ['1', '2'], 2, [{ run: 'fc-3', why: 'stopped at step 13' }]],
    ]);
    const [gapGroup, fcGroup] = overSeeds;
    expect(gapGroup.testError!.mean).toBeCloseTo(0.32, 12);
    expect(gapGroup.testError).toMatchObject({ min: 0.3, max: 0.34, n: 3 });
    expect(gapGroup.testError!.sd).toBeCloseTo(0.02, 12);
    expect(fcGroup.testError!.sd).toBeCloseTo(Math.SQRT1_2 / 10, 12); // 40 and 50 %
    expect(fcGroup.bestValError!.mean).toBeCloseTo(0.44, 12);
    expect(fcGroup.testErrorAtBestVal!.mean).toBeCloseTo(0.45, 12);
    expect(gapGroup.testLoss).toBeNull(); // (the fixture logs no test loss)
    expect(comparisonJson(readRuns(seeded.slice(2, 4))).overSeeds).toEqual([]);
    // A run still going (no stop record): left out for the epochs it has, one of them said as one ('1 epochs' before).
    const going = runDir('seeds/fc-4', epochs(0, 1, () => ({ testError: 0.9 })), { seed: 4, validation: 500 }, { ...MODELS['cifar10-small'], head: 'fc' });
    expect(comparisonTable(readRuns([...seeded.slice(3), going]))).toContain('note: over seeds, fc-4 (1 epoch) is left out: it did not reach epoch 2, as the others did');
    // One run counted: its error, without an sd or a range of one value.
    const one = comparisonTable(readRuns([seeded[3], going])).split('\n');
    const oneAt = one.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):');
    expect(one[oneAt + 3].split(/\s{2,}/)).toEqual(['all', '1 of 2', '1', '2/4', '40.00%', '–', '–', '39.00%', '40.00%']);
    // Runs planned over other numbers of epochs are no repeats of each other (a cosine over 2 epochs
    // is not one over 4), though no setting column tells them apart: a group each.
    const planned = [[1, 2], [2, 2], [3, 4], [4, 4]].map(([seed, e]) => runDir(`plans/seed-${seed}-of-${e}`, epochs(0, 2, () => ({ testError: 0.1 * seed })), { seed, epochs: e }));
    expect(comparisonJson(readRuns(planned)).overSeeds.map((g) => [g.runs, g.epochs, g.epochsPlanned])).toEqual([
      [['seed-1-of-2', 'seed-2-of-2'], 2, 2],
      [['seed-3-of-4', 'seed-4-of-4'], 2, 4],
    ]);
    const rows = comparisonTable(readRuns(planned)).split('\n');
    const overAt = rows.indexOf('over seeds (the runs that differ only in their seed; mean ± sample standard deviation):');
    expect(rows[overAt + 1].split(/\s{2,}/).slice(0, 4)).toEqual(['planned epochs', 'runs', 'seeds', 'epochs']);
    expect(rows.slice(overAt + 3, overAt + 5).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([['2', '2', '1,2', '2/2'], ['4', '2', '3,4', '2/4']]);
  });

  it('a GPU memory column where a run\'s log has its peak (the largest over its epochs), – for a log from before it', () => {
    const withPeak = (peaks: number[]) => epochs(0, 2, () => ({ testError: 0.2 })).map((r) => { const e = r as { kind: string; epoch: number }; return e.kind === 'epoch' ? { ...e, gpuPeakBytes: peaks[e.epoch - 1] } : r; });
    const big = runDir('memory/big', withPeak([300 * 2 ** 20, 310.5 * 2 ** 20]), { batchSize: 256 });
    const small = runDir('memory/small', withPeak([40 * 2 ** 20, 39 * 2 ** 20]), { batchSize: 32 });
    const old = runDir('memory/old', epochs(0, 2, () => ({ testError: 0.2 })), { batchSize: 128 });
    const lines = comparisonTable(readRuns([big, small, old])).split('\n');
    expect(lines[0].split(/\s{2,}/).slice(-2)).toEqual(['train time', 'GPU memory']);
    expect(lines.slice(2, 5).map((l) => l.split(/\s{2,}/).at(-1))).toEqual(['310.5 MiB', '40.0 MiB', '–']);
    expect(comparisonRecords(readRuns([big, old])).map((r) => r.gpuPeakBytes)).toEqual([310.5 * 2 ** 20, null]);
    expect(comparisonTable(readRuns([old]))).not.toContain('GPU memory');
  });

  it('the same run given twice by any of its paths (directory, log, link, a checkpoint on its line) is refused; a line the run has left is another run', () => {
    // Best at epoch 1 (test 30 %), last at epoch 2: a checkpoint stands for the run as it stands,
    // so `best` beside the directory was the directory's row twice, labelled best.
    const vs = runDir('twice/vs', [{ kind: 'start', run: 'V', stretch: 's1', time: '' }, ...epochs(0, 2, (e) => ({ testError: [0.3, 1 / 3][e - 1], valError: [0.2, 0.25][e - 1] }))], { validation: 5000, epochs: 2 }, undefined, { run_id: 'V', stretch: 's1' });
    writeSafetensors(join(vs, 'best.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10', epochs: 2 }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '1', step: '10', run_id: 'V', stretch: 's1' });
    symlinkSync(vs, join(root, 'twice/vs-link'));
    const names = [vs, join(vs, 'metrics.jsonl'), join(vs, 'checkpoint.safetensors'), join(vs, 'best.safetensors'), join(root, 'twice/vs-link')];
    for (const [i, a] of names.entries()) {
      for (const b of names.slice(i + 1)) expect(() => readRuns([a, b]), `${a} and ${b}`).toThrow(`${b} is the run ${a} is: give each run once`);
    }
    expect(() => readRuns([vs, join(vs, 'best.safetensors')])).toThrow("give each run once (a checkpoint on a run's line stands for the whole run, as visualize draws it)");
    // A checkpoint whose run no log beside it names (copied into another run's directory): refused, naming it.
    const stray = runDir('twice/stray', [{ kind: 'start', run: 'X', stretch: 'x1', time: '' }, ...epochs(0, 1, () => ({ testError: 0.3 }))], null);
    writeSafetensors(join(stray, 'copied.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10' }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '1', step: '10', run_id: 'V', stretch: 's1' });
    expect(() => readRun(join(stray, 'copied.safetensors'))).toThrow(`${join(stray, 'copied.safetensors')}: no log of its run beside it (metrics.jsonl, or a metrics.superseded*.jsonl)`);
    // Another run beside it is still compared.
    expect(readRuns([join(vs, 'best.safetensors'), gap]).map((r) => r.label)).toEqual(['best', 'gap']);
    // A best checkpoint on a line the run has left (resumed from epoch 1 after it): its own history, another curve.
    const rewound = runDir('twice/rewound', [
      { kind: 'start', run: 'W', stretch: 'w1', time: '' }, ...epochs(0, 2, () => ({ testError: 0.3 })),
      { kind: 'resume', run: 'W', stretch: 'w2', fromStretch: 'w1', epoch: 1, step: 10, from: 'x' }, ...epochs(1, 3, () => ({ testError: 0.4 })),
    ], {}, undefined, { run_id: 'W', stretch: 'w2', epoch: '3', step: '30' });
    writeSafetensors(join(rewound, 'best.safetensors'), {}, { format: 'nin-webgpu/1', options: JSON.stringify({ dataset: 'cifar10' }), config: JSON.stringify(MODELS['cifar10-small']), epoch: '2', step: '20', run_id: 'W', stretch: 'w1' });
    const [run, left] = readRuns([rewound, join(rewound, 'best.safetensors')]);
    expect(run.epochs.map((e) => e.testError)).toEqual([0.3, 0.4, 0.4]);
    expect(left.epochs.map((e) => e.testError)).toEqual([0.3, 0.3]);
  });

  it('the test images each run was last evaluated on: a column where they differ, and a note for a run whose test set changed', () => {
    // Same weights, other --test-limit: the errors differ and the table must say why.
    const tested = (n: number) => () => ({ testError: 0.2, testImages: n }) as Partial<Record<'testError' | 'valError', number>>;
    const small = runDir('tested/small', epochs(0, 2, tested(100)));
    const large = runDir('tested/large', epochs(0, 2, tested(2000)));
    const lines = comparisonTable(readRuns([small, large])).split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['run', 'test images', 'epochs', 'train loss', 'test loss', 'test error', 'img/s', 'train time']);
    expect(lines.slice(2, 4).map((l) => l.split(/\s{2,}/)[1])).toEqual(['100', '2000']);
    const same = comparisonTable(readRuns([small, runDir('tested/again', epochs(0, 2, tested(100)))]));
    expect(same).toContain('train limit all, test images 100, val 0');
    expect(same).not.toContain('test set changed');
    // Resumed with another --test-limit: the last epoch's count, and a note.
    const changed = runDir('tested/changed', [...epochs(0, 1, tested(100)), ...epochs(1, 2, tested(2000))]);
    const table = comparisonTable(readRuns([small, changed]));
    expect(table.split('\n')[3].split(/\s{2,}/)[1]).toBe('2000');
    expect(table).toContain("note: changed's test set changed during the run (100, 2000 images): its test error curve mixes them");
  });

  it('one moving average for all runs\' step losses: the same steps of two runs draw the same curve', () => {
    // 38 epochs of 2 step records: alone, a window of 3; 10 epochs: alone, none (1).
    const long = runDir('window/long', epochs(0, 38, () => ({ testError: 0.1 })));
    const short = runDir('window/short', epochs(0, 10, () => ({ testError: 0.1 })));
    const alone = comparisonPanels(readRuns([short]))[0];
    expect(alone.title).toBe('training loss');
    alone.series[0].points.forEach((p, i) => expect(p[1]).toBeCloseTo(2 / (1 + 5 * i), 12)); // the raw step losses
    const [loss] = comparisonPanels(readRuns([long, short]));
    expect(loss.title).toBe('training loss (step losses: mean of 3)');
    const [l, sh] = loss.series.map((s) => s.points);
    expect(sh).toHaveLength(20);
    // Away from the short run's last point (its window is cut there), the two curves are one.
    for (let i = 0; i < 19; i++) {
      expect(sh[i][0]).toBe(l[i][0]);
      expect(sh[i][1]).toBeCloseTo(l[i][1], 12);
    }
    expect(sh[1][1]).toBeCloseTo((2 / 1 + 2 / 6 + 2 / 11) / 3, 12); // a mean of 3, not the raw loss
    // The widest window of them all, whichever run is given first.
    expect(comparisonPanels(readRuns([short, long]))[0].title).toBe('training loss (step losses: mean of 3)');
  });

  it('draws each run in its own colour on shared axes: loss, test error, and validation error where there is one', () => {
    const three = PNG.sync.read(renderComparison(readRuns([gap, fc]), { panelWidth: 500, height: 360 }));
    expect([three.width, three.height]).toEqual([1500, 360]);
    const two = renderComparison(readRuns([bare]), { panelWidth: 500, height: 360 });
    expect(PNG.sync.read(two).width).toBe(1000); // no validation split: no validation panel
    const png = renderComparison(readRuns([gap, fc]));
    for (const c of SERIES_COLORS.slice(0, 2)) expect(countColor(png, c)).toBeGreaterThan(100);
    expect(countColor(png, SERIES_COLORS[2])).toBe(0);
  });

  it('a run whose test error reaches 0 % is drawn to its last epoch, on the error axes\' floor (drawPlot\'s zeroOnFloor); a loss is never 0', () => {
    const run = runDir('floor', epochs(0, 3, (e) => ({ testError: [0.2, 0.05, 0][e - 1], valError: [0.2, 0.05, 0][e - 1] })));
    const panels = comparisonPanels(readRuns([run]));
    expect(panels.map((p) => [p.title, p.zeroOnFloor])).toEqual([['training loss', false], ['test error', true], ['validation error', true]]);
    expect(panels[1].series[0].points).toEqual([[1, 20], [2, 5], [3, 0]]);
  });

  it('the loss panel takes a run\'s step losses, or its per-epoch train losses where it logged fewer step losses than epochs', () => {
    // 8 steps an epoch and a step record every 20 steps: the one record (step 0) was the whole loss curve.
    const short = runDir('study/short', [
      { kind: 'step', epoch: 0, step: 0, loss: 5.1, lr: 0.05 },
      { kind: 'epoch', epoch: 1, step: 8, trainLoss: 3.37, trainError: 0.5, lr: 0.05, imgPerSec: 100, seconds: 1, testError: 0.5 },
      { kind: 'epoch', epoch: 2, step: 16, trainLoss: 2.34, trainError: 0.4, lr: 0.05, imgPerSec: 100, seconds: 1, testError: 0.4 },
    ]);
    const [loss] = comparisonPanels(readRuns([gap, short]));
    expect(loss.series.map((s) => s.name)).toEqual(['gap', 'short']);
    expect(loss.series[0].points).toHaveLength(6); // gap's step losses: two an epoch
    expect(loss.series[1].points).toEqual([[1, 3.37], [2, 2.34]]);
    // Counted in the log, not in the curve (thinned to about 800 points): 900 epochs of two step
    // records each keep their step losses.
    const long = runDir('study/long', epochs(0, 900, () => ({ testError: 0.1 })));
    const [longLoss] = comparisonPanels(readRuns([long]));
    expect(longLoss.series[0].points.length).toBeLessThan(900); // the thinned step losses, not 900 epoch points
  });

  it('reads around a damaged log or header: a line nested too deep for the readers holds no record; settings of another type are left out (a stack overflow and a TypeError before)', () => {
    const deep = runDir('damaged/deep', [{ kind: 'start', run: 'D', time: '' }, ...epochs(0, 2, () => ({ testError: 0.3 }))]);
    appendFileSync(join(deep, 'metrics.jsonl'), `{"kind":"epoch","epoch":3,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}\n`);
    const [run] = readRuns([deep]);
    expect(run.epochs.map((e) => e.epoch)).toEqual([1, 2]);
    expect(comparisonTable([run])).toContain(`note: deep's log ${join(deep, 'metrics.jsonl')} has 1 line that holds no record (8): skipped`);
    // A hand-edited header: a gamma, head and input of other types, layers that are not all objects.
    const config = { ...MODELS['cifar10-small'], input: { height: 32 }, head: { h: 1 }, layers: [null, 5, { type: 'dropout', p: 0.5 }] } as unknown as ModelConfig;
    const odd = runDir('damaged/odd', epochs(0, 1, () => ({ testError: 0.3 })), { schedule: 'plateau', gamma: { x: 1 } }, config);
    const table = comparisonTable(readRuns([odd, deep]));
    expect(table).not.toMatch(/undefined|\[object Object\]/);
    expect(readRuns([odd])[0].settings).not.toHaveProperty('schedule');
    expect(readRuns([odd])[0].settings).not.toHaveProperty('input (h×w×c)');
    expect(readRuns([odd])[0].settings).not.toHaveProperty('dropout');
    expect(readRuns([deep])[0].settings).toMatchObject({ schedule: 'cosine', 'input (h×w×c)': '32×32×3', 'class maps': 'linear' });
  });

  it('notes a run whose settings do not hold for all of it: forked from another run, or resumed with other settings; and networks of one name that differ', () => {
    const full = runDir('hist/full', [{ kind: 'start', run: 'A', time: '' }, ...epochs(0, 3, () => ({ testError: 0.3 }))]);
    const from = join(full, 'checkpoint.safetensors');
    const fork = (name: string, extra: object) => runDir(`hist/${name}`, [{ kind: 'resume', run: name, parent: 'A', epoch: 3, step: 30, stepsPerEpoch: 10, from, ...extra }, ...epochs(3, 4, () => ({ testError: 0.2 }))], { lr: 0.1 });
    const faster = fork('faster', { changed: { lr: ['0.05', '0.1'], batch: ['128', '64'] } });
    const same = fork('same', {});
    const table = comparisonTable(readRuns([full, faster, same]));
    expect(table).toContain('note: faster forked from full after epoch 3 with lr 0.05 → 0.1, batch 128 → 64: its settings above are the last ones');
    expect(table).toContain("note: same forked from full after epoch 3 (its epochs before are that run's)");
    expect(table).not.toContain('note: full');
    // A parent among them labelled by more of its path (another run's directory has its name): by that label.
    const otherFull = runDir('hist-other/full', [{ kind: 'start', run: 'F', time: '' }, ...epochs(0, 1, () => ({ testError: 0.3 }))]);
    expect(comparisonTable(readRuns([full, otherFull, same]))).toContain("note: same forked from hist/full after epoch 3 (its epochs before are that run's)");
    // A parent not among the runs compared: named by its directory. Within an epoch: its step.
    const midway = fork('midway', { step: 35, changed: { seed: ['1', '2'] } });
    expect(comparisonTable(readRuns([midway]))).toContain('note: midway forked from full at step 35, in epoch 4 with seed 1 → 2: its settings above are the last ones');
    // A fork whose parent's log is not found (moved, deleted): its row is of the epochs it has, and says so.
    const gone = join(root, 'hist', 'gone');
    const orphan = runDir('hist/orphan', [{ kind: 'resume', run: 'O', parent: 'G', epoch: 3, step: 30, stepsPerEpoch: 10, from: join(gone, 'checkpoint.safetensors') }, ...epochs(3, 5, (e) => ({ valError: 0.5 - e / 100 }))]);
    const [orphanRun] = readRuns([orphan]);
    expect(comparisonTable([orphanRun])).toContain(`note: orphan forked from gone after epoch 3, whose log was not found (${gone}): its epochs 1–3 are missing from its row and curves (best validation, img/s and time are of epochs 4 on)`);
    expect(comparisonTable([orphanRun])).not.toContain("that run's");
    expect(comparisonRecords([orphanRun])[0]).toMatchObject({ epochsDone: 5, epochsMissing: 3, bestValidation: { epoch: 5 } });
    expect(comparisonRecords(readRuns([same]))[0].epochsMissing).toBe(0);
    // Forked from a checkpoint saved without a run id (parent null), its parent's log gone: the same.
    const orphanOfOld = runDir('hist/orphan-of-old', [{ kind: 'resume', run: 'Q', parent: null, epoch: 2, step: 20, stepsPerEpoch: 10, from: join(gone, 'checkpoint.safetensors') }, ...epochs(2, 4, () => ({ valError: 0.4 }))]);
    expect(comparisonTable(readRuns([orphanOfOld]))).toContain(`note: orphan-of-old forked from gone after epoch 2, whose log was not found (${gone}): its epochs 1–2 are missing`);
    expect(comparisonRecords(readRuns([orphanOfOld]))[0].epochsMissing).toBe(2);
    // Resumed in its own directory after its log was deleted: its log starts at the resume.
    const deleted = runDir('hist/deleted', [{ kind: 'resume', run: 'D', epoch: 3, step: 30, stepsPerEpoch: 10, from: join(root, 'hist', 'deleted', 'checkpoint.safetensors') }, ...epochs(3, 5, () => ({ valError: 0.3 }))]);
    expect(comparisonTable(readRuns([deleted]))).toContain('note: deleted resumed after epoch 3, its log before that not found: its epochs 1–3 are missing from its row and curves (best validation, img/s and time are of epochs 4 on)');
    expect(comparisonRecords(readRuns([deleted]))[0].epochsMissing).toBe(3);
    // Resumed in its own directory: only where settings changed (a log from before this has no `changed`).
    const own = (name: string, extra: object) => runDir(`hist/${name}`, [{ kind: 'start', run: name, time: '' }, ...epochs(0, 2, () => ({})), { kind: 'resume', run: name, epoch: 2, step: 20, stepsPerEpoch: 10, from: join(root, 'hist', name, 'checkpoint.safetensors'), ...extra }, ...epochs(2, 4, () => ({}))]);
    expect(comparisonTable(readRuns([own('longer', { changed: { epochs: ['2', '4'] } })]))).toContain('note: longer resumed after epoch 2 with epochs 2 → 4: its settings above are the last ones');
    expect(comparisonTable(readRuns([own('plain', {})]))).not.toContain('note:');
    // Resumed at an epoch's end with another batch size: its record's stepsPerEpoch is the new one (20 steps
    // an epoch at half the batch), not the one its step counts in: still after epoch 2, not within epoch 3,
    // as its inEpoch says, and in a log from before inEpoch, as the log's epoch 2 record says.
    const halved = { stepsPerEpoch: 20, changed: { batch: ['128', '64'] } };
    for (const [name, extra] of [['halved', { ...halved, inEpoch: 0 }], ['halved-older', halved]] as const) {
      expect(comparisonTable(readRuns([own(name, extra)]))).toContain(`note: ${name} resumed after epoch 2 with batch 128 → 64: its settings above are the last ones`);
    }
    // inEpoch says where in an epoch a resume was, whatever stepsPerEpoch says.
    expect(comparisonTable(readRuns([own('within', { inEpoch: 5, changed: { lr: ['0.1', '0.05'] } })]))).toContain('note: within resumed at step 20, in epoch 3 with lr 0.1 → 0.05');
    // Two `--config` networks of one name: the parameter count tells them apart, and a note says so.
    const mine = { ...MODELS['mnist-small'], name: 'mine' };
    const wider = { ...mine, layers: mine.layers.map((l, i) => (l.type === 'mlpconv' && i === 0 ? { ...l, channels: l.channels.map((c) => 2 * c) as [number, number, number] } : l)) };
    const a = runDir('nets/a', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mine' }, mine);
    const b = runDir('nets/b', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mine' }, wider);
    const nets = comparisonTable(readRuns([a, b]));
    expect(nets.split('\n')[0].split(/\s{2,}/).slice(0, 2)).toEqual(['run', 'params']);
    expect(nets.split('\n')).toContain('note: a, b name their network mine, but the networks differ');
    expect(comparisonTable(readRuns([a, runDir('nets/a-again', epochs(0, 1, () => ({})), { dataset: 'mnist', model: 'mine' }, mine)]))).not.toContain('networks differ');
    // One network but for the flags' settings (--head, --init, --class-maps, --dropout), which the columns show: no note.
    const flagged = { ...MODELS['mnist-small'], head: 'fc' as const, init: 'gaussian' as const, layers: MODELS['mnist-small'].layers.map((l, i, all) => (i === all.length - 1 && l.type === 'mlpconv' ? { ...l, linearOut: false } : l)) };
    const gapRun = runDir('nets/gap', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mnist-small' }, MODELS['mnist-small']);
    const fcRun = runDir('nets/fc', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mnist-small' }, flagged);
    const study = comparisonTable(readRuns([gapRun, fcRun])).split('\n');
    expect(study[0].split(/\s{2,}/).slice(0, 5)).toEqual(['run', 'head', 'init', 'class maps', 'params']);
    expect(study.filter((l) => l.includes('name their network'))).toEqual([]);
    const lessDropout = { ...MODELS.mnist, layers: MODELS.mnist.layers.map((l) => (l.type === 'dropout' ? { ...l, p: 0.3 } : l)) };
    const dropped = [MODELS.mnist, lessDropout].map((config, i) => runDir(`nets/dropout-${i}`, epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mnist' }, config));
    const dropStudy = comparisonTable(readRuns(dropped)).split('\n');
    expect(dropStudy[0].split(/\s{2,}/).slice(0, 2)).toEqual(['run', 'dropout']);
    expect(dropStudy.filter((l) => l.includes('name their network'))).toEqual([]);
    // Two runs of one network beside a third of that name fitted to other images: the two share
    // it (they were named as differing too). Another network's run (mnist1) changes nothing.
    const small = MODELS['cifar10-small'];
    const three = { dataset: 'folder', imageFolder: { dir: '/data/shapes', classNames: ['a', 'b', 'c'], trainImages: 10, trainList: 'x' } };
    const big = { ...small, classes: 3 };
    const bigFull = runDir('nets/big-full', epochs(0, 1, () => ({ testError: 0.1 })), three, big);
    const bigInt = runDir('nets/big-int', epochs(0, 1, () => ({ testError: 0.1 })), three, big);
    const whole = runDir('nets/shapes-whole', epochs(0, 1, () => ({ testError: 0.1 })), three, { ...big, input: { height: 16, width: 16, channels: 3 } });
    const mnist1 = runDir('nets/mnist1', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist' }, MODELS['mnist-small']);
    const grouped = comparisonTable(readRuns([bigFull, bigInt, whole, mnist1])).split('\n').filter((l) => l.includes('name their network'));
    expect(grouped).toEqual(['note: big-full, big-int, shapes-whole name their network cifar10-small, but not one network: big-full and big-int share one; shapes-whole has its own']);
    expect(comparisonTable(readRuns([bigFull, whole, bigInt, runDir('nets/whole-again', epochs(0, 1, () => ({})), three, { ...big, input: { height: 16, width: 16, channels: 3 } })]))).toContain(
      'note: big-full, shapes-whole, big-int, whole-again name their network cifar10-small, but not one network: big-full and big-int share one; shapes-whole and whole-again share another',
    );
    // Networks the table's columns do not tell apart (average pooling for max: the same parameters),
    // though another run's count makes a params column: said, as for two runs alone.
    const pooled = { ...mine, layers: mine.layers.map((l) => (l.type === 'maxpool' ? { ...l, type: 'avgpool' as const } : l)) };
    const c = runDir('nets/c', epochs(0, 1, () => ({ testError: 0.1 })), { dataset: 'mnist', model: 'mine' }, pooled);
    expect(comparisonTable(readRuns([a, c, b])).split('\n')).toContain("note: a, c, b name their network mine, but the networks differ (a's and c's in their layers, not in their parameter count)");
    expect(comparisonTable(readRuns([a, c])).split('\n')).toContain('note: a, c name their network mine, but the networks differ (in their layers, not in their parameter count)');
  });

  it('img/s is the median epoch\'s, by value, of the epochs that did not start a process (their kernels compile then) where there are any; the time is the epochs\' summed seconds in hours and minutes, or – when none was timed', () => {
    const speeds = [950, 1020, 980]; // as text, 1020 sorts first
    const timed = runDir('speed/timed', epochs(0, 3, () => ({ testError: 0.1 })).map((r) => { const e = r as { kind: string; epoch: number }; return e.kind === 'epoch' ? { ...e, imgPerSec: speeds[e.epoch - 1], seconds: 1500 } : r; }));
    const untimed = runDir('speed/untimed', epochs(0, 1, () => ({ testError: 0.2 })).map((r) => ((r as { kind: string }).kind === 'epoch' ? { ...r, seconds: 0 } : r)));
    const rows = comparisonTable(readRuns([timed, untimed])).split('\n').slice(2, 4).map((l) => l.split(/\s{2,}/));
    expect(rows).toEqual([
      ['timed', '3/4', '0.3333', '–', '10.00%', '1000.0', '1h15m'], // epochs 2 and 3: 1020, 980; 3 × 1500 s
      ['untimed', '1/4', '1.0000', '–', '20.00%', '100.0', '–'],
    ]);
    // Resumed: the epoch after the resume record starts a process too. Left, 1020, 980 and 990: by
    // value 990 (as text, 1020 sorts first and 980 would be the middle).
    const rates = [950, 1020, 980, 500, 990];
    const withRate = (recs: object[]) => recs.map((r) => { const e = r as { kind: string; epoch: number }; return e.kind === 'epoch' ? { ...e, imgPerSec: rates[e.epoch - 1] } : r; });
    const resumed = runDir('speed/resumed', [{ kind: 'start', run: 'S', time: '' }, ...withRate(epochs(0, 3, () => ({}))), { kind: 'resume', run: 'S', epoch: 3, step: 30, from: join(root, 'speed/resumed/checkpoint.safetensors') }, ...withRate(epochs(3, 5, () => ({})))]);
    expect(comparisonTable(readRuns([resumed])).split('\n')[2].split(/\s{2,}/)[5]).toBe('990.0');
    // Under a minute: seconds alone.
    const quick = runDir('speed/quick', epochs(0, 1, () => ({ testError: 0.1 })).map((r) => ((r as { kind: string }).kind === 'epoch' ? { ...r, seconds: 5 } : r)));
    expect(comparisonTable(readRuns([quick])).split('\n')[2].split(/\s{2,}/).at(-1)).toBe('5s');
    // An epoch without a time (none logged, or null: JSON's NaN) adds nothing to the run's, in the table and as data.
    const gappy = runDir('speed/gappy', epochs(0, 3, () => ({ testError: 0.1 })).map((r) => {
      const { seconds, ...e } = r as { kind: string; epoch: number; seconds: number };
      return e.kind !== 'epoch' ? r : e.epoch === 2 ? e : e.epoch === 3 ? { ...e, seconds: null } : { ...e, seconds };
    }));
    expect(comparisonRecords(readRuns([gappy]))[0].trainSeconds).toBe(60);
    expect(comparisonTable(readRuns([gappy])).split('\n')[2].split(/\s{2,}/).at(-1)).toBe('1m00s');
  });

  it("says what is amiss in a run's log, which a crash, an edit or a sync tool can leave: lines that hold no record, epochs out of order or twice, epoch records without a number, a checkpoint past the log's epochs", () => {
    const start = { kind: 'start', run: 'R', time: '' };
    const ok = runDir('log-notes/ok', [start, ...epochs(0, 2, () => ({ testError: 0.3 }))]);
    expect(comparisonTable(readRuns([ok]))).not.toContain('note:');
    const [one, two, three] = epochs(0, 3, () => ({ testError: 0.3 })).filter((r) => (r as { kind: string }).kind === 'epoch');
    const reordered = runDir('log-notes/reordered', [start, three, one, two]);
    expect(comparisonTable(readRuns([reordered]))).toContain("note: reordered's log has its epochs out of order or twice (3, 1, 2): its row reads them as they stand");
    const twice = runDir('log-notes/twice', [start, one, { ...one, testError: 0.01 }, two]);
    expect(comparisonTable(readRuns([twice]))).toContain("note: twice's log has its epochs out of order or twice (1, 1, 2): its row reads them as they stand");
    // A line in the middle that holds no record is said; a last line without its newline (cut by a crash mid-write) is not.
    const garbled = runDir('log-notes/garbled', [start, one, two]);
    const text = readFileSync(join(garbled, 'metrics.jsonl'), 'utf8').split('\n');
    writeFileSync(join(garbled, 'metrics.jsonl'), [text[0], 'not json', '7', text[1], text[2], '{"kind":"ep'].join('\n'));
    expect(comparisonTable(readRuns([garbled]))).toContain(`note: garbled's log ${join(garbled, 'metrics.jsonl')} has 2 lines that hold no record (2, 3): skipped`);
    const unnumbered = runDir('log-notes/unnumbered', [start, one, { ...two, epoch: '2' }]);
    const table = comparisonTable(readRuns([unnumbered]));
    expect(table).toContain("note: unnumbered's log has 1 epoch record without an epoch number: skipped");
    // runDir's checkpoint is saved after epoch 2; this log records epoch 1 only.
    expect(table).toContain("note: unnumbered's checkpoint was saved after epoch 2, and its log records epochs up to 1: the log lacks the rest (cut short, or edited)");
  });

  it('an adapter name longer than 32 characters is cut to 32, the last an ellipsis', () => {
    const long = 'NVIDIA H100 80GB HBM3 (Vulkan backend, driver 550.54.15)';
    const onLong = runDir('adapters/long', epochs(0, 1, () => ({ testError: 0.1 })), {}, MODELS['cifar10-small'], { adapter: long });
    const onTest = runDir('adapters/test', epochs(0, 1, () => ({ testError: 0.1 })));
    const lines = comparisonTable(readRuns([onLong, onTest])).split('\n');
    const column = lines[0].split(/\s{2,}/).indexOf('adapter');
    expect(column).toBeGreaterThan(0);
    expect(lines.slice(2, 4).map((l) => l.split(/\s{2,}/)[column])).toEqual(['NVIDIA H100 80GB HBM3 (Vulkan b…', 'test adapter']);
    // Two adapters: their speeds do not compare, and a note says so (one adapter: no note).
    expect(lines).toContain('note: the runs ran on different adapters: their img/s and times do not compare');
    expect(comparisonTable(readRuns([onTest, runDir('adapters/test-again', epochs(0, 1, () => ({ testError: 0.2 })))]))).not.toContain('different adapters');
  });

  it('panels: loss on a log axis; test and validation error in percent, on log axes unless linearError; a validation panel once any run has a split', () => {
    const runs = readRuns([gap, bare]);
    const panels = comparisonPanels(runs);
    expect(panels.map((p) => [p.title, p.logY])).toEqual([['training loss', true], ['test error', true], ['validation error', true]]);
    expect(comparisonPanels(runs, true).map((p) => p.logY)).toEqual([true, false, false]);
    const [, test, val] = panels;
    expect(test.series.map((s) => s.name)).toEqual(['gap', 'bare']);
    [[1, 35], [2, 30], [3, 25]].forEach(([x, y], i) => {
      expect(test.series[0].points[i][0]).toBe(x);
      expect(test.series[0].points[i][1]).toBeCloseTo(y, 9);
    });
    expect(test.series[1].points.map((p) => p[1])).toEqual([60]);
    expect(val.series[0].points.map((p) => p[1])).toEqual([30, 20, 25]);
    expect(val.series[1].points).toEqual([]); // bare has no validation split
    // As many step losses as epochs: the step losses are drawn (only fewer fall back to the epochs' train loss).
    const even = runDir('study/even', [
      { kind: 'step', epoch: 0, step: 0, loss: 5.1, lr: 0.05 },
      { kind: 'epoch', epoch: 1, step: 8, trainLoss: 3.37, trainError: 0.5, lr: 0.05, imgPerSec: 100, seconds: 1, testError: 0.5 },
      { kind: 'step', epoch: 1, step: 8, loss: 4, lr: 0.05 },
      { kind: 'epoch', epoch: 2, step: 16, trainLoss: 2.34, trainError: 0.4, lr: 0.05, imgPerSec: 100, seconds: 1, testError: 0.4 },
    ]);
    expect(comparisonPanels(readRuns([even]))[0].series[0].points).toEqual([[1 / 8, 5.1], [1 + 1 / 8, 4]]);
  });

  it("settingsChanged (a resume record's `changed`): the settings a resume changed, each as [then, now]; one the checkpoint does not say is unknown, not changed", () => {
    const config = MODELS['cifar10-small'];
    const then = { dataset: 'cifar10', model: 'cifar10-small', batchSize: 128, lr: 0.05, epochs: 2, seed: 1 };
    expect(settingsChanged(then, { ...then }, config)).toEqual({});
    // (no momentum saved: a checkpoint from before it; no --test-limit: all the test images)
    expect(settingsChanged(then, { ...then, lr: 0.1, epochs: 4, testLimit: 1000, momentum: 0.8 }, config)).toEqual({ lr: ['0.05', '0.1'], epochs: ['2', '4'], 'test limit': ['all', '1000'] });
  });

  it('nin compare: prints the table and writes the PNG without a GPU; a path without a run is a usage error', async () => {
    // NIN_ADAPTER naming no adapter: any GPU acquisition fails (exit 1, "No WebGPU adapter found"), on any machine.
    const noGpu = { timeout: 60_000, env: { ...process.env, NIN_ADAPTER: 'no-such-adapter' } };
    const out = join(root, 'pictures', 'gap-vs-fc.png');
    const json = join(root, 'pictures', 'gap-vs-fc.json');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'compare', gap, fc, '--out', out, '--json', json, '--title', 'GAP vs FC'], noGpu);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^run\s+head\s+params\s+lr\s+epochs/);
    expect(r.stdout).toContain(`wrote ${out}`);
    // --title: above the panels.
    expect(readFileSync(out)).toEqual(renderComparison(readRuns([gap, fc]), { title: 'GAP vs FC' }));
    expect(readFileSync(out)).not.toEqual(renderComparison(readRuns([gap, fc])));
    // --json: each row as data, every setting (shared ones too), numbers unformatted: the table's.
    const written = JSON.parse(readFileSync(json, 'utf8'));
    expect(written).toEqual(comparisonJson(readRuns([gap, fc])));
    expect(written.overSeeds).toEqual([]); // (one seed each)
    const rows = written.runs;
    expect(rows).toEqual(comparisonRecords(readRuns([gap, fc])));
    expect(rows.map((x: { run: string; settings: { head: string; seed: string }; epochsDone: number; epochsPlanned: number; last: { testError: number }; bestValidation: { epoch: number; testError: number }; imgPerSec: number; trainSeconds: number; stopped: null }) =>
      [x.run, x.settings.head, x.settings.seed, x.epochsDone, x.epochsPlanned, x.last.testError, x.bestValidation.epoch, x.bestValidation.testError, x.imgPerSec, x.trainSeconds, x.stopped])).toEqual([
      ['gap', 'gap', '1', 3, 4, 0.4 - 3 / 20, 2, 0.4 - 2 / 20, 101.5, 180, null], // (the fixture's errors, as computed there)
      ['fc', 'fc', '1', 2, 4, 0.4, 1, 0.45, 101, 120, null],
    ]);
    // A reader that stops early (`nin compare … | head -c 10`): no EPIPE crash, and the PNG is written.
    const piped = join(root, 'pictures', 'piped.png');
    const head = await runAsync('bash', ['-c', `set -o pipefail; "${process.execPath}" --import tsx nin/cli.ts compare "${gap}" "${fc}" --out "${piped}" | head -c 10`], noGpu);
    expect(head.status, head.stderr).toBe(0);
    expect(head.stderr).not.toMatch(/EPIPE|Error/);
    expect(existsSync(piped)).toBe(true);
    const bad = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'compare', gap, join(root, 'nowhere')], noGpu);
    expect(bad.status, bad.stderr).toBe(2);
    expect(bad.stderr).toContain(`nin: ${join(root, 'nowhere')}: no such run directory, log or checkpoint`);
    expect(bad.stderr).not.toMatch(/No WebGPU adapter found/);
    expect(bad.stderr).not.toMatch(/maxDynamic/); // Dawn prints this (on lavapipe) when it enumerates adapters
  });
});
