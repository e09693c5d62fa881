// `nin compare`: several runs side by side, for studies such as the paper's GAP-vs-FC table: one
// line per run (epochs, test error, the best validation epoch, speed) with the settings in which the
// runs differ as columns, and their curves on shared axes in one PNG. Reads only the run
// directories' logs and checkpoint headers: no GPU, no data.

import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BLACK, Canvas, drawPlot, GLYPH_HEIGHT, stepLossWindow, textWidth, trainingCurveSeries, type Series } from './plot.ts';
import { checkpointMetadata, currentHistory, epochsMissing, historyOfCheckpoint, logOfCheckpoint, parseMetricsLog, runIdsOfLog, runLog, unreadableLines, type EpochRecord, type RunProvenance } from './run-directory.ts';
import { describeSchedule } from './schedule.ts';
import { validationFromOf, type ValidationFrom } from './data/split.ts';
import { isImageFolderOptions } from './data/folder.ts';
import { dataLabel } from './datasets.ts';
import { parameterSpecs, parseModelConfig } from './model.ts';
import { counted, fmtTime, imageRate, listSome, tableLines } from './text.ts';
import { fmtBytes } from '../engine/runtime.ts';

/** One run as the comparison reads it. */
export interface RunSummary {
  /** The run directory as given. */
  dir: string;
  /** Its name in the table and the legend: the directory's name (its path where names repeat). */
  label: string;
  /** The absolute path the label is cut from: the directory, or a file named (without extension). */
  labelPath: string;
  /** An image folder's run: the folder, which the dataset column names by as much of its path as
   * tells it from the others', and its training list's digest, which tells whether two runs'
   * folders hold the same images (the same folder moved, or reached by a link, has another path). */
  folderDir?: string;
  folderList?: string;
  /** Settings from the run's checkpoint header (empty if it has none): see SETTINGS. */
  settings: Record<string, string>;
  /** Its network config as the header holds it (JSON), to tell two networks of one name apart. */
  network?: string;
  /** The run's log as it now stands, from its first epoch (currentHistory of runLog: a run forked
   * from another directory's run includes that run's history up to the fork). */
  records: object[];
  epochs: EpochRecord[];
  /** The epochs the run's schedule spans (from its options), if known. */
  epochsPlanned: number | null;
  /** The run's schedule: the plateau schedule's `epochs` is a cap, and it may have ended the run. */
  plateau: { finished: boolean } | null;
  /** The epoch its checkpoint was saved after, where it has one. */
  checkpointEpoch?: number;
}

/** The settings compared, in the table's order: [column, how to read it from the checkpoint header]. */
const SETTINGS: [string, (options: Record<string, unknown>, config: Record<string, unknown>, header: Record<string, string>, epochs: EpochRecord[]) => unknown][] = [
  // An image folder's run: which folder (runs on two folders differ in it).
  ['dataset', (o) => (isImageFolderOptions(o.imageFolder) ? dataLabel({ dataset: 'folder', imageFolder: o.imageFolder }) : o.dataset)],
  ['model', (o) => o.model],
  // A folder's run may be fitted to another size (--image-size), or take another number of channels.
  ['input (h×w×c)', (_, c) => { const i = c.input as { height?: unknown; width?: unknown; channels?: unknown } | undefined; const dims = i ? [i.height, i.width, i.channels] : []; return dims.length && dims.every((d) => typeof d === 'number') ? dims.join('×') : undefined; }],
  ['head', (_, c) => c.head],
  ['init', (_, c) => c.init],
  // Only where a run started from another's weights (the others show '–'); a resume keeps the record.
  ['weights from', (o) => (typeof o.weightsFrom === 'string' ? `${basename(dirname(o.weightsFrom))}/${basename(o.weightsFrom)}` : undefined)],
  ['class maps', (_, c) => { const last = layersOf(c).at(-1); return last?.type === 'mlpconv' ? (last.linearOut ? 'linear' : 'relu') : undefined; }],
  // Between the blocks; an fc-dropout head's own dropout (0.5, before the FC layer) is said beside it.
  ['dropout', (_, c) => { const p = layersOf(c).find((l) => l.type === 'dropout')?.p ?? (layersOf(c).length ? 0 : undefined); return typeof p === 'number' && c.head === 'fc-dropout' ? `${p}, FC 0.5` : p; }],
  // The paper's GAP-vs-FC argument is about parameters (an FC head's); and two `--config` networks
  // of one name may differ in their widths.
  ['params', (_, c) => parameterCount(c)],
  ['batch', (o) => o.batchSize],
  ['lr', (o) => o.lr],
  ['schedule', (o) => describeSchedule(o)],
  ['warm-up', (o) => o.warmupEpochs],
  ['momentum', (o) => o.momentum],
  ['weight decay', (o) => o.weightDecay],
  ['class lr mult', (o) => (o.lr === undefined ? undefined : (o.classLrMult ?? 1))],
  ['aug', (o) => (o.augment === undefined ? undefined : o.augment ? 'on' : 'off')],
  ['preprocess', (o) => o.preprocess],
  ['train limit', (o) => o.trainLimit ?? 'all'],
  // As the last epoch evaluated them (--test-limit, or a partial test file); logs from before
  // session 31 do not say.
  ['test images', (_, __, ___, epochs) => epochs.filter((e) => typeof e.testImages === 'number').at(-1)?.testImages],
  ['val', (o) => describeValidation(o)],
  ['seed', (o) => o.seed],
  ['adapter', (_, __, h) => h.adapter],
];

/**
 * The settings (named as the table's columns, and `epochs` and `test limit`) in which run options
 * `now` differ from `then` on one network `config`, each as [then, now]: what a resume changed, for
 * its record (nin/train.ts; resumeClashes refuses the settings that fix the run, so these are the
 * training settings). A setting `then` lacks (a checkpoint from before it) is unknown, not changed.
 */
