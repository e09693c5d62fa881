// The whole benchmark suite in one command: fused vs unfused mlpconv, our full training step
// (fused and unfused), and TF.js's WebGPU backend running the same NIN on the same device.
// Writes <out>/bench-<time>.json and .md, rewritten after each section (a run cut off by a time
// limit keeps what it measured); prints the Markdown last. Order: a check of the adapter's
// timestamps (profile-reps.ts timestampCarryOver), each model's training step (fused), the
// mlpconv blocks, then each model's unfused step and TF.js. With --pytorch FILE (bench/pytorch_nin.py's
// JSON from the same device call) the report puts ours and PyTorch's side by side.
//   npm run bench -- [--batch 128] [--mlpconv-batches 32,128,256] [--reps 20] [--steps 10] [--out bench/out] [--pytorch pytorch.json]
//   On lavapipe: npm run bench -- --batch 8 --mlpconv-batches 8 --reps 3 --steps 3
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeGpu, getGpu } from '../engine/device.ts';
import { BLOCKS, benchMlpconv, formatMlpconvRows, validate } from './mlpconv.ts';
import { disposePeers, formatBenchTable, runPeerBench, type BenchResult } from './peers.ts';
import { benchTrainStep, type StepBenchResult } from './train-step.ts';
import { formatCarryOver, timestampCarryOver, type CarryOver } from './profile-reps.ts';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    'mlpconv-batches': { type: 'string', default: '32,128,256' },
    reps: { type: 'string', default: '20' },
    steps: { type: 'string', default: '10' },
    models: { type: 'string', default: 'cifar10,mnist' },
    'no-peers': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/out' },
    pytorch: { type: 'string' },
  },
});
const gpu = await getGpu();
const batch = Number(values.batch);
const steps = Number(values.steps);
const models = values.models!.split(',');
console.error(`adapter: ${gpu.adapterName}`);
const date = new Date().toISOString();
const stamp = date.replace(/[:.]/g, '-');
mkdirSync(values.out!, { recursive: true });
let mlpconvRows: Awaited<ReturnType<typeof benchMlpconv>> = [];
const stepRows: (StepBenchResult | BenchResult)[] = [];
/** PyTorch's JSON (bench/pytorch_nin.py) from the same device call; a missing or bad file is said and skipped. */
function readPytorch(path: string | undefined): Record<string, number | string> | null {
  if (!path) return null;
  if (!existsSync(path)) {
    console.error(`--pytorch ${path}: no such file (PyTorch skipped or failed?): no side-by-side table`);
    return null;
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, number | string>;
  } catch (e) {
    console.error(`--pytorch ${path}: ${(e as Error).message}: no side-by-side table`);
    return null;
  }
}
const pytorch = readPytorch(values.pytorch);
/** Whether this adapter's timestamps charge kernels for their predecessors (measured first, below). */
let carry: CarryOver | null = null;

/** The report so far, written to <out>/bench-<stamp>.{json,md}. */
function report(): string {
  // Ours, fused: 'nin-webgpu', or with NIN_MATRIX 'nin-webgpu (<mode>)' (the comparisons vanished then).
  const ours = (m: string) => stepRows.find((r) => r.model === m && r.name.startsWith('nin-webgpu') && !r.name.includes('(unfused)')) as StepBenchResult | undefined;
  const peer = (m: string) => stepRows.find((r) => r.model === m && r.name === 'tfjs-webgpu');
  const ratios = models
    .filter((m) => ours(m) && peer(m))
    .map((m) => `| ${m} | ${(peer(m)!.trainStepMs / ours(m)!.trainStepMs).toFixed(2)}× | ${(peer(m)!.forwardMs / ours(m)!.forwardMs).toFixed(2)}× |`);
  const md = [
    `## ${date.slice(0, 10)} — ${gpu.adapterName}`,
    '',
    `Node ${process.version}; batch ${batch} for the training step; medians of ${steps} steps (training step) and ${values.reps} reps (mlpconv, GPU time from timestamp queries).`,
    ...(carry ? ['', formatCarryOver(carry)] : []),
    ...(mlpconvRows.length ? ['', '### Fused mlpconv vs the conv + 1×1 + 1×1 chain', '', formatMlpconvRows(mlpconvRows)] : []),
    ...(stepRows.length ? ['', '### Training step (forward + backward + SGD) and forward, wall clock', '', '```', formatBenchTable(stepRows), '```'] : []),
    ...(ratios.length ? ['', '| model | TF.js / ours, training step | TF.js / ours, forward |', '|---|---|---|', ...ratios] : []),
    ...againstPytorch(ours('cifar10')),
  ].join('\n');
  writeFileSync(join(values.out!, `bench-${stamp}.json`), JSON.stringify({ date, adapter: gpu.adapterName, node: process.version, timestampCarryOver: carry, mlpconv: mlpconvRows, steps: stepRows, pytorch }, null, 2));
  writeFileSync(join(values.out!, `bench-${stamp}.md`), md + '\n');
  return md;
}

/**
 * Ours against PyTorch (same card, same call). Rows timed alike get a ratio: training steps and
 * forwards back to back (wall time a step as a training loop runs them, the same count on both
 * sides), and block forwards as GPU time per call (ours: the fused kernel's timestamps, one
 * dispatch; PyTorch: CUDA events around `reps` calls in a row). Rows timed differently (a lone
 * step: our wall time against PyTorch's events) are shown without one.
 */
