// Peer benchmark: TensorFlow.js (tfjs-core + tfjs-backend-webgpu) training the NIN networks on the
// same Dawn instance — by default on the very same GPUDevice — as our engine, in this process.
//
//   node --import tsx bench/peers.ts --model cifar10 --batch 16 --steps 3 [--warmup 2]
//        [--json out.json] [--no-dropout] [--device shared|own] [--lr 0.01]
//        [--tfjs-flag WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=false ...]
//
// Measured, for one fixed batch of random images / labels already on the GPU:
//   train step  forward (with dropout) + backward + SGD-momentum update, ending with an async
//               read of the loss, so each step's GPU work is complete when its clock stops;
//   forward     inference forward (no dropout, no tape), ending when the GPU has finished it
//               (TF.js's commands submitted, then the queue drained: no readback, as in ours).
// Medians over `steps` timed iterations after `warmup` untimed ones (shader compilation).
//
// Result rows (BenchResult) carry name, model, batch, trainStepMs, forwardMs and the adapter name,
// so that our engine's numbers can be printed in the same table with formatBenchTable().
//
// TF.js notes: gradients must be registered separately (register_all_gradients). That module is
// tfjs-core's ESM build, whose extensionless / directory imports plain Node ESM cannot resolve, so
// it is loaded through require (tsx compiles it); tfjs keeps its registries and engine in a
// global namespace, so that copy registers into the same engine the CommonJS build uses.
// tf.dropout draws its mask on the CPU and uploads it each step (as tf.layers does); --no-dropout
// leaves dropout out of the train step to see what that costs. TF.js's default
// WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=true computes the conv input gradient with a naive shader;
// --tfjs-flag WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=false selects its tiled matmul-style one.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { argv } from 'node:process';
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { closeGpu, dawnGpu, getGpu } from '../engine/device.ts';
import { median } from '../test/numeric.ts';
import { MODELS, type ModelConfig } from '../nin/model.ts';
import { isMainModule } from '../nin/is-main.ts';

export type PeerModel = 'cifar10' | 'mnist';

/** One side of the comparison; our engine's bench should produce the same fields. */
export interface BenchResult {
  /** Framework / variant, e.g. "tfjs-webgpu" or "nin-engine". */
  name: string;
  model: PeerModel;
  batch: number;
  /** Median wall time of a full training step (forward + backward + SGD), ms. */
  trainStepMs: number;
  /** Median wall time of an inference forward pass, ms. */
  forwardMs: number;
  /** batch / trainStepMs. */
  trainImgPerSec: number;
  /** batch / forwardMs. */
  forwardImgPerSec: number;
  /** Adapter (card) name as Dawn reports it. */
  adapter: string;
  steps: number;
  warmup: number;
  /** Every timed sample, ms, in order. */
  trainStepSamplesMs: number[];
  forwardSamplesMs: number[];
  /** Loss of the first and last training step (a sanity check that it trains). */
  firstLoss: number;
  lastLoss: number;
  notes?: string;
  [extra: string]: unknown;
}

export interface PeerBenchOptions {
  model: PeerModel;
  batch: number;
  /** Timed iterations (each of train and forward). */
  steps: number;
  /** Untimed iterations before timing. */
  warmup?: number;
  /** Dropout in the train step (default true, as in the paper's networks). */
  dropout?: boolean;
  /** 'shared': TF.js on our engine's GPUDevice (default); 'own': TF.js requests its own device from the same Dawn instance. */
  device?: 'shared' | 'own';
  learningRate?: number;
  /** TF.js environment flags to set first, e.g. { WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE: false }. */
  tfjsFlags?: Record<string, boolean | number | string>;
  /** Log progress to stderr. */
  verbose?: boolean;
}

// ---- the networks (NHWC, 'same' padding, ReLU after every conv) ----

type LayerSpec =
  | { kind: 'conv'; k: number; out: number }
  | { kind: 'maxpool' | 'avgpool'; size: number; stride: number }
  | { kind: 'dropout'; rate: number };

interface NetSpec {
  input: [number, number, number];
  classes: number;
  layers: LayerSpec[];
}

/**
 * The same network as our engine's config (nin/model.ts), in TF.js's terms: each mlpconv becomes
 * its three convolutions. TF 'same' pooling windows equal Caffe's ceil-mode ones for these sizes
 * (32→16→8, 28→14→7: no padding before, at most one row/column after).
 */
