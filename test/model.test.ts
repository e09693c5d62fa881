// Model configs (nin/model.ts) without a GPU: the paper's nets layer by layer, the parameter and
// FLOP counts `nin models` and training print, the FC heads' rows and init gains, and the pool check.
import { describe, expect, it } from 'vitest';
import { classMapsOf, describeConfig, fitToData, largestImageTensor, mlpconvPixelFlops, type LayerSpec, type ModelConfig, modelConfig, MODELS, parameterSpecs, plan, unusedInitStd } from '../nin/model.ts';

const mlp = (kernel: number, a: number, b: number, c: number): LayerSpec => ({ type: 'mlpconv', kernel, channels: [a, b, c] });
const maxpool: LayerSpec = { type: 'maxpool', kernel: 3, stride: 2 };
const avgpool: LayerSpec = { type: 'avgpool', kernel: 3, stride: 2 };
const dropout: LayerSpec = { type: 'dropout', p: 0.5 };
/** A small net built in code: He init, GAP unless `head` says otherwise. */
const coded = (name: string, [height, width, channels]: [number, number, number], layers: LayerSpec[], classes = 2, head: ModelConfig['head'] = 'gap'): ModelConfig => ({
  name, input: { height, width, channels }, classes, layers, head, init: 'he', initStd: 0.05,
});

describe("the paper's nets", () => {
  it('layer by layer as the authors defined them: widths, kernels, 3/2 pools, dropout 0.5, GAP, Gaussian σ = 0.05', () => {
    // The authors' Caffe CIFAR-10 model: its second pool is an average pool (README, "The paper's nets").
    const cifar = (classes: number) => [mlp(5, 192, 160, 96), maxpool, dropout, mlp(5, 192, 192, 192), avgpool, dropout, mlp(3, 192, 192, classes)];
    const expected: Record<string, LayerSpec[]> = {
      cifar10: cifar(10),
      cifar100: cifar(100),
      // mavenlin/cuda-convnet NIN/svhn_def and NIN/mnist_def: conv filters, the cccp widths, max pooling twice.
      svhn: [mlp(5, 128, 96, 64), maxpool, dropout, mlp(5, 320, 256, 128), maxpool, dropout, mlp(5, 384, 256, 10)],
      mnist: [mlp(5, 96, 64, 48), maxpool, dropout, mlp(5, 128, 96, 48), maxpool, dropout, mlp(5, 128, 96, 10)],
    };
    for (const [name, layers] of Object.entries(expected)) {
      expect(MODELS[name], name).toMatchObject({ name, head: 'gap', init: 'gaussian', initStd: 0.05 });
      expect(MODELS[name].layers, name).toEqual(layers);
    }
    expect(MODELS.mnist.input).toEqual({ height: 28, width: 28, channels: 1 });
    for (const name of ['cifar10', 'cifar100', 'svhn']) expect(MODELS[name].input, name).toEqual({ height: 32, width: 32, channels: 3 });
  });

  it('the CPU-sized nets: the CIFAR pipeline keeps the paper\'s max-then-average pooling; both have linear class maps and no dropout', () => {
    expect(MODELS['cifar10-small'].layers).toEqual([mlp(5, 32, 32, 32), maxpool, mlp(3, 64, 64, 64), avgpool, { ...mlp(3, 96, 64, 10), linearOut: true }]);
    expect(MODELS['mnist-small'].layers).toEqual([mlp(5, 16, 16, 16), maxpool, mlp(3, 32, 32, 32), maxpool, { ...mlp(3, 48, 32, 10), linearOut: true }]);
  });

  // Worked by hand: an mlpconv K×K c1-c2-c3 on Cin channels has K·K·Cin·c1 + c1·c2 + c2·c3 weights
  // and c1 + c2 + c3 biases, and costs 2·H·W·(those weights) FLOPs; a 3/2 pool reads 9 inputs an
  // output; GAP one an input. CIFAR-10: 32 → 16 → 8 (NIN's CIFAR-10 net has some 0.97 M parameters).
  it.each([
    ['cifar10', '966,986', '445.31'],
    ['cifar100', '984,356', '447.52'],
    ['svhn', '1,986,026', '548.69'],
    ['mnist', '349,674', '101.51'],
    ['mnist-small', '23,482', '5.62'],
    ['cifar10-small', '93,610', '30.80'],
  ])('%s: the summary\'s total is %s parameters and %s MFLOP per image', (name, params, mflop) => {
    expect(describeConfig(MODELS[name])).toMatch(new RegExp(`^total\\s+${params}\\s+${mflop.replace('.', '\\.')}$`, 'm'));
  });

  it("the summary's rows: output shape, parameters and MFLOP of each layer", () => {
    const rows = describeConfig(MODELS.cifar10).split('\n');
    expect(rows[0]).toMatch(/^layer\s+output \(h×w×c\)\s+params\s+MFLOP\/img$/);
    expect(rows).toContainEqual(expect.stringMatching(/^mlpconv5x5 192-160-96\s+32×32×96\s+60,928\s+123\.86$/));
    expect(rows).toContainEqual(expect.stringMatching(/^maxpool 3\/2\s+16×16×96\s+0\.22$/));
    expect(rows).toContainEqual(expect.stringMatching(/^avgpool 3\/2\s+8×8×192\s+0\.11$/));
    expect(rows).toContainEqual(expect.stringMatching(/^mlpconv3x3 192-192-10\s+8×8×10\s+370,954\s+47\.43$/));
  });
});

