import { defineConfig } from 'vitest/config';

// The kernel tests run once more with each workgroup's invocations renumbered (scrambled): lavapipe
// runs them in order, which hides a missing barrier (engine/invocation-order.ts). Only the files of
// kernels that share workgroup memory or pass values between invocations, as on a cold shader
// cache every renumbered kernel compiles anew. Left out, to keep a cold suite within 15 minutes on
// 2 cores: tuning.test.ts (other tiles of the same GEMM and mlpconv generators), nin-end-to-end
// (these kernels composed) and gemm-matrix.test.ts (the emulated matrix GEMM); they would add about
// 7 minutes cold. `NIN_INVOCATION_ORDER=scramble npx vitest run --project all FILE` runs any file so.
const RACE_CHECKED = [
  'test/conv2d.test.ts', 'test/mlpconv.test.ts', 'test/gap.test.ts', 'test/softmax-cross-entropy.test.ts',
  'test/pool2d.test.ts', 'test/dropout.test.ts', 'test/sgd.test.ts',
];

export default defineConfig({
  test: {
    // lavapipe already uses every core; running test files side by side only makes each slower.
    fileParallelism: false,
    maxWorkers: 1, // across projects too
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // One project alone: `npx vitest run --project all test/mlpconv.test.ts`.
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'scrambled-invocations', include: RACE_CHECKED, env: { NIN_INVOCATION_ORDER: 'scramble' } } },
    ],
  },
});
