// `nin export`: the ONNX model against our own forward. With onnxruntime-node installed (.ci/run
// installs it, unsaved: at 300 MB it would not fit the GPU machine's pack), every preprocessing and
// head is run by ONNX Runtime on random weights and pixels and compared with our GPU forward; the
// file's structure is checked by a protobuf reader here either way.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { noGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu } from '../engine/device.ts';
import { upload } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { SGD } from '../kernels/sgd.ts';
import { saveCheckpoint } from '../nin/checkpoint.ts';
import { notACheckpoint } from '../nin/run-directory.ts';
import { main, parseTrainArgs } from '../nin/cli.ts';
import { NinModel, parameterSpecs, plan, type ModelConfig } from '../nin/model.ts';
import { classListing, exportCheckpoint, exportOnnx, hwioToOihw, ONNX_OPSET } from '../nin/onnx.ts';
import { readSafetensors, writeSafetensors } from '../nin/safetensors.ts';
import { fitPreprocessor, Preprocessor, type PreprocessKind } from '../nin/preprocessing.ts';
import { isAvailable } from '../nin/data/registry.ts';
import { modelConfig } from '../nin/model.ts';
import { randomArray, relErrNorm, runAsync } from './helpers.ts';
import { refTensor, softmaxRef } from './reference.ts';
import { tiny } from './tiny-nin.ts';

// What the test uses of onnxruntime-node (its types are not installed with it unsaved).
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
  InferenceSession: { create(bytes: Uint8Array): Promise<{ run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> }> };
}
let ort: Ort | null = null;
try {
  ort = createRequire(import.meta.url)('onnxruntime-node') as Ort;
} catch {
  ort = null; // not installed: the runtime comparisons are skipped (see the header)
}

