// A tiny NIN end to end: gradient check of the whole network against the float64 reference, and
// a short training run on a synthetic task (loss falls, no buffer leaks).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu, gpu, setKernelStyle, type KernelStyle } from '../engine/device.ts';
import { backward, noGrad, zeroGrad } from '../engine/autograd.ts';
import { dispatch, pool, setOutOfBoundsGuard, trimPool, upload, writesPastTheEnd } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { labelTensor, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
import { SGD } from '../kernels/sgd.ts';
import { batchTooLarge, largestBatch, largestImageTensor, largestWeightTensor, modelConfig, MODELS, NinModel, parameterSpecs, plan, type Head, type ModelConfig } from '../nin/model.ts';
import { gemmStyle } from '../kernels/gemm.ts';
import { deriveSeed } from '../nin/data/rng.ts';
import { randomArray, withDeviceLimit } from './helpers.ts';
import { checkAgainstReference, referenceLoss, sgdStepOnTiny, tiny } from './tiny-nin.ts';

const LR = 0.02;
beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

describe('tiny NIN end to end', () => {
  it('whole-network gradients match central differences on the float64 reference', async () => {
    await checkAgainstReference(tiny, { train: false }, (x, p, labels) => referenceLoss(x, p, labels));
  });

  it('linear class maps (linearOut on the last mlpconv): loss and gradients match the reference without its ReLU', async () => {
    const layers = tiny.layers.map((l, i) => (i === tiny.layers.length - 1 && l.type === 'mlpconv' ? { ...l, linearOut: true } : l));
    await checkAgainstReference({ ...tiny, layers }, { train: false }, (x, p, labels) => referenceLoss(x, p, labels, { linearOut: true }));
  });

  // Training mode: layers 2 and 5 are the dropout layers; their rates differ too.
  const rates: Record<number, number> = { 2: 0.5, 5: 0.3 };
  const withDropout: ModelConfig = { ...tiny, layers: tiny.layers.map((l, i) => (l.type === 'dropout' ? { ...l, p: rates[i] } : l)) };
  const seed = 17;
  const dropout: [number, number][] = [[rates[2], deriveSeed(seed, 2)], [rates[5], deriveSeed(seed, 5)]];
  const checkTrainingMode = () => checkAgainstReference(withDropout, { train: true, seed }, (x, p, labels) => referenceLoss(x, p, labels, { dropout }));

  it('training mode: each dropout layer draws its own mask (seed derived from the step seed and the layer index)', async () => {
    await checkTrainingMode();
  });

  it('no kernel reads or writes past the end of a tensor: with NaN beyond every one, loss and gradients still match, an SGD step stays finite and the NaN stays, both styles, fused and unfused', async () => {
    // A read past a tensor's end would get robust buffer access's value: 0 on lavapipe, which
    // hides it; on a GPU possibly any value in the buffer. A write past the end would be dropped
    // on lavapipe; on a GPU it may land on the tensor's last element. The tiny NIN in training
    // mode (the dropout test's rates and seed, so its kernels serve here) runs every kernel of a
    // network's forward and backward, then an SGD step.
    setOutOfBoundsGuard(1024);
    try {
      // The guard sees such a read, and such a write.
      const inside = Tensor.fromArray([1, 2, 3], [3]);
      const out = Tensor.fromArray([0, 0], [2]);
      expect(inside.buffer.size).toBeGreaterThanOrEqual(12 + 1024); // the whole guard past its 12 bytes
      const pastEnd = (write: string) => ({ name: 'past_end', code: `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
@compute @workgroup_size(1) fn main() { ys[0] = xs[2u]; ys[1] = xs[3u]; ${write} }` });
      dispatch(pastEnd(''), [inside, out], [1]);
      expect(Array.from(await out.toArray())).toEqual([3, NaN]);
      expect(await writesPastTheEnd()).toEqual([]);
      dispatch(pastEnd('ys[2u] = 5.0;'), [inside, out], [1]);
      expect(await writesPastTheEnd()).toEqual(['a tensor of 8 bytes was written at byte 8, past its end']);
      inside.dispose();
      out.dispose();
      trimPool(); // destroys them: the guard forgets them, not reading them back
      expect(await writesPastTheEnd()).toEqual([]);
      setOutOfBoundsGuard(1024); // a fresh list of guarded buffers
      for (const style of ['simd', 'tiled'] as KernelStyle[]) {
        setKernelStyle(style);
        await checkTrainingMode();
        // 8 storage buffers a kernel: each block runs as its three convolutions
        await withDeviceLimit('maxStorageBuffersPerShaderStage', 8, checkTrainingMode);
        // And an SGD step (momentum, weight decay) on the gradients: every weight stays finite.
        const step = await sgdStepOnTiny(withDropout, seed);
        step.after.forEach((w, i) => expect(w.every(Number.isFinite), step.names[i]).toBe(true));
      }
      expect(pool().guarded.length).toBeGreaterThan(100); // every tensor of the checks and steps
      expect(await writesPastTheEnd()).toEqual([]);
    } finally {
      setKernelStyle(null);
      setOutOfBoundsGuard(0);
    }
  });

  it("a NaN in the first layer's weights reaches every logit (ReLU and max pooling keep it), so the loss check sees it", async () => {
    // The shapes of the checks above, so no kernel compiles anew; max(NaN, 0) would have been 0.
    const model = new NinModel(tiny, 3);
    const first = model.params[0].tensor;
    const w = await first.toArray();
    w[5] = NaN;
    upload(first, w);
    const x = Tensor.fromArray(randomArray(3 * 9 * 9 * 3, 5), [3, 9, 9, 3]);
    const logits = await model.forward(x, { train: false }).toArray();
    expect(Array.from(logits, Number.isNaN)).toEqual(Array(logits.length).fill(true));
    model.dispose();
  });

  it("He init: each weight drawn with σ = √(gain / fan-in), gain 2 before a ReLU and 1 for the FC classifier; biases 0, at twice the lr and without decay", async () => {
    const config: ModelConfig = { ...MODELS['mnist-small'], head: 'fc', init: 'he' };
    const model = new NinModel(config, 7);
    const specs = parameterSpecs(config);
    expect(new Set(specs.map((s) => s.gain))).toEqual(new Set([1, 2]));
    for (const [i, p] of model.params.entries()) {
      const values = await p.tensor.toArray();
      expect([p.lrMult, p.decayMult], p.name).toEqual(specs[i].isBias ? [2, 0] : [1, 1]);
      if (specs[i].isBias) {
        expect(values.every((v) => v === 0), p.name).toBe(true);
        continue;
      }
      const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
      expect(std / Math.sqrt(specs[i].gain / specs[i].fanIn), p.name).toBeCloseTo(1, 1); // (thousands of draws: within 5 %)
    }
    model.dispose();
  });

  it("refuses an input not of the network's shape, each dimension alike, before any kernel runs", () => {
    const model = new NinModel(tiny, 3);
    const { height, width, channels } = tiny.input;
    for (const shape of [[2, height + 1, width, channels], [2, height, width - 1, channels], [2, height, width, channels + 1], [height, width, channels]]) {
      const x = Tensor.fromArray(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
      expect(() => model.forward(x, { train: false }), shape.join('×')).toThrow(new RangeError(`model ${tiny.name}: input has shape [${shape.join(', ')}], expected [N, ${height}, ${width}, ${channels}]`));
      x.dispose();
    }
    model.dispose();
  });

  it('trains on a synthetic task: the loss falls, and the pool holds no more after step 200 than after step 20', async () => {
    // The same layout, 16 channels wide (with 5-7 channels a ReLU'd class map dies too easily),
    // dropout on but light.
    const layers = tiny.layers.map((l, i) =>
      l.type === 'dropout' ? { ...l, p: 0.1 } : l.type === 'mlpconv' ? { ...l, channels: [16, 16, i === tiny.layers.length - 1 ? 3 : 16] as [number, number, number] } : l,
    );
    const model = new NinModel({ ...tiny, layers, input: { height: 8, width: 8, channels: 3 } }, 4);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor, lrMult: p.lrMult, decayMult: p.decayMult })), { momentum: 0.9, weightDecay: 1e-4 });
    const params = model.params.map((p) => p.tensor);
    // Class c: a bright 3×3 patch in channel c at a random place, on noise.
    const B = 12;
    const makeBatch = (step: number) => {
      const xs = randomArray(B * 8 * 8 * 3, 1000 + step, 0, 0.3);
      const pos = randomArray(2 * B, 5000 + step, 0, 6);
      const labels = Array.from({ length: B }, (_, i) => (i + step) % 3);
      labels.forEach((c, i) => {
        const y0 = Math.floor(pos[2 * i]), x0 = Math.floor(pos[2 * i + 1]);
        for (let y = y0; y < y0 + 3; y++) for (let x = x0; x < x0 + 3; x++) xs[((i * 8 + y) * 8 + x) * 3 + c] += 1;
      });
      return { xs, labels };
    };
    const losses: number[] = [];
    let liveAt20 = 0;
    for (let step = 1; step <= 200; step++) {
      const { xs, labels } = makeBatch(step);
      const loss = tidy(() => {
        const l = softmaxCrossEntropy(model.forward(Tensor.fromArray(xs, [B, 8, 8, 3]), { train: true, seed: step }), labelTensor(labels, 3));
        backward(l);
        opt.step(LR);
        return l;
      });
      zeroGrad(params);
      losses.push(await loss.item());
      loss.dispose();
      if (step === 20) liveAt20 = pool().stats.liveBytes;
    }
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(losses.slice(0, 20)), last = mean(losses.slice(-20));
    console.log(`synthetic task: mean loss steps 1-20 ${first.toFixed(3)}, steps 181-200 ${last.toFixed(3)}; live bytes ${liveAt20} at step 20, ${pool().stats.liveBytes} at step 200`);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(last).toBeLessThan(0.5 * first);
    expect(pool().stats.liveBytes).toBe(liveAt20);
  });
});

