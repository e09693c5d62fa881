// `nin export`: a checkpoint as an ONNX model, to run a trained network where ONNX runs
// (onnxruntime on servers and in browsers, TensorRT, OpenVINO) or to look at it (Netron).
// The graph takes raw pixels and gives logits, probabilities and the last mlpconv's maps (under
// GAP the class maps, the paper's Figure 4): the checkpoint's preprocessing
// (standardisation, GCN + ZCA, GCN + LCN) is part of it, so a caller feeds what a PNG decoder
// gives. Opset 17, float32, batch size free. Layers map one to one: each mlpconv is three Conv
// nodes with Relu between (the fused kernel is our engine's business, not the model's), pooling
// keeps Caffe's ceil rounding (ceil_mode 1; average over the clipped window: count_include_pad 0),
// dropout is left out (inference), GAP is GlobalAveragePool, the FC head flattens in our NHWC
// order. The protobuf is written here (the few message types ONNX needs, ~60 lines) rather than
// through a protobuf package.
import { loadCheckpoint } from './checkpoint.ts';
import { writeFileAtomic } from './data/io.ts';
import { gaussianTaps, MAXOUT_LCN } from './data/lcn.ts';
import { MAXOUT_GCN, NIN_GCN, type GcnOptions } from './data/preprocess.ts';
import { mlpconvGeometry, parameterSpecs, plan, type ModelConfig } from './model.ts';
import { classNamesOf } from './datasets.ts';
import type { Preprocessor } from './preprocessing.ts';

export const ONNX_OPSET = 17;
const ONNX_IR_VERSION = 8; // the IR version of opset 17
const FLOAT = 1; // TensorProto.DataType
const INT64 = 7;

// ---------------------------------------------------------------------------------------------
// Protobuf: a message is a list of byte chunks (initializers stay as they are, not copied into
// one growing array until the end).

class Message {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(bytes: Uint8Array): this {
    this.chunks.push(bytes);
    this.length += bytes.length;
    return this;
  }

  private varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`onnx: varint ${value} must be a non-negative safe integer`);
    const out: number[] = [];
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    return this.push(Uint8Array.from(out));
  }

  /** A varint field (wire type 0): int32, int64, enum. */
  int(field: number, value: number): this {
    return this.varint(field * 8).varint(value);
  }

  /** A length-delimited field (wire type 2): bytes, a string, or a nested message. */
  bytes(field: number, value: Uint8Array | string | Message): this {
    this.varint(field * 8 + 2);
    if (value instanceof Message) {
      this.varint(value.length);
      for (const c of value.chunks) this.push(c);
      return this;
    }
    const b = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    return this.varint(b.length).push(b);
  }

  /** A packed repeated varint field. */
  packed(field: number, values: readonly number[]): this {
    const inner = new Message();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner);
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

type Attribute = number | number[];

function attribute(name: string, value: Attribute): Message {
  const a = new Message().bytes(1, name);
  return typeof value === 'number' ? a.int(20, 2).int(3, value) : a.int(20, 7).packed(8, value); // INT, INTS
}

/** TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian, as x86 and ARM store it). */
function tensorProto(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): Message {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Message().packed(1, dims).int(2, data instanceof Float32Array ? FLOAT : INT64).bytes(8, name).bytes(9, raw);
}

/** ValueInfoProto of a float tensor; a string dimension is symbolic (the batch). */
function valueInfo(name: string, dims: readonly (number | string)[], doc: string): Message {
  const shape = new Message();
  for (const d of dims) shape.bytes(1, typeof d === 'string' ? new Message().bytes(2, d) : new Message().int(1, d));
  const tensorType = new Message().int(1, FLOAT).bytes(2, shape);
  return new Message().bytes(1, name).bytes(2, new Message().bytes(1, tensorType)).bytes(3, doc);
}

// ---------------------------------------------------------------------------------------------
// The graph.

class GraphBuilder {
  readonly nodes: Message[] = [];
  readonly initializers: Message[] = [];
  private count = 0;

  /** A constant (an initializer), by name. */
  constant(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): string {
    this.initializers.push(tensorProto(name, dims, data));
    return name;
  }