export function settingsChanged(then: object, now: object, config: object): Record<string, [string, string]> {
  const readers: [string, (o: Record<string, unknown>) => unknown][] = [
    ...SETTINGS.map(([name, read]): [string, (o: Record<string, unknown>) => unknown] => [name, (o) => read(o, config as Record<string, unknown>, {}, [])]),
    ['epochs', (o) => o.epochs],
    ['test limit', (o) => o.testLimit ?? 'all'],
  ];
  const changed: Record<string, [string, string]> = {};
  for (const [name, read] of readers) {
    const was = read(then as Record<string, unknown>);
    if (was === undefined || was === null) continue;
    const [a, b] = [String(was), String(read(now as Record<string, unknown>))];
    if (a !== b) changed[name] = [a, b];
  }
  return changed;
}

/** A run's `--val` and where its images came from: '5000 (random, by seed)', '5000 (random, split seed 7)', 'paper (end)'; SVHN's paper split as saved (with its split seed, if given), or none. */
function describeValidation(o: Record<string, unknown>): unknown {
  const { validation, dataset } = o;
  if (typeof dataset !== 'string' || !(validation === 'paper' || typeof validation === 'number')) return validation;
  const from = validationFromOf({ validation, dataset, validationFrom: o.validationFrom as ValidationFrom | undefined }, true);
  // Drawn at random by the run's seed (runs of other seeds hold out other images), or by its --split-seed.
  const drawn = typeof o.splitSeed === 'number' ? `random, split seed ${o.splitSeed}` : 'random, by seed';
  if (!from) return typeof o.splitSeed === 'number' && validation === 'paper' ? `paper (split seed ${o.splitSeed})` : validation; // SVHN's quotas
  return `${validation} (${from === 'random' ? drawn : from})`;
}

/** A path given to compare that names no run (nothing there, no log, not a checkpoint), or a run
 * named twice: `nin compare` says so as a usage error. */
export class RunNotComparable extends Error {
  override name = 'RunNotComparable';
}

/** Reads a run directory (or its metrics.jsonl); a log or checkpoint moved aside in one
 * (`metrics.superseded*.jsonl`, `*.superseded*.safetensors`) is that run, not the directory's
 * current one. Throws RunNotComparable naming the path if it holds no log. */
export function readRun(path: string): RunSummary {
  if (!existsSync(path)) throw new RunNotComparable(`${path}: no such run directory, log or checkpoint`);
  const isFile = statSync(path).isFile();
  const dir = isFile ? dirname(path) : path;
  if (isFile && basename(path) !== 'metrics.jsonl') return readRunFile(path, dir);
  const log = join(dir, 'metrics.jsonl');
  if (!existsSync(log)) throw new RunNotComparable(`${path}: no run there (no ${log})`);
  const records = runLog(dir); // (none where its own log holds none: its parents are found through its own resume record)
  // (a log written over by something else: shown as a run of no epochs, silently, before)
  if (records.length === 0 && statSync(log).size > 0) throw new RunNotComparable(`${log}: holds no log records: not a run's log, or damaged`);
  return summarise(dir, resolve(dir), currentHistory(records), runCheckpointMetadata(dir));
}

/** A run named by one of its files: a log (read as its directory's own, with its parents) or a
 * checkpoint (its history as visualize draws it, historyOfCheckpoint, from the log of its run). */
function readRunFile(path: string, dir: string): RunSummary {
  const labelPath = resolve(path).replace(/\.(jsonl|safetensors)$/, '');
  if (path.endsWith('.jsonl')) {
    const own = parseMetricsLog(readFileSync(path, 'utf8'));
    const history = currentHistory(runLog(dir, own, path));
    // Its settings: the latest save in that directory by its run (the last id it names) and by the
    // stretch its history ends in (a stretch a resume replaced may have kept a later save aside), a
    // checkpoint before a best file, as a directory's are read; else its log's own (summarise).
    const run = runIdsOfLog(own).at(-1);
    const stretch = (history as { kind?: string; stretch?: unknown }[]).filter((r) => r.kind === 'start' || r.kind === 'resume').at(-1)?.stretch;
    const saves = run === undefined ? [] : readdirSync(dir).filter((n) => n.endsWith('.safetensors'))
      .map((n) => ({ n, m: checkpointMetadata(join(dir, n)) }))
      .filter((x): x is { n: string; m: Record<string, string> } => x.m?.run_id === run && (typeof stretch !== 'string' || x.m.stretch === stretch))
      .sort((a, b) => Number(b.n.startsWith('checkpoint')) - Number(a.n.startsWith('checkpoint')) || Number(b.m.step) - Number(a.m.step));
    const header = saves[0]?.m ?? null;
    return summarise(dir, labelPath, history, header);
  }
  if (!path.endsWith('.safetensors')) throw new RunNotComparable(`${path}: not a run directory, a run's log (.jsonl) or a checkpoint (.safetensors)`);
  const header = checkpointMetadata(path);
  if (!header) throw new RunNotComparable(`${path}: not a checkpoint`);
  const log = logOfCheckpoint(dir, header.run_id ?? null);
  if (!log) throw new RunNotComparable(`${path}: no log of its run beside it (metrics.jsonl, or a metrics.superseded*.jsonl)`);
  return summarise(dir, labelPath, historyOfCheckpoint(log, { stretch: header.stretch ?? null, epoch: Number(header.epoch), step: Number(header.step) }), header);
}