function peerNet(config: ModelConfig): NetSpec {
  const layers = config.layers.flatMap((l): LayerSpec[] => {
    if (l.type === 'mlpconv') {
      if (l.linearOut) throw new RangeError(`peers: ${config.name} has linear class maps; the TF.js net puts ReLU after every conv`);
      const [a, b, c] = l.channels;
      return [{ kind: 'conv', k: l.kernel, out: a }, { kind: 'conv', k: 1, out: b }, { kind: 'conv', k: 1, out: c }];
    }
    if (l.type === 'dropout') return [{ kind: 'dropout', rate: l.p }];
    return [{ kind: l.type, size: l.kernel, stride: l.stride }];
  });
  const { height, width, channels } = config.input;
  return { input: [height, width, channels], classes: config.classes, layers };
}

export const NETS: Record<PeerModel, NetSpec> = { cifar10: peerNet(MODELS.cifar10), mnist: peerNet(MODELS.mnist) };

interface ConvParams {
  w: tf.Variable;
  b: tf.Variable;
}

function buildParams(spec: NetSpec): ConvParams[] {
  let cin = spec.input[2];
  const params: ConvParams[] = [];
  let i = 0;
  for (const l of spec.layers) {
    if (l.kind !== 'conv') continue;
    const last = l.out === spec.classes && l === spec.layers.at(-1);
    const std = last ? 0.01 : Math.sqrt(2 / (l.k * l.k * cin)); // He init; small logits at the end
    params.push({
      w: tf.variable(tf.randomNormal([l.k, l.k, cin, l.out], 0, std, 'float32', 1000 + i), true, `conv${i}_w`),
      b: tf.variable(tf.zeros([l.out]), true, `conv${i}_b`),
    });
    cin = l.out;
    i++;
  }
  return params;
}

function forward(spec: NetSpec, params: ConvParams[], x: tf.Tensor4D, training: boolean, useDropout: boolean): tf.Tensor2D {
  let h = x;
  let c = 0;
  for (const l of spec.layers) {
    if (l.kind === 'conv') {
      const p = params[c++];
      h = tf.fused.conv2d({ x: h, filter: p.w as tf.Tensor4D, bias: p.b, strides: 1, pad: 'same', activation: 'relu' });
    } else if (l.kind === 'maxpool') {
      h = tf.maxPool(h, l.size, l.stride, 'same');
    } else if (l.kind === 'avgpool') {
      h = tf.avgPool(h, l.size, l.stride, 'same');
    } else if (l.kind === 'dropout' && training && useDropout) {
      h = tf.dropout(h, l.rate) as tf.Tensor4D;
    }
  }
  return tf.mean(h, [1, 2]) as tf.Tensor2D; // global average pooling → logits [N, classes]
}

// ---- TF.js setup on our Dawn device ----

let tfReady: Promise<{ backendName: string; version: string }> | null = null;

function setNavigatorGpu(gpuObj: GPU): void {
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (g.navigator) {
    if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpuObj, configurable: true, writable: true });
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: gpuObj }, configurable: true, writable: true });
  }
}

async function setupTf(mode: 'shared' | 'own'): Promise<{ backendName: string; version: string }> {
  const g = await getGpu();
  // TF.js's WebGPU backend checks navigator.gpu (Node 20 has no navigator): point it at our Dawn instance.
  setNavigatorGpu(dawnGpu());
  const require = createRequire(import.meta.url);
  require('@tensorflow/tfjs-core/dist/register_all_gradients');
  const webgpu = await import('@tensorflow/tfjs-backend-webgpu'); // registers 'webgpu' (its own device)
  // TF.js registers its kernels under the backend name 'webgpu', so the shared-device backend must
  // be registered under that name too, in place of the stock factory (which makes its own device).
  const backendName = 'webgpu';
  if (mode === 'shared') {
    const adapter = await dawnGpu().requestAdapter({ powerPreference: 'high-performance' });
    const info = adapter?.info;
    if (tf.findBackendFactory(backendName)) tf.removeBackend(backendName);
    tf.registerBackend(backendName, () => new webgpu.WebGPUBackend(g.device, info), 3);
  }
  if (!(await tf.setBackend(backendName))) throw new Error(`TF.js could not initialise its '${backendName}' backend`);
  await tf.ready();
  return { backendName, version: tf.version_core };
}