const tmp = mkdtempSync(join(tmpdir(), 'nin-onnx-'));
beforeEach(async () => { await getGpu(); }); // (main() closes the device when it ends)
afterAll(() => {
  closeGpu();
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// A protobuf reader: each message as its fields, by number, in order.

type Field = number | Uint8Array;
function fields(bytes: Uint8Array): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  let at = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[at++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const [field, wire] = [Math.floor(key / 8), key % 8];
    let value: Field;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const n = varint();
      value = bytes.subarray(at, at + n);
      at += n;
    } else if (wire === 5) {
      value = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getFloat32(0, true);
      at += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
    if (at > bytes.length) throw new Error('message runs past its end');
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}
const text = (f: Field | undefined) => new TextDecoder().decode(f as Uint8Array);
const one = (m: Map<number, Field[]>, field: number) => m.get(field)?.[0];
const all = (m: Map<number, Field[]>, field: number) => (m.get(field) ?? []) as Uint8Array[];
function packedInts(f: Field | undefined): number[] {
  const bytes = f as Uint8Array;
  const out: number[] = [];
  for (let at = 0, v = 0, scale = 1; at < bytes.length; at++) {
    v += (bytes[at] & 0x7f) * scale;
    scale *= 128;
    if (bytes[at] < 0x80) [out[out.length], v, scale] = [v, 0, 1];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Random weights and biases (biases not zero, so a misplaced bias shows), by parameter name. */
function randomParams(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const params = new Map<string, Float32Array>();
  parameterSpecs(config).forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const bound = s.isBias ? 0.2 : Math.sqrt(6 / s.fanIn);
    params.set(s.name, randomArray(n, seed * 100 + i, -bound, bound));
  });
  return params;
}

/**
 * `count` images of raw 0..255 pixels; the second is blank, one grey level that is not a whole
 * number (GCN's divisor guard: it centres to exactly 0 in our float64 mean, not in float32's).
 */
function rawImages(config: ModelConfig, count: number, seed: number): Float32Array {
  const { height, width, channels } = config.input;
  const per = height * width * channels;
  const x = randomArray(count * per, seed, 0, 255).map(Math.round);
  if (count > 1) x.fill(97.3, per, 2 * per);
  return x;
}

/** The preprocessing fitted on 400 random images; `constantChannel`: that channel is 50 in all of them (std 0). */
async function fitted(kind: PreprocessKind, config: ModelConfig, constantChannel?: number): Promise<Preprocessor> {
  const { height, width, channels } = config.input;
  const count = 400; // past the 243 features of a 9×9×3 image, for ZCA
  const images = rawImages(config, count, 7);
  if (constantChannel !== undefined) for (let i = constantChannel; i < images.length; i += channels) images[i] = 50;
  const train = { name: 'random/train', images, labels: new Int32Array(count), count, height, width, channels, classNames: [], sources: [], notes: [] };
  return fitPreprocessor(kind, train);
}

/** Our logits and last mlpconv maps for raw images: the checkpoint's preprocessing on the CPU, then the GPU forward. */
async function ours(config: ModelConfig, params: Map<string, Float32Array>, pre: Preprocessor, raw: Float32Array, count: number): Promise<{ logits: Float32Array; maps: Float32Array }> {
  const model = new NinModel(config, 1);
  try {
    for (const p of model.params) upload(p.tensor, params.get(p.name)!);
    const { height, width, channels } = config.input;
    const x = pre.apply(raw, count, config.input);
    const { maps, logits } = noGrad(() =>
      tidy(() => {
        const m = model.features(Tensor.fromArray(x, [count, height, width, channels]), { train: false });
        return { maps: m, logits: model.head(m, { train: false }) };
      }),
    );
    const [l, m] = await Promise.all([logits.toArray(), maps.toArray()]).finally(() => [logits, maps].forEach((t) => t.dispose()));
    return { logits: l, maps: m };
  } finally {
    model.dispose();
  }
}

async function runOnnx(bytes: Uint8Array, config: ModelConfig, input: Float32Array, count: number) {
  const { height, width, channels } = config.input;
  const session = await ort!.InferenceSession.create(bytes);
  const out = await session.run({ image: new ort!.Tensor('float32', input, [count, height, width, channels]) });
  expect(out.logits.dims).toEqual([count, config.classes]);
  expect(out.probabilities.dims).toEqual([count, config.classes]);
  return { logits: out.logits.data, probabilities: out.probabilities.data, maps: out.maps };
}

const gapLinear: ModelConfig = { ...tiny, name: 'tiny-linear', layers: tiny.layers.map((l, i) => (i === tiny.layers.length - 1 ? { ...l, linearOut: true } : l)) };
const fc: ModelConfig = { ...tiny, name: 'tiny-fc', head: 'fc' };
// A 7×7 average pool on a 4×4 map: our kernels clip the window to the map (one output), where
// ONNX's output size would be ceil((4 − 7) / 2) + 1 = 0 for the window as given.
const poolPastMap: ModelConfig = { ...tiny, name: 'tiny-pool-past-map', layers: tiny.layers.map((l) => (l.type === 'avgpool' ? { ...l, kernel: 7 } : l)) };
// A strided first block with an even kernel (13 → 6 by 4×4 at stride 2, padding 1): ONNX's Conv strides and pads.
const strided: ModelConfig = { ...tiny, name: 'tiny-strided', input: { height: 13, width: 13, channels: 3 }, layers: tiny.layers.map((l, i) => (i === 0 ? { ...l, kernel: 4, stride: 2, padding: 1 } : l)) };
const fcDropout: ModelConfig = { ...tiny, name: 'tiny-fc-dropout', head: 'fc-dropout', layers: tiny.layers.map((l, i) => (i === tiny.layers.length - 1 ? { ...l, channels: [6, 5, 4] as [number, number, number] } : l)) };

describe('nin export (ONNX)', () => {
  it('writes a well-formed ModelProto: opset, named input and outputs with a free batch, our HWIO weights as OIHW, Caffe pooling, no dropout', async () => {
    const params = randomParams(tiny, 1);
    const bytes = exportOnnx(tiny, params, new Preprocessor('none', null), { classNames: ['a', 'b', 'c'] });
    const model = fields(bytes);
    expect(one(model, 1)).toBe(8); // ir_version
    const opset = fields(one(model, 8) as Uint8Array);
    expect([text(one(opset, 1)), one(opset, 2)]).toEqual(['', ONNX_OPSET]);
    const props = new Map(all(model, 14).map((e) => { const f = fields(e); return [text(one(f, 1)), text(one(f, 2))]; }));
    expect(JSON.parse(props.get('nin.classes')!)).toEqual(['a', 'b', 'c']);
    expect(JSON.parse(props.get('nin.config')!)).toEqual(tiny);
    const graph = fields(one(model, 7) as Uint8Array);
    const dims = (valueInfo: Uint8Array) => {
      const tensorType = fields(one(fields(one(fields(valueInfo), 2) as Uint8Array), 1) as Uint8Array);
      return all(fields(one(tensorType, 2) as Uint8Array), 1).map((d) => { const f = fields(d); return f.has(2) ? text(one(f, 2)) : one(f, 1); });
    };
    expect(all(graph, 11).map((v) => [text(one(fields(v), 1)), dims(v)])).toEqual([['image', ['N', 9, 9, 3]]]);
    expect(all(graph, 12).map((v) => [text(one(fields(v), 1)), dims(v)])).toEqual([['logits', ['N', 3]], ['probabilities', ['N', 3]], ['maps', ['N', 2, 2, 3]]]);
    const nodes = all(graph, 1).map((n) => { const f = fields(n); return { op: text(one(f, 4)), attrs: new Map(all(f, 5).map((a) => { const af = fields(a); return [text(one(af, 1)), af.has(3) ? one(af, 3) : packedInts(one(af, 8))]; })) }; });
    expect(nodes.map((n) => n.op)).toEqual([
      'Div', 'Transpose', // pixels / 255, NHWC → NCHW
      'Conv', 'Relu', 'Conv', 'Relu', 'Conv', 'Relu', 'MaxPool',
      'Conv', 'Relu', 'Conv', 'Relu', 'Conv', 'Relu', 'AveragePool',
      'Conv', 'Relu', 'Conv', 'Relu', 'Conv', 'Relu', 'Transpose', 'GlobalAveragePool', 'Flatten', 'Softmax', // (Transpose: the maps output, NHWC)
    ]);
    const avg = nodes.find((n) => n.op === 'AveragePool')!.attrs;
    expect([avg.get('ceil_mode'), avg.get('count_include_pad'), avg.get('kernel_shape'), avg.get('strides')]).toEqual([1, 0, [3, 3], [2, 2]]);
    expect(nodes.find((n) => n.op === 'Conv')!.attrs.get('pads')).toEqual([1, 1, 1, 1]);
    const inits = new Map(all(graph, 5).map((t) => { const f = fields(t); return [text(one(f, 8)), { dims: packedInts(one(f, 1)), type: one(f, 2), raw: one(f, 9) as Uint8Array }]; }));
    const w1 = inits.get('block1.w1')!;
    expect([w1.dims, w1.type]).toEqual([[7, 3, 3, 3], 1]);
    const oihw = new Float32Array(w1.raw.slice().buffer);
    // element [co=5, ci=2, ky=0, kx=1] of ONNX's layout is our w1[ky=0][kx=1][ci=2][co=5]
    expect(oihw[((5 * 3 + 2) * 3 + 0) * 3 + 1]).toBe(params.get('block1.w1')![((0 * 3 + 1) * 3 + 2) * 7 + 5]);
    expect(Array.from(oihw)).toEqual(Array.from(hwioToOihw(params.get('block1.w1')!, [3, 3, 3, 7])));
    expect(Array.from(new Float32Array(inits.get('block3.b3')!.raw.slice().buffer))).toEqual(Array.from(params.get('block3.b3')!));
  });

  it("writes each layer's attributes as ONNX Runtime needs them, whether or not it is installed: typed attributes, int64 shapes, strides, 1×1 kernels, clipped pooling windows, the FC head's NHWC flatten", async () => {
    type Node = { op: string; inputs: string[]; attrs: Map<string, { type: number; value: number | number[] }> };
    const graphOf = (bytes: Uint8Array) => {
      const graph = fields(one(fields(bytes), 7) as Uint8Array);
      const nodes: Node[] = all(graph, 1).map((n) => {
        const f = fields(n);
        return { op: text(one(f, 4)), inputs: all(f, 1).map((i) => text(i)), attrs: new Map(all(f, 5).map((a) => { const af = fields(a); return [text(one(af, 1)), { type: one(af, 20) as number, value: af.has(3) ? (one(af, 3) as number) : packedInts(one(af, 8)) }]; })) };
      });
      const inits = new Map(all(graph, 5).map((t) => { const f = fields(t); return [text(one(f, 8)), { dims: f.has(1) ? packedInts(one(f, 1)) : [], type: one(f, 2), raw: (one(f, 9) as Uint8Array).slice() }]; }));
      return { nodes, inits };
    };
    const attr = (n: Node, name: string) => n.attrs.get(name)?.value;
    // tiny, no preprocessing: every attribute typed (INT 2, INTS 7); 1×1 kernels for the second and third convs; pixels / 255; NHWC → NCHW
    const plain = graphOf(exportOnnx(tiny, randomParams(tiny, 1), new Preprocessor('none', null)));
    for (const n of plain.nodes) for (const [, a] of n.attrs) expect(a.type).toBe(typeof a.value === 'number' ? 2 : 7);
    expect(plain.nodes.filter((n) => n.op === 'Conv').map((n) => attr(n, 'kernel_shape'))).toEqual([[3, 3], [1, 1], [1, 1], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]]);
    expect(plain.nodes.filter((n) => n.op === 'Conv').every((n) => !n.attrs.has('strides'))).toBe(true);
    expect(new Float32Array(plain.inits.get('pixel_max')!.raw.buffer)[0]).toBe(255);
    expect(attr(plain.nodes.find((n) => n.op === 'Transpose')!, 'perm')).toEqual([0, 3, 1, 2]);
    expect(attr(plain.nodes.find((n) => n.op === 'MaxPool')!, 'kernel_shape')).toEqual([3, 3]);
    // linear class maps: no Relu after the last conv
    expect(graphOf(exportOnnx(gapLinear, randomParams(gapLinear, 1), new Preprocessor('none', null))).nodes.map((n) => n.op).slice(-6)).toEqual(['Relu', 'Conv', 'Transpose', 'GlobalAveragePool', 'Flatten', 'Softmax']);
    // a 7×7 window on a 4×4 map: given as the map's size
    const past = graphOf(exportOnnx(poolPastMap, randomParams(poolPastMap, 1), new Preprocessor('none', null)));
    expect(attr(past.nodes.find((n) => n.op === 'AveragePool')!, 'kernel_shape')).toEqual([4, 4]);
    // a strided first block: strides, its even kernel, its padding
    const first = graphOf(exportOnnx(strided, randomParams(strided, 1), await fitted('standardize', strided))).nodes.find((n) => n.op === 'Conv')!;
    expect([attr(first, 'strides'), attr(first, 'kernel_shape'), attr(first, 'pads')]).toEqual([[2, 2], [4, 4], [1, 1, 1, 1]]);
    // standardisation with a channel of std 0: its scale is 1, not Infinity
    const std = graphOf(exportOnnx(gapLinear, randomParams(gapLinear, 1), await fitted('standardize', gapLinear, 1)));
    expect(Array.from(new Float32Array(std.inits.get('channel_inv_std')!.raw.buffer)).every(Number.isFinite)).toBe(true);
    expect(new Float32Array(std.inits.get('channel_inv_std')!.raw.buffer)[1]).toBe(1);
    // GCN + ZCA: the Reshape targets are int64; GCN's reductions keep their axis
    const zca = graphOf(exportOnnx(tiny, randomParams(tiny, 1), await fitted('gcn-zca', tiny)));
    expect([zca.inits.get('shape_flat')!.type, Array.from(new BigInt64Array(zca.inits.get('shape_flat')!.raw.buffer))]).toEqual([7, [-1n, 243n]]);
    for (const op of ['ReduceMax', 'ReduceMin', 'ReduceMean', 'ReduceSumSquare']) {
      const r = zca.nodes.find((n) => n.op === op)!;
      expect([op, attr(r, 'axes'), attr(r, 'keepdims')]).toEqual([op, [1], 1]);
    }
    // FC head with GCN + LCN: the 7×7 blur padded by 3; the FC layer reads the maps flattened channels last (the 'maps' output), its weights [fan-in, classes]
    const fcGraph = graphOf(exportOnnx(fc, randomParams(fc, 1), new Preprocessor('gcn-lcn', null)));
    expect(attr(fcGraph.nodes.find((n) => n.inputs.includes('lcn_gaussian'))!, 'pads')).toEqual([3, 3, 3, 3]);
    expect(fcGraph.nodes.find((n) => n.op === 'Flatten')!.inputs).toEqual(['maps']);
    const fanIn = 2 * 2 * 3;
    expect(fcGraph.inits.get('fc.w')!.dims).toEqual([fanIn, 3]);
    // a length of exactly 128 bytes (a varint of two bytes: 0x80 0x01): a 32-float bias
    const wide: ModelConfig = { ...tiny, name: 'tiny-wide', layers: tiny.layers.map((l, i) => (i === 0 ? { ...l, channels: [32, 5, 7] as [number, number, number] } : l)) };
    const wideParams = randomParams(wide, 1);
    expect(Array.from(new Float32Array(graphOf(exportOnnx(wide, wideParams, new Preprocessor('none', null))).inits.get('block1.b1')!.raw.buffer))).toEqual(Array.from(wideParams.get('block1.b1')!));
    expect(() => exportOnnx(tiny, randomParams(tiny, 1), new Preprocessor('standardize', null))).toThrow("onnx export: preprocessing 'standardize' without its fitted statistics");
    // class names kept only when there is one per class; a parameter of the wrong size refused
    const props = (bytes: Uint8Array) => new Map(all(fields(bytes), 14).map((e) => { const f = fields(e); return [text(one(f, 1)), text(one(f, 2))]; }));
    expect(props(exportOnnx(tiny, randomParams(tiny, 1), new Preprocessor('none', null), { classNames: ['a', 'b'] })).has('nin.classes')).toBe(false);
    const short = randomParams(tiny, 1);
    short.set('block2.b1', new Float32Array(4));
    expect(() => exportOnnx(tiny, short, new Preprocessor('none', null))).toThrow("onnx export: parameter 'block2.b1' has 4 values, the model's [5] has 5");
  });

  // Each preprocessing against our CPU preprocessing + GPU forward, and each head; an odd batch.
  const cases: [string, ModelConfig, PreprocessKind, number?][] = [
    ['GAP, no preprocessing', tiny, 'none'],
    ['GAP, linear class maps, standardisation with a channel of std 0', gapLinear, 'standardize', 1],
    ['GAP, GCN + ZCA', tiny, 'gcn-zca'],
    ['FC head, GCN + LCN', fc, 'gcn-lcn'],
    ['FC + dropout head (dropout left out)', fcDropout, 'standardize'],
    ['a pooling window larger than its map', poolPastMap, 'none'],
    ['a strided first block, an even kernel with padding', strided, 'standardize'],
  ];
  for (const [what, config, kind, constantChannel] of cases) {
    it.skipIf(!ort)(`runs in ONNX Runtime as our forward does: ${what}`, async () => {
      const params = randomParams(config, 3);
      const pre = await fitted(kind, config, constantChannel);
      const count = 5;
      const raw = rawImages(config, count, 11);
      const mine = await ours(config, params, pre, raw, count);
      const theirs = await runOnnx(exportOnnx(config, params, pre), config, raw, count);
      expect(relErrNorm(theirs.logits, mine.logits)).toBeLessThan(1e-5);
      expect(relErrNorm(theirs.probabilities, softmaxRef(refTensor([count, config.classes], mine.logits)).data)).toBeLessThan(1e-5);
      expect(theirs.maps.dims).toEqual([count, ...plan(config)[config.layers.length - 1].output]);
      expect(relErrNorm(theirs.maps.data, mine.maps)).toBeLessThan(1e-5);
      // Not vacuous: the logits differ between images (by 100× the tolerance at least), and a model
      // with one bias changed does not match.
      expect(relErrNorm(mine.logits.subarray(0, config.classes), mine.logits.subarray(2 * config.classes, 3 * config.classes))).toBeGreaterThan(1e-3);
      const changed = new Map(params);
      changed.set('block1.b2', params.get('block1.b2')!.map((v, i) => (i === 0 ? v + 0.5 : v)));
      expect(relErrNorm((await runOnnx(exportOnnx(config, changed, pre), config, raw, count)).logits, mine.logits)).toBeGreaterThan(1e-4);
    });
  }

  it.skipIf(!ort)('without its preprocessing (--no-preprocess) takes the images as the network sees them', async () => {
    const pre = await fitted('gcn-zca', tiny);
    const params = randomParams(tiny, 4);
    const raw = rawImages(tiny, 3, 12);
    const mine = await ours(tiny, params, pre, raw, 3);
    const theirs = await runOnnx(exportOnnx(tiny, params, pre, { preprocess: false }), tiny, pre.apply(raw, 3, tiny.input), 3);
    expect(relErrNorm(theirs.logits, mine.logits)).toBeLessThan(1e-5);
  });

  it("exports a checkpoint from the command line, beside it by default, making --out's directories; refuses a directory or a checkpoint as --out, and a missing checkpoint", async () => {
    const { options } = parseTrainArgs(['--dataset', 'mnist', '--model', 'mnist-small', '--out', join(tmp, 'run')]);
    const o = { ...options, progress: false, log: () => {} };
    // (MNIST's images and classes: a checkpoint's data set and network must agree)
    const digits: ModelConfig = { ...tiny, name: 'tiny-digits', input: { height: 28, width: 28, channels: 1 }, classes: 10, layers: tiny.layers.map((l, i) => (i === tiny.layers.length - 1 ? { ...l, channels: [6, 5, 10] as [number, number, number] } : l)) };
    const model = new NinModel(digits, 2);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    const path = join(tmp, 'checkpoint.safetensors');
    try {
      await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 3, step: 30, options: o, runId: 'R7' });
    } finally {
      opt.dispose();
      model.dispose();
    }
    const lines: string[] = [];
    const errors: string[] = [];
    const [log, error] = [console.log, console.error];
    console.log = (s: string) => lines.push(s);
    console.error = (s: string) => errors.push(s);
    let codes: number[];
    let upper: number;
    let other: number;
    try {
      codes = [
        await main(['export', path]),
        await main(['export', path, '--out', tmp]),
        await main(['export', join(tmp, 'none.safetensors')]),
        await main(['export', path, '--out', path]), // it would overwrite the weights
        await main(['export', path, '--out', join(tmp, 'new', 'dir', 'm.onnx')]), // directories made
        await main(['export', path, '--out', join(tmp, 'm.safetensors')]), // not ONNX's name
      ];
      upper = await main(['export', path, '--out', join(tmp, 'M.ONNX')]); // ONNX's name, in capitals
      other = await main(['export', path, '--out', join(tmp, 'm.pb')]); // not ONNX's name either
    } finally {
      [console.log, console.error] = [log, error];
    }
    expect(codes).toEqual([0, 2, 2, 2, 0, 2]);
    expect(upper, errors.join('\n')).toBe(0);
    expect(other).toBe(2);
    expect(errors.join('\n')).toContain(`--out ${join(tmp, 'm.pb')}: the model is written as ONNX: name it .onnx`);
    expect(existsSync(join(tmp, 'M.ONNX'))).toBe(true);
    // The name suggested instead of the checkpoint: beside it.
    expect(errors.join('\n')).toContain(`--out ${path} is a checkpoint: writing there would replace it; name another file (e.g. ${join(tmp, 'model.onnx')})`);
    expect(errors.join('\n')).toContain(`--out ${join(tmp, 'm.safetensors')}: the model is written as ONNX: name it .onnx`);
    expect(existsSync(join(tmp, 'checkpoint.onnx'))).toBe(true);
    expect(existsSync(join(tmp, 'new', 'dir', 'm.onnx'))).toBe(true);
    expect(errors.join('\n')).toMatch(/--out .*checkpoint\.safetensors is a checkpoint: writing there would replace it; name another file \(e\.g\. .*model\.onnx\)/);
    expect(notACheckpoint(path)).toBeNull(); // still the checkpoint
    expect(lines.join('\n')).toMatch(/wrote .*checkpoint\.onnx .*ONNX opset 17\): tiny-digits after epoch 3\n {2}input {2}image {10}float32 \[N, 28, 28, 1\], channels last: raw 0\.\.255 pixels/);
    expect(errors.join('\n')).toMatch(/--out .* is a directory: name the \.onnx file to write/);
    expect(errors.join('\n')).toMatch(/no checkpoint at '.*none\.safetensors'/);
    const props = new Map(all(fields(readFileSync(join(tmp, 'checkpoint.onnx'))), 14).map((e) => { const f = fields(e); return [text(one(f, 1)), text(one(f, 2))]; }));
    expect([props.get('nin.dataset'), props.get('nin.epoch'), props.get('nin.run_id')]).toEqual(['mnist', '3', 'R7']);
    expect(JSON.parse(props.get('nin.classes')!)).toHaveLength(10);
    expect(lines.join('\n')).toContain('\n  classes, in output order: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\n'); // MNIST's digits, as the metadata's
    const names = (n: number) => Array.from({ length: n }, (_, k) => `c${k}`);
    expect(classListing(names(12))).toBe(names(12).join(', '));
    expect(classListing(names(13))).toBe(`${names(10).join(', ')}, … (13; all in the metadata's nin.classes)`);
  });

  it('refuses, naming the file, a checkpoint whose weights are of another shape or missing (a reshaped header passes a count of values)', async () => {
    const path = join(tmp, 'checkpoint.safetensors'); // the test above's
    const { tensors, metadata } = readSafetensors(path);
    const [first] = Object.keys(tensors).filter((k) => k.startsWith('param.') && tensors[k].shape.length === 4);
    const name = first.slice('param.'.length);
    const shape = tensors[first].shape;
    const reshaped = join(tmp, 'reshaped.safetensors');
    writeSafetensors(reshaped, { ...tensors, [first]: { ...tensors[first], shape: [...shape].reverse() } }, metadata);
    const missing = join(tmp, 'missing.safetensors');
    writeSafetensors(missing, Object.fromEntries(Object.entries(tensors).filter(([k]) => k !== first)), metadata);
    expect(() => exportCheckpoint(reshaped, join(tmp, 'reshaped.onnx'))).toThrow(new Error(`${reshaped}: parameter '${name}' has shape [${[...shape].reverse().join(', ')}], the model's is [${shape.join(', ')}]`));
    expect(() => exportCheckpoint(missing, join(tmp, 'missing.onnx'))).toThrow(new Error(`${missing}: no weights for parameter '${name}'`));
    expect([existsSync(join(tmp, 'reshaped.onnx')), existsSync(join(tmp, 'missing.onnx'))]).toEqual([false, false]);
    // --no-preprocess reaches the export: the graph is without its preprocessing, and says so
    exportCheckpoint(path, join(tmp, 'raw.onnx'), { preprocess: false });
    const raw = fields(readFileSync(join(tmp, 'raw.onnx')));
    expect(new Map(all(raw, 14).map((e) => { const f = fields(e); return [text(one(f, 1)), text(one(f, 2))]; })).get('nin.preprocess')).toBe('none (not in the graph)');
  });

  it.skipIf(!ort || !isAvailable('mnist', 'test'))('bench/onnx.ts: over real MNIST test images the exported model and ours pick the same classes', async () => {
    const { options } = parseTrainArgs(['--model', 'mnist-small', '--out', join(tmp, 'bench-run')]);
    const o = { ...options, progress: false, log: () => {} };
    const config = modelConfig(o);
    const model = new NinModel(config, 1);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    const params = randomParams(config, 5); // biases too: an untrained net's logits hardly differ between images
    for (const p of model.params) upload(p.tensor, params.get(p.name)!);
    const path = join(tmp, 'bench.safetensors');
    try {
      await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 10, options: o });
    } finally {
      opt.dispose();
      model.dispose();
    }
    const json = join(tmp, 'bench.json');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'bench/onnx.ts', path, '--test-limit', '300', '--batch', '64', '--reps', '2', '--json', json], { timeout: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.images).toBe(300);
    expect(report.topClassDisagreements).toBe(0);
    expect(report.onnxError).toBe(report.oursError);
    expect(report.maxProbabilityDifference).toBeLessThan(1e-5);
    expect(report.oursError).toBeLessThan(0.95); // the random net does not give every image one class
    expect(report.oursError).toBeGreaterThan(0.5);
    expect(report.onnxImgPerSec).toBeGreaterThan(0);
  });
});