function summarise(dir: string, labelPath: string, records: object[], checkpoint: Record<string, string> | null): RunSummary {
  // Without a checkpoint (a run stopped before its first save), the settings its log's last start
  // or resume record gives (RunProvenance), in a checkpoint header's form.
  const provenance = (records as { kind?: string; provenance?: RunProvenance }[]).filter((r) => (r.kind === 'start' || r.kind === 'resume') && r.provenance).at(-1)?.provenance;
  const header = checkpoint ?? (provenance ? { options: JSON.stringify(provenance.options), config: JSON.stringify(provenance.config), adapter: provenance.adapter } : null);
  const epochs = records.filter((r): r is EpochRecord => (r as { kind?: unknown }).kind === 'epoch' && typeof (r as { epoch?: unknown }).epoch === 'number');
  const settings: Record<string, string> = {};
  let epochsPlanned: number | null = null;
  let plateau: RunSummary['plateau'] = null;
  let folderDir: string | undefined;
  let folderList: string | undefined;
  let network: string | undefined;
  if (header) {
    const options = parseObject(header.options);
    if (isImageFolderOptions(options.imageFolder)) [folderDir, folderList] = [resolve(options.imageFolder.dir), `${options.imageFolder.classNames.join('\0')}\n${options.imageFolder.trainList}`];
    const config = parseObject(header.config);
    for (const [key, read] of SETTINGS) {
      const v = read(options, config, header, epochs);
      // (a value of another type, in a damaged or hand-edited header, is left out as a missing one is)
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') settings[key] = String(v);
    }
    if (header.config !== undefined) network = JSON.stringify(config);
    if (typeof options.epochs === 'number') epochsPlanned = options.epochs;
    if (options.schedule === 'plateau') plateau = { finished: parseObject(header.plateau).finished === true };
  }
  const checkpointEpoch = /^\d+$/.test(checkpoint?.epoch ?? '') ? Number(checkpoint!.epoch) : undefined;
  return { dir, labelPath, label: basename(labelPath), settings, network, records, epochs, epochsPlanned, plateau, folderDir, folderList, ...(checkpointEpoch !== undefined ? { checkpointEpoch } : {}) };
}

/** The runs of `paths`, labelled by directory name, or where two names are the same by the fewest
 * trailing path parts that tell the run from every other (`gap/run`, `fc/run`: a long path cut
 * to fit the legend would lose the part that differs). Throws RunNotComparable naming both paths
 * where two name one run. */
export function readRuns(paths: string[]): RunSummary[] {
  const runs = paths.map(readRun);
  // The same run twice would draw one curve over the other and repeat its row. Any of its paths
  // names it: its directory, its log, or a checkpoint on its line (drawn as the run as it stands,
  // not up to its epoch: `best` beside the directory was the same row twice). The same history in
  // the same directory is the same run; a run moved aside, or a line it left, has another history.
  const identities = runs.map((r) => `${realpathSync(r.dir)}\0${JSON.stringify(r.records)}`);
  identities.forEach((id, i) => {
    const first = identities.indexOf(id);
    if (first === i) return;
    const checkpoint = [paths[first], paths[i]].some((p) => p.endsWith('.safetensors'));
    throw new RunNotComparable(`${paths[i]} is the run ${paths[first]} is: give each run once${checkpoint ? ' (a checkpoint on a run\'s line stands for the whole run, as visualize draws it)' : ''}`);
  });
  // (resolved: `.` and `..` are named by the directories they stand for)
  distinctTails(runs.map((r) => r.labelPath)).forEach((label, i) => (runs[i].label = label));
  // Image folders likewise: two folders named alike (a/images, b/images) are different data sets.
  const folders = runs.filter((r) => r.folderDir !== undefined);
  distinctTails(folders.map((r) => r.folderDir!)).forEach((label, i) => (folders[i].settings.dataset = `folder ${label}`));
  return runs;
}

/** Each path's fewest trailing parts that tell it from every other path (the same path: the same). */
function distinctTails(paths: string[]): string[] {
  const parts = paths.map((p) => p.split(sep).filter(Boolean));
  const tail = (p: string[], k: number) => p.slice(-k).join('/');
  return parts.map((mine, i) => {
    let k = 1;
    while (k < mine.length && parts.some((p, j) => paths[j] !== paths[i] && tail(p, k) === tail(mine, k))) k++;
    return tail(mine, k);
  });
}


/** The network's parameter count, with thousands separated; undefined where its config does not plan. */
function parameterCount(config: Record<string, unknown>): string | undefined {
  try {
    return parameterSpecs(parseModelConfig(config, 'config')).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0).toLocaleString('en-US');
  } catch {
    return undefined;
  }
}

/** A header config's layers; none where they are not a list of objects (a damaged header). */
function layersOf(config: Record<string, unknown>): { type?: unknown; linearOut?: unknown; p?: unknown }[] {
  return Array.isArray(config.layers) && config.layers.every((l) => typeof l === 'object' && l !== null) ? config.layers : [];
}

/** The metadata of a run directory's checkpoint, else of its best one; null where it has neither. */
function runCheckpointMetadata(dir: string): Record<string, string> | null {
  return checkpointMetadata(join(dir, 'checkpoint.safetensors')) ?? checkpointMetadata(join(dir, 'best.safetensors'));
}

function parseObject(json: string | undefined): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json ?? '');
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const loss = (l: number | null | undefined) => (typeof l === 'number' && Number.isFinite(l) ? l.toFixed(4) : '–');
const percent = (e: number | null | undefined) => (typeof e === 'number' && Number.isFinite(e) ? `${(100 * e).toFixed(2)}%` : '–');

function median(values: number[]): number | null {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null;
}

/** The run's epochs for its speed: those that did not start a process (the first epoch after a
 * start or resume record compiles the process's kernels: 10–20 s on lavapipe, against epochs of
 * a minute in a short study), unless no other is left. */
