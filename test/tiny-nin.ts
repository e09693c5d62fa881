// The tiny NIN the end-to-end tests share: its config, its loss in float64, and the check of a
// built model's loss and gradients against central differences on that reference.
import { expect } from 'vitest';
import { backward, zeroGrad } from '../engine/autograd.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { labelTensor, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
import { SGD } from '../kernels/sgd.ts';
import { NinModel, type ForwardOptions, type ModelConfig } from '../nin/model.ts';
import { avgPool2dRef, dropoutRef, globalAvgPoolRef, maxPool2dRef, mlpconvRef, numericalGrad, refTensor, softmaxCrossEntropyRef, type RefTensor } from './reference.ts';
import { expectClose, pick, randomArray, sampleIndices } from './helpers.ts';

// Three mlpconv blocks, max then average pooling, dropout layers (off in this check), GAP, loss.
export const tiny: ModelConfig = {
  name: 'tiny',
  input: { height: 9, width: 9, channels: 3 },
  classes: 3,
  layers: [
    { type: 'mlpconv', kernel: 3, channels: [7, 5, 6] },
    { type: 'maxpool', kernel: 3, stride: 2 },
    { type: 'dropout', p: 0.5 },
    { type: 'mlpconv', kernel: 3, channels: [5, 7, 5] },
    { type: 'avgpool', kernel: 3, stride: 2 },
    { type: 'dropout', p: 0.5 },
    { type: 'mlpconv', kernel: 1, channels: [6, 5, 3] },
  ],
  head: 'gap',
  init: 'he',
  initStd: 0.05,
};

/**
 * The tiny net's loss in float64. `linearOut`: block 3 without its output ReLU. `dropout`: the two
 * dropout layers in training mode, each as [p, seed] (evaluation mode, no dropout, when omitted).
 * `fc`: the FC head (fc.w, fc.b) instead of GAP, with its dropout as [p, seed] in training mode.
 */
export function referenceLoss(
  x: RefTensor, p: Record<string, RefTensor>, labels: number[],
  o: { linearOut?: boolean; dropout?: [number, number][]; fc?: { dropout?: [number, number] } } = {},
): number {
  const block = (h: RefTensor, b: number, relu3 = true) => mlpconvRef(h, p[`block${b}.w1`], p[`block${b}.b1`], p[`block${b}.w2`], p[`block${b}.b2`], p[`block${b}.w3`], p[`block${b}.b3`], relu3);
  const drop = (h: RefTensor, k: number) => (o.dropout ? dropoutRef(h, o.dropout[k][0], o.dropout[k][1]) : h);
  let h = block(x, 1);
  h = maxPool2dRef(h, 3, 2);
  h = drop(h, 0);
  h = block(h, 2);
  h = avgPool2dRef(h, 3, 2);
  h = drop(h, 1);
  h = block(h, 3, !o.linearOut);
  if (!o.fc) return softmaxCrossEntropyRef(globalAvgPoolRef(h), labels);
  if (o.fc.dropout) h = dropoutRef(h, ...o.fc.dropout);
  return softmaxCrossEntropyRef(fullyConnectedRef(h, p['fc.w'], p['fc.b']), labels);
}

/**
 * Logits [N, classes] of a fully connected layer over each image's maps flattened in NHWC order
 * (feature i = (y·W + x)·C + c), weights [1, 1, F, classes] (feature i, class k at i·classes + k).
 */
function fullyConnectedRef(h: RefTensor, w: RefTensor, b: RefTensor): RefTensor {
  const N = h.shape[0], F = h.data.length / N, K = b.data.length;
  expect(w.shape).toEqual([1, 1, F, K]);
  const y = refTensor([N, K]);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      let s = b.data[k];
      for (let i = 0; i < F; i++) s += h.data[n * F + i] * w.data[i * K + k];
      y.data[n * K + k] = s;
    }
  return y;
}

/**
 * Builds `config` (tiny's layout), gives its biases nonzero values, and checks the loss of a forward
 * with `opts` and sampled gradients of every parameter against `ref` on the float64 twins.
 */
export async function checkAgainstReference(config: ModelConfig, opts: ForwardOptions, ref: (x: RefTensor, p: Record<string, RefTensor>, labels: number[]) => number) {
  const model = new NinModel(config, 3);
  // Biases start at 0; give them values so their gradients are exercised away from init.
  const refs: Record<string, RefTensor> = {};
  for (const [i, p] of model.params.entries()) {
    let data = await p.tensor.toArray();
    if (p.name.includes('.b')) {
      data = randomArray(p.tensor.size, 100 + i, 0, 0.2);
      p.tensor.dispose();
      const t = Tensor.fromArray(data, p.tensor.shape);
      t.requiresGrad = true;
      p.tensor = t;
    }
    refs[p.name] = refTensor([...p.tensor.shape], data);
  }
  const { height, width, channels } = config.input;
  const shape = [3, height, width, channels];
  const xs = randomArray(shape.reduce((a, b) => a * b), 5);
  const labels = [0, 2, 1];
  const x = Tensor.fromArray(xs, shape);
  const loss = softmaxCrossEntropy(model.forward(x, opts), labelTensor(labels, 3));
  const xRef = refTensor(shape, xs);
  const f = () => ref(xRef, refs, labels);
  expectClose('loss', [await loss.item()], [f()], 1e-5);
  backward(loss);
  const all: number[] = [], allRef: number[] = [];
  for (const p of model.params) {
    const idx = sampleIndices(p.tensor.size, 12, 7);
    const g = pick(await p.tensor.grad!.toArray(), idx);
    const n = Array.from(numericalGrad(f, refs[p.name], idx));
    expectClose(`d/d${p.name}`, g, n, 1e-5);
    all.push(...g); allRef.push(...n);
  }
  expectClose('all sampled gradients', all, allRef, 1e-5);
  model.dispose();
}

/**
 * One training step of `config` (tiny's layout) on a fixed batch of 3, the gradient checks' batch,
 * so their kernels (shapes baked in) serve here too: forward in training mode with `seed`, loss,
 * backward, SGD with momentum 0.9 and weight decay 1e-3 at lr 0.05. The loss, and every parameter
 * (by name) before and after the step.
 */
export async function sgdStepOnTiny(config: ModelConfig, seed: number) {
  const { height, width, channels } = config.input;
  const shape = [3, height, width, channels];
  const model = new NinModel(config, 8);
  const opt = new SGD(model.params.map((p) => ({ param: p.tensor, lrMult: p.lrMult, decayMult: p.decayMult })), { momentum: 0.9, weightDecay: 1e-3 });
  const params = model.params.map((p) => p.tensor);
  const before = await Promise.all(params.map((p) => p.toArray()));
  const loss = tidy(() => {
    const l = softmaxCrossEntropy(model.forward(Tensor.fromArray(randomArray(shape.reduce((a, b) => a * b), 41), shape), { train: true, seed }), labelTensor([2, 0, 1], 3));
    backward(l);
    opt.step(0.05);
    return l;
  });
  zeroGrad(params);
  const l = await loss.item();
  loss.dispose();
  const after = await Promise.all(params.map((p) => p.toArray()));
  const names = model.params.map((p) => p.name);
  model.dispose();
  opt.dispose();
  return { l, before, after, names };
}
