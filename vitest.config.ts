import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// The kernel tests run once more with each workgroup's invocations renumbered (scrambled): lavapipe
// runs them in order, which hides a missing barrier (engine/invocation-order.ts). Only the files of
// kernels that share workgroup memory or pass values between invocations, as on a cold shader
// cache every renumbered kernel compiles anew; and those of the pools, dropout and SGD, which are
// element-wise today but take under a second (their losses reduce through dot, which shares
// workgroup memory); tuning.test.ts among them, for the GEMM and mlpconv
// tiles other than the defaults, which a tuning table may pick on a GPU. Left out, to keep a cold
// suite within 15 minutes on 2 cores: nin-end-to-end (these kernels composed) and
// gemm-matrix.test.ts (the emulated matrix GEMM; its staging is the tiled GEMM's, and its
// epilogue's lanes read what others stored, so a missing barrier there fails in the natural order
// already) and gemm.test.ts (the GEMM's index contract; its tiled kernels' tiles run scrambled in
// tuning.test.ts). Session 26, 2 cores, empty cache: 11 min 56 s for a fresh clone's whole .ci/run,
// tuning.test.ts's rerun taking 117 s of the summed file times; session 27, with more tests:
// 13 min 53 s; session 28, the tiled GEMMs' loop bounds hidden from lavapipe (gpuUnrollBound):
// 9 min 55 s for `npm test`.
// `NIN_INVOCATION_ORDER=scramble npx vitest run --project all FILE` runs any file so.
const RACE_CHECKED = [
  'test/conv2d.test.ts', 'test/mlpconv.test.ts', 'test/gap.test.ts', 'test/softmax-cross-entropy.test.ts',
  'test/pool2d.test.ts', 'test/dropout.test.ts', 'test/sgd.test.ts', 'test/tuning.test.ts', 'test/reduce.test.ts',
];

export default defineConfig({
  test: {
    // Two test files at a time (across projects too). On a cold shader cache most of a file's time
    // is lavapipe compiling its kernels, which a second file overlaps; warm, lavapipe's threads
    // share the cores. Session 19, 2-core VM: 12 min cold (vitest's summed file times: 21 min) and
    // 3 min 10 s warm, against 4 min 4 s warm one file at a time.
    fileParallelism: true,
    maxWorkers: Math.min(2, availableParallelism()),
    pool: 'forks',
    testTimeout: 300_000,
    // The default reporter, and one that names the files a dead test process left unfinished.
    reporters: ['default', './test/unfinished-reporter.ts'],
    // One temporary directory for the run, removed at its end (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    hookTimeout: 120_000,
    // One project alone: `npx vitest run --project all test/mlpconv.test.ts`.
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'scrambled-invocations', include: RACE_CHECKED, env: { NIN_INVOCATION_ORDER: 'scramble' } } },
    ],
  },
});
