// Training and validation sets from the training data: N images drawn by a seeded shuffle
// (`--val N`) or the last N (`--val-from end`), or the papers' hold-outs (`--val paper`: the last
// 10,000 training images, as maxout and NIN held out of CIFAR; SVHN's came per class from train
// and extra).
import type { ImageDataset } from './formats.ts';
import { deriveSeed, permutation } from './rng.ts';

/** A new dataset holding the examples at `indices` (in that order); shares nothing with `ds`. */
export function takeExamples(ds: ImageDataset, indices: ArrayLike<number>, name = ds.name): ImageDataset {
  return gather([ds], indices, name);
}

// ---------------------------------------------------------------------------------------------
// Training data in several parts (SVHN: train_32x32.mat and extra_32x32.mat) and the papers'
// validation sets. SVHN's extra part alone is 6.5 GB as float32, so the parts are never
// concatenated first: each output set is copied once, straight from the parts.

/** Where a validation set of N images comes from: a seeded random draw, or the training set's last N. */
export type ValidationFrom = 'random' | 'end';
export const VALIDATION_FROM: readonly ValidationFrom[] = ['random', 'end'];

/** `--val`: N images held out of the training set, the papers' hold-out, or an image folder's own val/ (nin/data/folder.ts). */
export type Validation = number | 'paper' | 'folder';

/** A validation set: `count` images from all parts (at random, or the last ones), or `perClass[i]` of every class from part i. */
export type ValidationPlan = { count: number; from: ValidationFrom } | { perClass: number[] };

/**
 * `--val N` → N at random (or the last N: `from`); `--val paper` → what the papers held out: for
 * SVHN 400 per class from train and 200 per class from extra (Sermanet et al. 2012, then maxout
 * and NIN), else the last 10,000 training images (NIN, section 4.2, for CIFAR-10, as maxout did; the
 * same protocol here for CIFAR-100 and MNIST). 0 → no validation set.
 */
export function validationPlan(validation: Validation, dataset: string, parts: number, from?: ValidationFrom): ValidationPlan | null {
  if (validation === 'folder') return null; // an image folder's own val/: nothing is held out of train/
  if (validation === 'paper' && dataset === 'svhn') return { perClass: [400, 200].slice(0, parts) };
  const count = validation === 'paper' ? 10000 : validation;
  return count > 0 ? { count, from: from ?? defaultValidationFrom(validation, dataset)! } : null;
}

/** Where a split of N images comes from unless told: the end for `--val paper`, else at random
 * (undefined where there is no such choice: no split, or SVHN's per-class one). */
export function defaultValidationFrom(validation: Validation, dataset: string): ValidationFrom | undefined {
  if (validation === 'folder') return undefined;
  if (validation === 'paper') return dataset === 'svhn' ? undefined : 'end';
  return validation > 0 ? 'random' : undefined;
}

/**
 * A run's validation source: its own `validationFrom`, else the default; `saved`: for options read
 * from a checkpoint, which drew every split at random before the choice was recorded.
 */
export function validationFromOf(o: { validation: Validation; dataset: string; validationFrom?: ValidationFrom }, saved = false): ValidationFrom | undefined {
  const choice = defaultValidationFrom(o.validation, o.dataset);
  return choice && (o.validationFrom ?? (saved ? 'random' : choice));
}

/** The seed a run's validation split is drawn by: `--split-seed`, else `--seed`. */
export function splitSeedOf(o: { seed: number; splitSeed?: number }): number {
  return o.splitSeed ?? o.seed;
}

/** Whether a seed draws the plan's images: at random, or SVHN's per-class quotas (not the last N). */
export function drawnBySeed(plan: ValidationPlan | null): boolean {
  return plan !== null && ('perClass' in plan || plan.from === 'random');
}

/** Images a plan holds out, given the number of classes. */
export function validationSize(plan: ValidationPlan | null, classes: number): number {
  if (!plan) return 0;
  return 'count' in plan ? plan.count : plan.perClass.reduce((a, b) => a + b, 0) * classes;
}

/** The first `limit` examples of the parts taken in order (`--train-limit`). */
export function limitParts(parts: readonly ImageDataset[], limit: number | undefined): ImageDataset[] {
  if (limit === undefined) return [...parts];
  const out: ImageDataset[] = [];
  let left = limit;
  for (const p of parts) {
    if (left <= 0) break;
    out.push(left >= p.count ? p : takeExamples(p, Array.from({ length: left }, (_, i) => i), `${p.name}[:${left}]`));
    left -= p.count;
  }
  return out;
}

/**
 * The parts' images as one array when they are consecutive stretches of one buffer (loadSplits
 * reads SVHN's train and extra that way), else null.
 */
function oneBuffer(parts: readonly ImageDataset[]): Float32Array | null {
  const { buffer, byteOffset } = parts[0].images;
  let end = byteOffset;
  for (const p of parts) {
    if (p.images.buffer !== buffer || p.images.byteOffset !== end) return null;
    end += p.images.byteLength;
  }
  return new Float32Array(buffer, byteOffset, (end - byteOffset) / 4);
}

/**
 * The examples at global `indices` (numbering the parts' examples one after another), in that
 * order, in one set. Copied into a new array in shared memory (so that the preprocessing's worker
 * threads, LCN, can normalise it in place); or, given `whole` (the parts' one buffer, which may be
 * overwritten) and ascending indices, moved to the front of it: example g goes to slot i ≤ g, so
 * nothing is overwritten before it has been moved.
 */
