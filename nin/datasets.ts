// Loading the splits a run needs: train (minus the validation hold-out), validation, test.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { allocImages, CIFAR_PIXELS, type ImageDataset } from './data/formats.ts';
import { folderChanged, folderValChanged, readImageFolder, scanRunFolder, streamImageFolder, type FolderScan, type FolderSplit } from './data/folder.ts';
import { DataFormatError } from './data/io.ts';
import { DATASETS, loadDataset, splitCount, type DatasetName } from './data/registry.ts';
import { assembleSplits, limitParts, splitSeedOf, validationPlan } from './data/split.ts';
import type { ModelInput } from './images.ts';
import { modelConfig } from './model.ts';
import { counted } from './text.ts';
import type { TrainData, TrainOptions } from './train.ts';

/** What names a run's data: a data set, or an image folder (whose images are read at the model's input size). */
type RunData = Pick<TrainOptions, 'dataset' | 'imageFolder' | 'model' | 'config'>;

/** The class names of a run's data: its data set's, or its image folder's. */
export function classNamesOf(o: Pick<TrainOptions, 'dataset' | 'imageFolder'>): readonly string[] {
  if (o.imageFolder) return o.imageFolder.classNames;
  return DATASETS[o.dataset as DatasetName]?.classNames ?? [];
}

/** Whether two runs' data have other class names (or orders): a classifier of one means other classes in the other. */
export function classesDiffer(a: Pick<TrainOptions, 'dataset' | 'imageFolder'>, b: Pick<TrainOptions, 'dataset' | 'imageFolder'>): boolean {
  return classNamesOf(a).join('\0') !== classNamesOf(b).join('\0');
}

/** A run's data in a few words: 'mnist', or 'folder shapes' for an image folder's run. */
export function dataLabel(o: Pick<TrainOptions, 'dataset' | 'imageFolder'>): string {
  return o.imageFolder ? `folder ${basename(o.imageFolder.dir)}` : o.dataset;
}

/** One line a split. (Its notes, a partial or fallback file, were printed as warnings when read.) */
function report(ds: ImageDataset): void {
  console.error(`${ds.name}: ${counted(ds.count, 'image')} ${ds.height}×${ds.width}×${ds.channels} (height×width×channels)`);
}

/** The splits of a run, read afresh: each image array is the caller's alone (consumable by train()). */
export async function loadSplits(o: TrainOptions, dataDir?: string): Promise<TrainData & { test: ImageDataset }> {
  if (o.dataset === 'folder') return loadFolderSplits(o, dataDir);
  const parts = o.extra && o.trainLimit === undefined ? await loadWithExtra(o.dataset, dataDir) : [await loadDataset(o.dataset, 'train', { dataDir })];
  // SVHN's extra images (6.5 GB as float32) are read only if --train-limit reaches them.
  if (o.extra && o.trainLimit !== undefined && o.trainLimit > parts[0].count) parts.push(await loadDataset(o.dataset, 'extra', { dataDir }));
  const test = limitedTest(await loadDataset(o.dataset, 'test', { dataDir }), o.testLimit);
  const limited = limitParts(parts, o.trainLimit);
  const name = limited.length > 1 ? `${o.dataset}/train+extra` : limited[0].name;
  // The parts are this function's own: the training set may take their place.
  const { train, validation } = assembleSplits(limited, validationPlan(o.validation, o.dataset, limited.length, o.validationFrom), splitSeedOf(o), name, { inPlace: true });
  for (const ds of [train, ...(validation ? [validation] : []), test]) report(ds);
  return { train, validation, test, consumable: true };
}

/**
 * SVHN's train and extra, read into one shared buffer (7.4 GB as float32) in which assembleSplits
 * compacts the training set and LCN's worker threads normalise it: no second copy.
 */
async function loadWithExtra(dataset: string, dataDir?: string): Promise<ImageDataset[]> {
  const per = CIFAR_PIXELS; // SVHN's 32×32×3
  const counts = [splitCount(dataset, 'train'), splitCount(dataset, 'extra')];
  const whole = allocImages(`${dataset} train + extra`, (counts[0] + counts[1]) * per, { shared: true });
  return [
    await loadDataset(dataset, 'train', { dataDir, into: whole.subarray(0, counts[0] * per) }),
    await loadDataset(dataset, 'extra', { dataDir, into: whole.subarray(counts[0] * per) }),
  ];
}

