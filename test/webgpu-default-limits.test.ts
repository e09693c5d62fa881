// A device with only WebGPU's default limits, which every adapter offers (NIN_LIMITS=webgpu-defaults):
// 16 KiB of workgroup storage, 8 storage buffers a stage, 256 invocations a workgroup, 128 MiB a
// binding. Dawn validates every pipeline, bind group and dispatch against the device's limits, so
// a kernel that assumed more than these fails here, in either kernel style.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, gpu, setKernelStyle, type KernelStyle } from '../engine/device.ts';
import { setGemmCapture } from '../kernels/gemm.ts';
import { deriveSeed } from '../nin/data/rng.ts';
import { expectClose } from './helpers.ts';
import { checkAgainstReference, referenceLoss, sgdStepOnTiny, tiny } from './tiny-nin.ts';

// WebGPU's defaults (https://www.w3.org/TR/webgpu/#limits) for the limits the engine reads.
const WEBGPU_DEFAULTS = {
  maxStorageBufferBindingSize: 134_217_728,
  maxBufferSize: 268_435_456,
  maxComputeWorkgroupStorageSize: 16_384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65_535,
  maxStorageBuffersPerShaderStage: 8,
};

beforeAll(async () => {
  process.env.NIN_LIMITS = 'webgpu-defaults'; // this file's own process (vitest forks one per file)
  await getGpu();
});
afterAll(() => {
  setKernelStyle(null);
  closeGpu();
  delete process.env.NIN_LIMITS;
});

const styles: KernelStyle[] = ['tiled', 'simd'];

describe("WebGPU's default limits (NIN_LIMITS=webgpu-defaults)", () => {
  it('the device has exactly those limits, whatever the adapter offers', () => {
    expect(gpu().limits).toEqual(WEBGPU_DEFAULTS);
  });

  for (const style of styles)
  it(`${style} kernels: the tiny NIN's loss and every parameter's gradient, in training mode (its dropout masks), match central differences on the float64 reference`, async () => {
    setKernelStyle(style);
    // With gradients, a fused block binds 10 storage buffers (h1 and h2 kept for the backward):
    // more than 8, so each block runs as its three convolutions.
    const gemms: string[] = [];
    setGemmCapture((g) => gemms.push(g.name));
    try {
      // (the dropout layers are 2 and 5; each draws its mask from the step's seed and its index)
      const seed = 23;
      const dropout = [2, 5].map((i): [number, number] => [(tiny.layers[i] as { p: number }).p, deriveSeed(seed, i)]);
      await checkAgainstReference(tiny, { train: true, seed }, (x, p, labels) => referenceLoss(x, p, labels, { dropout }));
    } finally {
      setGemmCapture(null);
    }
    const unfused = tiny.layers.flatMap((l) => (l.type === 'mlpconv' ? [`conv${l.kernel}x${l.kernel}_forward`, 'conv1x1_forward', 'conv1x1_forward'] : []));
    expect(unfused).toHaveLength(9); // three blocks
    expect(gemms.filter((n) => n.endsWith('_forward'))).toEqual(unfused);
  });

  // (Against each other: the gradients are checked against the reference above, and the SGD step
  // in test/sgd.test.ts.)
  it('a training step (dropout on, SGD with momentum and weight decay) updates the weights alike in both styles', async () => {
    const weightsAfterStep = (style: KernelStyle) => {
      setKernelStyle(style);
      return sgdStepOnTiny(tiny, 77);
    };
    const tiled = await weightsAfterStep('tiled');
    const simd = await weightsAfterStep('simd');
    expect(Number.isFinite(tiled.l)).toBe(true);
    expectClose('loss, simd vs tiled', [simd.l], [tiled.l], 1e-5);
    expect(simd.names).toEqual(tiled.names);
    tiled.names.forEach((name, i) => {
      // Every weight tensor moved (the step did something), and the two styles moved it alike.
      if (/\.w\d$/.test(name)) expect(tiled.after[i].some((v, j) => v !== tiled.before[i][j]), `${name} updated`).toBe(true);
      expectClose(`${name}, simd vs tiled`, simd.after[i], tiled.after[i], 1e-5);
    });
  });
});