export function steadyEpochs(run: RunSummary): EpochRecord[] {
  const steady: EpochRecord[] = [];
  let first = true;
  for (const rec of run.records) {
    const kind = (rec as { kind?: unknown }).kind;
    if (kind === 'start' || kind === 'resume') first = true;
    else if (kind === 'epoch' && run.epochs.includes(rec as EpochRecord)) {
      if (!first) steady.push(rec as EpochRecord);
      first = false;
    }
  }
  return steady.length ? steady : run.epochs;
}

/** The epoch of lowest validation error (the first, on ties), if the run has a validation split. */
export function bestValidationEpoch(run: RunSummary): EpochRecord | null {
  let best: EpochRecord | null = null;
  for (const e of run.epochs) if (typeof e.valError === 'number' && (!best || e.valError < best.valError!)) best = e;
  return best;
}

/** A run's row of the comparison as data (`nin compare --json`): every setting known (not only
 * those that differ), the numbers unformatted, and where the run stopped learning. */
export interface ComparisonRecord {
  run: string;
  dir: string;
  settings: Record<string, string>;
  epochsDone: number;
  epochsPlanned: number | null;
  last: { trainLoss?: number; testLoss?: number; testError?: number; valError?: number } | null;
  bestValidation: { epoch: number; valError: number; testError?: number } | null;
  imgPerSec: number | null;
  trainSeconds: number;
  /** The most the engine's GPU buffers held at once in any epoch (null: a log from before session 42). */
  gpuPeakBytes: number | null;
  stopped: { step: number; reason: string } | null;
  /** A history that starts at a resume (epochsMissing): the epochs before it, missing from the rest (0: none). */
  epochsMissing: number;
}

/** The most the run's GPU buffers held at once, over its epochs' records; null where none says. */
function gpuPeak(r: RunSummary): number | null {
  const peaks = r.epochs.map((e) => e.gpuPeakBytes).filter((b): b is number => typeof b === 'number');
  return peaks.length ? Math.max(...peaks) : null;
}

/** Where the run stopped learning (a NaN loss, dead class maps), as its log's last record says; else null. */
function stoppedAt(r: RunSummary): { step: number; reason: string } | null {
  const end = r.records.at(-1) as { kind?: string; step?: number; reason?: unknown } | undefined;
  return end?.kind === 'stopped' ? { step: Number(end.step), reason: String(end.reason) } : null;
}

/** The comparison's rows as data, for a script to aggregate (over seeds, say) without parsing the table. */
export function comparisonRecords(runs: RunSummary[]): ComparisonRecord[] {
  return runs.map((r) => {
    const last = r.epochs.at(-1);
    const best = bestValidationEpoch(r);
    const finite = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    return {
      run: r.label,
      dir: resolve(r.dir),
      settings: r.settings,
      epochsDone: last?.epoch ?? 0,
      epochsPlanned: r.epochsPlanned,
      last: last ? { trainLoss: finite(last.trainLoss), testLoss: finite(last.testLoss), testError: finite(last.testError), valError: finite(last.valError) } : null,
      bestValidation: best ? { epoch: best.epoch, valError: best.valError!, testError: finite(best.testError) } : null,
      imgPerSec: median(steadyEpochs(r).map((e) => e.imgPerSec)),
      trainSeconds: r.epochs.reduce((s, e) => s + (Number.isFinite(e.seconds) ? e.seconds : 0), 0),
      gpuPeakBytes: gpuPeak(r),
      stopped: stoppedAt(r),
      epochsMissing: epochsMissing(r.records),
    };
  });
}

/**
 * The comparison as text: a table with one row per run (settings that differ between the runs,
 * then epochs done, the last epoch's train and test loss, final test error, the best validation
 * epoch with its test error, median img/s (steadyEpochs) and training time: the epochs' seconds
 * as their lines report them, saves within an epoch included, evaluation, end-of-epoch saves and
 * loading not) and, where a log has it, the most GPU memory the run held; followed by the
 * settings all runs share, and notes (historyNote: a fork, or settings a resume changed), and the
 * runs over their seeds (seedTable). Test error is read at the last epoch and at the best validation
 * epoch, not at its own minimum (that would pick on the test set).
 */