/** Runs the TF.js side of the comparison and returns its medians. */
export async function runPeerBench(opts: PeerBenchOptions): Promise<BenchResult> {
  const { model, batch, steps } = opts;
  const warmup = opts.warmup ?? 2;
  const useDropout = opts.dropout ?? true;
  const mode = opts.device ?? 'shared';
  const lr = opts.learningRate ?? 0.01;
  const log = (msg: string) => opts.verbose && process.stderr.write(`[peers] ${msg}\n`);
  const spec = NETS[model];
  if (!spec) throw new RangeError(`runPeerBench: unknown model '${model}' (expected cifar10 or mnist)`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`runPeerBench: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`runPeerBench: steps must be a positive integer, got ${steps}`);

  tfReady ??= setupTf(mode);
  const { backendName, version } = await tfReady;
  const flags = opts.tfjsFlags ?? {};
  for (const [k, v] of Object.entries(flags)) tf.env().set(k, v);
  const g = await getGpu();
  log(`TF.js ${version} on backend '${backendName}', adapter ${g.adapterName}`);

  const [H, W, C] = spec.input;
  const params = buildParams(spec);
  const vars = params.flatMap((p) => [p.w, p.b]);
  const x = tf.randomNormal([batch, H, W, C], 0, 1, 'float32', 7) as tf.Tensor4D;
  const labels = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, spec.classes, 'int32', 8) as tf.Tensor1D, spec.classes));
  const optimizer = tf.train.momentum(lr, 0.9);

  const trainStep = async (): Promise<number> => {
    const loss = optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy(labels, forward(spec, params, x, true, useDropout)) as tf.Scalar,
      true,
      vars,
    );
    const v = (await loss!.data())[0];
    loss!.dispose();
    return v;
  };
  // The forward's clock stops as ours does (bench/train-step.ts: sync() submits what is recorded,
  // then awaits queue.onSubmittedWorkDone(); no readback of the logits): TF.js's recorded commands
  // are submitted the way its own reads do it (close the open pass, submitQueue) and its queue
  // (our device's, or its own with --device own) drained. logits.data() would add what our
  // forward does not pay (a copy to a staging buffer, a mapAsync and a host copy), which favoured
  // us; reading back a 1-element reduction would still add a kernel and a map. The training step
  // needs no such care: both sides end it with an async read of the scalar loss.
  const waitForGpu = async (): Promise<void> => {
    const b = tf.backend() as WebGPUBackend;
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    b.submitQueue();
    await b.device.queue.onSubmittedWorkDone();
  };
  const forwardStep = async (): Promise<void> => {
    const logits = tf.tidy(() => forward(spec, params, x, false, useDropout));
    await waitForGpu();
    logits.dispose();
  };

  const trainSamples: number[] = [];
  const fwdSamples: number[] = [];
  let firstLoss = NaN;
  let lastLoss = NaN;
  try {
    for (let i = 0; i < warmup; i++) {
      const t0 = performance.now();
      const l = await trainStep();
      log(`warm-up train step ${i + 1}/${warmup}: ${(performance.now() - t0).toFixed(1)} ms, loss ${l.toFixed(4)}`);
    }
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const l = await trainStep();
      trainSamples.push(performance.now() - t0);
      if (i === 0) firstLoss = l;
      lastLoss = l;
      log(`train step ${i + 1}/${steps}: ${trainSamples.at(-1)!.toFixed(1)} ms, loss ${l.toFixed(4)}`);
    }
    for (let i = 0; i < warmup; i++) await forwardStep();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await forwardStep();
      fwdSamples.push(performance.now() - t0);
      log(`forward ${i + 1}/${steps}: ${fwdSamples.at(-1)!.toFixed(1)} ms`);
    }
  } finally {
    optimizer.dispose();
    tf.dispose([x, labels, ...vars]);
  }
  const trainStepMs = median(trainSamples);
  const forwardMs = median(fwdSamples);
  return {
    name: 'tfjs-webgpu',
    model,
    batch,
    trainStepMs,
    forwardMs,
    trainImgPerSec: (batch * 1000) / trainStepMs,
    forwardImgPerSec: (batch * 1000) / forwardMs,
    adapter: g.adapterName,
    steps,
    warmup,
    trainStepSamplesMs: trainSamples,
    forwardSamplesMs: fwdSamples,
    firstLoss,
    lastLoss,
    tfjsVersion: version,
    tfjsBackend: backendName,
    deviceMode: mode,
    dropout: useDropout,
    tfjsFlags: flags,
    notes: `TF.js ${version} ${backendName}${mode === 'shared' ? " (our engine's GPUDevice)" : ' (own device, same Dawn instance)'}, fused conv2d+bias+ReLU, SGD momentum 0.9${useDropout ? '' : ', no dropout'}${Object.keys(flags).length ? `, flags ${JSON.stringify(flags)}` : ''}`,
  };
}

/** Releases TF.js's GPU resources (the Dawn device itself belongs to the engine: closeGpu()). */
export function disposePeers(): void {
  if (!tfReady) return;
  tf.engine().reset(); // disposes the backends and their buffers
  tfReady = null;
}

/** A plain-text table for any mix of BenchResult rows (TF.js and our engine side by side): any
 * bench's rows (ours or a peer's), the model a name, not only a peer model. */
export function formatBenchTable(rows: readonly (Pick<BenchResult, 'name' | 'batch' | 'trainStepMs' | 'forwardMs' | 'adapter'> & { model: string; pipelinedStepMs?: number })[]): string {
  const head = ['name', 'model', 'batch', 'train step ms', 'train img/s', 'back-to-back ms', 'forward ms', 'fwd img/s', 'adapter'];
  const body = rows.map((r) => [
    r.name,
    r.model,
    String(r.batch),
    r.trainStepMs.toFixed(2),
    ((r.batch * 1000) / r.trainStepMs).toFixed(1),
    r.pipelinedStepMs === undefined ? '—' : r.pipelinedStepMs.toFixed(2),
    r.forwardMs.toFixed(2),
    ((r.batch * 1000) / r.forwardMs).toFixed(1),
    r.adapter,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const left = new Set([0, 1, 8]);
  const line = (cells: string[]) => cells.map((c, i) => (left.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

// ---- CLI ----

function parseArgs(args: string[]) {
  const out: { model: PeerModel; batch: number; steps: number; warmup: number; json?: string; dropout: boolean; device: 'shared' | 'own'; lr: number; flags: Record<string, boolean | number | string> } = {
    model: 'cifar10',
    batch: 16,
    steps: 3,
    warmup: 2,
    dropout: true,
    device: 'shared',
    lr: 0.01,
    flags: {},
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a}: expected a non-negative integer, got '${v}'`);
      return n;
    };
    if (a === '--model') {
      const m = val();
      if (m !== 'cifar10' && m !== 'mnist') throw new Error(`--model: expected cifar10 or mnist, got '${m}'`);
      out.model = m;
    } else if (a === '--batch') out.batch = int(val());
    else if (a === '--steps') out.steps = int(val());
    else if (a === '--warmup') out.warmup = int(val());
    else if (a === '--json') out.json = val();
    else if (a === '--no-dropout') out.dropout = false;
    else if (a === '--device') {
      const d = val();
      if (d !== 'shared' && d !== 'own') throw new Error(`--device: expected shared or own, got '${d}'`);
      out.device = d;
    } else if (a === '--lr') out.lr = Number(val());
    else if (a === '--tfjs-flag') {
      const [k, v] = val().split('=');
      if (!k || v === undefined) throw new Error(`--tfjs-flag: expected KEY=VALUE, got '${k}'`);
      out.flags[k] = v === 'true' ? true : v === 'false' ? false : Number.isFinite(Number(v)) ? Number(v) : v;
    }
    else if (a === '--help' || a === '-h') {
      console.log('usage: node --import tsx bench/peers.ts [--model cifar10|mnist] [--batch N] [--steps N] [--warmup N] [--json PATH] [--no-dropout] [--device shared|own] [--lr X] [--tfjs-flag KEY=VALUE ...]');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}' (try --help)`);
  }
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(argv.slice(2));
  const r = await runPeerBench({ model: a.model, batch: a.batch, steps: a.steps, warmup: a.warmup, dropout: a.dropout, device: a.device, learningRate: a.lr, tfjsFlags: a.flags, verbose: true });
  console.log(formatBenchTable([r]));
  console.log(`(${r.notes}; medians of ${r.steps} steps after ${r.warmup} warm-up; loss ${r.firstLoss.toFixed(4)} → ${r.lastLoss.toFixed(4)})`);
  if (a.json) {
    const doc = { date: new Date().toISOString(), node: process.version, adapter: r.adapter, results: [r] };
    writeFileSync(a.json, JSON.stringify(doc, null, 2) + '\n');
    console.log(`wrote ${a.json}`);
  }
}

if (isMainModule(import.meta.url)) {
  let code = 0;
  try {
    await main();
  } catch (e) {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    code = 1;
  }
  try {
    disposePeers();
    closeGpu();
  } catch {
    /* exiting anyway */
  }
  // Dawn / TF.js may keep handles alive; the bench is done, so leave now.
  process.exit(code);
}
