import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { runtimeStats } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { dropout } from '../kernels/dropout.ts';
import { dotRef, dropoutMaskRef, dropoutRef, numericalGrad, pcgHashRef } from './reference.ts';
import { expectClose, pair, pick, randomArray, sampleIndices } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

/** The GPU's mask, read off an all-positive input (dropped → exactly 0). */
async function gpuMask(n: number, p: number, seed: number): Promise<Uint8Array> {
  const x = Tensor.fromArray(new Float32Array(n).fill(1), [n]);
  const y = dropout(x, p, seed);
  const a = await y.toArray();
  x.dispose();
  y.dispose();
  return Uint8Array.from(a, (v) => (v !== 0 ? 1 : 0));
}

const mismatches = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + (v !== b[i] ? 1 : 0), 0);

describe('dropout', () => {
  it('the CPU hash twin (Math.imul) agrees with exact BigInt u32 arithmetic', () => {
    const M = 2n ** 32n;
    const pcgBig = (v: bigint) => {
      const state = (v * 747796405n + 2891336453n) % M;
      const word = (((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n) % M;
      return Number((word >> 22n) ^ word);
    };
    for (const v of [0, 1, 2, 12345, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) expect(pcgHashRef(v), `pcg(${v})`).toBe(pcgBig(BigInt(v)));
  });

  for (const p of [0.5, 0.2]) {
    it(`p = ${p}: the GPU mask equals the CPU twin bit for bit, keeps ≈ 1 − p, reproducible from the seed`, async () => {
      const n = 200_003; // not a multiple of the workgroup size
      const seed = 12345;
      const m1 = await gpuMask(n, p, seed);
      expect(mismatches(m1, dropoutMaskRef(n, p, seed)), 'GPU vs CPU twin mask mismatches').toBe(0);
      const kept = m1.reduce((s, v) => s + v, 0) / n;
      console.log(`p = ${p}: kept fraction ${kept.toFixed(4)} (expected ${1 - p})`);
      expect(Math.abs(kept - (1 - p))).toBeLessThan(0.005); // ~5 standard deviations at n = 2e5
      expect(mismatches(await gpuMask(n, p, seed), m1), 'same seed, same mask').toBe(0);
      const other = await gpuMask(n, p, seed + 1);
      const diff = mismatches(other, m1) / n; // independent masks differ on 2p(1 − p) of elements
      console.log(`p = ${p}: seeds ${seed} and ${seed + 1} disagree on ${diff.toFixed(4)} (expected ${2 * p * (1 - p)})`);
      expect(Math.abs(diff - 2 * p * (1 - p))).toBeLessThan(0.01);
    });
  }

  // p = 0.5 and 0.2: at 0.5 the kept values' scale 1/(1 − p) equals 1/p.
  for (const p of [0.5, 0.2])
  for (const shape of [[3, 9, 9, 5], [3, 5, 3, 7]]) {
    it(`p = ${p}: forward and gradient match the float64 reference: [${shape.join(', ')}]`, async () => {
      const seed = 777;
      const x = pair(shape, 51);
      param(x.gpu);
      const y = dropout(x.gpu, p, seed);
      expectClose('dropout forward', await y.toArray(), dropoutRef(x.ref, p, seed).data, 1e-5);
      const r = randomArray(y.size, 52);
      backward(dot(y, Tensor.fromArray(r, y.shape)));
      const idx = sampleIndices(x.ref.data.length, 80, 53);
      const dx = await x.gpu.grad!.toArray();
      expectClose('dropout d/dx', pick(dx, idx), numericalGrad(() => dotRef(dropoutRef(x.ref, p, seed), r), x.ref, idx), 1e-5);
      // The backward regenerates the forward's mask: dx is zero exactly where y is.
      const ya = await y.toArray();
      expect(mismatches(Uint8Array.from(dx, (v) => (v !== 0 ? 1 : 0)), Uint8Array.from(ya, (v) => (v !== 0 ? 1 : 0)))).toBe(0);
      x.gpu.dispose();
    });
  }

  it('an element whose hash equals the threshold floor(p · 2³²) is kept (the keep test is ≥, not >)', async () => {
    // p chosen so that the threshold is exactly element 5's hash: only that element tells ≥ from >.
    const seed = 99;
    const h5 = pcgHashRef(pcgHashRef((5 + pcgHashRef(seed)) >>> 0));
    const p = h5 / 2 ** 32;
    const m = await gpuMask(16, p, seed);
    expect(m[5]).toBe(1);
    expect(mismatches(m, dropoutMaskRef(16, p, seed))).toBe(0);
    // p · 2³² = h5 + 0.5: the threshold rounds down to h5 (floor, not up to h5 + 1), so element 5 is still kept.
    const pHalf = (h5 + 0.5) / 2 ** 32;
    expect((await gpuMask(16, pHalf, seed))[5]).toBe(1);
  });

  it('a new seed or p reuses the same pipeline (both travel in the uniform buffer)', async () => {
    await gpuMask(1000, 0.5, 1);
    const before = runtimeStats().pipelines;
    await gpuMask(1000, 0.3, 2);
    await gpuMask(1000, 0.5, 3);
    expect(runtimeStats().pipelines).toBe(before);
  });

  it('p = 0 passes the input through', () => {
    tidy(() => {
      const x = Tensor.empty([2, 3]);
      expect(dropout(x, 0, 1)).toBe(x);
    });
  });

  it('rejects p outside [0, 1) and bad seeds with named errors', () => {
    tidy(() => {
      const x = Tensor.empty([2, 3]);
      for (const p of [1, -0.1, 1.5, NaN]) expect(() => dropout(x, p, 1)).toThrow(/dropout: drop probability p = .* must be in \[0, 1\)/);
      for (const s of [-1, 0.5, 2 ** 32]) expect(() => dropout(x, 0.5, s)).toThrow(/dropout: seed .* must be an integer in \[0, 2\^32\)/);
    });
  });

  it('rejects an i32 input instead of masking its bits', () => {
    tidy(() => {
      expect(() => dropout(Tensor.fromArray([1, 2, 3, 4], [4], 'i32'), 0.5, 1)).toThrow('dropout: input must be an f32 tensor, got i32');
    });
  });
});
