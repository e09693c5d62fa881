// The ZCA cache (nin/data/zca-cache.ts): a hit gives the statistics a fresh fit gives, exactly,
// another training set misses, a damaged entry or an unwritable directory is
// noted and refitted, and the directory keeps the most recently used entries only.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeGpu } from '../engine/device.ts';
import type { ImageDataset } from '../nin/data/formats.ts';
import { globalContrastNormalize, NIN_GCN, type ZcaStats } from '../nin/data/preprocess.ts';
import { readSafetensors, writeSafetensors } from '../nin/safetensors.ts';
import { readZcaCache, writeZcaCache, ZCA_CACHE_ENTRIES, zcaCacheDir, zcaCacheKey } from '../nin/data/zca-cache.ts';
import { fitPreprocessor } from '../nin/preprocessing.ts';
import { randomArray } from './helpers.ts';

afterAll(() => closeGpu());

const H = 3, W = 4, C = 3; // 36 features: an odd shape, fits in milliseconds
const dim = H * W * C;

function images(count: number, seed: number): ImageDataset {
  const pixels = randomArray(count * dim, seed).map((v) => Math.round(127.5 + 120 * v));
  return { name: 'synthetic', images: pixels, labels: new Int32Array(count), count, height: H, width: W, channels: C, classNames: ['a'], sources: [], notes: [] };
}

async function fit(ds: ImageDataset, cache: string | null): Promise<{ stats: ZcaStats; log: string[] }> {
  const log: string[] = [];
  const pre = await fitPreprocessor('gcn-zca', ds, (m) => log.push(m), { zcaCache: cache });
  return { stats: pre.stats as ZcaStats, log };
}

const entries = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();

