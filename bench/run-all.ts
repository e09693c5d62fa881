// The whole benchmark suite in one command: fused vs unfused mlpconv, our full training step
// (fused and unfused), and TF.js's WebGPU backend running the same NIN on the same device.
// Writes <out>/bench-<time>.json and .md; prints the Markdown last.
//   npm run bench -- [--batch 128] [--mlpconv-batches 32,128,256] [--reps 20] [--steps 10] [--out bench/out]
//   On lavapipe: npm run bench -- --batch 8 --mlpconv-batches 8 --reps 3 --steps 3
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeGpu, getGpu } from '../engine/device.ts';
import { BLOCKS, benchMlpconv, formatMlpconvRows, validate } from './mlpconv.ts';
import { disposePeers, formatBenchTable, runPeerBench, type BenchResult } from './peers.ts';
import { benchTrainStep, type StepBenchResult } from './train-step.ts';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    'mlpconv-batches': { type: 'string', default: '32,128,256' },
    reps: { type: 'string', default: '20' },
    steps: { type: 'string', default: '10' },
    models: { type: 'string', default: 'cifar10,mnist' },
    'no-peers': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/out' },
  },
});
const gpu = await getGpu();
const batch = Number(values.batch);
const steps = Number(values.steps);
const models = values.models!.split(',');
console.error(`adapter: ${gpu.adapterName}`);
const worst = await validate();
console.error(`validation: fused and unfused mlpconv match the float64 reference (worst relative error ${worst.toExponential(2)})`);
const mlpconvRows = await benchMlpconv({ batches: values['mlpconv-batches']!.split(',').map(Number), reps: Number(values.reps), blocks: BLOCKS.map((b) => b.name) });
const stepRows: (StepBenchResult | BenchResult)[] = [];
for (const model of models) {
  for (const unfused of [false, true]) {
    const r = await benchTrainStep({ model, batch, steps, warmup: 2, unfused });
    console.error(formatBenchTable([r]));
    stepRows.push(r);
  }
  if (!values['no-peers'] && (model === 'cifar10' || model === 'mnist')) {
    const p = await runPeerBench({ model: model as BenchResult['model'], batch, steps, warmup: 2 });
    console.error(formatBenchTable([p]));
    stepRows.push(p);
    disposePeers();
  }
}
const ours = (m: string) => stepRows.find((r) => r.model === m && r.name === 'nin-webgpu');
const peer = (m: string) => stepRows.find((r) => r.model === m && r.name === 'tfjs-webgpu');
const ratios = models
  .filter((m) => ours(m) && peer(m))
  .map((m) => `| ${m} | ${(peer(m)!.trainStepMs / ours(m)!.trainStepMs).toFixed(2)}× | ${(peer(m)!.forwardMs / ours(m)!.forwardMs).toFixed(2)}× |`);
const date = new Date().toISOString();
const md = [
  `## ${date.slice(0, 10)} — ${gpu.adapterName}`,
  '',
  `Node ${process.version}; batch ${batch} for the training step; medians of ${steps} steps (training step) and ${values.reps} reps (mlpconv, GPU time from timestamp queries).`,
  '',
  '### Fused mlpconv vs the conv + 1×1 + 1×1 chain',
  '',
  formatMlpconvRows(mlpconvRows),
  '',
  '### Training step (forward + backward + SGD) and forward, wall clock',
  '',
  '```',
  formatBenchTable(stepRows),
  '```',
  ...(ratios.length ? ['', '| model | TF.js / ours, training step | TF.js / ours, forward |', '|---|---|---|', ...ratios] : []),
].join('\n');
mkdirSync(values.out!, { recursive: true });
const stamp = date.replace(/[:.]/g, '-');
writeFileSync(join(values.out!, `bench-${stamp}.json`), JSON.stringify({ date, adapter: gpu.adapterName, node: process.version, mlpconv: mlpconvRows, steps: stepRows }, null, 2));
writeFileSync(join(values.out!, `bench-${stamp}.md`), md + '\n');
console.log(md);
closeGpu();
