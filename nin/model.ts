// Network In Network models: configs as plain data, built from the engine's fused mlpconv.
import { backward, param } from '../engine/autograd.ts';
import { deriveSeed, gaussian } from './data/rng.ts';
import { Tensor } from '../engine/tensor.ts';
import { gpu } from '../engine/device.ts';
import { fmtBytes, profileScope } from '../engine/runtime.ts';
import { gemmStyle } from '../kernels/gemm.ts';
import { conv2d, convGeometry, isSameConv } from '../kernels/conv2d.ts';
import { dropout } from '../kernels/dropout.ts';
import { reshape } from '../kernels/elementwise.ts';
import { globalAvgPool } from '../kernels/gap.ts';
import { mlpconv, mlpconvUnfused } from '../kernels/mlpconv.ts';
import { avgPool2d, maxPool2d, poolOutputSize } from '../kernels/pool2d.ts';
import { softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';

export type LayerSpec =
  /** K×K conv → 1×1 → 1×1, ReLU after each (channels = the three widths); `linearOut` drops the
   * last ReLU (the paper keeps it, also before GAP). The K×K conv's `stride` (default 1) and zero
   * `padding` (default (K − 1)/2: the output keeps the input's size; needed for an even K), as
   * ImageNet's NIN starts (11×11, stride 4, padding 0); other than the default, the block runs as
   * the unfused chain (kernels/mlpconv.ts). */
  | { type: 'mlpconv'; kernel: number; channels: [number, number, number]; linearOut?: boolean; stride?: number; padding?: number }
  | { type: 'maxpool' | 'avgpool'; kernel: number; stride: number }
  | { type: 'dropout'; p: number };

/** Classifier on top of the last mlpconv: global average pooling (the paper) or a fully connected
 * layer over the flattened maps (the paper's comparison), optionally with dropout before it. */
export const HEADS = ['gap', 'fc', 'fc-dropout'] as const;
export type Head = (typeof HEADS)[number];
export const INITS = ['gaussian', 'he'] as const;
export type Init = (typeof INITS)[number];

export interface ModelConfig {
  name: string;
  input: { height: number; width: number; channels: number };
  classes: number;
  layers: LayerSpec[];
  head: Head;
  /** 'gaussian': N(0, initStd²) as the paper's Caffe models (σ = 0.05); 'he': N(0, 2/fan_in) (1/fan_in for the FC classifier, which feeds no ReLU). */
  init: Init;
  initStd: number;
}

const mlp = (kernel: number, a: number, b: number, c: number): LayerSpec => ({ type: 'mlpconv', kernel, channels: [a, b, c] });
const maxpool: LayerSpec = { type: 'maxpool', kernel: 3, stride: 2 };
const avgpool: LayerSpec = { type: 'avgpool', kernel: 3, stride: 2 };
const drop: LayerSpec = { type: 'dropout', p: 0.5 };

/** One of the paper's nets: a GAP head and the authors' Gaussian init (σ = 0.05). */
function paperNet(name: string, input: ModelConfig['input'], classes: number, layers: LayerSpec[]): ModelConfig {
  return { name, input, classes, layers, head: 'gap', init: 'gaussian', initStd: 0.05 };
}

const rgb32 = { height: 32, width: 32, channels: 3 };

/** CIFAR layout (the authors' Caffe model: second pool is average pooling). */
function cifarLike(name: string, classes: number): ModelConfig {
  return paperNet(name, rgb32, classes, [mlp(5, 192, 160, 96), maxpool, drop, mlp(5, 192, 192, 192), avgpool, drop, mlp(3, 192, 192, classes)]);
}

export const MODELS: Record<string, ModelConfig> = {
  'cifar10': cifarLike('cifar10', 10),
  'cifar100': cifarLike('cifar100', 100),
  // The authors' SVHN net (cuda-convnet NIN/svhn_def): the CIFAR layout with other widths, a 5×5
  // third block and max pooling twice.
  'svhn': paperNet('svhn', rgb32, 10, [mlp(5, 128, 96, 64), maxpool, drop, mlp(5, 320, 256, 128), maxpool, drop, mlp(5, 384, 256, 10)]),
  'mnist': paperNet('mnist', { height: 28, width: 28, channels: 1 }, 10, [mlp(5, 96, 64, 48), maxpool, drop, mlp(5, 128, 96, 48), maxpool, drop, mlp(5, 128, 96, 10)]),
  // Sized so that `npm run train` fits a 2-core CPU through lavapipe. Unlike the paper's nets its
  // class maps are linear (no last ReLU): with ReLU'd maps this narrow net spent its first ten
  // thousand images near chance (83.7 % test accuracy after 24k images at lr 0.01, and dead maps
  // at lr 0.05), while linear maps reached 89 % after 9.6k images at lr 0.03 (lavapipe runs).
  'mnist-small': {
    name: 'mnist-small',
    input: { height: 28, width: 28, channels: 1 },
    classes: 10,
    layers: [mlp(5, 16, 16, 16), maxpool, mlp(3, 32, 32, 32), maxpool, { ...mlp(3, 48, 32, 10), linearOut: true } as LayerSpec],
    head: 'gap',
    init: 'he',
    initStd: 0.05,
  },
  // A CIFAR-sized NIN for CPU adapters: the CIFAR pipeline (GCN + ZCA, translations and flips, the
  // paper's pooling) on real data in minutes through lavapipe, before spending GPU time on the
  // paper's net. Linear class maps and no dropout for the same reason as mnist-small (short runs).
  'cifar10-small': {
    name: 'cifar10-small',
    input: { height: 32, width: 32, channels: 3 },
    classes: 10,
    layers: [mlp(5, 32, 32, 32), maxpool, mlp(3, 64, 64, 64), avgpool, { ...mlp(3, 96, 64, 10), linearOut: true } as LayerSpec],
    head: 'gap',
    init: 'he',
    initStd: 0.05,
  },
};

interface LayerSummary {
  name: string;
  output: number[];
  params: number;
  flops: number;
}

interface ParamEntry {
  name: string;
  tensor: Tensor;
  /** The paper's multipliers: biases 2× learning rate and no weight decay. */
  lrMult: number;
  decayMult: number;
}

/**
 * FLOPs (2·MACs; bias and ReLU not counted) an output pixel of an mlpconv costs in the forward, and
 * its K×K layer's input gradient, which a network's first block skips (its input is the image).
 */
export function mlpconvPixelFlops(kernel: number, inChannels: number, [c1, c2, c3]: readonly number[]): { forward: number; inputGrad: number } {
  return { forward: 2 * (kernel * kernel * inChannels * c1 + c1 * c2 + c2 * c3), inputGrad: 2 * kernel * kernel * inChannels * c1 };
}

/** An mlpconv layer's K×K convolution on an H×W input, as the kernel computes it (conv2d.ts
 * convGeometry): stride S and padding P (defaults filled in), output Ho×Wo, and whether it is the
 * stride-1 "same" convolution. */
export function mlpconvGeometry(l: { kernel: number; stride?: number; padding?: number }, H = l.kernel, W = l.kernel): ReturnType<typeof convGeometry> & { same: boolean } {
  const s = { N: 1, H, W, Ci: 1, Co: 1, K: l.kernel, stride: l.stride, pad: l.padding };
  return { ...convGeometry(s), same: isSameConv(s) };
}

/** Checks a config and returns the per-layer output shapes (per image, [H, W, C]). */
export function plan(config: ModelConfig): LayerSummary[] {
  const { height, width, channels } = config.input;
  let shape = [height, width, channels];
  const out: LayerSummary[] = [];
  config.layers.forEach((l, i) => {
    const [H, W, C] = shape;
    if (l.type === 'mlpconv') {
      const [c1, c2, c3] = l.channels;
      if (l.kernel % 2 !== 1 && l.padding === undefined) throw new RangeError(`model ${config.name}: layer ${i} mlpconv kernel ${l.kernel} must be odd, or its padding given`);
      const { S, P, Ho, Wo, same } = mlpconvGeometry(l, H, W);
      if (Ho < 1 || Wo < 1) throw new RangeError(`model ${config.name}: layer ${i} mlpconv ${l.kernel}×${l.kernel} with padding ${P} does not fit its ${H}×${W} input`);
      shape = [Ho, Wo, c3];
      const geometry = same ? '' : ` s${S} p${P}`;
      out.push({ name: `mlpconv${l.kernel}x${l.kernel}${geometry} ${c1}-${c2}-${c3}${l.linearOut ? ' linear out' : ''}`, output: shape, params: l.kernel * l.kernel * C * c1 + c1 + c1 * c2 + c2 + c2 * c3 + c3, flops: Ho * Wo * mlpconvPixelFlops(l.kernel, C, l.channels).forward });
    } else if (l.type === 'dropout') {
      if (!(l.p >= 0 && l.p < 1)) throw new RangeError(`model ${config.name}: layer ${i} dropout p = ${l.p} must be in [0, 1)`);
      out.push({ name: `dropout ${l.p}`, output: shape, params: 0, flops: 0 });
    } else {
      shape = [poolOutputSize(H, l.kernel, l.stride), poolOutputSize(W, l.kernel, l.stride), C];
      // The kernel's rule (pool2d.ts poolShape): with stride > window the last window may start past the image.
      if ((shape[0] - 1) * l.stride >= H || (shape[1] - 1) * l.stride >= W) {
        throw new RangeError(`model ${config.name}: layer ${i} ${l.type} ${l.kernel}/${l.stride} on a ${H}×${W} input leaves the last window outside the image`);
      }
      out.push({ name: `${l.type} ${l.kernel}/${l.stride}`, output: shape, params: 0, flops: shape[0] * shape[1] * C * l.kernel * l.kernel });
    }
  });
  const last = config.layers.at(-1);
  if (last?.type !== 'mlpconv') throw new RangeError(`model ${config.name}: the last layer must be an mlpconv`);
  const [H, W, C] = shape;
  if (config.head === 'gap') {
    if (C !== config.classes) throw new RangeError(`model ${config.name}: with a GAP head the last mlpconv must emit one map per class (${config.classes}), not ${C}`);
    out.push({ name: 'global average pool', output: [C], params: 0, flops: H * W * C });
  } else {
    if (config.head === 'fc-dropout') out.push({ name: 'dropout 0.5', output: shape, params: 0, flops: 0 });
    const fanIn = H * W * C;
    out.push({ name: `fully connected ${fanIn}→${config.classes}`, output: [config.classes], params: fanIn * config.classes + config.classes, flops: 2 * fanIn * config.classes });
  }
  return out;
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The candidate with the most elements (the first on ties). */
function largestOf(candidates: { layer: string; shape: number[] }[]): { layer: string; shape: number[] } {
  const { layer, shape } = candidates.reduce((best, c) => (elements(c.shape) > elements(best.shape) ? c : best));
  return { layer, shape };
}

/**
 * The largest tensor one image adds to a training step of `config`: the widest activation (or its
 * gradient, the same size) of any layer, or, where the weight gradients use the simd GEMM
 * (`paddedCopies`), the zero-padded copy of a K×K layer's input it reads (kernels/conv2d.ts). A
 * batch of N binds N times this in one buffer, so it bounds the batch a device allows.
 */
export function largestImageTensor(config: ModelConfig, paddedCopies: boolean): { layer: string; shape: number[] } {
  const { height, width, channels } = config.input;
  const candidates = [{ layer: 'the input images', shape: [height, width, channels] }];
  const summaries = plan(config);
  let [H, W, C] = [height, width, channels];
  config.layers.forEach((l, i) => {
    const name = summaries[i].name;
    if (l.type === 'mlpconv') {
      const { P } = mlpconvGeometry(l);
      if (paddedCopies && P > 0) candidates.push({ layer: `${name} (its input, zero-padded for the weight gradient)`, shape: [H + 2 * P, W + 2 * P, C] });
      const [Ho, Wo] = summaries[i].output;
      for (const c of l.channels) candidates.push({ layer: name, shape: [Ho, Wo, c] });
    }
    [H, W, C] = summaries[i].output;
  });
  return largestOf(candidates);
}

/** The largest weight tensor of `config` (its gradient and SGD velocity are the same size). */
export function largestWeightTensor(config: ModelConfig): { layer: string; shape: number[] } {
  return largestOf(parameterSpecs(config).filter((p) => !p.isBias));
}

/**
 * Every parameter of `config` in NinModel's order (its init seeds follow it): each mlpconv block's
 * w1 [K, K, Cin, c1], b1, w2 [1, 1, c1, c2], b2, w3 [1, 1, c2, c3], b3, then the FC layer's weights
 * and bias. `layer` names what holds it; `fanIn` and `gain` are its He init's.
 */
export function parameterSpecs(config: ModelConfig, summaries = plan(config)) {
  type Spec = { name: string; layer: string; shape: number[]; fanIn: number; isBias: boolean; gain: number };
  const specs: Spec[] = [];
  // He et al.'s fan-in init has gain 2 for a layer that feeds a ReLU. The FC classifier feeds
  // none, so it gets gain 1: with 2, cifar10-small --head fc-dropout started at loss 7.7–9.8 and
  // once diverged at lr 0.05. Linear class maps keep gain 2: with 1, the main job gave 97.87 %
  // in one run (98.46 % with 2), under its 98 % target.
  const add = (name: string, layer: string, shape: number[], fanIn: number, isBias: boolean, gain = 2) => specs.push({ name, layer, shape, fanIn, isBias, gain });
  let ch = config.input.channels;
  let block = 0;
  config.layers.forEach((l, i) => {
    if (l.type !== 'mlpconv') return;
    block++;
    const layer = summaries[i].name;
    const [c1, c2, c3] = l.channels;
    add(`block${block}.w1`, layer, [l.kernel, l.kernel, ch, c1], l.kernel * l.kernel * ch, false);
    add(`block${block}.b1`, layer, [c1], 1, true);
    add(`block${block}.w2`, layer, [1, 1, c1, c2], c1, false);
    add(`block${block}.b2`, layer, [c2], 1, true);
    add(`block${block}.w3`, layer, [1, 1, c2, c3], c2, false);
    add(`block${block}.b3`, layer, [c3], 1, true);
    ch = c3;
  });
  if (config.head !== 'gap') {
    const fanIn = elements(fcInputShape(config, summaries)!);
    add('fc.w', 'the fully connected layer', [1, 1, fanIn, config.classes], fanIn, false, 1); // feeds the softmax, no ReLU
    add('fc.b', 'the fully connected layer', [config.classes], 1, true);
  }
  return specs;
}

/**
 * Why `batch` images per step cannot run on this device (null: they can): a weight tensor, or the
 * largest tensor of a step (largestImageTensor), past the storage binding limit. Names the tensor,
 * the limit and the largest batch that fits; callers put the flag in front. `smallerImages`: how the
 * caller's command gets them, said where not even one image fits. Needs the device (getGpu).
 */
export function batchTooLarge(config: ModelConfig, batch: number, smallerImages = ''): string | null {
  const limit = gpu().limits.maxStorageBufferBindingSize;
  const binds = `past the ${fmtBytes(limit)} that '${gpu().adapterName}' binds in one buffer (maxStorageBufferBindingSize)`;
  const weights = largestWeightTensor(config);
  if (4 * elements(weights.shape) > limit) {
    return `${config.name} cannot run on this adapter at any batch: ${weights.layer} has a float32 weight tensor of [${weights.shape.join(', ')}] (${fmtBytes(4 * elements(weights.shape))}), ${binds}`;
  }
  const { layer, shape, bytes, fits } = batchBound(config);
  if (batch <= fits) return null;
  return (
    `a batch of ${batch} images is too large for ${config.name} on this adapter: ${layer} makes a float32 tensor of [${[batch, ...shape].join(', ')}] ` +
    `(${fmtBytes(batch * bytes)}), ${binds}; ` +
    (fits > 0 ? `at most ${fits} images fit` : `not even one image fits, whatever the batch: a network of smaller images would${smallerImages}`)
  );
}

/** The largest batch of `config` this device runs (batchTooLarge's bound), at most `cap`. */
export function largestBatch(config: ModelConfig, cap: number): number {
  return Math.max(1, Math.min(cap, batchBound(config).fits));
}

/** This device's largest tensor per image for `config` (its kernel style's), its bytes, and how many images fit. */
function batchBound(config: ModelConfig) {
  const t = largestImageTensor(config, gemmStyle() === 'simd');
  const bytes = 4 * elements(t.shape);
  return { ...t, bytes, fits: Math.floor(gpu().limits.maxStorageBufferBindingSize / bytes) };
}

/** Whether the last mlpconv's class maps pass through a ReLU (the paper's) or stay linear. */
export function classMapsOf(config: ModelConfig): 'relu' | 'linear' {
  const last = config.layers.at(-1);
  return last?.type === 'mlpconv' && last.linearOut ? 'linear' : 'relu';
}

/** A built-in model by name (own keys only: 'constructor' is no model). */
export function builtInModel(name: string): ModelConfig | undefined {
  return Object.hasOwn(MODELS, name) ? MODELS[name] : undefined;
}

/**
 * A built-in network for other images and classes (`nin train --dataset folder`): the same layers
 * on `input`, and a class-map layer of `classes` maps where it emitted one per class. A network of
 * mlpconvs, pools and GAP takes any image size its pools leave a map of; plan() checks that.
 */
export function fitToData(config: ModelConfig, input: ModelConfig['input'], classes: number): ModelConfig {
  const last = config.layers.length - 1;
  const layers = config.layers.map((l, i): LayerSpec => {
    if (i !== last || l.type !== 'mlpconv' || l.channels[2] !== config.classes) return l;
    return { ...l, channels: [l.channels[0], l.channels[1], classes] };
  });
  return { ...config, input: { ...input }, classes, layers };
}

/** The [H, W, C] maps an FC head flattens (null under GAP). */
export function fcInputShape(config: ModelConfig, summaries = plan(config)): number[] | null {
  return config.head === 'gap' ? null : summaries.at(config.head === 'fc-dropout' ? -3 : -2)!.output;
}

/** The parameters of the layer that outputs the class scores: the class maps under GAP, else the FC layer. */
export function classifierParamNames(config: ModelConfig): string[] {
  if (config.head !== 'gap') return ['fc.w', 'fc.b'];
  const blocks = config.layers.filter((l) => l.type === 'mlpconv').length;
  return [`block${blocks}.w3`, `block${blocks}.b3`];
}

/** What a run may change of its network (`nin train` flags over a built-in model or a config file). */
export interface NetworkOptions {
  /** A built-in model's name (MODELS), or `config`'s. */
  model: string;
  /** A network of one's own (`nin train --config FILE`), trained instead of a built-in model. */
  config?: ModelConfig;
  head?: Head;
  init?: Init;
  /** ReLU on the last mlpconv's output (the paper's class maps) or not; default: the model's. */
  classMaps?: 'relu' | 'linear';
  /** Rate of the dropout layers between mlpconv blocks (0: off, the paper's Figure 3); default: the model's. */
  dropout?: number;
}

/** The network a run trains: its built-in model or config file, with the flags' changes applied. */
export function modelConfig(o: NetworkOptions): ModelConfig {
  const base = o.config ?? builtInModel(o.model);
  if (!base) throw new RangeError(`unknown model '${o.model}' (known: ${Object.keys(MODELS).join(', ')})`);
  if (o.dropout !== undefined && !base.layers.some((l) => l.type === 'dropout')) throw new RangeError(`model ${o.model} has no dropout layers between its blocks to set to ${o.dropout}`);
  const layers = base.layers.map((l, i) => {
    if (o.classMaps && i === base.layers.length - 1 && l.type === 'mlpconv') return { ...l, linearOut: o.classMaps === 'linear' };
    if (o.dropout !== undefined && l.type === 'dropout') return { ...l, p: o.dropout };
    return l;
  });
  return { ...base, layers, head: o.head ?? base.head, init: o.init ?? base.init };
}

/** Where a network's initStd (other than the default) goes unused: under He init, which sets its own σ. */
export function unusedInitStd(config: ModelConfig): string | null {
  return config.init === 'he' && config.initStd !== 0.05 ? `${config.name}'s initStd ${config.initStd} is the Gaussian init's σ: under He init it is unused (--init gaussian uses it)` : null;
}

/** The fields a model config file may have (`nin train --config FILE`). */
const CONFIG_FIELDS = ['name', 'input', 'classes', 'layers', 'head', 'init', 'initStd'];

/** The most layers a config may have: the paper's nets have 9 or fewer; one of 1000 crashed Dawn. */
export const MAX_LAYERS = 256;

/** A config's value as an error shows it: JSON, at most 60 characters ("1e400" parses to
 * Infinity, which JSON shows as null; a value nested 100,000 deep overflows the stack). */
function shownValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return `${v} (a number past float64's range)`;
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    return 'a value nested too deeply to show';
  }
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/**
 * A model config read from a JSON file (`nin train --config`, `nin models --config`): every field is
 * checked, and an error names the file and the field. `head`, `init` and `initStd` may be left out
 * (GAP, He, 0.05); then plan() checks that the layers fit together.
 */
export function parseModelConfig(value: unknown, source: string): ModelConfig {
  const fail = (field: string, want: string, got: unknown): never => {
    throw new RangeError(`${source}: ${field} must be ${want}, ${got === undefined ? 'and is missing' : `got ${shownValue(got)}`}`);
  };
  const object = (v: unknown, field: string, allowed: string[]): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(field, 'an object', v);
    const extra = Object.keys(v).filter((k) => !allowed.includes(k));
    if (extra.length) throw new RangeError(`${source}: ${field} has unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `'${k}'`).join(', ')} (known: ${allowed.join(', ')})`);
    return v as Record<string, unknown>;
  };
  // The upper bounds only catch typos (a width of 1e9 would fail later, at allocation on the GPU).
  const int = (v: unknown, field: string, min: number, max = 65536): number =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? (v as number) : fail(field, `an integer in [${min}, ${max}]`, v);
  const oneOf = <T extends string>(v: unknown, field: string, allowed: readonly T[]): T => (allowed.includes(v as T) ? (v as T) : fail(field, `one of ${allowed.join(', ')}`, v));
  const c = object(value, 'the config', CONFIG_FIELDS);
  const name = typeof c.name === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(c.name) ? c.name : fail('name', 'a name of up to 64 letters, digits, ".", "_" or "-" (it names run directories)', c.name);
  const input = object(c.input, 'input', ['height', 'width', 'channels']);
  if (!Array.isArray(c.layers) || c.layers.length === 0) fail('layers', 'a non-empty array', c.layers);
  // (a net of 1000 1×1 layers passed every check and crashed Dawn on lavapipe, allocating bind groups)
  if ((c.layers as unknown[]).length > MAX_LAYERS) throw new RangeError(`${source}: layers must be at most ${MAX_LAYERS}, got ${(c.layers as unknown[]).length}`);
  const layers = (c.layers as unknown[]).map((v, i): LayerSpec => {
    const at = `layers[${i}]`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'an object, { "type": … }', v);
    const type = oneOf((v as { type?: unknown }).type, `${at}.type`, ['mlpconv', 'maxpool', 'avgpool', 'dropout'] as const);
    if (type === 'mlpconv') {
      const l = object(v, at, ['type', 'kernel', 'channels', 'linearOut', 'stride', 'padding']);
      const kernel = int(l.kernel, `${at}.kernel`, 1, 63);
      const stride = l.stride === undefined ? undefined : int(l.stride, `${at}.stride`, 1, 63);
      const padding = l.padding === undefined ? undefined : int(l.padding, `${at}.padding`, 0, 63);
      if (kernel % 2 !== 1 && padding === undefined) fail(`${at}.kernel`, 'odd (the default padding, (kernel − 1)/2, keeps the input size), or its padding given', kernel);
      if (!Array.isArray(l.channels) || l.channels.length !== 3) fail(`${at}.channels`, 'three widths, [K×K conv, 1×1, 1×1]', l.channels);
      const channels = (l.channels as unknown[]).map((w, j) => int(w, `${at}.channels[${j}]`, 1)) as [number, number, number];
      if (l.linearOut !== undefined && typeof l.linearOut !== 'boolean') fail(`${at}.linearOut`, 'true or false', l.linearOut);
      return { type, kernel, channels, ...(l.linearOut !== undefined ? { linearOut: l.linearOut as boolean } : {}), ...(stride !== undefined ? { stride } : {}), ...(padding !== undefined ? { padding } : {}) };
    }
    if (type === 'dropout') {
      const l = object(v, at, ['type', 'p']);
      return { type, p: typeof l.p === 'number' && l.p >= 0 && l.p < 1 ? l.p : fail(`${at}.p`, 'a number in [0, 1)', l.p) };
    }
    const l = object(v, at, ['type', 'kernel', 'stride']);
    return { type, kernel: int(l.kernel, `${at}.kernel`, 1, 63), stride: int(l.stride, `${at}.stride`, 1, 63) };
  });
  const config: ModelConfig = {
    name,
    input: { height: int(input.height, 'input.height', 1), width: int(input.width, 'input.width', 1), channels: int(input.channels, 'input.channels', 1) },
    classes: int(c.classes, 'classes', 2),
    layers,
    head: c.head === undefined ? 'gap' : oneOf(c.head, 'head', HEADS),
    init: c.init === undefined ? 'he' : oneOf(c.init, 'init', INITS),
    // At most 10: far past any usable init (the paper's is 0.05), and 1e39 made weights of Infinity.
    initStd: c.initStd === undefined ? 0.05 : typeof c.initStd === 'number' && c.initStd > 0 && c.initStd <= 10 ? c.initStd : fail('initStd', 'a number in (0, 10]', c.initStd),
  };
  try {
    plan(config);
  } catch (e) {
    throw new RangeError(`${source}: ${(e as Error).message}`);
  }
  return config;
}