describe('ZCA cache', () => {
  it('stores a fit and hands it back for the same training images: the same float32 whitening, mean and eigenvalues', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const ds = images(50, 1);
    const first = await fit(ds, dir);
    expect(first.log.some((l) => l.startsWith('fitting ZCA whitening on 50 images of 36 features'))).toBe(true);
    expect(entries(dir)).toHaveLength(1);
    const second = await fit(ds, dir);
    expect(second.log.some((l) => l.startsWith('fitting'))).toBe(false);
    expect(second.log).toContain(`ZCA whitening of these 50 training images from the cache: ${join(dir, entries(dir)[0])} (NIN_CACHE=off fits afresh)`);
    // Exactly the fit (float64), so a checkpoint saved after a hit holds what one after a fresh fit holds.
    expect(second.stats).toEqual(first.stats);
    expect(second.stats.whitening).toBeInstanceOf(Float64Array);
    // The images were not changed by the lookup (GCN works on a copy).
    expect(ds.images).toEqual(images(50, 1).images);
  });

  it('another training set (one pixel, one image fewer) or another ε is another key: a miss, fitted and stored beside', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const ds = images(50, 2);
    await fit(ds, dir);
    const onePixel = images(50, 2);
    onePixel.images[17] = onePixel.images[17] === 0 ? 1 : 0;
    const changed = await fit(onePixel, dir);
    expect(changed.log.some((l) => l.startsWith('fitting'))).toBe(true);
    const fewer = { ...ds, images: ds.images.slice(0, 49 * dim), count: 49 };
    expect((await fit(fewer, dir)).log.some((l) => l.startsWith('fitting'))).toBe(true);
    expect(entries(dir)).toHaveLength(3);
    const g = new Float32Array(dim * 2).fill(1);
    expect(zcaCacheKey(g, dim, 0.1)).not.toBe(zcaCacheKey(g, dim, 0.01));
    expect(zcaCacheKey(g, dim, 0.1)).not.toBe(zcaCacheKey(g, dim * 2, 0.1)); // the same bytes as one example of 72
    expect(zcaCacheKey(g, dim, 0.1)).toBe(zcaCacheKey(new Float32Array(dim * 2).fill(1), dim, 0.1));
  });

  it('a damaged entry (cut short) or a foreign one (another key under its name) is noted, removed and refitted; the run goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const ds = images(40, 3);
    const fresh = await fit(ds, dir);
    const [name] = entries(dir);
    truncateSync(join(dir, name), 1000);
    const again = await fit(ds, dir);
    expect(again.log[0]).toMatch(new RegExp(`^note: the ZCA cache entry ${join(dir, name)} is unusable \\(.*truncated.*\\); fitting afresh$`));
    expect(again.log.some((l) => l.startsWith('fitting'))).toBe(true);
    expect(again.stats).toEqual(fresh.stats);
    // Rewritten: the next run hits.
    expect((await fit(ds, dir)).log.some((l) => l.includes('from the cache'))).toBe(true);
    // Another set's entry under this set's name (a copied cache, a collision of the name's 128 bits).
    const other = images(40, 4);
    await fit(other, dir);
    const otherName = entries(dir).find((f) => f !== name)!;
    renameSync(join(dir, otherName), join(dir, name));
    const foreign = await fit(ds, dir);
    expect(foreign.log[0]).toMatch(/^note: the ZCA cache entry .* is unusable \(it holds the fit of another training set \(key [0-9a-f]{12}…, wanted [0-9a-f]{12}…\)\); fitting afresh$/);
    expect(foreign.stats).toEqual(fresh.stats);
  });

  it("an entry under the right key whose statistics are not the fit asked for (another count, a NaN) is noted and refitted", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const ds = images(40, 7);
    const fresh = await fit(ds, dir);
    const [name] = entries(dir);
    const key = zcaCacheKey(globalContrastNormalize(new Float32Array(ds.images), dim, NIN_GCN), dim, 0.1);
    const planted = (stats: ZcaStats) => {
      rmSync(join(dir, name));
      writeZcaCache(dir, key, stats, () => {});
      expect(entries(dir)).toEqual([name]);
    };
    planted({ ...fresh.stats, count: 39 });
    expect((await fit(ds, dir)).log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (it holds a fit of 36 features, 39 images, ε 0.1, not of 36 features, 40 images, ε 0.1); fitting afresh`);
    const nan = Float64Array.from(fresh.stats.whitening);
    nan[5] = NaN;
    planted({ ...fresh.stats, whitening: nan });
    const refit = await fit(ds, dir);
    expect(refit.log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (its whitening[5] is NaN); fitting afresh`);
    // Another ε; a NaN in the first place; statistics of another kind.
    planted({ ...fresh.stats, epsilon: 0.2 });
    expect((await fit(ds, dir)).log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (it holds a fit of 36 features, 40 images, ε 0.2, not of 36 features, 40 images, ε 0.1); fitting afresh`);
    const mean = Float64Array.from(fresh.stats.mean);
    mean[0] = NaN;
    planted({ ...fresh.stats, mean });
    expect((await fit(ds, dir)).log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (its mean[0] is NaN); fitting afresh`);
    planted({ kind: 'channel', channels: 3, mean: new Float64Array(3), std: new Float64Array(3).fill(1), count: 480 } as unknown as ZcaStats);
    expect((await fit(ds, dir)).log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (it holds channel statistics); fitting afresh`);
    // Eigenvalues of another length: taken before, they failed the run's first save, its epoch lost.
    const { tensors, metadata } = readSafetensors(join(dir, name));
    writeSafetensors(join(dir, name), { ...tensors, 'preprocess.eigenvalues': { dtype: 'F64', shape: [2], data: new Float64Array(2) } }, metadata);
    expect((await fit(ds, dir)).log[0]).toBe(`note: the ZCA cache entry ${join(dir, name)} is unusable (preprocessing statistics: eigenvalues has 2 values, expected 36); fitting afresh`);
  });

  it('an entry that cannot be read (an I/O error, here a directory in its place) is noted as unreadable and left alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const key = zcaCacheKey(new Float32Array(dim), dim, 0.1);
    const path = join(dir, `zca-${key.slice(0, 32)}.safetensors`);
    mkdirSync(path);
    const log: string[] = [];
    expect(readZcaCache(dir, { key, dim, count: 1, epsilon: 0.1 }, (m) => log.push(m))).toBeNull();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(new RegExp(`^note: the ZCA cache entry ${path} is unreadable \\(EISDIR.*\\); fitting afresh$`));
    expect(existsSync(path)).toBe(true);
  });

  it('a cache directory that cannot be made is noted; the fit is returned all the same', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const blocked = join(parent, 'file');
    writeFileSync(blocked, 'not a directory');
    const r = await fit(images(30, 5), join(blocked, 'cache'));
    expect(r.log.at(-1)).toMatch(new RegExp(`^note: could not store the ZCA fit in the cache ${join(blocked, 'cache')} \\(.*\\); the run goes on \\(NIN_CACHE=off skips the cache\\)$`));
    expect(r.stats.kind).toBe('zca');
    // Off: no lookup, nothing written.
    const off = await fit(images(30, 5), null);
    expect(off.log.some((l) => l.startsWith('fitting'))).toBe(true);
  });

  it(`keeps the ${ZCA_CACHE_ENTRIES} most recently used entries (a hit counts as a use)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zca-cache-'));
    const stats = (await fit(images(30, 6), null)).stats;
    const keys = Array.from({ length: ZCA_CACHE_ENTRIES }, (_, i) => zcaCacheKey(new Float32Array(dim).fill(i), dim, 0.1));
    keys.forEach((k, i) => {
      const path = writeZcaCache(dir, k, stats, () => {})!;
      utimesSync(path, 1000 + i, 1000 + i); // written in this order, long ago
    });
    // The oldest is used now: the second oldest is the one to go.
    expect(readZcaCache(dir, { key: keys[0], dim, count: stats.count, epsilon: stats.epsilon }, () => {})).not.toBeNull();
    const newest = zcaCacheKey(new Float32Array(dim).fill(99), dim, 0.1);
    writeZcaCache(dir, newest, stats, () => {});
    expect(entries(dir)).toHaveLength(ZCA_CACHE_ENTRIES);
    const left = (k: string): boolean => entries(dir).includes(`zca-${k.slice(0, 32)}.safetensors`);
    expect(left(keys[0])).toBe(true);
    expect(left(keys[1])).toBe(false);
    expect(left(newest)).toBe(true);
    expect(keys.slice(2).every(left)).toBe(true);
    expect(statSync(join(dir, `zca-${keys[0].slice(0, 32)}.safetensors`)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
    // A write cut short (its temp file an hour old) is removed with the next write; a recent one,
    // perhaps another machine's write in progress (a shared cache has no lock), is not.
    const leftover = join(dir, `.zca-${newest.slice(0, 32)}.safetensors.tmp-12-k3j9x0ab`);
    const running = join(dir, `.zca-${newest.slice(0, 32)}.safetensors.tmp-13-k3j9x0ab`);
    writeFileSync(leftover, 'cut short');
    writeFileSync(running, 'in progress');
    const hourAgo = (Date.now() - 61 * 60 * 1000) / 1000;
    utimesSync(leftover, hourAgo, hourAgo);
    writeZcaCache(dir, keys[2], stats, () => {});
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(running)).toBe(true);
  });

  it('the directory: $NIN_CACHE (made absolute), off, else $XDG_CACHE_HOME/nin (if absolute, as the XDG spec says), else ~/.cache/nin', () => {
    expect(zcaCacheDir({ NIN_CACHE: '/x/y' })).toBe('/x/y');
    expect(zcaCacheDir({ NIN_CACHE: 'rel/cache' })).toBe(join(process.cwd(), 'rel', 'cache'));
    expect(zcaCacheDir({ NIN_CACHE: 'off' })).toBeNull();
    expect(zcaCacheDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/nin');
    expect(zcaCacheDir({ XDG_CACHE_HOME: 'c' })).toBe(join(homedir(), '.cache', 'nin'));
    expect(zcaCacheDir({})).toBe(join(homedir(), '.cache', 'nin'));
  });
});