  scalar(name: string, value: number): string {
    return this.constant(name, [], Float32Array.of(value));
  }

  /** A node with one output, named after `name` (numbered, so names stay unique). */
  node(op: string, inputs: string[], name: string, attrs: Record<string, Attribute> = {}, output?: string): string {
    const out = output ?? `${name}_${this.count++}`;
    const n = new Message();
    for (const i of inputs) n.bytes(1, i);
    n.bytes(2, out).bytes(3, out).bytes(4, op);
    for (const [k, v] of Object.entries(attrs)) n.bytes(5, attribute(k, v));
    this.nodes.push(n);
    return out;
  }
}

/** Our [K, K, Cin, Cout] weights as ONNX Conv's [Cout, Cin, K, K]. */
export function hwioToOihw(w: Float32Array, [K1, K2, Ci, Co]: readonly number[]): Float32Array {
  const out = new Float32Array(w.length);
  for (let ky = 0; ky < K1; ky++)
    for (let kx = 0; kx < K2; kx++)
      for (let ci = 0; ci < Ci; ci++)
        for (let co = 0; co < Co; co++) out[((co * Ci + ci) * K1 + ky) * K2 + kx] = w[((ky * K2 + kx) * Ci + ci) * Co + co];
  return out;
}

/**
 * pylearn2's GCN per image over [N, features] (nin/data/preprocess.ts globalContrastNormalize),
 * as our pipeline runs it: mean subtracted, L2 norm (not the standard deviation).
 */
function gcnNodes(g: GraphBuilder, x: string, o: Required<GcnOptions>, tag: string): string {
  const reduce = (op: string, v: string, name: string) => g.node(op, [v], `${tag}_${name}`, { axes: [1], keepdims: 1 });
  // A uniform image centres to exactly 0 in our float64 mean, and then the divisor guard leaves it
  // 0; float32's mean may be an ulp off, and that remainder over a tiny divisor is noise. So a
  // uniform image (max = min) is set to 0 here.
  const uniform = g.node('Equal', [reduce('ReduceMax', x, 'max'), reduce('ReduceMin', x, 'min')], `${tag}_uniform`);
  const centred = g.node('Where', [uniform, g.scalar(`${tag}_zero`, 0), g.node('Sub', [x, reduce('ReduceMean', x, 'mean')], `${tag}_minus_mean`)], `${tag}_centred`);
  const norm = g.node('Sqrt', [g.node('Add', [reduce('ReduceSumSquare', centred, 'sumsq'), g.scalar(`${tag}_sqrt_bias`, o.sqrtBias)], `${tag}_biased`)], `${tag}_norm`);
  const s = g.node('Div', [norm, g.scalar(`${tag}_scale`, o.scale)], `${tag}_s`);
  // s < minDivisor → 1 (a blank image is only centred)
  const divisor = g.node('Where', [g.node('Less', [s, g.scalar(`${tag}_min_divisor`, o.minDivisor)], `${tag}_tiny`), g.scalar(`${tag}_one`, 1), s], `${tag}_divisor`);
  return g.node('Div', [centred, divisor], tag);
}

