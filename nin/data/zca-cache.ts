// A cache of fitted ZCA statistics, keyed by what the fit sees: a CIFAR run spends ~40 s or more
// (2-core VM) refitting the same 3072×3072 whitening for every run of a study on the same training
// set. The key is a SHA-256 of the GCN'd training images, their shape, ε and FORMAT (bumped when the
// fit's code changes what it computes), so another training set (a --val split, --train-limit)
// or other settings never hit another's entry. An entry holds the statistics exactly (float64, as
// fitted), so a hit gives the run, and its checkpoint, what a fresh fit gives.
//
// Where: $NIN_CACHE, else $XDG_CACHE_HOME/nin, else ~/.cache/nin; NIN_CACHE=off turns it off. A
// cache that cannot be read or written is noted and the fit goes on: it never stops a run.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { readSafetensors, writeSafetensors } from '../safetensors.ts';
import { statsFromTensors, statsToTensors, type ZcaStats } from './preprocess.ts';
import { makeDirectory } from './io.ts';

/** Bump when the fit (GCN, covariance, eigen-decomposition, W) computes something else. */
const FORMAT = 'nin-zca-cache-1';
/** Entries kept (the most recently used); CIFAR's are 75.5 MB each. */
export const ZCA_CACHE_ENTRIES = 4;
/** A temp file this old is a write that was cut short (a write takes a second or so); the cache has
 * no lock, and may be shared between machines, so a writer's pid says nothing here. */
const LEFTOVER_MS = 60 * 60 * 1000;

/** The cache directory from the environment (absolute), or null when NIN_CACHE=off. */
export function zcaCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = env.NIN_CACHE;
  if (set === 'off') return null;
  if (set) return resolve(set);
  // (the XDG spec: a relative XDG_CACHE_HOME is to be ignored)
  const xdg = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(xdg, 'nin');
}

/** The cache key of a fit of `images` (GCN'd, `dim` features each) with regulariser `epsilon`. */
export function zcaCacheKey(images: Float32Array, dim: number, epsilon: number): string {
  const h = createHash('sha256');
  h.update(`${FORMAT} dim=${dim} count=${images.length / dim} epsilon=${epsilon}\n`);
  h.update(new Uint8Array(images.buffer, images.byteOffset, images.byteLength));
  return h.digest('hex');
}

const entryPath = (dir: string, key: string): string => join(dir, `zca-${key.slice(0, 32)}.safetensors`);

/** What a lookup asks for: an entry's statistics must be of this fit. */
export interface ZcaRequest {
  key: string;
  dim: number;
  count: number;
  epsilon: number;
}

/**
 * The statistics cached for `want.key`, or null: no entry, or one that cannot be read (noted), or a
 * damaged or foreign one (noted, and removed where this process may). A hit marks the entry as
 * recently used where it may.
 */
export function readZcaCache(dir: string, want: ZcaRequest, log: (m: string) => void): { stats: ZcaStats; path: string } | null {
  const path = entryPath(dir, want.key);
  if (!existsSync(path)) return null;
  let stats: ZcaStats;
  try {
    stats = checkedEntry(path, want);
  } catch (e) {
    const damaged = !(e as NodeJS.ErrnoException).code; // (an I/O error leaves a good entry alone)
    log(`note: the ZCA cache entry ${path} is ${damaged ? 'unusable' : 'unreadable'} (${(e as Error).message}); fitting afresh`);
    if (damaged) {
      try {
        rmSync(path, { force: true });
      } catch {
        // another user's cache, or a read-only one: the fit below still runs, and its store is noted
      }
    }
    return null;
  }
  try {
    const now = new Date();
    utimesSync(path, now, now); // (only pruning reads it)
  } catch {
    // another user's entry, or a read-only cache: a hit all the same
  }
  return { stats, path };
}

/** An entry's statistics, or an error saying why they are not the fit asked for. */
function checkedEntry(path: string, want: ZcaRequest): ZcaStats {
  const { tensors, metadata } = readSafetensors(path);
  if (metadata['zca_cache.key'] !== want.key) throw new Error(`it holds the fit of another training set (key ${String(metadata['zca_cache.key']).slice(0, 12)}…, wanted ${want.key.slice(0, 12)}…)`);
  const stats = statsFromTensors(tensors, metadata);
  if (stats.kind !== 'zca') throw new Error(`it holds ${stats.kind} statistics`);
  const got = `${stats.dim} features, ${stats.count} images, ε ${stats.epsilon}`;
  if (stats.dim !== want.dim || stats.count !== want.count || stats.epsilon !== want.epsilon) throw new Error(`it holds a fit of ${got}, not of ${want.dim} features, ${want.count} images, ε ${want.epsilon}`);
  for (const [name, values] of [['mean', stats.mean], ['whitening', stats.whitening], ['eigenvalues', stats.eigenvalues]] as const) {
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`its ${name}[${bad}] is ${values[bad]}`);
  }
  return stats;
}

/** Stores `stats` under `key` and keeps the ZCA_CACHE_ENTRIES most recently used entries (and no
 * temp file of a write cut short); a failure is noted. */
export function writeZcaCache(dir: string, key: string, stats: ZcaStats, log: (m: string) => void): string | null {
  const path = entryPath(dir, key);
  try {
    makeDirectory(dir);
    const { tensors, metadata } = statsToTensors(stats, 'preprocess.');
    writeSafetensors(path, tensors, { ...metadata, 'zca_cache.key': key, 'zca_cache.format': FORMAT });
  } catch (e) {
    log(`note: could not store the ZCA fit in the cache ${dir} (${(e as Error).message}); the run goes on (NIN_CACHE=off skips the cache)`);
    return null;
  }
  try {
    const files = readdirSync(dir).map((f) => ({ name: f, path: join(dir, f), stat: statSync(join(dir, f)) }));
    const old = Date.now() - LEFTOVER_MS;
    for (const f of files) if (/^\.zca-[0-9a-f]{32}\.safetensors\.tmp-/.test(f.name) && f.stat.mtimeMs < old) rmSync(f.path, { force: true });
    const entries = files.filter((f) => /^zca-[0-9a-f]{32}\.safetensors$/.test(f.name)).sort((a, b) => b.stat.mtimeMs - a.stat.mtimeMs);
    for (const e of entries.slice(ZCA_CACHE_ENTRIES)) if (e.path !== path) rmSync(e.path, { force: true });
  } catch {
    // Another process pruning the same directory at once (its pruning serves as well), or files
    // not ours to remove.
  }
  return path;
}