describe('FC heads (flatten + fully connected) end to end', () => {
  // tiny with an FC head: its 2×2×3 maps are 12 features for 3 classes, so a wrong flatten order
  // (channels first) or weight layout (transposed) shows. The mlpconvs are the GAP checks' own, so
  // only the head's kernels compile anew.
  const fcNet = (head: Head): ModelConfig => ({ ...tiny, head });

  // Each in the adapter's kernel style (simd on a CPU adapter) and in the tiled one a GPU runs: the
  // head's GEMMs (forward, input and weight gradients) in both. The blocks' tiled kernels are the
  // guard test's above: only the head's compile anew.
  const inStyle = async (style: KernelStyle | null, check: () => Promise<void>) => {
    setKernelStyle(style);
    try {
      await check();
    } finally {
      setKernelStyle(null);
    }
  };
  for (const style of [null, 'tiled'] as const) {
    const styleName = style ? `${style} kernels: ` : '';

    it(`${styleName}'fc', evaluation: loss and gradients (fc.w and fc.b too) match central differences on the float64 reference`, () => inStyle(style, async () => {
      expect(plan(fcNet('fc')).at(-1)?.name).toBe('fully connected 12→3');
      await checkAgainstReference(fcNet('fc'), { train: false }, (x, p, labels) => referenceLoss(x, p, labels, { fc: {} }));
    }));

    it(`${styleName}'fc-dropout', training: the head drops its input with p = 0.5 and seed deriveSeed(step seed, 1000), its own stream`, () => inStyle(style, async () => {
      const seed = 17;
      const dropout: [number, number][] = [[0.5, deriveSeed(seed, 2)], [0.5, deriveSeed(seed, 5)]];
      const fc = { dropout: [0.5, deriveSeed(seed, 1000)] as [number, number] };
      await checkAgainstReference(fcNet('fc-dropout'), { train: true, seed }, (x, p, labels) => referenceLoss(x, p, labels, { dropout, fc }));
    }));
  }

  it("'fc-dropout', evaluation: no dropout, the logits equal 'fc''s (same weights); in training they differ", async () => {
    const x = Tensor.fromArray(randomArray(3 * 9 * 9 * 3, 8), [3, 9, 9, 3]); // batch 3: the pipelines of the checks above
    const logits = async (head: Head, train: boolean) => {
      const model = new NinModel(fcNet(head), 4); // same seed: same weights whatever the head
      const y = noGrad(() => model.forward(x, { train, seed: 11 }));
      const out = await y.toArray();
      y.dispose();
      model.dispose();
      return out;
    };
    expect(await logits('fc-dropout', false)).toEqual(await logits('fc', false));
    // Training mode: the between-block dropout layers draw the same masks in both, so only the head's dropout differs.
    expect(await logits('fc-dropout', true)).not.toEqual(await logits('fc', true));
    x.dispose();
  });
});