/** Preprocessing nodes from raw NHWC pixels `x` to what the network takes, in NCHW. */
function preprocessNodes(g: GraphBuilder, x: string, p: Preprocessor, config: ModelConfig): string {
  const { height: H, width: W, channels: C } = config.input;
  const nchw = (v: string) => g.node('Transpose', [v], 'nchw', { perm: [0, 3, 1, 2] });
  // Reshape targets, made when first used (a runtime warns of an unused initializer)
  const flat = () => g.constant('shape_flat', [2], BigInt64Array.of(-1n, BigInt(H * W * C)));
  const image = () => g.constant('shape_image', [4], BigInt64Array.of(-1n, BigInt(H), BigInt(W), BigInt(C)));
  if (p.kind === 'none') return nchw(g.node('Div', [x, g.scalar('pixel_max', 255)], 'scaled'));
  if (p.kind === 'standardize') {
    const s = p.stats as Extract<Preprocessor['stats'], { kind: 'channel' }>;
    const mean = g.constant('channel_mean', [C], Float32Array.from(s.mean));
    const inv = g.constant('channel_inv_std', [C], Float32Array.from(s.std, (v) => (v > 0 ? 1 / v : 1)));
    return nchw(g.node('Mul', [g.node('Sub', [x, mean], 'centred'), inv], 'standardized'));
  }
  if (p.kind === 'gcn-zca') {
    const s = p.stats as Extract<Preprocessor['stats'], { kind: 'zca' }>;
    const gcn = gcnNodes(g, g.node('Reshape', [x, flat()], 'features'), NIN_GCN, 'gcn');
    const mean = g.constant('zca_mean', [s.dim], Float32Array.from(s.mean));
    const w = g.constant('zca_whitening', [s.dim, s.dim], Float32Array.from(s.whitening));
    const white = g.node('MatMul', [g.node('Sub', [gcn, mean], 'zca_centred'), w], 'zca');
    return nchw(g.node('Reshape', [white, image()], 'whitened'));
  }
  if (p.kind !== 'gcn-lcn') throw new Error(`onnx export: preprocessing '${p.kind}' has no ONNX form here`);
  // gcn-lcn: GCN (scale 1), then per channel y = (x − G∗x) / max(mean(s), s, threshold) with
  // s = sqrt(G∗x²), G a normalised 7×7 Gaussian with zero padding (nin/data/lcn.ts): depthwise Convs.
  const gcn = nchw(g.node('Reshape', [gcnNodes(g, g.node('Reshape', [x, flat()], 'features'), MAXOUT_GCN, 'gcn'), image()], 'gcn_image'));
  const { kernelSize: k, sigma, threshold } = MAXOUT_LCN;
  const taps = gaussianTaps(k, sigma);
  const kernel = new Float32Array(C * k * k);
  for (let c = 0; c < C; c++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) kernel[(c * k + i) * k + j] = taps[i] * taps[j];
  const G = g.constant('lcn_gaussian', [C, 1, k, k], kernel);
  const blur = (v: string, name: string) => g.node('Conv', [v, G], name, { group: C, kernel_shape: [k, k], pads: [k >> 1, k >> 1, k >> 1, k >> 1] });
  const local = blur(gcn, 'lcn_local_mean');
  const norm = g.node('Sqrt', [g.node('Relu', [blur(g.node('Mul', [gcn, gcn], 'lcn_square'), 'lcn_local_square')], 'lcn_nonnegative')], 'lcn_norm');
  const meanNorm = g.node('ReduceMean', [norm], 'lcn_mean_norm', { axes: [2, 3], keepdims: 1 });
  const divisor = g.node('Max', [meanNorm, norm, g.scalar('lcn_threshold', threshold)], 'lcn_divisor');
  return g.node('Div', [g.node('Sub', [gcn, local], 'lcn_centred'), divisor], 'lcn');
}

export interface OnnxExportOptions {
  /** Include the preprocessing (default true); false: the graph takes preprocessed images. */
  preprocess?: boolean;
  /** Class names, kept in the model's metadata (`nin.classes`, a JSON array) when there is one per class. */
  classNames?: readonly string[];
  /** More metadata_props entries. */
  metadata?: Record<string, string>;
}

/**
 * The ONNX model (serialised ModelProto) of a network `config` with weights `params` (by our
 * parameter names, e.g. "block1.w1") and preprocessing `preprocessor`. Input "image": float32
 * [N, H, W, C], raw 0..255 pixels in our (and image decoders') channel-last order, or preprocessed
 * images with `preprocess: false`. Outputs "logits" and "probabilities" (softmax), [N, classes],
 * and "maps", the last mlpconv's output [N, H', W', maps] (under GAP, the class maps).
 */
