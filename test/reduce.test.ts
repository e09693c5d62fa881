// reduceRows (kernels/reduce.ts), the sum under global average pooling, bias gradients, the loss's
// mean and dot(): against the float64 reference on shapes that reach each of its paths.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { pool, runtimeStats } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { reduceRows } from '../kernels/reduce.ts';
import { expectClose, randomArray, withDeviceLimit } from './helpers.ts';
import { reduceRowsRef } from './reference.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

async function expectRowSums(B: number, R: number, C: number, scale: number, seed: number): Promise<void> {
  const xs = randomArray(B * R * C, seed);
  const x = Tensor.fromArray(xs, [B * R * C]);
  const y = reduceRows(x, { name: 'reduce_test', batch: B, rows: R, channels: C, scale });
  expect(y.shape).toEqual([B, C]);
  // float32 sums of R terms: the error grows with the terms' magnitudes, not their (cancelling) sum
  const magnitude = reduceRowsRef(xs.map(Math.abs), B, R, C, Math.abs(scale));
  const got = await y.toArray();
  const want = reduceRowsRef(xs, B, R, C, scale);
  expectClose(`[${B}, ${R}, ${C}] ×${scale}`, got.map((v, i) => v / magnitude[i]), want.map((v, i) => v / magnitude[i]), 1e-5);
  x.dispose();
  y.dispose();
}

describe('reduceRows', () => {
  // One channel tile part-full (C 5), several with the last part-full (C 33, 70), a single column
  // (the loss's mean), rows below one lane's stride (R 3 < 8 row lanes), and rows past 1,024: split
  // over the grid's z and summed again in a second pass, whose last split is short (2,500 = 3 × 834 − 2),
  // with a batch and a scale that must apply once, in the second pass.
  const cases: [number, number, number, number][] = [
    [3, 7, 5, 1],
    [2, 3, 33, 0.5],
    [1, 1, 70, 1],
    [1, 999, 1, 1 / 999],
    [2, 2500, 3, -0.25],
    [3, 1025, 37, 1],
  ];
  cases.forEach(([B, R, C, scale], i) => {
    it(`[${B}, ${R}, ${C}], scale ${scale}: the float64 row sums`, async () => {
      await expectRowSums(B, R, C, scale, 70 + i);
    });
  });

  it('rows past 1,024 take the split path (a pass over z-splits, then one over their sums), 1,024 rows one pass', async () => {
    // The cases above past 1,024 rows test the two-pass path only while they reach it.
    const dispatches = async (R: number) => {
      const before = runtimeStats().dispatches;
      await expectRowSums(2, R, 3, -0.25, 90);
      return runtimeStats().dispatches - before;
    };
    const one = await dispatches(1024);
    expect(await dispatches(1025)).toBe(one + 1);
    expect(await dispatches(2500)).toBe(one + 1);
  });

  it('the split path frees its partial sums: a reduction over 1,025 rows leaves only its result live', async () => {
    const x = Tensor.fromArray(randomArray(2 * 1025 * 3, 91), [2 * 1025 * 3]);
    const before = pool().stats.liveBuffers;
    const y = reduceRows(x, { name: 'reduce_test', batch: 2, rows: 1025, channels: 3 });
    expect(pool().stats.liveBuffers).toBe(before + 1);
    await y.toArray();
    y.dispose();
    x.dispose();
    expect(pool().stats.liveBuffers).toBe(before - 1);
  });

  it('a grid past the per-dimension limit folds into 2-D (batch 9 × 2 channel tiles = 18 workgroups at a limit of 5)', async () => {
    await withDeviceLimit('maxComputeWorkgroupsPerDimension', 5, () => expectRowSums(9, 4, 37, 1, 80));
  });

  it('a view larger than its input is refused, naming the kernel', () => {
    const x = Tensor.fromArray(new Float32Array(10), [10]);
    expect(() => reduceRows(x, { name: 'reduce_test', batch: 1, rows: 3, channels: 4 })).toThrow('reduceRows (reduce_test): [1, 3, 4] exceeds the input\'s 10 elements');
    // One element past the end is as much out of bounds as two.
    expect(() => reduceRows(x, { name: 'reduce_test', batch: 1, rows: 1, channels: 11 })).toThrow('reduceRows (reduce_test): [1, 1, 11] exceeds the input\'s 10 elements');
    x.dispose();
  });
});