function againstPytorch(ours: StepBenchResult | undefined): string[] {
  if (!pytorch || !ours) return [];
  const pt = (k: string) => (typeof pytorch[k] === 'number' ? (pytorch[k] as number) : NaN);
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');
  const row = (what: string, mine: number, fp32: number, tf32: number, alike = true) =>
    `| ${what} | ${fmt(mine)} | ${fmt(fp32)} | ${fmt(tf32)} | ${alike && mine > 0 && Number.isFinite(fp32 / mine) ? (fp32 / mine).toFixed(2) + '×' : '—'} |`;
  const block = (name: string) => mlpconvRows.find((r) => r.block === name && r.batch === pt('batch') && r.pass === 'forward')?.fusedGpuMs ?? NaN;
  const lines = [
    '',
    `### Against PyTorch ${pytorch.torch} (cuDNN ${pytorch.cudnn}) on ${pytorch.device}, CIFAR-10 NIN, batch ${pytorch.batch}, same call`,
    '',
    ...(pt('batch') !== ours.batch ? [`(PyTorch ran batch ${pytorch.batch}, ours ${ours.batch}: not comparable)`, ''] : []),
    ...(pt('steps') !== steps ? [`(PyTorch ran ${pytorch.steps ?? '?'} steps back to back, ours ${steps}: the pipeline's fill and drain weigh differently)`, ''] : []),
    '| ms | ours (fp32) | PyTorch fp32 | PyTorch TF32 | PyTorch fp32 / ours |',
    '|---|---|---|---|---|',
    row('training step, back to back', ours.pipelinedStepMs, pt('train_step_back_to_back_ms_fp32'), pt('train_step_back_to_back_ms_tf32')),
    row('training step, back to back, PyTorch in channels_last', ours.pipelinedStepMs, pt('train_step_back_to_back_ms_fp32_channels_last'), pt('train_step_back_to_back_ms_tf32_channels_last')),
    row('training step, one (ours: wall incl. recording + loss readback; PyTorch: CUDA events)', ours.trainStepMs, pt('train_step_ms_fp32'), pt('train_step_ms_tf32'), false),
    row('forward, back to back', ours.pipelinedForwardMs, pt('forward_back_to_back_ms_fp32'), pt('forward_back_to_back_ms_tf32')),
    row('forward, back to back, PyTorch in channels_last', ours.pipelinedForwardMs, pt('forward_back_to_back_ms_fp32_channels_last'), pt('forward_back_to_back_ms_tf32_channels_last')),
    row('forward, one (ours: wall incl. recording + sync; PyTorch: CUDA events)', ours.forwardMs, pt('forward_ms_fp32'), pt('forward_ms_tf32'), false),
    ...[1, 2, 3].map((b) => row(`mlpconv block ${b} forward, GPU time a call (ours fused: timestamps; PyTorch: events around ${pytorch.reps} calls)`, block(`cifar${b}`), pt(`block${b}_back_to_back_ms_fp32`), pt(`block${b}_back_to_back_ms_tf32`))),
    ...[1, 2, 3].map((b) => row(`mlpconv block ${b} forward, PyTorch one call (CUDA events, launch gaps included)`, block(`cifar${b}`), pt(`block${b}_forward_ms_fp32`), pt(`block${b}_forward_ms_tf32`), false)),
    '',
    `Our training step: ${ours.trainGflop.toFixed(1)} GFLOP of convolutions (2·MACs), ${ours.trainGflop / ours.pipelinedStepMs >= 1 ? `${(ours.trainGflop / ours.pipelinedStepMs).toFixed(2)} TFLOP/s` : `${((1000 * ours.trainGflop) / ours.pipelinedStepMs).toFixed(1)} GFLOP/s`} back to back; forward ${ours.forwardGflop.toFixed(1)} GFLOP.`,
  ];
  return lines;
}

const worst = await validate();
console.error(`validation: fused and unfused mlpconv match the float64 reference (worst relative error ${worst.toExponential(2)})`);
carry = await timestampCarryOver();
console.error(formatCarryOver(carry));
// Each model's own training step first (the PyTorch comparison rests on cifar10's): a stage cut
// off by its time limit (bench/gpu-check.sh) loses the mlpconv rows of the last blocks, not it.
/** A training-step row (ours or a peer's): printed, kept, and the report rewritten with it. */
const addStepRow = (row: StepBenchResult | BenchResult) => {
  console.error(formatBenchTable([row]));
  stepRows.push(row);
  report();
};
for (const model of models) addStepRow(await benchTrainStep({ model, batch, steps, warmup: 2, unfused: false }));
mlpconvRows = await benchMlpconv({
  batches: values['mlpconv-batches']!.split(',').map(Number),
  reps: Number(values.reps),
  // The blocks of the paper's nets among --models (cifar1–3: CIFAR-10/100's and SVHN's; mnist1–3).
  blocks: BLOCKS.map((b) => b.name).filter((name) => models.some((m) => (name.startsWith('mnist') ? m === 'mnist' : ['cifar10', 'cifar100', 'svhn'].includes(m)))),
  onRow: (rows) => {
    mlpconvRows = rows;
    report();
  },
});
report();
for (const model of models) {
  addStepRow(await benchTrainStep({ model, batch, steps, warmup: 2, unfused: true }));
  if (!values['no-peers'] && (model === 'cifar10' || model === 'mnist')) {
    addStepRow(await runPeerBench({ model: model as BenchResult['model'], batch, steps, warmup: 2 }));
    disposePeers();
  }
}
const md = report();
console.log(md);
closeGpu();