function gather(parts: readonly ImageDataset[], indices: ArrayLike<number>, name: string, whole: Float32Array | null = null): ImageDataset {
  const [first] = parts;
  if (parts.some((p) => p.stream)) return gatherStreamed(parts, indices, name);
  const per = first.height * first.width * first.channels;
  const n = indices.length;
  const total = parts.reduce((s, p) => s + p.count, 0);
  const images = whole ? whole.subarray(0, n * per) : new Float32Array(new SharedArrayBuffer(n * per * 4));
  const labels = new Int32Array(n);
  const coarse = parts.every((p) => p.coarseLabels) ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const g = indices[i];
    if (!(Number.isInteger(g) && g >= 0 && g < total)) throw new RangeError(`index ${g} outside 0..${total - 1} of ${parts.map((p) => p.name).join(' + ')}`);
    if (whole && g < i) throw new RangeError(`gather in place needs ascending indices (${g} at position ${i})`);
    let part = 0;
    let j = g; // index within parts[part]
    while (j >= parts[part].count) j -= parts[part++].count;
    const p = parts[part];
    if (!whole) images.set(p.images.subarray(j * per, (j + 1) * per), i * per);
    else if (g !== i) whole.copyWithin(i * per, g * per, (g + 1) * per);
    labels[i] = p.labels[j];
    if (coarse) coarse[i] = p.coarseLabels![j];
  }
  return {
    ...first,
    name,
    images,
    labels,
    coarseLabels: coarse,
    count: n,
    sources: parts.flatMap((p) => p.sources),
    notes: parts.flatMap((p) => p.notes),
  };
}

/** gather for streamed sets (nin/data/stream.ts): their pictures' paths, not their pixels. */
function gatherStreamed(parts: readonly ImageDataset[], indices: ArrayLike<number>, name: string): ImageDataset {
  const [first] = parts;
  if (parts.length !== 1 || !first.stream) throw new RangeError(`${name}: a streamed set is one part (an image folder's split), not ${parts.map((p) => p.name).join(' + ')}`);
  const paths = Array.from(indices, (g) => {
    if (!(Number.isInteger(g) && g >= 0 && g < first.count)) throw new RangeError(`index ${g} outside 0..${first.count - 1} of ${first.name}`);
    return first.stream!.paths[g];
  });
  return { ...first, name, labels: Int32Array.from(indices, (g) => first.labels[g]), count: paths.length, stream: { ...first.stream, paths } };
}

/**
 * The training set (every example not held out) and the validation set from one or more parts.
 * `{ count }` draws from all parts by one seeded shuffle (so a run resumed with the same seed gets
 * the same split), or takes the last `count` examples; `{ perClass }` draws each class's quota from each part by its own
 * seeded shuffle. One part and no plan: that part itself, not copied. `inPlace`: the parts' images
 * may be overwritten; if they are consecutive stretches of one buffer, the training set is
 * compacted within it (after the validation set is copied out) instead of copied (SVHN with extra:
 * 7.4 GB).
 */
export function assembleSplits(parts: readonly ImageDataset[], plan: ValidationPlan | null, seed: number, name: string, opts: { inPlace?: boolean } = {}): { train: ImageDataset; validation?: ImageDataset } {
  if (parts.length === 0) throw new RangeError(`${name}: no training data`);
  for (const p of parts) {
    if (p.height !== parts[0].height || p.width !== parts[0].width || p.channels !== parts[0].channels) {
      throw new RangeError(`${name}: ${p.name} has images ${p.height}×${p.width}×${p.channels}, ${parts[0].name} has ${parts[0].height}×${parts[0].width}×${parts[0].channels}`);
    }
  }
  if (!plan && parts.length === 1) return { train: parts[0] };
  const total = parts.reduce((a, p) => a + p.count, 0);
  const held = new Uint8Array(total);
  if (plan && 'count' in plan) {
    if (!Number.isInteger(plan.count) || plan.count < 0 || plan.count >= total) {
      throw new RangeError(`validation size ${plan.count} must be an integer in 0..${total - 1} (${name} has ${total} examples)`);
    }
    if (plan.from === 'end') held.fill(1, total - plan.count);
    else {
      const perm = permutation(total, deriveSeed(seed, 0x5b117));
      for (let i = 0; i < plan.count; i++) held[perm[i]] = 1;
    }
  } else if (plan) {
    if (plan.perClass.length !== parts.length) throw new RangeError(`${name}: a per-class validation quota for each of ${parts.length} parts is needed, got ${plan.perClass.length}`);
    let offset = 0;
    parts.forEach((p, i) => {
      const byClass = new Map<number, number[]>();
      for (let j = 0; j < p.count; j++) {
        const list = byClass.get(p.labels[j]) ?? byClass.set(p.labels[j], []).get(p.labels[j])!;
        list.push(j);
      }
      for (let k = 0; k < p.classNames.length; k++) {
        const list = byClass.get(k) ?? [];
        if (list.length < plan.perClass[i]) {
          throw new RangeError(`${p.name}: the validation set takes ${plan.perClass[i]} images of class ${k} (${p.classNames[k]}) from it, but it has ${list.length}`);
        }
        const order = permutation(list.length, deriveSeed(seed, 0x5b117, i + 1, k));
        for (let n = 0; n < plan.perClass[i]; n++) held[offset + list[order[n]]] = 1;
      }
      offset += p.count;
    });
  }
  const heldCount = held.reduce((a, b) => a + b, 0);
  const trainIdx = new Int32Array(total - heldCount);
  const valIdx = new Int32Array(heldCount);
  for (let g = 0, t = 0, v = 0; g < total; g++) {
    if (held[g]) valIdx[v++] = g;
    else trainIdx[t++] = g;
  }
  const validation = plan ? gather(parts, valIdx, `${name}[validation ${valIdx.length}]`) : undefined;
  return { train: gather(parts, trainIdx, `${name}[train ${trainIdx.length}]`, opts.inPlace ? oneBuffer(parts) : null), validation };
}
