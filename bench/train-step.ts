// Full NIN training step (forward + backward + SGD) and forward-only throughput, wall clock.
//   node --import tsx bench/train-step.ts --model cifar10 --batch 128 --steps 20 [--unfused] [--json out.json]
import { parseArgs } from 'node:util';
import { getGpu, closeGpu } from '../engine/device.ts';
import { noGrad, zeroGrad } from '../engine/autograd.ts';
import { flush, sync } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { labelTensor } from '../kernels/softmax-cross-entropy.ts';
import { SGD } from '../kernels/sgd.ts';
import { MODELS, mlpconvPixelFlops, NinModel, plan, type ModelConfig } from '../nin/model.ts';
import { checkedMatrixSettings, describeMatrixMode, matrixMode } from '../kernels/gemm-matrix.ts';
import { tuningTable } from '../kernels/tuning.ts';
import { writeFileSync } from 'node:fs';
import { formatProfile, formatScopeProfile, startProfiler, type Profiler } from '../engine/profiler.ts';
import { profileScope } from '../engine/runtime.ts';
import { median } from '../test/numeric.ts';
import { isMainModule } from '../nin/is-main.ts';

export interface StepBenchResult {
  name: string;
  model: string;
  batch: number;
  adapter: string;
  trainStepMs: number;
  forwardMs: number;
  trainImgPerSec: number;
  forwardImgPerSec: number;
  /** Host time to record one training step (JavaScript + Dawn encoding, no GPU wait). */
  recordMs: number;
  /**
   * Steps back to back as nin/train.ts runs them (each step's loss read while the next is
   * recorded and queued): wall time over `steps` steps / steps. trainStepMs waits for every
   * step's loss before recording the next, so it adds host time and a readback to each step.
   */
  pipelinedStepMs: number;
  /** Forwards back to back (each submitted as soon as recorded, one wait at the end): wall time / steps. */
  pipelinedForwardMs: number;
  /** Convolution GFLOP (2·MACs) of one training step and of one forward pass over the batch (convolutionFlops). */
  trainGflop: number;
  forwardGflop: number;
}

/**
 * FLOPs per image of a model's convolutions (2·MACs; pooling, GAP, loss and SGD are not counted):
 * the forward, and a training step = forward + input gradients + weight gradients, each as large
 * as the forward, less the first layer's input gradient, which nothing needs (the image).
 */
export function convolutionFlops(config: ModelConfig): { forward: number; train: number } {
  const summary = plan(config); // one entry per layer, then the head's
  let forward = 0;
  let firstInputGrad = 0;
  let C = config.input.channels;
  config.layers.forEach((l, i) => {
    if (l.type === 'mlpconv') {
      // (per output pixel: its K×K layer's multiply-adds, whichever way they run)
      const [Ho, Wo] = summary[i].output;
      if (forward === 0) firstInputGrad = Ho * Wo * mlpconvPixelFlops(l.kernel, C, l.channels).inputGrad;
      forward += summary[i].flops;
    }
    C = summary[i].output[2];
  });
  if (config.head !== 'gap') forward += summary.at(-1)!.flops; // the fully connected classifier
  return { forward, train: 3 * forward - firstInputGrad };
}

/**
 * A NIN model, its SGD optimiser and a fixed batch, for timing: `step(seed, unfused)` records one
 * training step (forward, backward, SGD, gradients zeroed) and returns its loss tensor.
 */
export function stepSetup(modelName: string, batch: number) {
  const config = MODELS[modelName];
  if (!config) throw new Error(`unknown model '${modelName}' (known: ${Object.keys(MODELS).join(', ')})`);
  const model = new NinModel(config, 1);
  const opt = new SGD(model.params.map((p) => ({ param: p.tensor, lrMult: p.lrMult, decayMult: p.decayMult })), { momentum: 0.9, weightDecay: 1e-4 });
  const { height, width, channels } = config.input;
  const x = Tensor.fromArray(Float32Array.from({ length: batch * height * width * channels }, (_, i) => Math.sin(i)), [batch, height, width, channels]);
  const labels = labelTensor(Array.from({ length: batch }, (_, i) => i % config.classes), config.classes);
  const params = model.params.map((p) => p.tensor);
  const step = (seed: number, unfused = false) => {
    const loss = tidy(() => {
      const { loss } = model.lossAndGradients(x, labels, { train: true, seed, unfused });
      profileScope('sgd', () => opt.step(1e-3));
      return loss;
    });
    zeroGrad(params);
    return loss;
  };
  const dispose = () => { model.dispose(); opt.dispose(); x.dispose(); labels.dispose(); };
  return { model, x, step, dispose };
}