export interface ForwardOptions {
  /** Training mode: dropout on. */
  train: boolean;
  /** Dropout seed for this step (each dropout layer derives its own). */
  seed?: number;
  /** Use the unfused conv + 1×1 chain instead of the fused kernel (benchmarks, checks). */
  unfused?: boolean;
}

/** The FC head's dropout stream (deriveSeed): a dropout layer's is its layer index, so this one is apart from any net under 1000 layers. */
const FC_DROPOUT_STREAM = 1000;

export class NinModel {
  readonly params: ParamEntry[] = [];
  readonly summary: LayerSummary[];

  constructor(readonly config: ModelConfig, seed = 1) {
    this.summary = plan(config);
    let k = 0;
    for (const p of parameterSpecs(config, this.summary)) {
      const n = elements(p.shape);
      const std = config.init === 'he' ? Math.sqrt(p.gain / p.fanIn) : config.initStd;
      const data = p.isBias ? new Float32Array(n) : gaussian(n, deriveSeed(seed, k++), std);
      this.params.push({ name: p.name, tensor: param(Tensor.fromArray(data, p.shape)), lrMult: p.isBias ? 2 : 1, decayMult: p.isBias ? 0 : 1 });
    }
  }

  /** The names of the layer that outputs the class scores: with a GAP head the last mlpconv's
   * last 1×1 layer (the class maps), else the fully connected layer. */
  classifierParams(): string[] {
    return classifierParamNames(this.config);
  }