export function comparisonTable(runs: RunSummary[]): string {
  const { known, differs, shared } = settingColumns(runs);
  const withVal = runs.some((r) => bestValidationEpoch(r) !== null);
  const withMemory = runs.some((r) => gpuPeak(r) !== null);
  // The last epoch's losses beside its error: a gap between them tells of overfitting (the paper's FC head).
  const header = ['run', ...differs, 'epochs', 'train loss', 'test loss', 'test error', ...(withVal ? ['best val (epoch)', 'test there'] : []), 'img/s', 'train time', ...(withMemory ? ['GPU memory'] : [])];
  const rows = runs.map((r) => {
    const last = r.epochs.at(-1);
    const best = bestValidationEpoch(r);
    const rate = median(steadyEpochs(r).map((e) => e.imgPerSec));
    const seconds = r.epochs.reduce((s, e) => s + (Number.isFinite(e.seconds) ? e.seconds : 0), 0);
    const peak = gpuPeak(r);
    return [
      r.label,
      ...differs.map((k) => (k in r.settings ? (k === 'adapter' ? shorten(r.settings[k], 32) : r.settings[k]) : known.includes(r) ? '–' : '?')),
      epochsDone(r),
      loss(last?.trainLoss),
      loss(last?.testLoss),
      percent(last?.testError),
      ...(withVal ? [best ? `${percent(best.valError)} (${best.epoch})` : '–', percent(best?.testError)] : []),
      rate === null ? '–' : imageRate(rate),
      seconds > 0 ? fmtTime(seconds) : '–',
      ...(withMemory ? [peak === null ? '–' : fmtBytes(peak)] : []),
    ];
  });
  // In terminal columns: a run or folder may be named in CJK.
  const out = tableLines(header, rows);
  if (shared.length && known.length) out.push('', `same in all${known.length < runs.length ? ' with known settings' : ''}: ${shared.map((k) => `${k} ${known[0].settings[k]}`).join(', ')}`);
  const unknown = runs.filter((r) => Object.keys(r.settings).length === 0).map((r) => r.label);
  if (unknown.length) out.push(`no checkpoint, nor a log record of its settings (written from session 40 on), to read the settings from: ${unknown.join(', ')}`);
  // Image folders are the same data set where they list the same images in the same classes, whatever their paths.
  const datasets = new Map<string, string>();
  for (const r of runs) if (r.settings.dataset) datasets.set(r.folderList ?? r.settings.dataset, r.settings.dataset);
  if (datasets.size > 1) out.push(`note: the runs are on different data sets (${[...new Set(datasets.values())].join(', ')}): their errors do not compare`);
  for (const r of runs) {
    const sizes = [...new Set(r.epochs.map((e) => e.testImages).filter((n) => typeof n === 'number'))];
    if (sizes.length > 1) out.push(`note: ${r.label}'s test set changed during the run (${sizes.join(', ')} images): its test error curve mixes them`);
  }
  for (const r of runs) {
    const history = historyNote(r, runs);
    if (history) out.push(`note: ${history}`);
  }
  for (const r of runs) for (const line of logNotes(r)) out.push(`note: ${line}`);
  // A run that stopped learning (a NaN loss, dead class maps), as its log says: its row is where it stopped.
  for (const r of runs) {
    const stopped = stoppedAt(r);
    if (stopped) out.push(`note: ${r.label} stopped at step ${stopped.step}: ${stopped.reason.split('; last good checkpoint')[0]}`);
  }
  // A `--config` network edited and trained again keeps its name: the model column would not tell.
  const byName = new Map<string, RunSummary[]>();
  for (const r of runs) if (r.network !== undefined && r.settings.model !== undefined) byName.set(r.settings.model, [...(byName.get(r.settings.model) ?? []), r]);
  for (const [name, same] of byName) {
    const note = networksNote(name, same);
    if (note) out.push(`note: ${note}`);
  }
  const adapters = new Set(runs.map((r) => r.settings.adapter).filter(Boolean));
  if (adapters.size > 1) out.push('note: the runs ran on different adapters: their img/s and times do not compare');
  const overSeeds = seedTable(known, differs, withVal);
  if (overSeeds.length) out.push('', ...overSeeds);
  return out.join('\n');
}

/** Runs that differ only in their seed: one setting's repeats, as a study reports them. */
interface SeedGroup { settings: string[]; runs: RunSummary[]; counted: RunSummary[] }

/** Groups runs with known settings by every setting that differs between them but the seed (a
 * random validation split differs with the seed but reads the same), and by the epochs their
 * schedule spans (a cosine over 2 epochs is another schedule than over 1, though the schedule
 * reads 'cosine' in both: such runs were averaged as repeats); none where the seeds do not differ
 * or no group holds two runs. Only runs that reached their group's last epoch count: a run stopped
 * early (a NaN loss) or still running would mix another epoch's error in. */
function seedGroups(runs: RunSummary[], differs: string[]): SeedGroup[] {
  if (!differs.includes('seed')) return [];
  const keys = differs.filter((k) => k !== 'seed');
  const groups = new Map<string, SeedGroup>();
  for (const r of runs) {
    const settings = keys.map((k) => r.settings[k] ?? '–');
    const key = [...settings, r.epochsPlanned ?? '–'].join('\0');
    if (!groups.has(key)) groups.set(key, { settings, runs: [], counted: [] });
    groups.get(key)!.runs.push(r);
  }
  if (![...groups.values()].some((g) => g.runs.length > 1)) return [];
  for (const g of groups.values()) {
    const last = Math.max(...g.runs.map((r) => r.epochs.at(-1)?.epoch ?? 0));
    g.counted = g.runs.filter((r) => (r.epochs.at(-1)?.epoch ?? 0) === last && last > 0);
  }
  return [...groups.values()];
}

interface MeanAndSd { mean: number; sd: number | null; min: number; max: number; n: number }

