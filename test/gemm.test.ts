// The GEMM contract (kernels/gemm.ts GemmSpec): every kernel version calls loadA with m < M and
// k < K, loadB with k < K and n < N, and store with m < M, n < N and z < splitK; the split-K
// slices sum to A·B. Checked by loaders that count every call out of range (an atomic counter)
// instead of relying on what an out-of-range read returns: lavapipe returns 0 there, which hides a
// k past K (a last split-K slice running past the end), and drops a write past a buffer's end,
// which hides a row past M writing into the next slice.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, gpu, setKernelStyle } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { runtimeStats } from '../engine/runtime.ts';
import { gemmKernel, runGemm, setGemmCapture, simdGemmKernel, type GemmDispatch, type GemmSpec } from '../kernels/gemm.ts';
import { EMULATED_MATRIX, forceMatrixMode } from '../kernels/gemm-matrix.ts';
import { forceTuning, type GemmTile } from '../kernels/tuning.ts';
import { expectClose, randomArray } from './helpers.ts';

beforeAll(async () => {
  await getGpu();
});
afterEach(() => {
  forceTuning({});
  forceMatrixMode(undefined);
  setKernelStyle(null);
});
afterAll(() => closeGpu());

// Odd sizes: no tile divides M or N, and split 3 of K = 47 gives slices of 16, 16 and 15, so the
// last slice's k-range ends before a whole tile depth.
const [M, N, K, SPLIT] = [60, 9, 47, 3];

/**
 * The contract GEMM: row-major storage whichever way the kernel stages it. `aContiguous` and
 * `bContiguous` only say which index the loads should walk for coalescing; they must not change
 * which calls are made.
 */
function contractSpec(layout: { a: 'm' | 'k'; b: 'k' | 'n' }): GemmSpec {
  return {
    name: 'gemm_contract',
    M, N, K,
    bindings: `@group(0) @binding(0) var<storage, read> as_: array<f32>;
@group(0) @binding(1) var<storage, read> bs_: array<f32>;
@group(0) @binding(2) var<storage, read_write> cs_: array<f32>;
@group(0) @binding(3) var<storage, read_write> bad_: array<atomic<i32>>;`,
    loadA: `fn loadA(m: u32, k: u32) -> f32 {
  if (m >= ${M}u || k >= ${K}u) { atomicAdd(&bad_[0], 1); return 0.0; }
  return as_[m * ${K}u + k];
}`,
    loadB: `fn loadB(k: u32, n: u32) -> f32 {
  if (k >= ${K}u || n >= ${N}u) { atomicAdd(&bad_[1], 1); return 0.0; }
  return bs_[k * ${N}u + n];
}`,
    store: `fn store(m: u32, n: u32, z: u32, v: f32) {
  if (m >= ${M}u || n >= ${N}u || z >= ${SPLIT}u) { atomicAdd(&bad_[2], 1); return; }
  cs_[(z * ${M}u + m) * ${N}u + n] = v;
}`,
    aContiguous: layout.a,
    bContiguous: layout.b,
    splitK: SPLIT,
  };
}

/** C's split-K slices and the out-of-range calls [loadA, loadB, store] of one GEMM in the current style. */
async function contractRun(label: string, layout: { a: 'm' | 'k'; b: 'k' | 'n' }): Promise<void> {
  const a = randomArray(M * K, 11);
  const b = randomArray(K * N, 12);
  const slices = Tensor.fromArray(new Float32Array(SPLIT * M * N).fill(NaN), [SPLIT, M, N]); // unwritten: NaN
  const bad = Tensor.fromArray([0, 0, 0], [3], 'i32');
  runGemm(contractSpec(layout), [Tensor.fromArray(a, [M, K]), Tensor.fromArray(b, [K, N]), slices, bad]);
  const [counts, c] = await Promise.all([bad.toInt32Array(), slices.toArray()]);
  expect(Array.from(counts), `${label}: loadA, loadB, store calls out of range`).toEqual([0, 0, 0]);
  const sum = new Float64Array(M * N);
  for (let z = 0; z < SPLIT; z++) for (let i = 0; i < M * N; i++) sum[i] += c[z * M * N + i];
  const want = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) want[m * N + n] += a[m * K + k] * b[k * N + n];
  expectClose(`${label}: sum of the ${SPLIT} split-K slices`, sum, want, 1e-6);
}

const LAYOUTS = [{ a: 'k', b: 'n' }, { a: 'm', b: 'k' }] as const; // the forward's, and the other way for both operands