  /** The parameter tensor called `name` (e.g. "block2.w1"). */
  parameter(name: string): Tensor {
    const e = this.params.find((p) => p.name === name);
    if (!e) throw new Error(`model ${this.config.name} has no parameter '${name}'`);
    return e.tensor;
  }

  /** Logits [N, classes] for a batch x [N, H, W, C]. */
  forward(x: Tensor, opts: ForwardOptions): Tensor {
    return this.head(this.features(x, opts), opts);
  }

  /** A training step's forward and backward: the batch's logits and mean cross-entropy loss against
   * `labels` (labelTensor), the loss's gradients accumulated into the parameters (the optimiser steps,
   * the caller zeroes them). */
  lossAndGradients(x: Tensor, labels: Tensor, opts: ForwardOptions): { logits: Tensor; loss: Tensor } {
    const logits = this.forward(x, opts);
    const loss = profileScope('loss', () => softmaxCrossEntropy(logits, labels));
    backward(loss);
    return { logits, loss };
  }

  /** The last mlpconv's output [N, H', W', C'] (with a GAP head: one map per class, Figure 4). */
  features(x: Tensor, opts: ForwardOptions): Tensor {
    const { height, width, channels } = this.config.input;
    if (x.shape.length !== 4 || x.shape[1] !== height || x.shape[2] !== width || x.shape[3] !== channels) {
      throw new RangeError(`model ${this.config.name}: input has shape [${x.shape.join(', ')}], expected [N, ${height}, ${width}, ${channels}]`);
    }
    const seed = opts.seed ?? 0;
    let h = x;
    let block = 0;
    this.config.layers.forEach((l, i) => profileScope(`layer ${i} ${this.summary[i].name}`, () => { // (numbered from 0, as a config's layers[i] and plan()'s errors)
      if (l.type === 'mlpconv') {
        block++;
        const b = `block${block}`;
        const ps = { w1: this.parameter(`${b}.w1`), b1: this.parameter(`${b}.b1`), w2: this.parameter(`${b}.w2`), b2: this.parameter(`${b}.b2`), w3: this.parameter(`${b}.w3`), b3: this.parameter(`${b}.b3`) };
        const o = { relu3: !l.linearOut, stride: l.stride, padding: l.padding };
        h = opts.unfused ? mlpconvUnfused(h, ps, o) : mlpconv(h, ps, o);
      } else if (l.type === 'maxpool') {
        h = maxPool2d(h, { k: l.kernel, s: l.stride });
      } else if (l.type === 'avgpool') {
        h = avgPool2d(h, { k: l.kernel, s: l.stride });
      } else if (l.type === 'dropout' && opts.train && l.p > 0) {
        h = dropout(h, l.p, deriveSeed(seed, i)); // a stream per layer: layers must not share masks
      }
    }));
    return h;
  }

