// Shared test utilities: seeded data, float32 rounding, error norms, GPU↔reference plumbing.
import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { param } from '../engine/autograd.ts';
import { gpu, type Gpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import type { MlpconvParams } from '../kernels/mlpconv.ts';
import { refTensor, type RefTensor } from './reference.ts';
import { randomArray, relErrNorm } from './numeric.ts';

export { randomArray, relErrNorm, sampleIndices, pick } from './numeric.ts';

/** A GPU tensor and its float64 twin holding the same (float32) values. */
export function pair(shape: number[], seed: number, lo = -1, hi = 1): { gpu: Tensor; ref: RefTensor } {
  const data = randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi);
  return { gpu: Tensor.fromArray(data, shape), ref: refTensor(shape, data) };
}

/** A buffer size lavapipe refuses (its maxBufferSize is 2^32 − 1; vkCreateBuffer fails with
 * VK_ERROR_OUT_OF_DEVICE_MEMORY): with setAllocationFault, a real out-of-memory error on demand. */
export const ALLOCATION_FAULT = 4294967293;

/** Runs `fn` with one of the device's limits, as the engine sees it, lowered to `value`. */
export async function withDeviceLimit<T>(limit: keyof Gpu['limits'], value: number, fn: () => T | Promise<T>): Promise<T> {
  const limits = gpu().limits as Record<keyof Gpu['limits'], number>;
  const before = limits[limit];
  limits[limit] = value;
  try {
    return await fn();
  } finally {
    limits[limit] = before;
  }
}

/** The prototype Dawn's GPU buffers share (from a throwaway mappable buffer), to spy on their methods. */
export function gpuBufferPrototype(): GPUBuffer {
  const probe = gpu().device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const proto = Object.getPrototypeOf(probe) as GPUBuffer;
  probe.destroy();
  return proto;
}

/** Logs a measured error (so test output reports it) and asserts it is within `tol`. */
export function expectClose(label: string, gpu: ArrayLike<number>, ref: ArrayLike<number>, tol: number): number {
  // An all-zero reference (a dead ReLU, an empty sample) would pass all-zero GPU values whatever
  // the arithmetic: such a comparison checks nothing, so it fails.
  expect(Array.prototype.some.call(ref, (v: number) => v !== 0), `${label}: the reference is all zeros`).toBe(true);
  const err = relErrNorm(gpu, ref);
  console.log(`${label}: relative error ${err.toExponential(2)} (tolerance ${tol})`);
  expect(err, label).toBeLessThanOrEqual(tol);
  expect(Number.isFinite(err), `${label} finite`).toBe(true);
  return err;
}

/**
 * An mlpconv block's six parameters (w1, b1, w2, b2, w3, b3), seeded, as GPU params (`gpu`) and
 * their float64 twins (`t`); weights scaled by 1.5/√fan-in so activations stay O(1) through the block.
 */
export function mlpconvParams(c: { K: number; Ci: number; C1: number; C2: number; C3: number }, seed: number) {
  const scale = (fanIn: number) => 1.5 / Math.sqrt(fanIn);
  const t = {
    w1: pair([c.K, c.K, c.Ci, c.C1], seed + 1, -scale(c.K * c.K * c.Ci), scale(c.K * c.K * c.Ci)),
    b1: pair([c.C1], seed + 2, -0.1, 0.3),
    w2: pair([1, 1, c.C1, c.C2], seed + 3, -scale(c.C1), scale(c.C1)),
    b2: pair([c.C2], seed + 4, -0.1, 0.3),
    w3: pair([1, 1, c.C2, c.C3], seed + 5, -scale(c.C2), scale(c.C2)),
    b3: pair([c.C3], seed + 6, -0.1, 0.3),
  };
  const gpu = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, param(v.gpu)])) as unknown as MlpconvParams;
  return { t, gpu };
}

/** An environment in which acquiring the GPU fails (engine/device.ts: no adapter has this name), on
 * any machine: a command run in it that reports a usage error did so before any GPU work. */
export const NO_GPU = { ...process.env, NIN_ADAPTER: 'no-such-adapter' };

/** `nin ARGS`, in the NO_GPU environment. */
export async function ninWithoutGpu(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', ...args], { timeout: 60_000, env: NO_GPU });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs a command to its end without blocking the test worker: a spawnSync that takes over a
 * minute (a training run on a loaded machine) starves the worker's event loop, and vitest's
 * worker-to-runner calls time out (an unhandled error that fails the suite). `status` is null
 * when the command was killed at `timeout` ms.
 */
export function runAsync(command: string, args: string[], opts: { timeout: number; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code, stdout, stderr });
    });
  });
}
