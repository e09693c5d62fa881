// The engine's settings from the environment: every NIN_* variable the project reads is known, and
// one it does not read (a misspelt setting) is named in a warning rather than silently ignored.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NIN_SETTINGS, unknownSettings } from '../engine/device.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('NIN_* settings', () => {
  it('the known list is exactly the variables the code reads', () => {
    const read = new Set<string>();
    const code = /(?:process\.env|\benv)\.(NIN_[A-Z_]+)|process\.env\[['"](NIN_[A-Z_]+)|parseChoice\('(NIN_[A-Z_]+)'|environ(?:\.get\(|\[)['"](NIN_[A-Z_]+)/g;
    const shell = /\$\{?(NIN_[A-Z_]+)/g;
    for (const dir of ['engine', 'kernels', 'nin', 'nin/data', 'bench', '.ci']) {
      for (const f of readdirSync(join(root, dir))) {
        const reads = /\.(ts|mjs|py)$/.test(f) ? code : /\.sh$/.test(f) || dir === '.ci' ? shell : null;
        if (reads) for (const m of readFileSync(join(root, dir, f), 'utf8').matchAll(reads)) read.add(m.slice(1).find(Boolean)!);
      }
    }
    expect([...read].sort()).toEqual([...NIN_SETTINGS].sort());
  });

  it('names the NIN_* variables nothing reads', () => {
    expect(unknownSettings({ NIN_KERNELS: 'tiled', NIN_STYLE: 'tiled', NINJA: '1', NIN_DATA: '/d', NIN_TUNE: 'x' })).toEqual(['NIN_STYLE', 'NIN_TUNE']);
    expect(unknownSettings({ PATH: '/bin' })).toEqual([]);
  });

  it('warns once the GPU is acquired, naming the variable and the settings read', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./engine/device.ts').then(async (m) => { await m.getGpu(); m.closeGpu(); })"], {
      cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NIN_STYLE: 'tiled' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[nin\] ignored: NIN_STYLE \(not among the settings read: NIN_ADAPTER, .*NIN_KERNELS/);
  });
});
