// Memory-bound kernels against the card's copy bandwidth, measured in the same run with a
// compute-shader copy: GAP (forward and backward), max pooling (forward), average pooling
// (forward and backward), the loss, the SGD step.
//   node --import tsx bench/bandwidth.ts [--batch 128] [--reps 20] [--evict-mib 128] [--json out.json]
// GB/s counts the bytes each kernel must move at least (inputs read once, outputs written once).
// Before each timed repetition an untimed copy of --evict-mib MiB runs, so every kernel starts from
// memory as the copy does, not from a cache its last repetition filled (an H200's L2 holds 50 MB;
// the SGD row moves 9 MB). Rows that move less than LATENCY_BOUND_BYTES are marked: at such sizes
// a kernel's time is mostly launch and latency, not bandwidth.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { noGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu } from '../engine/device.ts';
import { dispatch, sync } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel } from '../kernels/elementwise.ts';
import { globalAvgPool, globalAvgPoolBackward } from '../kernels/gap.ts';
import { avgPool2d, avgPool2dBackward, maxPool2d, poolShape } from '../kernels/pool2d.ts';
import { labelTensor, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
import { sgdStep } from '../kernels/sgd.ts';
import { median, randomArray } from '../test/numeric.ts';
import { isMainModule } from '../nin/is-main.ts';
import { formatCarryOver, profileReps, repTotal, timestampCarryOver } from './profile-reps.ts';

export interface BandwidthRow {
  kernel: string;
  shape: string;
  bytes: number;
  gpuMs: number;
  gbPerSec: number;
  /** Fraction of the measured copy bandwidth. */
  ofCopy: number;
}

/** Rows moving fewer bytes are marked latency-bound in the table. */
export const LATENCY_BOUND_BYTES = 8e6;

/** An untimed copy big enough to push the last repetition's data out of the GPU's caches. */
let evict: () => void = () => {};

/** Median GPU time (timestamp queries) of the kernels named `names` that `run` dispatches, each rep after a cache flush. */
async function gpuTime(run: () => void, names: string[], reps: number): Promise<number> {
  // The flush runs, and is waited for, before each rep: recorded in the rep's submission, right
  // before the timed kernel, its 128 MiB copy could still be running when Dawn stamps the timed
  // pass's beginning (TOP_OF_PIPE; the profiler then times the kernel from the copy's end, but a
  // kernel without a barrier after it would share the memory bus with its tail). (Its kernel,
  // 'cache_evict', is not among `names`.)
  const perRep = await profileReps(run, reps, `bandwidth (${names.join(', ')})`, { before: async () => { evict(); await sync(); } });
  return median(perRep.map((rep) => repTotal(rep, (name) => names.includes(name))));
}

export async function benchBandwidth(batch: number, reps: number, evictMiB = 128): Promise<BandwidthRow[]> {
  const rows: { kernel: string; shape: string; bytes: number; gpuMs: number }[] = [];
  const t = (shape: number[], seed: number) => Tensor.fromArray(randomArray(shape.reduce((a, b) => a * b, 1), seed), shape);
  const ne = (evictMiB * 1024 * 1024) / 8; // floats in each of the two buffers: the copy touches evictMiB
  const evictSrc = Tensor.fromArray(new Float32Array(ne), [ne]);
  const evictDst = Tensor.empty([ne]);
  const evictCopy = elementwiseKernel('cache_evict', ne, '@group(0) @binding(0) var<storage, read> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;', 'y[i] = x[i];');
  evict = () => dispatch(evictCopy, [evictSrc, evictDst], elementwiseGrid(ne));
  // The reference: y[i] = x[i] over 64 MiB.
  const n = 16 * 1024 * 1024;
  const src = t([n], 1);
  const dst = Tensor.empty([n]);
  const copy = elementwiseKernel('copy', n, '@group(0) @binding(0) var<storage, read> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;', 'y[i] = x[i];');
  rows.push({ kernel: 'copy (compute shader)', shape: `${n}`, bytes: 8 * n, gpuMs: await gpuTime(() => dispatch(copy, [src, dst], elementwiseGrid(n)), ['copy'], reps) });
  src.dispose();
  dst.dispose();

  const fwd = (label: string, x: Tensor, fn: (x: Tensor) => Tensor, names: string[]) =>
    gpuTime(() => noGrad(() => tidy(() => void fn(x))), names, reps).then((ms) => {
      const y = noGrad(() => fn(x));
      rows.push({ kernel: label, shape: x.shape.join('×'), bytes: x.byteLength + y.byteLength, gpuMs: ms });
      y.dispose();
    });
  // CIFAR-10 NIN shapes: GAP over the last block's 8×8×10, pooling after blocks 1 and 2.
  const gapIn = t([batch, 8, 8, 10], 2);
  await fwd('gap forward', gapIn, globalAvgPool, ['gap_forward']);
  const dy = t([batch, 10], 3);
  const gapBack = await gpuTime(() => tidy(() => void globalAvgPoolBackward(dy, gapIn.shape)), ['gap_backward'], reps);
  rows.push({ kernel: 'gap backward', shape: gapIn.shape.join('×'), bytes: dy.byteLength + gapIn.byteLength, gpuMs: gapBack });
  const p1 = t([batch, 32, 32, 96], 4);
  await fwd('maxpool 3/2 forward', p1, (x) => maxPool2d(x), ['maxpool_forward', 'maxpool_forward_argmax']);
  const p2 = t([batch, 16, 16, 192], 5);
  await fwd('avgpool 3/2 forward', p2, (x) => avgPool2d(x), ['avgpool_forward']);
  const ps = poolShape('bench', p2, {});
  const pdy = t([batch, ps.OH, ps.OW, ps.C], 6);
  const avgBack = await gpuTime(() => tidy(() => void avgPool2dBackward(ps, pdy)), ['avgpool_backward'], reps);
  rows.push({ kernel: 'avgpool 3/2 backward', shape: p2.shape.join('×'), bytes: pdy.byteLength + p2.byteLength, gpuMs: avgBack });
  const logits = t([batch, 10], 7);
  const labels = labelTensor(Array.from({ length: batch }, (_, i) => i % 10), 10);
  const lossMs = await gpuTime(() => noGrad(() => tidy(() => void softmaxCrossEntropy(logits, labels))), ['softmax_xent_rows', 'loss_mean'], reps);
  rows.push({ kernel: 'softmax cross-entropy forward', shape: logits.shape.join('×'), bytes: logits.byteLength + labels.byteLength + 4, gpuMs: lossMs });
  // SGD over the CIFAR-10 NIN's largest weight (5×5×96×192): reads w, g, v; writes w, v.
  const w = t([5, 5, 96, 192], 8), g = t([5, 5, 96, 192], 9), v = t([5, 5, 96, 192], 10);
  const sgdMs = await gpuTime(() => sgdStep(w, g, v, { lr: 1e-3, momentum: 0.9, weightDecay: 1e-4 }), ['sgd_step'], reps);
  rows.push({ kernel: 'sgd step', shape: w.shape.join('×'), bytes: 5 * w.byteLength, gpuMs: sgdMs });

  evictSrc.dispose();
  evictDst.dispose();
  evict = () => {};
  const copyRate = rows[0].bytes / rows[0].gpuMs / 1e6;
  return rows.map((r) => {
    const gbPerSec = r.bytes / r.gpuMs / 1e6;
    return { ...r, gbPerSec, ofCopy: gbPerSec / copyRate };
  });
}

export function formatBandwidth(rows: BandwidthRow[]): string {
  return [
    '| kernel | shape | MB moved | GPU ms | GB/s | of copy | note |',
    '|---|---|---|---|---|---|---|',
    // A kernel shorter than one timestamp tick reads as 0 ms: no rate can be claimed for it.
    ...rows.map((r) => {
      const note = r.bytes < LATENCY_BOUND_BYTES ? `latency-bound: under ${LATENCY_BOUND_BYTES / 1e6} MB` : '';
      return r.gpuMs > 0
        ? `| ${r.kernel} | ${r.shape} | ${(r.bytes / 1e6).toFixed(2)} | ${r.gpuMs.toFixed(3)} | ${r.gbPerSec.toFixed(1)} | ${(100 * r.ofCopy).toFixed(0)} % | ${note} |`
        : `| ${r.kernel} | ${r.shape} | ${(r.bytes / 1e6).toFixed(2)} | < 1 timestamp tick | — | — | ${note} |`;
    }),
  ].join('\n');
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({ options: { batch: { type: 'string', default: '128' }, reps: { type: 'string', default: '20' }, 'evict-mib': { type: 'string', default: '128' }, json: { type: 'string' } } });
  const gpu = await getGpu();
  const rows = await benchBandwidth(Number(values.batch), Number(values.reps), Number(values['evict-mib']));
  console.log(`adapter: ${gpu.adapterName}\n${formatBandwidth(rows)}`);
  console.log(formatCarryOver(await timestampCarryOver()));
  if (values.json) writeFileSync(values.json, JSON.stringify({ adapter: gpu.adapterName, date: new Date().toISOString(), rows }, null, 2));
  closeGpu();
}
