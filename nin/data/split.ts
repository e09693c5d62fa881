// Held-out validation split from a training set, by a seeded shuffle (the paper tunes
// hyper-parameters on 10k of CIFAR-10's 50k training images and trains on the other 40k).
import type { ImageDataset } from './formats.ts';
import { deriveSeed, permutation } from './rng.ts';

/** A new dataset holding the examples at `indices` (in that order); shares nothing with `ds`. */
export function takeExamples(ds: ImageDataset, indices: ArrayLike<number>, name = ds.name): ImageDataset {
  const per = ds.height * ds.width * ds.channels;
  const n = indices.length;
  const images = new Float32Array(n * per);
  const labels = new Int32Array(n);
  const coarse = ds.coarseLabels ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    if (!(Number.isInteger(j) && j >= 0 && j < ds.count)) throw new RangeError(`takeExamples: index ${j} outside 0..${ds.count - 1} of ${ds.name}`);
    images.set(ds.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = ds.labels[j];
    if (coarse) coarse[i] = ds.coarseLabels![j];
  }
  return { ...ds, name, images, labels, coarseLabels: coarse, count: n, notes: [...ds.notes] };
}

export interface ValidationSplit {
  train: ImageDataset;
  validation: ImageDataset;
  /** Indices into the original set, ascending (each subset keeps the original order). */
  trainIndices: Int32Array;
  validationIndices: Int32Array;
}

/**
 * Splits off `validationCount` examples chosen by a seeded shuffle (`--val N`; 0 = no validation
 * set). The same (count, seed, dataset size) always gives the same split.
 */
export function splitValidation(ds: ImageDataset, validationCount: number, seed: number): ValidationSplit {
  if (!Number.isInteger(validationCount) || validationCount < 0 || validationCount >= ds.count) {
    throw new RangeError(`validation size ${validationCount} must be an integer in 0..${ds.count - 1} (${ds.name} has ${ds.count} examples)`);
  }
  const perm = permutation(ds.count, deriveSeed(seed, 0x5b117));
  const validationIndices = perm.slice(0, validationCount).sort();
  const trainIndices = perm.slice(validationCount).sort();
  return {
    train: takeExamples(ds, trainIndices, `${ds.name}[train ${trainIndices.length}]`),
    validation: takeExamples(ds, validationIndices, `${ds.name}[validation ${validationCount}]`),
    trainIndices,
    validationIndices,
  };
}
