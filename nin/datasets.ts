// Loading the splits a run needs: train (minus the validation hold-out), validation, test.
import { allocImages, CIFAR_PIXELS, type ImageDataset } from './data/formats.ts';
import { loadDataset, splitCount } from './data/registry.ts';
import { assembleSplits, limitParts, validationPlan } from './data/split.ts';
import type { TrainData, TrainOptions } from './train.ts';

/** One line a split. (Its notes, a partial or fallback file, were printed as warnings when read.) */
function report(ds: ImageDataset): void {
  console.error(`${ds.name}: ${ds.count} images ${ds.height}×${ds.width}×${ds.channels}`);
}

/** The splits of a run, read afresh: each image array is the caller's alone (consumable by train()). */
export async function loadSplits(o: TrainOptions, dataDir?: string): Promise<TrainData & { test: ImageDataset }> {
  const parts = o.extra && o.trainLimit === undefined ? await loadWithExtra(o.dataset, dataDir) : [await loadDataset(o.dataset, 'train', { dataDir })];
  // SVHN's extra images (6.5 GB as float32) are read only if --train-limit reaches them.
  if (o.extra && o.trainLimit !== undefined && o.trainLimit > parts[0].count) parts.push(await loadDataset(o.dataset, 'extra', { dataDir }));
  const [test] = limitParts([await loadDataset(o.dataset, 'test', { dataDir })], o.testLimit);
  const limited = limitParts(parts, o.trainLimit);
  const name = limited.length > 1 ? `${o.dataset}/train+extra` : limited[0].name;
  // The parts are this function's own: the training set may take their place.
  const { train, validation } = assembleSplits(limited, validationPlan(o.validation, o.dataset, limited.length, o.validationFrom), o.seed, name, { inPlace: true });
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

export async function loadTestSet(dataset: string, dataDir?: string, limit?: number): Promise<ImageDataset> {
  const [test] = limitParts([await loadDataset(dataset, 'test', { dataDir })], limit);
  report(test);
  return test;
}