describe('FC heads', () => {
  // One 3×3 block 4-4-2 on a 6×6×1 input: 72 features for 3 classes.
  const net = (head: ModelConfig['head']): ModelConfig => coded('fc-tiny', [6, 6, 1], [mlp(3, 4, 4, 2)], 3, head);
  const block = { name: 'mlpconv3x3 4-4-2', output: [6, 6, 2], params: 9 * 4 + 4 + 4 * 4 + 4 + 4 * 2 + 2, flops: 2 * 36 * (9 * 4 + 4 * 4 + 4 * 2) };
  const fc = { name: 'fully connected 72→3', output: [3], params: 72 * 3 + 3, flops: 2 * 72 * 3 };

  it('the FC layer counts its weights and biases, and 2 FLOPs a weight; fc-dropout adds a dropout 0.5 row', () => {
    expect(plan(net('fc'))).toEqual([block, fc]);
    expect(plan(net('fc-dropout'))).toEqual([block, { name: 'dropout 0.5', output: [6, 6, 2], params: 0, flops: 0 }, fc]);
    expect(describeConfig(net('fc'))).toMatch(/^total\s+289\s+0\.00$/m); // 70 + 219 parameters
  });

  it("a config's initStd under He init is said to be unused (the run takes He's σ)", () => {
    expect(unusedInitStd(net('gap'))).toBeNull(); // the default σ
    expect(unusedInitStd({ ...net('gap'), initStd: 0.1 })).toBe("fc-tiny's initStd 0.1 is the Gaussian init's σ: under He init it is unused (--init gaussian uses it)");
    expect(unusedInitStd({ ...net('gap'), initStd: 0.1, init: 'gaussian' })).toBeNull();
  });

  it('its weights take fan-in 72 and He gain 1 (it feeds the softmax, no ReLU); every other weight gain 2', () => {
    for (const head of ['fc', 'fc-dropout'] as const) {
      const weights = parameterSpecs(net(head)).filter((p) => !p.isBias).map((p) => [p.name, p.shape, p.fanIn, p.gain]);
      expect(weights, head).toEqual([
        ['block1.w1', [3, 3, 1, 4], 9, 2],
        ['block1.w2', [1, 1, 4, 4], 4, 2],
        ['block1.w3', [1, 1, 4, 2], 4, 2],
        ['fc.w', [1, 1, 72, 3], 72, 1],
      ]);
    }
  });
});

describe('the pool check', () => {
  // A 3/4 pool on 28: ceil(25 / 4) + 1 = 8 windows, the last starting at 28, outside; on 31 it starts at 28, inside.
  const net = (height: number, width: number): ModelConfig => coded('odd', [height, width, 1], [mlp(1, 2, 2, 2), { type: 'maxpool', kernel: 3, stride: 4 }, mlp(1, 2, 2, 2)]);

  it('refuses a last window outside the image in either direction, and passes one inside', () => {
    expect(() => plan(net(28, 31))).toThrow(new RangeError('model odd: layer 1 maxpool 3/4 on a 28×31 input leaves the last window outside the image'));
    expect(() => plan(net(31, 28))).toThrow(new RangeError('model odd: layer 1 maxpool 3/4 on a 31×28 input leaves the last window outside the image'));
    expect(plan(net(31, 31))[1].output).toEqual([8, 8, 2]);
  });
});

