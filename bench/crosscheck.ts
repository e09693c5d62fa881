// Our full-size NIN training steps against PyTorch, from the same weights and the same batches.
// The kernel tests check each op on small shapes against a float64 reference; this checks the whole
// network at the paper's sizes (the tile paths, split-K and fused blocks that real shapes take,
// the tuned table if one is installed, NIN_MATRIX), including the solver.
//
//   node --import tsx bench/crosscheck.ts --model cifar10 --batch 128 --steps 5 --out DIR
//     [--init gaussian|he] [--lr X] [--class-maps linear|relu] [--head gap|fc] [--unfused] [--synthetic]
//   python3 bench/crosscheck.py DIR/crosscheck.safetensors        (PyTorch; prints the verdict)
//
// This side trains `steps` SGD steps (constant lr, dropout off: its masks are ours alone) and
// writes, in one safetensors file: the initial weights (init.*), the first step's gradients
// (grad.*), every weight's change after the last step (change.*), the batches (x, y, already
// preprocessed) and our loss at every step.
// The batches are the first images of the model's training set (standardised per channel, the
// statistics from those images), or Gaussian noise with random labels where the data is missing.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { zeroGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu, kernelStyle } from '../engine/device.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { describeMatrixMode, matrixMode } from '../kernels/gemm-matrix.ts';
import { labelTensor } from '../kernels/softmax-cross-entropy.ts';
import { SGD } from '../kernels/sgd.ts';
import { loadDataset } from '../nin/data/registry.ts';
import { Rng, deriveSeed, gaussian } from '../nin/data/rng.ts';
import { modelConfig, NinModel } from '../nin/model.ts';
import { fitPreprocessor } from '../nin/preprocessing.ts';
import { writeSafetensors, type TensorMap } from '../nin/safetensors.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'cifar10' },
    batch: { type: 'string', default: '128' },
    steps: { type: 'string', default: '5' },
    lr: { type: 'string' },
    momentum: { type: 'string', default: '0.9' },
    'weight-decay': { type: 'string', default: '0.0001' },
    init: { type: 'string', default: 'gaussian' },
    head: { type: 'string', default: 'gap' },
    'class-maps': { type: 'string', default: 'linear' },
    'data-dir': { type: 'string' },
    synthetic: { type: 'boolean', default: false },
    unfused: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/out' },
  },
});