export async function benchTrainStep(opts: { model: string; batch: number; steps: number; warmup: number; unfused?: boolean; profile?: boolean }): Promise<StepBenchResult> {
  const gpu = await getGpu();
  const B = opts.batch;
  const { model, x, dispose, ...bench } = stepSetup(opts.model, B);
  const step = (s: number) => bench.step(s, opts.unfused);
  const trainTimes: number[] = [];
  const recordTimes: number[] = [];
  let prof: Profiler | null = null;
  const finite = async (loss: Tensor, s: number) => {
    const v = await loss.item();
    loss.dispose();
    if (!Number.isFinite(v)) throw new Error(`non-finite loss ${v} at step ${s}`);
  };
  for (let s = 0; s < opts.warmup; s++) await finite(step(s), s);
  if (opts.profile) {
    // Profiled steps apart from the timed ones: a pass per dispatch and the query readbacks slow a step.
    prof = await startProfiler();
    for (let s = 0; s < opts.steps; s++) {
      await finite(step(s), s);
      prof.markStep();
    }
    prof.stop();
    console.log(formatProfile(await prof.collect(), { title: `training step, ${opts.model} batch ${opts.batch} on ${gpu.adapterName} (per step)`, notes: prof.notes() }));
    console.log(formatScopeProfile(await prof.collectByScope(), { title: `the same step per layer (forward, backward), loss and optimiser` }));
  }
  for (let s = 0; s < opts.steps; s++) {
    const t0 = performance.now();
    const loss = step(s);
    const recorded = performance.now();
    await finite(loss, s);
    trainTimes.push(performance.now() - t0);
    recordTimes.push(recorded - t0);
  }
  // Back to back, reading each loss one step late (nin/train.ts's loop).
  const tp = performance.now();
  let pending: Promise<void> | null = null;
  for (let s = 0; s < opts.steps; s++) {
    const loss = step(s);
    const prev: Promise<void> | null = pending;
    pending = finite(loss, s);
    if (prev) await prev;
  }
  if (pending) await pending;
  const pipelinedStepMs = (performance.now() - tp) / opts.steps;
  const fwdTimes: number[] = [];
  for (let s = 0; s < opts.warmup + opts.steps; s++) {
    const t0 = performance.now();
    const logits = noGrad(() => tidy(() => model.forward(x, { train: false, unfused: opts.unfused })));
    await sync();
    logits.dispose();
    if (s >= opts.warmup) fwdTimes.push(performance.now() - t0);
  }
  const tf = performance.now();
  for (let s = 0; s < opts.steps; s++) {
    noGrad(() => tidy(() => void model.forward(x, { train: false, unfused: opts.unfused })));
    flush(); // submitted now: the GPU works while the next forward is recorded
  }
  await sync();
  const pipelinedForwardMs = (performance.now() - tf) / opts.steps;
  dispose();
  const trainStepMs = median(trainTimes);
  const forwardMs = median(fwdTimes);
  const matrix = matrixMode();
  const flops = convolutionFlops(model.config);
  return {
    name: `nin-webgpu${opts.unfused ? ' (unfused)' : ''}${matrix ? ` (${describeMatrixMode(matrix)})` : ''}`,
    model: opts.model,
    batch: B,
    adapter: gpu.adapterName,
    trainStepMs,
    forwardMs,
    trainImgPerSec: (B * 1000) / trainStepMs,
    forwardImgPerSec: (B * 1000) / forwardMs,
    recordMs: median(recordTimes),
    pipelinedStepMs,
    pipelinedForwardMs,
    trainGflop: (flops.train * B) / 1e9,
    forwardGflop: (flops.forward * B) / 1e9,
  };
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'cifar10' },
      batch: { type: 'string', default: '128' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      unfused: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  // Bad settings (NIN_MATRIX, NIN_MATRIX_TILE, NIN_TUNED): their message, not a stack, before any timing.
  try {
    await getGpu();
    checkedMatrixSettings();
    tuningTable();
  } catch (e) {
    console.error(`train-step: ${(e as Error).message}`);
    process.exit(1);
  }
  const r = await benchTrainStep({ model: values.model!, batch: Number(values.batch), steps: Number(values.steps), warmup: Number(values.warmup), unfused: values.unfused, profile: values.profile });
  console.log(`${r.name} ${r.model} batch ${r.batch} on ${r.adapter}`);
  console.log(`  train step ${r.trainStepMs.toFixed(1)} ms (${r.trainImgPerSec.toFixed(1)} img/s), forward ${r.forwardMs.toFixed(1)} ms (${r.forwardImgPerSec.toFixed(1)} img/s)`);
  // (GFLOP per ms is TFLOP/s; under 1, as on a CPU adapter, in GFLOP/s: "0.0 TFLOP/s" says nothing)
  const flops = (tflops: number) => (tflops >= 1 ? `${tflops.toFixed(1)} TFLOP/s` : `${(1000 * tflops).toFixed(1)} GFLOP/s`);
  console.log(`  back to back (as training runs): ${r.pipelinedStepMs.toFixed(1)} ms a step (${((r.batch * 1000) / r.pipelinedStepMs).toFixed(1)} img/s, ${flops(r.trainGflop / r.pipelinedStepMs)} of ${r.trainGflop.toPrecision(3)} GFLOP a step)`);
  console.log(`  forwards back to back: ${r.pipelinedForwardMs.toFixed(1)} ms each (${((r.batch * 1000) / r.pipelinedForwardMs).toFixed(1)} img/s)`);
  console.log(`  host time to record a training step: ${r.recordMs.toFixed(2)} ms`);
  if (values.json) writeFileSync(values.json, JSON.stringify(r, null, 2));
  closeGpu();
}
