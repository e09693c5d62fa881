// bench/crosscheck: what our side writes is complete and agrees with our solver; where PyTorch is
// installed (not in CI), its float64 replay passes our run and fails a tampered one.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../nin/safetensors.ts';
import { runAsync } from './helpers.ts';

const torchAvailable = spawnSync('python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const lr = 0.05;
const wd = 1e-4;

async function ourSide(steps: number): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'crosscheck-'));
  const args = ['--model', 'mnist-small', '--batch', '4', '--steps', String(steps), '--synthetic', '--init', 'he', '--lr', String(lr), '--out', out];
  const r = await runAsync(process.execPath, ['--import', 'tsx', 'bench/crosscheck.ts', ...args], { timeout: 300_000 });
  expect(r.status, r.stderr).toBe(0);
  return join(out, 'crosscheck.safetensors');
}

async function replay(file: string) {
  const r = await runAsync('python3', ['bench/crosscheck.py', file], { timeout: 300_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('bench/crosscheck', () => {
  it('writes weights, batches, losses, gradients and changes; one step changes each weight by −lr·mult·(g + wd·decay·w)', async () => {
    const { tensors, metadata } = readSafetensors(await ourSide(1));
    const config = JSON.parse(metadata.config);
    expect(config.name).toBe('mnist-small');
    expect(Number(metadata.lr)).toBe(lr);
    expect(tensors.x.shape).toEqual([4, 28, 28, 1]);
    expect(Array.from(tensors.y.data).every((c) => Number.isInteger(c) && c >= 0 && c < 10)).toBe(true);
    expect(tensors.loss.shape).toEqual([1]);
    expect(Number.isFinite(tensors.loss.data[0])).toBe(true);
    const names = Object.keys(tensors).filter((k) => k.startsWith('init.')).map((k) => k.slice(5));
    expect(names).toHaveLength(18); // 3 blocks × (3 weights + 3 biases)
    for (const n of names) {
      const w = tensors[`init.${n}`].data;
      const g = tensors[`grad.${n}`].data;
      const change = tensors[`change.${n}`].data;
      expect(tensors[`grad.${n}`].shape, n).toEqual(tensors[`init.${n}`].shape);
      const bias = tensors[`init.${n}`].shape.length === 1;
      let worst = 0;
      let gradNorm = 0;
      for (let i = 0; i < w.length; i++) {
        const expected = -lr * (bias ? 2 : 1) * (g[i] + (bias ? 0 : wd) * w[i]);
        // float32: the new weight is rounded (≤ |w|·2⁻²⁴) and so is the step itself.
        worst = Math.max(worst, Math.abs(change[i] - expected) / (Math.abs(w[i]) + Math.abs(expected) + 1e-30));
        gradNorm += g[i] * g[i];
      }
      expect(worst, n).toBeLessThan(2.4e-7);
      expect(gradNorm, `${n}: a zero gradient would make this check empty`).toBeGreaterThan(0);
    }
  });

  it.skipIf(!torchAvailable)("PyTorch's float64 replay passes our steps, and fails them with one gradient off by 1 %", async () => {
    const file = await ourSide(3);
    const good = await replay(file);
    expect(good.code, good.out).toBe(0);
    expect(good.out).toMatch(/^crosscheck: PASS/m);
    const { tensors, metadata } = readSafetensors(file);
    tensors['grad.block2.w1'].data = tensors['grad.block2.w1'].data.map((v) => v * 1.01) as Float32Array;
    const tampered = join(mkdtempSync(join(tmpdir(), 'crosscheck-')), 'tampered.safetensors');
    writeSafetensors(tampered, tensors, metadata);
    const bad = await replay(tampered);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^crosscheck: FAIL/m);
    expect(bad.out).toMatch(/block2\.w1\s+1\.0\de-02/);
  });
});