const positive = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} ${v}: expected a positive integer`);
  return n;
};
const batch = positive('batch', a.batch);
const steps = positive('steps', a.steps);
const seed = positive('seed', a.seed);
if (a.init !== 'gaussian' && a.init !== 'he') throw new RangeError(`--init ${a.init}: expected gaussian or he`);
// fc-dropout's dropout sits in the head, where it cannot be turned off.
if (a.head !== 'gap' && a.head !== 'fc') throw new RangeError(`--head ${a.head}: expected gap or fc`);
if (a['class-maps'] !== 'relu' && a['class-maps'] !== 'linear') throw new RangeError(`--class-maps ${a['class-maps']}: expected relu or linear`);
const momentum = Number(a.momentum);
const weightDecay = Number(a['weight-decay']);
// He init wants a smaller step than the paper's Gaussian (RESULTS.md, session 10).
const lr = Number(a.lr ?? (a.init === 'he' ? 0.02 : 0.1));
for (const [k, v] of Object.entries({ lr, momentum, 'weight-decay': weightDecay })) if (!Number.isFinite(v)) throw new RangeError(`--${k}: not a number`);

const config = modelConfig({ model: a.model!, head: a.head, init: a.init, classMaps: a['class-maps'] });
// Dropout off: the same masks on both sides would mean shipping them; the layers stay in the config.
config.layers = config.layers.map((l) => (l.type === 'dropout' ? { ...l, p: 0 } : l));
const { height, width, channels } = config.input;
const perImage = height * width * channels;
const count = batch * steps;

/** The batches: real training images where the data is found, else noise. */
async function batches(): Promise<{ x: Float32Array; y: Int32Array; source: string }> {
  const dataset = config.name.replace(/-small$/, '');
  if (!a.synthetic) {
    try {
      const ds = await loadDataset(dataset, 'train', { dataDir: a['data-dir'] });
      if (ds.count < count) throw new RangeError(`${ds.name} has ${ds.count} images, ${count} wanted`);
      const subset = { ...ds, images: ds.images.slice(0, count * perImage), labels: ds.labels.slice(0, count), count };
      const pre = await fitPreprocessor('standardize', subset);
      const x = await pre.applyTo(subset);
      return { x: x.images, y: subset.labels, source: `${ds.name}, first ${count} images, standardised` };
    } catch (e) {
      console.log(`no ${dataset} training data (${(e as Error).message.split('\n')[0]}): Gaussian noise instead`);
    }
  }
  const rng = new Rng(deriveSeed(seed, 0xc4ec));
  const y = Int32Array.from({ length: count }, () => rng.nextInt(config.classes));
  return { x: gaussian(count * perImage, deriveSeed(seed, 0xda7a), 1), y, source: 'Gaussian noise, random labels' };
}

const gpu = await getGpu();
const { x, y, source } = await batches();
const model = new NinModel(config, seed);
const opt = new SGD(model.params.map((p) => ({ param: p.tensor, lrMult: p.lrMult, decayMult: p.decayMult })), { momentum, weightDecay });
const params = model.params.map((p) => p.tensor);
const tensors: TensorMap = {};
const init: Float32Array[] = [];
for (const p of model.params) {
  const data = await p.tensor.toArray();
  init.push(data);
  tensors[`init.${p.name}`] = { dtype: 'F32', data, shape: [...p.tensor.shape] };
}
const recordChange = async () => {
  for (const [i, p] of model.params.entries()) {
    const now = await p.tensor.toArray();
    tensors[`change.${p.name}`] = { dtype: 'F32', data: now.map((v, j) => v - init[i][j]), shape: [...p.tensor.shape] };
  }
};

const losses = new Float32Array(steps);
const t0 = performance.now();
for (let s = 0; s < steps; s++) {
  const loss = tidy(() => {
    const xb = Tensor.fromArray(x.subarray(s * batch * perImage, (s + 1) * batch * perImage), [batch, height, width, channels]);
    return model.lossAndGradients(xb, labelTensor(y.subarray(s * batch, (s + 1) * batch), config.classes), { train: true, seed: s, unfused: a.unfused }).loss;
  });
  // The first step's gradients as they are: a weight change would add float32's rounding of the
  // weights (|w|·6e-8) to a change that can be a thousand times smaller than |w|.
  if (s === 0) for (const p of model.params) tensors[`grad.${p.name}`] = { dtype: 'F32', data: await p.tensor.grad!.toArray(), shape: [...p.tensor.shape] };
  opt.step(lr);
  zeroGrad(params);
  losses[s] = await loss.item();
  loss.dispose();
  console.log(`step ${s + 1}: loss ${losses[s].toFixed(6)}`);
  if (!Number.isFinite(losses[s])) throw new Error(`step ${s + 1}: loss ${losses[s]}; lower --lr`);
}
const seconds = (performance.now() - t0) / 1000;
await recordChange();
tensors.x = { dtype: 'F32', data: x, shape: [count, height, width, channels] };
tensors.y = { dtype: 'I32', data: y, shape: [count] };
tensors.loss = { dtype: 'F32', data: losses, shape: [steps] };

mkdirSync(a.out!, { recursive: true });
const path = join(a.out!, 'crosscheck.safetensors');
const matrix = matrixMode();
// With matrix GEMMs the mlpconv blocks always run as the chain (kernels/mlpconv.ts).
// (a tuning table steers the tiled kernels only: simd ones always fuse)
const kernels = a.unfused || matrix ? 'unfused chain' : kernelStyle() === 'simd' ? 'fused mlpconv' : 'fused mlpconv (or the tuned choice per block)';
writeSafetensors(path, tensors, {
  config: JSON.stringify(config),
  lr: String(lr),
  momentum: String(momentum),
  weightDecay: String(weightDecay),
  batch: String(batch),
  steps: String(steps),
  data: source,
  adapter: gpu.adapterName,
  kernels: `${kernelStyle()} kernels, ${kernels}${matrix ? `, GEMMs on ${describeMatrixMode(matrix)}` : ''}`,
});
console.log(`${config.name}, batch ${batch}, ${steps} steps at lr ${lr} (${source}) on ${gpu.adapterName}: ${seconds.toFixed(1)} s\nwrote ${path}`);
model.dispose();
opt.dispose();
closeGpu();