describe('the layer checks of a config built in code (a config file is checked field by field first)', () => {
  const net = ([height, width]: [number, number], layers: LayerSpec[]): ModelConfig => coded('coded', [height, width, 1], layers);

  it('an even kernel needs its padding given', () => {
    expect(() => plan(net([6, 6], [mlp(4, 2, 2, 2)]))).toThrow(new RangeError('model coded: layer 0 mlpconv kernel 4 must be odd, or its padding given'));
    expect(plan(net([6, 6], [{ ...mlp(4, 2, 2, 2), padding: 1 } as LayerSpec]))[0]).toMatchObject({ name: 'mlpconv4x4 s1 p1 2-2-2', output: [5, 5, 2] });
  });

  it('a K×K conv that leaves no output row, or no output column, does not fit; one output pixel does', () => {
    // 5×5 with padding 0: H − 4 output rows, W − 4 columns.
    const conv = { ...mlp(5, 2, 2, 2), padding: 0 } as LayerSpec;
    expect(() => plan(net([4, 5], [conv]))).toThrow(new RangeError('model coded: layer 0 mlpconv 5×5 with padding 0 does not fit its 4×5 input'));
    expect(() => plan(net([5, 4], [conv]))).toThrow(new RangeError('model coded: layer 0 mlpconv 5×5 with padding 0 does not fit its 5×4 input'));
    expect(plan(net([5, 5], [conv]))[0]).toMatchObject({ name: 'mlpconv5x5 s1 p0 2-2-2', output: [1, 1, 2] });
  });

  it('a dropout rate of 1 is refused, 0 (no dropout) taken', () => {
    expect(() => plan(net([6, 6], [mlp(3, 2, 2, 2), { type: 'dropout', p: 1 }, mlp(1, 2, 2, 2)]))).toThrow(new RangeError('model coded: layer 1 dropout p = 1 must be in [0, 1)'));
    expect(plan(net([6, 6], [mlp(3, 2, 2, 2), { type: 'dropout', p: 0 }, mlp(1, 2, 2, 2)]))[1]).toEqual({ name: 'dropout 0', output: [6, 6, 2], params: 0, flops: 0 });
  });

  it("an output pixel's FLOPs: the forward's three layers, and the K×K layer's input gradient", () => {
    expect(mlpconvPixelFlops(5, 3, [192, 160, 96])).toEqual({ forward: 2 * (25 * 3 * 192 + 192 * 160 + 160 * 96), inputGrad: 2 * 25 * 3 * 192 });
  });

  it("class maps: the paper's nets' pass a ReLU, the CPU-sized nets' stay linear", () => {
    expect(['mnist', 'cifar10', 'mnist-small', 'cifar10-small'].map((name) => classMapsOf(MODELS[name]))).toEqual(['relu', 'relu', 'linear', 'linear']);
  });

  it('--dropout on a built-in model without dropout layers is refused', () => {
    expect(() => modelConfig({ model: 'mnist-small', dropout: 0.5 })).toThrow(new RangeError('model mnist-small has no dropout layers between its blocks to set to 0.5'));
  });
});

describe('other images and classes (fitToData)', () => {
  it("a GAP net's class maps take the new classes; a last mlpconv of another width (an FC head's features) keeps it", () => {
    const gap = coded('fit', [6, 6, 1], [mlp(3, 4, 4, 2)]);
    expect(fitToData(gap, { height: 8, width: 8, channels: 3 }, 5)).toEqual({ ...gap, input: { height: 8, width: 8, channels: 3 }, classes: 5, layers: [mlp(3, 4, 4, 5)] });
    const fc: ModelConfig = { ...gap, head: 'fc', layers: [mlp(3, 4, 4, 6)] };
    expect(fitToData(fc, { height: 8, width: 8, channels: 3 }, 5).layers).toEqual([mlp(3, 4, 4, 6)]);
  });
});

describe('the largest tensor an image adds to a step', () => {
  it('the first candidate of the most elements: on a tie the input images, before the layers', () => {
    // 8×8×4 input; the 1×1 block's 8×8×4 maps are as large.
    const tie = coded('tie', [8, 8, 4], [mlp(1, 4, 4, 2)]);
    expect(largestImageTensor(tie, true)).toEqual({ layer: 'the input images', shape: [8, 8, 4] });
    expect(largestImageTensor({ ...tie, layers: [mlp(1, 4, 5, 2)] }, true)).toEqual({ layer: 'mlpconv1x1 4-5-2', shape: [8, 8, 5] });
  });
});