describe('the model configs', () => {
  // Every config users can name (the paper's nets and the CPU-sized ones): the built model has the
  // planned parameters. The CPU-sized ones also run an image through (one finite logit per class);
  // the paper's widths would add minutes of shader compiles on a fresh CPU machine, and their
  // kernels' shapes are what bench/ validates against the reference on a GPU.
  it.each(Object.keys(MODELS))('%s: the built model has the planned parameters (and, if CPU-sized, gives one logit per class)', async (name) => {
    const config = MODELS[name];
    const model = new NinModel(config, 3);
    const layers = plan(config);
    expect(model.params.reduce((s, p) => s + p.tensor.size, 0)).toBe(layers.reduce((s, l) => s + l.params, 0));
    if (layers.reduce((s, l) => s + l.flops, 0) < 50e6) {
      const { height, width, channels } = config.input;
      const x = Tensor.fromArray(randomArray(height * width * channels, 5), [1, height, width, channels]);
      const logits = noGrad(() => model.forward(x, { train: false }));
      expect(logits.shape).toEqual([1, config.classes]);
      expect((await logits.toArray()).every(Number.isFinite)).toBe(true);
      logits.dispose();
      x.dispose();
    }
    model.dispose();
  });
});

describe('the largest batch a device binds', () => {
  it('the largest tensor an image adds: the widest activation, or the simd weight gradient\'s zero-padded input', () => {
    expect(largestImageTensor(MODELS.cifar10, false)).toEqual({ layer: 'mlpconv5x5 192-160-96', shape: [32, 32, 192] });
    expect(largestImageTensor(MODELS.cifar10, true)).toEqual({ layer: 'mlpconv5x5 192-160-96', shape: [32, 32, 192] });
    // A thin 5×5 block over a wide input: the padded copy (12×12×16) is the largest with the simd kernels.
    const wideInput: ModelConfig = { ...tiny, input: { height: 8, width: 8, channels: 16 }, classes: 4, layers: [{ type: 'mlpconv', kernel: 5, channels: [4, 4, 4] }] };
    expect(largestImageTensor(wideInput, true)).toEqual({ layer: 'mlpconv5x5 4-4-4 (its input, zero-padded for the weight gradient)', shape: [12, 12, 16] });
    expect(largestImageTensor(wideInput, false)).toEqual({ layer: 'the input images', shape: [8, 8, 16] });
  });

  it('a training step at the largest batch runs; one image more is refused by name, and a step at it fails', async () => {
    // The device's binding limit lowered (as the engine sees it) so that tiny's block 1 ([N, 9, 9, 7],
    // its widest activation) fits 3 images: the shapes the tests above compile.
    const { shape } = largestImageTensor(tiny, gemmStyle() === 'simd');
    expect(shape).toEqual([9, 9, 7]);
    const model = new NinModel(tiny, 3);
    await withDeviceLimit('maxStorageBufferBindingSize', 3 * 4 * 9 * 9 * 7 + 4, async () => {
      expect(largestBatch(tiny, 100)).toBe(3);
      expect(largestBatch(tiny, 2)).toBe(2);
      expect(batchTooLarge(tiny, 3)).toBeNull();
      expect(batchTooLarge(tiny, 4)).toBe(
        `a batch of 4 images is too large for tiny on this adapter: mlpconv3x3 7-5-6 makes a float32 tensor of [4, 9, 9, 7] (8.9 KiB), past the 6.6 KiB that '${gpu().adapterName}' binds in one buffer (maxStorageBufferBindingSize); at most 3 images fit`,
      );
      const step = (n: number) => tidy(() => {
        const x = Tensor.fromArray(randomArray(n * 9 * 9 * 3, 5), [n, 9, 9, 3]);
        const { loss } = model.lossAndGradients(x, labelTensor(Array.from({ length: n }, (_, i) => i % 3), 3), { train: false });
        return loss;
      });
      const loss = step(3);
      expect(Number.isFinite(await loss.item())).toBe(true);
      loss.dispose();
      // (block 1's output, [4, 9, 9, 6], is allocated before its hidden activations and fails first)
      expect(() => step(4)).toThrow(/tensor of shape \[4, 9, 9, [67]\] needs \d+ bytes, more than the device's storage binding limit of 6808 bytes/);
    }).finally(() => model.dispose());
    await withDeviceLimit('maxStorageBufferBindingSize', 4 * 9 * 9 * 7 - 4, () => expect(batchTooLarge(tiny, 1)).toMatch(/; not even one image fits, whatever the batch: a network of smaller images would$/));
  });

  // A config of one's own can make a weight tensor no batch size helps: it passed every check and
  // failed at the model's build, after the data load and the run directory.
  it('a weight tensor past the limit is refused at any batch, naming its layer', async () => {
    expect(largestWeightTensor(MODELS.cifar10)).toEqual({ layer: 'mlpconv5x5 192-192-192', shape: [5, 5, 96, 192] });
    const wideFc: ModelConfig = { ...MODELS.cifar10, head: 'fc', layers: [...MODELS.cifar10.layers.slice(0, -1), { type: 'mlpconv', kernel: 3, channels: [192, 192, 2000] }] };
    expect(largestWeightTensor(wideFc)).toEqual({ layer: 'the fully connected layer', shape: [1, 1, 8 * 8 * 2000, 10] });
    const { shape } = largestWeightTensor(tiny);
    await withDeviceLimit('maxStorageBufferBindingSize', 4 * shape.reduce((a, b) => a * b, 1) - 4, () =>
      expect(batchTooLarge(tiny, 1)).toMatch(new RegExp(`^tiny cannot run on this adapter at any batch: mlpconv\\S+ \\S+ has a float32 weight tensor of \\[${shape.join(', ')}\\] .*\\(maxStorageBufferBindingSize\\)$`)),
    );
  });
});

describe('--class-maps', () => {
  it('sets or drops the ReLU on the last mlpconv, leaving every other layer as the model has it', () => {
    const linear = modelConfig({ model: 'mnist', classMaps: 'linear' });
    expect(linear.layers.at(-1)).toMatchObject({ type: 'mlpconv', linearOut: true });
    expect(linear.layers.slice(0, -1)).toEqual(MODELS.mnist.layers.slice(0, -1));
    expect(modelConfig({ model: 'mnist-small', classMaps: 'relu' }).layers.at(-1)).toMatchObject({ linearOut: false });
    expect(modelConfig({ model: 'mnist-small' }).layers).toEqual(MODELS['mnist-small'].layers);
    expect(plan(linear).find((l) => l.name.startsWith('mlpconv5x5 128-96-10'))?.name).toBe('mlpconv5x5 128-96-10 linear out');
  });
});

describe('--dropout', () => {
  it('sets the rate of every dropout layer between blocks and nothing else; refused where the model has none', () => {
    const paper = MODELS.cifar10.layers;
    for (const p of [0, 0.3]) {
      const layers = modelConfig({ model: 'cifar10', dropout: p }).layers;
      expect(layers.filter((l) => l.type === 'dropout')).toEqual([{ type: 'dropout', p }, { type: 'dropout', p }]);
      expect(layers.filter((l) => l.type !== 'dropout')).toEqual(paper.filter((l) => l.type !== 'dropout'));
    }
    expect(plan(modelConfig({ model: 'cifar10', dropout: 0.3 })).filter((l) => l.name.startsWith('dropout')).map((l) => l.name)).toEqual(['dropout 0.3', 'dropout 0.3']);
    expect(() => modelConfig({ model: 'mnist-small', dropout: 0.5 })).toThrow(/model mnist-small has no dropout layers between its blocks/);
  });

  it('at 0, a training forward equals the evaluation forward; at 0.5 it does not', async () => {
    const x = Tensor.fromArray(randomArray(2 * 9 * 9 * 3, 8, 0, 1), [2, 9, 9, 3]);
    const logits = async (p: number, train: boolean) => {
      const model = new NinModel({ ...tiny, layers: tiny.layers.map((l) => (l.type === 'dropout' ? { ...l, p } : l)) }, 4);
      const y = noGrad(() => model.forward(x, { train, seed: 11 }));
      const out = await y.toArray();
      y.dispose();
      model.dispose();
      return out;
    };
    expect(await logits(0, true)).toEqual(await logits(0, false));
    expect(await logits(0.5, true)).not.toEqual(await logits(0.5, false));
    x.dispose();
  });
});

describe('init', () => {
  // Sample standard deviation of a parameter, to compare with the init's σ.
  async function std(model: NinModel, name: string): Promise<number> {
    const a = await model.parameter(name).toArray();
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    return Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
  }

  it("'he': gain 2 before a ReLU, gain 1 on the FC classifier; 'gaussian': σ everywhere; biases 0", async () => {
    const he = new NinModel({ ...MODELS['cifar10-small'], head: 'fc-dropout' }, 7);
    // block1.w1: fan-in 5·5·3 = 75 (2,400 weights); fc.w: fan-in 8·8·10 = 640 (6,400 weights).
    // Tolerance 5 %: sampling error of σ on ≥ 2,400 draws is ≤ 1.5 %; gain 2 vs 1 differs by 41 %.
    expect(Math.abs(await std(he, 'block1.w1') / Math.sqrt(2 / 75) - 1)).toBeLessThan(0.05);
    expect(Math.abs(await std(he, 'block3.w3') / Math.sqrt(2 / 64) - 1)).toBeLessThan(0.1); // 640 weights
    expect(Math.abs(await std(he, 'fc.w') / Math.sqrt(1 / 640) - 1)).toBeLessThan(0.05);
    for (const p of he.params.filter((e) => /\.b\d?$/.test(e.name))) expect((await p.tensor.toArray()).every((v) => v === 0), p.name).toBe(true);
    he.dispose();
    const gaussian = new NinModel({ ...MODELS['cifar10-small'], head: 'fc', init: 'gaussian', initStd: 0.05 }, 7);
    for (const name of ['block1.w1', 'block2.w2', 'fc.w']) expect(Math.abs(await std(gaussian, name) / 0.05 - 1)).toBeLessThan(0.05);
    gaussian.dispose();
  });
});