  /** Classifier: global average pooling, or flatten + fully connected (dropout 0.5 before it for 'fc-dropout'). */
  head(h: Tensor, opts: ForwardOptions): Tensor {
    return profileScope(`head ${this.config.head}`, () => this.headLayers(h, opts));
  }

  private headLayers(h: Tensor, opts: ForwardOptions): Tensor {
    const seed = opts.seed ?? 0;
    if (this.config.head === 'gap') return globalAvgPool(h);
    const N = h.shape[0];
    if (this.config.head === 'fc-dropout' && opts.train) h = dropout(h, 0.5, deriveSeed(seed, FC_DROPOUT_STREAM));
    const flat = reshape(h, [N, 1, 1, h.size / N]);
    return reshape(conv2d(flat, this.parameter('fc.w'), this.parameter('fc.b')), [N, this.config.classes]);
  }

  /** The model summary printed at the start of training. */
  describe(): string {
    return describeConfig(this.config);
  }

  dispose(): void {
    for (const p of this.params) p.tensor.dispose();
  }
}

/** Layers, output shapes, parameters and FLOPs per image, as a table (no GPU needed). */
export function describeConfig(config: ModelConfig): string {
  const summary = plan(config);
  const rows = [['layer', 'output (h×w×c)', 'params', 'MFLOP/img']];
  const { height, width, channels } = config.input;
  rows.push(['input', `${height}×${width}×${channels}`, '', '']);
  for (const l of summary) rows.push([l.name, l.output.join('×'), l.params ? l.params.toLocaleString('en-US') : '', l.flops ? (l.flops / 1e6).toFixed(2) : '']);
  const params = summary.reduce((s, l) => s + l.params, 0);
  const flops = summary.reduce((s, l) => s + l.flops, 0);
  rows.push(['total', '', params.toLocaleString('en-US'), (flops / 1e6).toFixed(2)]);
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(w[c]) : v.padStart(w[c]))).join('  ')).join('\n');
}