describe('GEMM contract: loads and stores stay in range, split-K slices sum to A·B', () => {
  it('tiled kernels, versions 1 and 2, tiles spanning the space', async () => {
    setKernelStyle('tiled');
    const tiles: GemmTile[] = [
      { TM: 1, TN: 1, BK: 16 }, { TM: 1, TN: 8, BK: 32 }, { TM: 8, TN: 1, BK: 32 }, { TM: 8, TN: 8, BK: 16 }, { TM: 2, TN: 4, BK: 32 },
      { TM: 4, TN: 4, BK: 16, v: 2 }, { TM: 8, TN: 8, BK: 16, v: 2 }, { TM: 4, TN: 8, BK: 32, v: 2 }, { TM: 8, TN: 4, BK: 32, v: 2 },
    ];
    for (const tile of tiles) {
      forceTuning({ gemm: tile });
      // What ran is the forced tile and version (version 1 in place of 2 would pass the sums too).
      const used: GemmDispatch[] = [];
      setGemmCapture((_, __, u) => used.push(u));
      try {
        for (const layout of LAYOUTS) await contractRun(`tile ${tile.TM}×${tile.TN}×${tile.BK} v${tile.v ?? 1}, A ${layout.a}-contiguous, B ${layout.b}-contiguous`, layout);
      } finally {
        setGemmCapture(null);
      }
      expect(used).toEqual(LAYOUTS.map(() => ({ style: 'tiled', tile })));
    }
  });

  it('refuses a tile it cannot run, or a tap width that does not divide K, naming the GEMM', () => {
    const spec = contractSpec(LAYOUTS[0]);
    expect(() => gemmKernel(spec, { TM: 2, TN: 4, BK: 16, v: 2 })).toThrow('gemm_contract: tile 2×4×16 v2: version 2 needs TM and TN of 4 or 8');
    expect(() => gemmKernel(spec, { TM: 3, TN: 4, BK: 16 })).toThrow('gemm_contract: tile 3×4×16: TM, TN must be one of');
    expect(() => simdGemmKernel({ ...spec, splitK: 1, aTaps: { KI: 5, aRow: '', aAt: '' } })).toThrow('gemm_contract: K = 47 is not a multiple of the tap width 5');
  });

  it('simd kernel (CPU adapters)', async () => {
    setKernelStyle('simd');
    for (const layout of LAYOUTS) await contractRun(`simd, A ${layout.a}-contiguous, B ${layout.b}-contiguous`, layout);
  });

  it('matrix kernel (emulated subgroup matrices, f32)', async () => {
    forceMatrixMode({ component: 'f32', ...EMULATED_MATRIX, shape: { ...EMULATED_MATRIX.shape }, emulated: true });
    for (const layout of LAYOUTS) await contractRun(`matrix (emulated), A ${layout.a}-contiguous, B ${layout.b}-contiguous`, layout);
  });

  it("GPUs' form: the tiled loops keep their literal bounds there (hidden on CPU adapters), and pass alike", async () => {
    // kernels/loop-bounds.ts gpuUnrollBound: lavapipe gets the k-loop and staging bounds hidden, which
    // cuts its compile time; a GPU gets them as written. Here both forms, on this adapter.
    setKernelStyle('tiled');
    const g = gpu();
    const wasCpu = g.cpuAdapter;
    const v1: GemmTile = { TM: 2, TN: 4, BK: 32 };
    const v2: GemmTile = { TM: 4, TN: 8, BK: 32, v: 2 };
    const spec = contractSpec(LAYOUTS[0]);
    try {
      for (const cpuAdapter of [true, false]) {
        g.cpuAdapter = cpuAdapter;
        for (const tile of [v1, v2]) {
          const code = gemmKernel(spec, tile).kernel.code;
          const kLoop = cpuAdapter ? 'kk < select(BK, 0u, nwg.z == 0u); kk++' : 'kk < BK; kk++';
          expect(code, `v${tile.v ?? 1}, cpuAdapter ${cpuAdapter}`).toContain(kLoop);
          // staging: BK·16·TM values of A and BK·16·TN of B, over 256 threads
          for (const rounds of [tile.BK * tile.TM / 16, tile.BK * tile.TN / 16]) expect(code).toContain(cpuAdapter ? `r < select(${rounds}u, 0u, nwg.z == 0u); r++` : `r < ${rounds}u; r++`);
        }
      }
      // The first test here already ran these tiles in this adapter's (hidden-bound) form: each run
      // below must compile the GPUs' form afresh, not take the cached one.
      g.cpuAdapter = false;
      const pipelinesBefore = runtimeStats().pipelines;
      for (const tile of [v1, v2]) {
        forceTuning({ gemm: tile });
        for (const layout of LAYOUTS) await contractRun(`GPUs' form, tile ${tile.TM}×${tile.TN}×${tile.BK} v${tile.v ?? 1}, A ${layout.a}-contiguous, B ${layout.b}-contiguous`, layout);
      }
      expect(runtimeStats().pipelines - pipelinesBefore, "GPUs' form kernels compiled").toBe(2 * LAYOUTS.length);
    } finally {
      g.cpuAdapter = wasCpu;
    }
  });
});