export function exportOnnx(config: ModelConfig, params: ReadonlyMap<string, Float32Array>, preprocessor: Preprocessor, opts: OnnxExportOptions = {}): Uint8Array {
  const summaries = plan(config);
  const specs = parameterSpecs(config, summaries);
  for (const s of specs) {
    const w = params.get(s.name);
    if (!w) throw new Error(`onnx export: no weights for parameter '${s.name}'`);
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) throw new Error(`onnx export: parameter '${s.name}' has ${w.length} values, the model's [${s.shape.join(', ')}] has ${n}`);
  }
  preprocessor.checkInput(config.input);
  if (preprocessor.kind !== 'none' && preprocessor.kind !== 'gcn-lcn' && !preprocessor.stats) throw new Error(`onnx export: preprocessing '${preprocessor.kind}' without its fitted statistics`);
  const shapeOf = (name: string) => specs.find((s) => s.name === name)!.shape;
  const g = new GraphBuilder();
  const withPreprocessing = opts.preprocess ?? true;
  const { height: H, width: W, channels: C } = config.input;
  let h = withPreprocessing ? preprocessNodes(g, 'image', preprocessor, config) : g.node('Transpose', ['image'], 'nchw', { perm: [0, 3, 1, 2] });
  let block = 0;
  config.layers.forEach((l, i) => {
    if (l.type === 'mlpconv') {
      block++;
      const b = `block${block}`;
      const conv = (k: 1 | 2 | 3, relu: boolean) => {
        const [K1, K2, Ci, Co] = shapeOf(`${b}.w${k}`);
        const w = g.constant(`${b}.w${k}`, [Co, Ci, K1, K2], hwioToOihw(params.get(`${b}.w${k}`)!, [K1, K2, Ci, Co]));
        const bias = g.constant(`${b}.b${k}`, shapeOf(`${b}.b${k}`), params.get(`${b}.b${k}`)!);
        const K = k === 1 ? l.kernel : 1;
        const { S, P } = k === 1 ? mlpconvGeometry(l) : { S: 1, P: 0 };
        h = g.node('Conv', [h, w, bias], `${b}_conv${k}`, { kernel_shape: [K, K], pads: [P, P, P, P], ...(S !== 1 ? { strides: [S, S] } : {}) });
        if (relu) h = g.node('Relu', [h], `${b}_relu${k}`);
      };
      conv(1, true);
      conv(2, true);
      conv(3, !l.linearOut);
    } else if (l.type === 'maxpool' || l.type === 'avgpool') {
      // A window larger than the map is clipped to it by our kernels (one output); ONNX's output
      // size formula would go to 0 or below, so the window is given as the map's size there.
      const [inH, inW] = i === 0 ? [H, W] : summaries[i - 1].output;
      const attrs: Record<string, Attribute> = { kernel_shape: [Math.min(l.kernel, inH), Math.min(l.kernel, inW)], strides: [l.stride, l.stride], ceil_mode: 1 };
      if (l.type === 'avgpool') attrs.count_include_pad = 0;
      h = g.node(l.type === 'maxpool' ? 'MaxPool' : 'AveragePool', [h], `layer${i}_${l.type}`, attrs);
    } // dropout: identity at inference
  });
  // The last mlpconv's maps, channels last as the input, an output of their own (the paper's Figure 4).
  const maps = g.node('Transpose', [h], 'nhwc', { perm: [0, 2, 3, 1] }, 'maps');
  let logits: string;
  if (config.head === 'gap') {
    logits = g.node('Flatten', [g.node('GlobalAveragePool', [h], 'gap')], 'flatten', { axis: 1 }, 'logits');
  } else {
    // Our FC layer reads the maps flattened in NHWC order.
    const flat = g.node('Flatten', [maps], 'flatten', { axis: 1 });
    const [, , fanIn, classes] = shapeOf('fc.w');
    logits = g.node('Gemm', [flat, g.constant('fc.w', [fanIn, classes], params.get('fc.w')!), g.constant('fc.b', [classes], params.get('fc.b')!)], 'fc', {}, 'logits');
  }
  g.node('Softmax', [logits], 'softmax', { axis: 1 }, 'probabilities');

  const inputDoc = withPreprocessing
    ? `float32 [N, ${H}, ${W}, ${C}]: raw pixels 0..255, channels last; the graph applies the training run's preprocessing (${preprocessor.kind})`
    : `float32 [N, ${H}, ${W}, ${C}], channels last, already preprocessed (${preprocessor.kind}) as in training`;
  const graph = new Message();
  for (const n of g.nodes) graph.bytes(1, n);
  graph.bytes(2, config.name);
  for (const t of g.initializers) graph.bytes(5, t);
  graph.bytes(11, valueInfo('image', ['N', H, W, C], inputDoc));
  graph.bytes(12, valueInfo('logits', ['N', config.classes], 'class scores before the softmax'));
  graph.bytes(12, valueInfo('probabilities', ['N', config.classes], 'softmax of the logits'));
  const [mh, mw, mc] = summaries[config.layers.length - 1].output;
  graph.bytes(12, valueInfo('maps', ['N', mh, mw, mc], config.head === 'gap' ? "the last mlpconv's maps, one per class, whose means are the logits (the paper's Figure 4), channels last" : "the last mlpconv's maps, which the fully connected layer reads, channels last"));

  const model = new Message().int(1, ONNX_IR_VERSION).bytes(2, 'nin-webgpu').bytes(3, '0.1.0');
  model.bytes(6, `Network In Network '${config.name}' exported by nin-webgpu. Input: ${inputDoc}.`);
  model.bytes(7, graph);
  model.bytes(8, new Message().bytes(1, '').int(2, ONNX_OPSET));
  const metadata: Record<string, string> = {
    'nin.config': JSON.stringify(config),
    'nin.preprocess': withPreprocessing ? `${preprocessor.kind} (in the graph)` : `${preprocessor.kind} (not in the graph)`,
    ...(opts.classNames?.length === config.classes ? { 'nin.classes': JSON.stringify(opts.classNames) } : {}),
    ...opts.metadata,
  };
  for (const [key, value] of Object.entries(metadata)) model.bytes(14, new Message().bytes(1, key).bytes(2, value));
  return model.toBytes();
}