/** The test set of a run (`nin eval`, `nin visualize`); `dataDir`: for an image folder, where it is now. */
export async function loadTestSet(o: RunData, dataDir?: string, limit?: number, opts: { stream?: boolean } = {}): Promise<ImageDataset> {
  const test = o.dataset === 'folder' ? await folderSplit(o, 'test', dataDir, limit, opts.stream) : limitedTest(await loadDataset(o.dataset, 'test', { dataDir }), limit);
  report(test);
  return test;
}

/** A data set's test set cut to `limit` images. A limit past a partial file's images (the flags
 * check it against the official count) is said, here and in the set's notes, not taken silently. */
function limitedTest(test: ImageDataset, limit: number | undefined): ImageDataset {
  if (limit === undefined || limit <= test.count) return limitParts([test], limit)[0];
  const note = `--test-limit ${limit}: ${test.name} holds ${test.count} images: testing on all ${test.count}`;
  console.error(`note: ${note}`);
  return { ...test, notes: [...test.notes, note] };
}

/**
 * Pictures of one's own, labelled by their folders (`nin eval --pictures DIR`, scanLabelledFolder):
 * the first `limit` read at the model's input size as `nin predict` reads them (`invert` as its
 * --invert), with its notes (a light border for an MNIST model, colour read as grey, …) and a
 * count of those resized.
 */
export async function readLabelledPictures(o: RunData, scan: FolderScan, opts: { limit?: number; invert?: boolean } = {}): Promise<ImageDataset> {
  const pictures = await readImageFolder(scan, modelInput(o), { ...opts, notesFor: { mnist: o.dataset === 'mnist' } });
  report(pictures);
  return pictures;
}

/** An image folder's training and test sets, read at the model's input size (nin/data/folder.ts). */
async function loadFolderSplits(o: TrainOptions, dataDir?: string): Promise<TrainData & { test: ImageDataset }> {
  const all = await folderSplit(o, 'train', dataDir, o.trainLimit, o.stream);
  const test = await folderSplit(o, 'test', dataDir, o.testLimit, o.stream);
  // train/, val/ and test/: val/ is the validation split with --val folder (else the test split only where there is no test/, folder.ts).
  const unread = join(dirname(test.sources[0]), 'val');
  if (basename(test.sources[0]) === 'val') console.error(`note: ${dirname(test.sources[0])} has no test/: its val/ is the test split (the test error is val/'s)`);
  if (o.validation !== 'folder' && basename(test.sources[0]) === 'test' && existsSync(unread)) {
    const instead = o.validation ? `the validation split is ${o.validation} images held out of train/ (--val folder would validate on val/ instead)` : 'give --val folder to validate on it (or --val N to hold out training images)';
    console.error(`note: ${unread} is not read: the test split is ${test.sources[0]}; ${instead}`);
  }
  const held = assembleSplits([all], validationPlan(o.validation, o.dataset, 1, o.validationFrom), splitSeedOf(o), all.name, { inPlace: true });
  const { train } = held;
  const validation = o.validation === 'folder' ? await folderSplit(o, 'val', dataDir, undefined, o.stream) : held.validation;
  for (const ds of [train, ...(validation ? [validation] : []), test]) report(ds);
  return { train, validation, test, consumable: true };
}

/**
 * One split of a run's image folder (the saved one, or `dataDir`: the folder moved), its first
 * `limit` images (all, where it holds fewer). The training folders must still hold the run's
 * classes and images.
 */
async function folderSplit(o: RunData, split: FolderSplit, dataDir: string | undefined, limit: number | undefined, stream = false): Promise<ImageDataset> {
  const folder = o.imageFolder;
  if (!folder) throw new Error(`the run's options name no image folder (dataset 'folder' without imageFolder): not a checkpoint nin wrote`);
  const scan = scanRunFolder(folder, split, dataDir);
  const changed = split === 'train' ? folderChanged(scan, folder) : split === 'val' ? folderValChanged(scan, folder) : null;
  if (changed) throw new DataFormatError(scan.dir, changed);
  return stream ? streamImageFolder(scan, modelInput(o), { limit }) : readImageFolder(scan, modelInput(o), { limit, streamable: true });
}

function modelInput(o: RunData): ModelInput {
  const { height, width, channels } = modelConfig(o).input;
  if (channels !== 1 && channels !== 3) throw new Error(`an image folder's images make 1 or 3 channels; the model takes ${channels}`);
  return { height, width, channels };
}
