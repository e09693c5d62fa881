// A cache of fitted ZCA statistics, keyed by what the fit sees: a CIFAR run spends ~40 s or more
// (2-core VM) refitting the same 3072×3072 whitening for every run of a study on the same training
// set. The key is a SHA-256 of the GCN'd training images, their shape, ε and FORMAT (bumped when the
// fit's code changes what it computes), so another training set (a --val split, --train-limit)
// or other settings never hit another's entry. A hit gives the same float32 whitening the run
// would use after a fresh fit (W is stored as float32, as checkpoints store it; the mean and
// eigenvalues in float64), so a run's losses do not depend on the cache.
//
// Where: $NIN_CACHE, else $XDG_CACHE_HOME/nin, else ~/.cache/nin; NIN_CACHE=off turns it off. A
// cache that cannot be read or written is noted and the fit goes on: it never stops a run.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { removeLeftoverTempFiles } from '../run-directory.ts';
import { readSafetensors, writeSafetensors } from '../safetensors.ts';
import { statsFromTensors, statsToTensors, type ZcaStats } from './preprocess.ts';

/** Bump when the fit (GCN, covariance, eigen-decomposition, W) computes something else. */
const FORMAT = 'nin-zca-cache-1';
/** Entries kept (the most recently used); CIFAR's are 37.8 MB each. */
export const ZCA_CACHE_ENTRIES = 8;

/** The cache directory from the environment, or null when NIN_CACHE=off. */
export function zcaCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = env.NIN_CACHE;
  if (set === 'off') return null;
  if (set) return set;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nin');
}

/** The cache key of a fit of `images` (GCN'd, `dim` features each) with regulariser `epsilon`. */
export function zcaCacheKey(images: Float32Array, dim: number, epsilon: number): string {
  const h = createHash('sha256');
  h.update(`${FORMAT} dim=${dim} count=${images.length / dim} epsilon=${epsilon}\n`);
  h.update(new Uint8Array(images.buffer, images.byteOffset, images.byteLength));
  return h.digest('hex');
}

const entryPath = (dir: string, key: string): string => join(dir, `zca-${key.slice(0, 32)}.safetensors`);

/**
 * The statistics cached for `key`, or null (no entry; or a damaged or foreign one, which is noted,
 * removed and refitted). A hit marks the entry as recently used.
 */
export function readZcaCache(dir: string, key: string, log: (m: string) => void): { stats: ZcaStats; path: string } | null {
  const path = entryPath(dir, key);
  if (!existsSync(path)) return null;
  try {
    const { tensors, metadata } = readSafetensors(path);
    if (metadata['zca_cache.key'] !== key) throw new Error(`it holds the fit of another training set (key ${String(metadata['zca_cache.key']).slice(0, 12)}…, wanted ${key.slice(0, 12)}…)`);
    const stats = statsFromTensors(tensors, metadata);
    if (stats.kind !== 'zca') throw new Error(`it holds ${stats.kind} statistics`);
    const now = new Date();
    utimesSync(path, now, now);
    return { stats, path };
  } catch (e) {
    log(`note: the ZCA cache entry ${path} is unusable (${(e as Error).message}); fitting afresh`);
    rmSync(path, { force: true });
    return null;
  }
}

/** Stores `stats` under `key` and keeps the ZCA_CACHE_ENTRIES most recently used entries (and no
 * temp file of a process that is gone); a failure is noted. */
export function writeZcaCache(dir: string, key: string, stats: ZcaStats, log: (m: string) => void): string | null {
  const path = entryPath(dir, key);
  try {
    mkdirSync(dir, { recursive: true });
    const { tensors, metadata } = statsToTensors(stats, 'preprocess.', { whiteningDtype: 'F32' });
    writeSafetensors(path, tensors, { ...metadata, 'zca_cache.key': key, 'zca_cache.format': FORMAT });
  } catch (e) {
    log(`note: could not store the ZCA fit in the cache ${dir} (${(e as Error).message}); the run goes on (NIN_CACHE=off skips the cache)`);
    return null;
  }
  try {
    removeLeftoverTempFiles(dir); // a fit's 37.8 MB write cut short by a killed process
    const entries = readdirSync(dir)
      .filter((f) => /^zca-[0-9a-f]{32}\.safetensors$/.test(f))
      .map((f) => ({ path: join(dir, f), used: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.used - a.used);
    for (const old of entries.slice(ZCA_CACHE_ENTRIES)) if (old.path !== path) rmSync(old.path, { force: true });
  } catch {
    // Another process pruning the same directory at once: its pruning serves as well.
  }
  return path;
}