/** The classes as `nin export` lists them: all of up to 12, else the first 10 and the count. */
export function classListing(classes: readonly string[]): string {
  return classes.length <= 12 ? classes.join(', ') : `${classes.slice(0, 10).join(', ')}, … (${classes.length}; all in the metadata's nin.classes)`;
}

/**
 * `nin export`: writes the checkpoint at `path` as an ONNX model to `out` (atomically) and returns
 * what was written, for the user: the file, its input and outputs.
 */
export function exportCheckpoint(path: string, out: string, opts: { preprocess?: boolean } = {}): string {
  const c = loadCheckpoint(path);
  c.checkWeights(parameterSpecs(c.config, plan(c.config))); // by name and shape, the file named (exportOnnx counts values)
  const bytes = exportOnnx(c.config, c.params, c.preprocessor, {
    preprocess: opts.preprocess,
    classNames: classNamesOf(c.options),
    metadata: { 'nin.dataset': c.options.dataset, 'nin.epoch': String(c.epoch), ...(c.runId ? { 'nin.run_id': c.runId } : {}) },
  });
  writeFileAtomic(out, [bytes]);
  const { height: H, width: W, channels: C } = c.config.input;
  const input = opts.preprocess === false ? `preprocessed images (${c.preprocessor.kind}, as in training)` : `raw 0..255 pixels (the graph applies ${c.preprocessor.kind})`;
  const names = classNamesOf(c.options);
  const listed = classListing(Array.from({ length: c.config.classes }, (_, k) => names[k] ?? String(k)));
  return [
    `wrote ${out} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, ONNX opset ${ONNX_OPSET}): ${c.config.name} after epoch ${c.epoch}`,
    `  input  image          float32 [N, ${H}, ${W}, ${C}], channels last: ${input}`,
    `  output logits         float32 [N, ${c.config.classes}]`,
    `  output probabilities  float32 [N, ${c.config.classes}] (softmax)`,
    `  output maps           float32 [N, ${plan(c.config)[c.config.layers.length - 1].output.join(', ')}]: the last mlpconv's maps${c.config.head === 'gap' ? ' (one per class, the paper\'s Figure 4)' : ''}`,
    `  classes, in output order: ${listed}`,
  ].join('\n');
}