/** Mean and sample standard deviation (n − 1; null for one value) of the finite values, or null where none is. */
function meanAndSd(values: (number | null | undefined)[]): MeanAndSd | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : null;
  return { mean, sd, min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** A group of runs that differ only in their seed (seedGroups), summarised. */
export interface SeedSummary {
  /** The settings the group has, of those that differ between the runs compared (the seed left out). */
  settings: Record<string, string>;
  /** The group's runs, and those counted: the ones that reached the group's last epoch. */
  runs: string[];
  counted: string[];
  /** The counted runs' seeds, the epoch they reached, and the epochs their schedule spans (null: not known). */
  seeds: string[];
  epochs: number | null;
  epochsPlanned: number | null;
  /** Over the counted runs, the last epoch's test error and loss; with validation, the best
   * validation error and the test error at it: mean, sample sd (null for one run), min, max, n. */
  testError: MeanAndSd | null;
  testLoss: MeanAndSd | null;
  bestValError: MeanAndSd | null;
  testErrorAtBestVal: MeanAndSd | null;
  /** The group's runs left out of the means, each with why (stopped at a step, or fewer epochs). */
  leftOut: { run: string; why: string }[];
}

/** Each group of runs that differ only in their seed (seedGroups), with its means over the runs counted. */
function seedSummaries(runs: RunSummary[], differs: string[]): SeedSummary[] {
  const keys = differs.filter((k) => k !== 'seed');
  return seedGroups(runs, differs).map((g) => summariseSeedGroup(g, keys));
}

function summariseSeedGroup(g: SeedGroup, keys: string[]): SeedSummary {
  const c = g.counted;
  const bests = c.map(bestValidationEpoch);
  const why = (r: RunSummary) => {
    const stopped = stoppedAt(r);
    return stopped ? `stopped at step ${stopped.step}` : counted(r.epochs.at(-1)?.epoch ?? 0, 'epoch');
  };
  return {
    settings: Object.fromEntries(keys.map((k, i) => [k, g.settings[i]])),
    runs: g.runs.map((r) => r.label),
    counted: c.map((r) => r.label),
    seeds: c.map((r) => r.settings.seed ?? '?'),
    epochs: c.length ? (c[0].epochs.at(-1)?.epoch ?? null) : null,
    epochsPlanned: g.runs[0].epochsPlanned,
    testError: meanAndSd(c.map((r) => r.epochs.at(-1)?.testError)),
    testLoss: meanAndSd(c.map((r) => r.epochs.at(-1)?.testLoss)),
    bestValError: meanAndSd(bests.map((b) => b?.valError)),
    testErrorAtBestVal: meanAndSd(bests.map((b) => b?.testError)),
    leftOut: g.runs.filter((r) => !c.includes(r)).map((r) => ({ run: r.label, why: why(r) })),
  };
}

/** The table's runs over their seeds (seedGroups, summariseSeedGroup): per group, the runs
 * counted and their seeds, the epochs, the last test error's mean ± sample sd and range, the last
 * test loss's mean and, with validation, the mean of the best validation error and of the test
 * error there. */
function seedTable(runs: RunSummary[], differs: string[], withVal: boolean): string[] {
  const groups = seedGroups(runs, differs);
  if (!groups.length) return [];
  const keys = differs.filter((k) => k !== 'seed');
  const pct = (m: MeanAndSd | null) => (m === null ? '–' : `${(100 * m.mean).toFixed(2)}${m.sd === null ? '' : ` ± ${(100 * m.sd).toFixed(2)}`}%`);
  const range = (m: MeanAndSd | null) => (m === null || m.n < 2 ? '–' : `${(100 * m.min).toFixed(2)}–${(100 * m.max).toFixed(2)}%`);
  // Groups told apart by their planned epochs alone (seedGroups) get a column of them.
  const byPlan = new Set(groups.map((g) => g.runs[0].epochsPlanned)).size > 1;
  const label = [...keys, ...(byPlan ? ['planned epochs'] : [])];
  const header = [...(label.length ? label : ['group']), 'runs', 'seeds', 'epochs', 'test error', 'min–max', 'test loss', ...(withVal ? ['best val', 'test there'] : [])];
  const summaries = groups.map((g) => summariseSeedGroup(g, keys));
  const rows = summaries.map((m, i) => [
    ...(label.length ? [...groups[i].settings, ...(byPlan ? [String(m.epochsPlanned ?? '–')] : [])] : ['all']),
    m.counted.length === m.runs.length ? String(m.counted.length) : `${m.counted.length} of ${m.runs.length}`,
    m.seeds.join(','),
    groups[i].counted.length ? epochsDone(groups[i].counted[0]) : '–',
    pct(m.testError),
    range(m.testError),
    m.testLoss === null ? '–' : m.testLoss.mean.toFixed(4),
    ...(withVal ? [pct(m.bestValError), pct(m.testErrorAtBestVal)] : []),
  ]);
  const out = ['over seeds (the runs that differ only in their seed; mean ± sample standard deviation):', ...tableLines(header, rows, Math.max(label.length, 1))];
  for (const m of summaries) {
    const left = m.leftOut;
    if (left.length) out.push(`note: over seeds, ${left.map((l) => `${l.run} (${l.why})`).join(', ')} ${left.length === 1 ? 'is' : 'are'} left out: ${left.length === 1 ? 'it' : 'they'} did not reach ${m.epochs !== null ? `epoch ${m.epochs}` : 'an epoch'}, as the others did`);
  }
  return out;
}

/** The settings columns: the settings any run has, those that differ between the runs with known
 * settings, and those all of them share. */
function settingColumns(runs: RunSummary[]): { known: RunSummary[]; differs: string[]; shared: string[] } {
  const keys = SETTINGS.map(([k]) => k).filter((k) => runs.some((r) => k in r.settings));
  const known = runs.filter((r) => Object.keys(r.settings).length > 0);
  const differs = keys.filter((k) => new Set(known.map((r) => r.settings[k] ?? '–')).size > 1);
  return { known, differs, shared: keys.filter((k) => !differs.includes(k)) };
}

/** `nin compare --json`: each run's row (comparisonRecords) and the over-seeds groups (seedSummaries). */
export function comparisonJson(runs: RunSummary[]): { runs: ComparisonRecord[]; overSeeds: SeedSummary[] } {
  const { known, differs } = settingColumns(runs);
  return { runs: comparisonRecords(runs), overSeeds: seedSummaries(known, differs) };
}

/** The columns that tell one network from another. */
const NETWORK_COLUMNS = ['input (h×w×c)', 'head', 'init', 'class maps', 'dropout', 'params'];

/** Where runs naming their network `name` do not all have one network: which of them share one
 * (runs of one network, among others of another, were named as differing too), and where the
 * table's columns do not tell two of the networks apart, that they differ in their layers. */
function networksNote(name: string, runs: RunSummary[]): string | null {
  const groups = new Map<string, RunSummary[]>();
  for (const r of runs) groups.set(r.network!, [...(groups.get(r.network!) ?? []), r]);
  if (groups.size < 2) return null;
  // One network but for what train's flags set on it, which the columns show: a GAP-vs-FC study.
  if (new Set(runs.map((r) => withoutFlagSettings(r.network!))).size === 1) return null;
  const all = [...groups.values()];
  // Networks alike in every column: which (by a run of each), unless that is all of them.
  const alike = new Map<string, RunSummary[]>();
  for (const g of all) {
    const key = NETWORK_COLUMNS.map((k) => g[0].settings[k] ?? '–').join('\0');
    alike.set(key, [...(alike.get(key) ?? []), g[0]]);
  }
  const hidden = [...alike.values()].filter((a) => a.length > 1);
  const whose = (a: RunSummary[]) => `${a.slice(0, -1).map((r) => `${r.label}'s`).join(', ')} and ${a.at(-1)!.label}'s`;
  const unseen = hidden.length === 0 ? '' : ` (${alike.size === 1 ? '' : `${hidden.map(whose).join('; ')} `}in their layers, not in their parameter count)`;
  const labels = (g: RunSummary[]) => g.map((r) => r.label).join(', ');
  const named = `${labels(runs)} name their network ${name}`;
  if (all.every((g) => g.length === 1)) return `${named}, but the networks differ${unseen}`;
  // Each group of runs that share a network, then the runs whose network no other has.
  const and = (g: RunSummary[]) => `${labels(g.slice(0, -1))} and ${g.at(-1)!.label}`;
  const shared = all.filter((g) => g.length > 1).map((g, i) => `${and(g)} share ${i === 0 ? 'one' : 'another'}`);
  const alone = all.filter((g) => g.length === 1).flat();
  const own = alone.length === 0 ? [] : [alone.length === 1 ? `${alone[0].label} has its own` : `${and(alone)} each have their own`];
  return `${named}, but not one network: ${[...shared, ...own].join('; ')}${unseen}`;
}

/** A network (its config as JSON) without what `--head`, `--init`, `--class-maps` and `--dropout` set on it. */
function withoutFlagSettings(network: string): string {
  const { head: _head, init: _init, initStd: _initStd, ...rest } = parseObject(network);
  const layers = layersOf(rest).map((l) => {
    const { linearOut: _linearOut, p: _p, ...layer } = l as Record<string, unknown>;
    return layer;
  });
  return JSON.stringify({ ...rest, layers });
}

/**
 * What is amiss in a run's log, which a crash, an edit or a sync tool can leave (a helper's damaged
 * logs gave `2/1` epochs, or the last of two epoch-1 records, without a word): lines of its own
 * metrics.jsonl that hold no record, and epochs that do not follow one another in its history.
 */
function logNotes(r: RunSummary): string[] {
  const notes: string[] = [];
  const own = join(r.dir, 'metrics.jsonl');
  const bad = existsSync(own) ? unreadableLines(readFileSync(own, 'utf8')) : [];
  if (bad.length) notes.push(`${r.label}'s log ${own} has ${counted(bad.length, 'line')} that hold${bad.length === 1 ? 's' : ''} no record (${listSome(bad.map(String))}): skipped`);
  const malformed = r.records.filter((rec) => (rec as { kind?: unknown }).kind === 'epoch' && typeof (rec as { epoch?: unknown }).epoch !== 'number').length;
  if (malformed) notes.push(`${r.label}'s log has ${counted(malformed, 'epoch record')} without an epoch number: skipped`);
  const numbers = r.epochs.map((e) => e.epoch);
  if (numbers.some((e, i) => i > 0 && e !== numbers[i - 1] + 1)) notes.push(`${r.label}'s log has its epochs out of order or twice (${listSome(numbers.map(String), 10)}): its row reads them as they stand`);
  const logged = numbers.length ? Math.max(...numbers) : 0;
  if (r.checkpointEpoch !== undefined && r.checkpointEpoch > logged) notes.push(`${r.label}'s checkpoint was saved after epoch ${r.checkpointEpoch}, and its log records ${logged ? `epochs up to ${logged}` : 'none'}: the log lacks the rest (cut short, or edited)`);
  return notes;
}

/** Whether a resume record from before they said `inEpoch` resumed at an epoch's end: its step is
 * where its epoch's record says that epoch ended, or (where the log before it is not there) a whole
 * number of epochs of its stepsPerEpoch, which is the new stretch's: a resume at an epoch's end may
 * change the batch size. */
function resumedAtEpochEnd(r: RunSummary, e: { epoch: number; step: number; stepsPerEpoch?: number }): boolean {
  if (r.epochs.some((x) => x.epoch === e.epoch && x.step === e.step)) return true;
  return e.stepsPerEpoch === undefined || e.step === e.epoch * e.stepsPerEpoch;
}

/** A run's history where its settings above do not hold for all of it: forked from another run
 * (its first epochs, and their curves, are that run's), or resumed with other settings. Null
 * where neither (or in logs from before resumes recorded their changes: forks only). */
function historyNote(r: RunSummary, runs: RunSummary[]): string | null {
  type Resume = { kind: 'resume'; parent?: string | null; from?: string; epoch: number; step: number; inEpoch?: number; stepsPerEpoch?: number; changed?: Record<string, [string, string]> };
  const resumes = r.records.filter((x): x is Resume => (x as { kind?: unknown }).kind === 'resume');
  const missing = epochsMissing(r.records);
  let changedSome = false;
  const events = resumes.flatMap((e) => {
    const fork = e.parent !== undefined; // null: forked from a checkpoint saved without a run id
    const changes = Object.entries(e.changed ?? {}).map(([k, [then, now]]) => `${k} ${then} → ${now}`);
    const startsHistory = e === r.records[0] && missing > 0;
    if (!fork && !changes.length && !startsHistory) return [];
    changedSome ||= changes.length > 0;
    const parentDir = typeof e.from === 'string' ? dirname(e.from) : null;
    const parent = parentDir === null ? 'another run' : (runs.find((o) => resolve(o.dir) === parentDir)?.label ?? basename(parentDir));
    const whole = e.inEpoch !== undefined ? e.inEpoch === 0 : resumedAtEpochEnd(r, e);
    const when = whole ? `after epoch ${e.epoch}` : `at step ${e.step}, in epoch ${e.epoch + 1}`;
    // The history starts at this record: its parent's log, or its own log before it, not found.
    const whose = fork ? `, whose log was not found${parentDir === null ? '' : ` (${parentDir})`}` : ', its log before that not found';
    const lost = startsHistory ? `${whose}: its epochs 1–${missing} are missing from its row and curves (best validation, img/s and time are of epochs ${missing + 1} on)` : '';
    return [`${fork ? `forked from ${parent}` : 'resumed'} ${when}${lost}${changes.length ? ` with ${changes.join(', ')}` : ''}`];
  });
  if (!events.length) return null;
  const before = missing > 0 ? '' : ` (its epochs before are ${events.length === 1 ? 'that run\'s' : 'those runs\''})`;
  return `${r.label} ${events.join('; then ')}${changedSome ? ': its settings above are the last ones' : before}`;
}

/** `12/100`; a plateau run: `12/≤100`, or `12, done` once the schedule ended it. The count is the
 * last epoch record's number, right also for a forked run whose parent's log was not found. */
function epochsDone(r: RunSummary): string {
  const done = r.epochs.at(-1)?.epoch ?? 0;
  if (r.plateau?.finished) return `${done}, done`;
  return r.epochsPlanned === null ? String(done) : `${done}/${r.plateau ? '≤' : ''}${r.epochsPlanned}`;
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** True when a run logged fewer step losses than per-epoch train losses: too few to draw (a step
 * loss is logged every 20 steps, and a run may have fewer steps an epoch). The records, not the
 * curve: that one is thinned to about 800 points. */
function stepsSparse(run: RunSummary): boolean {
  return stepCount(run) < run.epochs.filter((r) => typeof r.trainLoss === 'number').length;
}

/** The step losses a run logged (records: already the current history). */
function stepCount(run: RunSummary): number {
  return run.records.filter((r) => (r as { kind?: unknown }).kind === 'step' && typeof (r as { epoch?: unknown }).epoch === 'number').length;
}

export interface ComparisonPanel {
  title: string;
  yLabel: string;
  /** One per run, named by its label. */
  series: Series[];
  logY: boolean;
  /** A value of 0 drawn on a log axis's floor (drawPlot): a run that reached 0 % error does not seem to stop there. */
  zeroOnFloor: boolean;
}

/** The comparison's panels: training loss (each run's smoothed step loss, or its per-epoch train
 * loss where that has more points), test error, and validation error where a run has a
 * validation split. The loss axis is log-scaled; error axes too, unless `linearError`. */
export function comparisonPanels(runs: RunSummary[], linearError = false): ComparisonPanel[] {
  // One moving average for all runs, the widest any run would take alone: the same steps of two
  // runs (a fork and its parent, or a rerun) then draw the same curve.
  const window = Math.max(1, ...runs.map((r) => stepLossWindow(stepCount(r))));
  const curves = runs.map((r) => trainingCurveSeries(r.records, { window }));
  const pick = (k: number, from: 'loss' | 'error', names: string[]): Series => {
    const s = names.map((n) => curves[k][from].find((c) => c.name.startsWith(n))).find((c) => c !== undefined);
    return { name: runs[k].label, points: s?.points ?? [] };
  };
  const panels: ComparisonPanel[] = [
    // Log scale: runs part where the loss is small (here 2.3 falls to 0.01 on MNIST).
    { title: window > 1 ? `training loss (step losses: mean of ${window})` : 'training loss', yLabel: 'loss', series: runs.map((_, k) => pick(k, 'loss', stepsSparse(runs[k]) ? ['train loss', 'step loss'] : ['step loss', 'train loss'])), logY: true, zeroOnFloor: false },
    { title: 'test error', yLabel: 'error (%)', series: runs.map((_, k) => pick(k, 'error', ['test error'])), logY: !linearError, zeroOnFloor: true },
  ];
  if (runs.some((r) => bestValidationEpoch(r) !== null)) {
    panels.push({ title: 'validation error', yLabel: 'error (%)', series: runs.map((_, k) => pick(k, 'error', ['validation error'])), logY: !linearError, zeroOnFloor: true });
  }
  return panels;
}

/** comparisonPanels in one PNG, one colour per run on shared axes over epochs. */
export function renderComparison(runs: RunSummary[], opts: { title?: string; linearError?: boolean; panelWidth?: number; height?: number } = {}): Buffer {
  const panels = comparisonPanels(runs, opts.linearError);
  const panelWidth = opts.panelWidth ?? 640;
  const height = opts.height ?? 480;
  const canvas = new Canvas(panelWidth * panels.length, height);
  let y0 = 0;
  if (opts.title) {
    canvas.drawText(opts.title, Math.max(8, Math.round((canvas.width - textWidth(opts.title, 2)) / 2)), 8, BLACK, 2);
    y0 = GLYPH_HEIGHT * 2 + 12;
  }
  panels.forEach((p, i) => {
    drawPlot(canvas, { x: i * panelWidth, y: y0, w: panelWidth, h: height - y0 }, p.series, {
      title: p.title,
      xLabel: 'epoch',
      xFrom: 0,
      yLabel: p.logY ? `${p.yLabel}, log scale` : p.yLabel,
      logY: p.logY,
      zeroOnFloor: p.zeroOnFloor,
    });
  });
  return canvas.toPng();
}
