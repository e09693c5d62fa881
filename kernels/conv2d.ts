// K×K convolution, stride S, zero padding P (default "same": S = 1, P = (K − 1)/2 for odd K), bias,
// optional fused ReLU — as implicit GEMMs.
//   x: [N, H, W, Ci] (NHWC)   w: [K, K, Ci, Co] (HWIO)   b: [Co]   y: [N, Ho, Wo, Co]
//   Ho = floor((H + 2P − K) / S) + 1, and Wo likewise
// A 1×1 convolution at stride 1 is the same op with K = 1; its loader is a plain row-major read,
// so it is exactly the GEMM [N·H·W × Ci]·[Ci × Co].
//
// Each pass is one GEMM (kernels/gemm.ts: M rows, N columns, a sum over depth K). Mind the names:
// N·H·W·C and K×K above are the conv's batch and kernel; the GEMM's M, N, K are given per pass:
// forward      y[o, co]   = Σ_{tap, ci} x[o·S + tap − P, ci] · w[tap, ci, co]   (GEMM N·Ho·Wo × Co, depth K²Ci)
// grad input   dx[i, ci]  = Σ_{tap, co} dz[(i + P − tap)/S, co] · w[tap, ci, co]   (GEMM N·H·W × Ci, depth K²Co;
//                           only taps where S divides i + P − tap, per axis)
// grad weight  dw[tap·ci, co] = Σ_o x[o·S + tap − P, ci] · dz[o, co]   (GEMM K²Ci × Co, depth N·Ho·Wo, split)
// grad bias    db[co]     = Σ_o dz[o, co]
// where dz = dy masked by y > 0 when the ReLU is fused.
import { record } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor, expectRank, expectShape, opBody } from '../engine/tensor.ts';
import { chooseSplitK, gemmStyle, runGemm } from './gemm.ts';
import { elementwiseGrid, elementwiseKernel, NAN_WGSL, reluBackward } from './elementwise.ts';
import { reduceRows } from './reduce.ts';

export interface ConvShape {
  N: number;
  /** The input's height and width. */
  H: number;
  W: number;
  Ci: number;
  Co: number;
  K: number;
  /** Stride (default 1) and zero padding on every side (default (K − 1)/2: "same" at stride 1). */
  stride?: number;
  pad?: number;
}

/** A shape's stride S, padding P and output size Ho × Wo. */
export function convGeometry(s: ConvShape): { S: number; P: number; Ho: number; Wo: number } {
  const S = s.stride ?? 1;
  const P = s.pad ?? (s.K - 1) / 2;
  return { S, P, Ho: Math.floor((s.H + 2 * P - s.K) / S) + 1, Wo: Math.floor((s.W + 2 * P - s.K) / S) + 1 };
}

/** True for the stride-1 "same" convolution (output the input's size), which the fused mlpconv kernel implements. */
export function isSameConv(s: ConvShape): boolean {
  const { S, P } = convGeometry(s);
  return S === 1 && 2 * P === s.K - 1;
}

/** WGSL: pixel m of an [N, h, w] grid as its n, y, x (r: the row, n·h + y). */
function pixelOf(h: number, w: number): string {
  return `  let x = m % ${w}u;
  let r = m / ${w}u;
  let y = r % ${h}u;
  let n = r / ${h}u;`;
}

/** WGSL: the offset of pixel (n, iy, ix) of an [N, h, w, C] tensor, −1 off its edges. */
function offsetOrMinusOne(h: number, w: number, C: number): string {
  return `  if (iy < 0 || iy >= ${h} || ix < 0 || ix >= ${w}) { return -1; }
  return i32(((n * ${h}u + u32(iy)) * ${w}u + u32(ix)) * ${C}u);`;
}

/**
 * WGSL `fn <name>(m: u32, t: u32) -> i32`: the offset in x [N, H, W, C] that output pixel m reads
 * through tap t (ky, kx), at m·S + t − P per axis; −1 where that is the zero padding. The forward
 * pass's and the weight gradient's rows.
 */
function inputReadBy(s: ConvShape, C: number, name = 'aRow'): string {
  const { S, P, Ho, Wo } = convGeometry(s);
  if (s.K === 1 && S === 1 && P === 0) return `fn ${name}(m: u32, t: u32) -> i32 { return i32(m * ${C}u); }`;
  const strided = (v: string) => (S === 1 ? v : `${v} * ${S}u`);
  return /* wgsl */ `
fn ${name}(m: u32, t: u32) -> i32 {
${pixelOf(Ho, Wo)}
  let iy = i32(${strided('y')}) + i32(t / ${s.K}u) - ${P};
  let ix = i32(${strided('x')}) + i32(t % ${s.K}u) - ${P};
${offsetOrMinusOne(s.H, s.W, C)}
}`;
}

/**
 * WGSL `fn <name>(m: u32, t: u32) -> i32`: the offset in dz [N, Ho, Wo, C] of the output pixel that
 * reads input pixel m through tap t, at (m + P − t)/S per axis; −1 where there is none (off the
 * output, or at stride S > 1 where S does not divide m + P − t). The input gradient's rows.
 */
function outputReading(s: ConvShape, C: number, name = 'aRow'): string {
  const { S, P, Ho, Wo } = convGeometry(s);
  if (s.K === 1 && S === 1 && P === 0) return `fn ${name}(m: u32, t: u32) -> i32 { return i32(m * ${C}u); }`;
  const back = (v: string, k: string) => `i32(${v}) + ${P} - i32(${k})`;
  const taps =
    S === 1
      ? `  let iy = ${back('y', `t / ${s.K}u`)};
  let ix = ${back('x', `t % ${s.K}u`)};`
      : `  let sy = ${back('y', `t / ${s.K}u`)};
  let sx = ${back('x', `t % ${s.K}u`)};
  if (sy < 0 || sx < 0 || sy % ${S} != 0 || sx % ${S} != 0) { return -1; }
  let iy = sy / ${S};
  let ix = sx / ${S};`;
  return /* wgsl */ `
fn ${name}(m: u32, t: u32) -> i32 {
${pixelOf(s.H, s.W)}
${taps}
${offsetOrMinusOne(Ho, Wo, C)}
}`;
}

/** WGSL `fn <name>(m, tap, c) -> f32`: channel c of `buf` at the row `row` gives (inputReadBy or outputReading), 0 at −1. */
function shiftedReader(row: (name: string) => string, name: string, buf: string): string {
  return `${row(`${name}Row`)}
fn ${name}(m: u32, tap: u32, c: u32) -> f32 {
  let r = ${name}Row(m, tap);
  if (r < 0) { return 0.0; }
  return ${buf}[u32(r) + c];
}`;
}

/** Stride and padding of a convolution (conv2d, mlpconv's K×K layer). */
export interface ConvGeometryOptions {
  /** Default 1. */
  stride?: number;
  /** Zero pixels added on every side; default (K − 1)/2, "same" at stride 1 (odd K only). */
  padding?: number;
}

function conv2dShape(op: string, x: Tensor, w: Tensor, b: Tensor, g: ConvGeometryOptions = {}): ConvShape {
  expectRank(op, 'input', x, 4, 'NHWC');
  expectRank(op, 'weight', w, 4, 'K×K×Cin×Cout');
  const [N, H, W, Ci] = x.shape;
  const [K, K2, wCi, Co] = w.shape;
  if (K !== K2) throw new RangeError(`${op}: weight has shape [${w.shape.join(', ')}]; the kernel must be square`);
  if (g.padding === undefined && K % 2 !== 1) throw new RangeError(`${op}: weight has shape [${w.shape.join(', ')}]; an even kernel has no "same" padding: give padding`);
  if (wCi !== Ci) throw new RangeError(`${op}: input has shape [${x.shape.join(', ')}] with ${Ci} channels but weight [${w.shape.join(', ')}] expects ${wCi}`);
  expectShape(op, 'bias', b, [Co]);
  return { N, H, W, Ci, Co, K, ...checkedGeometry(op, K, H, W, g) };
}

/** `g` as ConvShape's stride and pad (where not the defaults), checked: whole numbers, the kernel
 * within the padded input (conv2d, and mlpconv's K×K layer). */
export function checkedGeometry(op: string, K: number, H: number, W: number, g: ConvGeometryOptions): Pick<ConvShape, 'stride' | 'pad'> {
  const stride = g.stride ?? 1;
  if (!Number.isInteger(stride) || stride < 1) throw new RangeError(`${op}: stride ${stride} must be an integer ≥ 1`);
  if (g.padding !== undefined && !(Number.isInteger(g.padding) && g.padding >= 0)) throw new RangeError(`${op}: padding ${g.padding} must be an integer ≥ 0`);
  const s = { ...(stride !== 1 ? { stride } : {}), ...(g.padding !== undefined ? { pad: g.padding } : {}) };
  const { P, Ho, Wo } = convGeometry({ N: 1, H, W, Ci: 1, Co: 1, K, ...s });
  if (Ho < 1 || Wo < 1) throw new RangeError(`${op}: a ${K}×${K} kernel with padding ${P} does not fit the ${H}×${W} input (height×width)`);
  return s;
}

/** y = conv(x, w) + b, then ReLU if `relu`: the forward GEMM, no autograd (conv2d records it). */
function conv2dForward(s: ConvShape, x: Tensor, w: Tensor, b: Tensor, relu: boolean): Tensor {
  const { Ho, Wo } = convGeometry(s);
  const y = Tensor.empty([s.N, Ho, Wo, s.Co]);
  runGemm(
    {
      name: `${convName(s)}_forward`,
      M: s.N * Ho * Wo,
      N: s.Co,
      K: s.K * s.K * s.Ci,
      bindings: `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> bs: array<f32>;
@group(0) @binding(3) var<storage, read_write> ys: array<f32>;`,
      prelude: shiftedReader((n) => inputReadBy(s, s.Ci, n), 'readX', 'xs') + (relu ? NAN_WGSL : ''),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readX(m, k / ${s.Ci}u, k % ${s.Ci}u); }`,
      loadB: `fn loadB(k: u32, n: u32) -> f32 { return ws[k * ${s.Co}u + n]; }`,
      store: `fn store(m: u32, n: u32, z: u32, v: f32) { ys[m * ${s.Co}u + n] = ${relu ? 'reluKeepNan(v + bs[n])' : 'v + bs[n]'}; }`,
      aTaps: { KI: s.Ci, aRow: inputReadBy(s, s.Ci), aAt: 'fn aAt(i: u32) -> f32 { return xs[i]; }' },
      aContiguous: 'k',
      bContiguous: 'n',
    },
    [x, w, b, y],
  );
  return y;
}

/** dx; with `mask` (a ReLU output shaped like x), the ReLU's backward is fused: dx = 0 where mask ≤ 0. */
export function conv2dGradInput(s: ConvShape, dz: Tensor, w: Tensor, mask?: Tensor): Tensor {
  const dx = Tensor.empty([s.N, s.H, s.W, s.Ci]);
  runGemm(
    {
      name: `${convName(s)}_grad_input`,
      M: s.N * s.H * s.W,
      N: s.Ci,
      K: s.K * s.K * s.Co,
      bindings: `@group(0) @binding(0) var<storage, read> dz: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${mask ? '@group(0) @binding(3) var<storage, read> mask: array<f32>;' : ''}`,
      prelude: shiftedReader((n) => outputReading(s, s.Co, n), 'readDz', 'dz'),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readDz(m, k / ${s.Co}u, k % ${s.Co}u); }`,
      loadB: `fn loadB(k: u32, n: u32) -> f32 { return ws[((k / ${s.Co}u) * ${s.Ci}u + n) * ${s.Co}u + k % ${s.Co}u]; }`,
      store: mask
        ? `fn store(m: u32, n: u32, z: u32, v: f32) { let i = m * ${s.Ci}u + n; dx[i] = select(0.0, v, mask[i] > 0.0); }`
        : `fn store(m: u32, n: u32, z: u32, v: f32) { dx[m * ${s.Ci}u + n] = v; }`,
      aTaps: { KI: s.Co, aRow: outputReading(s, s.Co), aAt: 'fn aAt(i: u32) -> f32 { return dz[i]; }' },
      aContiguous: 'k',
      bContiguous: 'k',
    },
    mask ? [dz, w, dx, mask] : [dz, w, dx],
  );
  return dx;
}

export function conv2dGradWeight(s: ConvShape, x: Tensor, dz: Tensor): Tensor {
  const { S, P, Ho, Wo } = convGeometry(s);
  const M = s.K * s.K * s.Ci;
  const depth = s.N * Ho * Wo; // the GEMM's K: every output pixel of the batch
  const name = `${convName(s)}_grad_weight`;
  const splitK = chooseSplitK(M, s.Co, depth, name);
  const out = Tensor.empty(splitK === 1 ? [s.K, s.K, s.Ci, s.Co] : [splitK, s.K, s.K, s.Ci, s.Co]);
  // simd kernels read a zero-padded copy of x (x itself without padding), where row m = (tap, ci)
  // and column k = output pixel address it as aRowOff(m) + aColOff(k) (GemmSpec.aOffsets): no
  // padding test or pixel arithmetic per element.
  const simd = gemmStyle() === 'simd';
  const padded = simd && P > 0 ? padSpatial(x, P) : null;
  const [Hp, Wp] = [s.H + 2 * P, s.W + 2 * P];
  runGemm(
    {
      name,
      M,
      N: s.Co,
      K: depth,
      splitK,
      bindings: `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;`,
      prelude: shiftedReader((n) => inputReadBy(s, s.Ci, n), 'readX', 'xs'),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readX(k, m / ${s.Ci}u, m % ${s.Ci}u); }`,
      aOffsets: simd
        ? {
            aRowOff: `fn aRowOff(m: u32) -> u32 { let tap = m / ${s.Ci}u; return ((tap / ${s.K}u) * ${Wp}u + tap % ${s.K}u) * ${s.Ci}u + m % ${s.Ci}u; }`,
            aColOff: `fn aColOff(k: u32) -> u32 { let x = k % ${Wo}u; let r = k / ${Wo}u; return (((r / ${Ho}u) * ${Hp}u + (r % ${Ho}u)${S === 1 ? '' : ` * ${S}u`}) * ${Wp}u + x${S === 1 ? '' : ` * ${S}u`}) * ${s.Ci}u; }`,
            aAt: 'fn aAt(i: u32) -> f32 { return xs[i]; }',
          }
        : undefined,
      loadB: `fn loadB(k: u32, n: u32) -> f32 { return dz[k * ${s.Co}u + n]; }`,
      store: `fn store(m: u32, n: u32, z: u32, v: f32) { dw[(z * ${M}u + m) * ${s.Co}u + n] = v; }`,
      aContiguous: 'm',
      bContiguous: 'n',
    },
    [padded ?? x, dz, out],
  );
  padded?.dispose();
  if (splitK === 1) return out;
  const dw = sumSlices(out, splitK, [s.K, s.K, s.Ci, s.Co]);
  out.dispose();
  return dw;
}

/**
 * Kernel names: conv3x3 for the "same" stride-1 convolution, else with stride and padding
 * (conv11x11_s4_p0); a pass adds _forward, _grad_input or _grad_weight, so a profile shows e.g.
 * conv5x5_forward, conv1x1_grad_input, conv11x11_s4_p0_grad_weight (the mlpconv backward's GEMMs too).
 */
function convName(s: ConvShape): string {
  const { S, P } = convGeometry(s);
  return `conv${s.K}x${s.K}${isSameConv(s) ? '' : `_s${S}_p${P}`}`;
}

/** x with P zero pixels added on every side: [N, H + 2P, W + 2P, C]. */
function padSpatial(x: Tensor, P: number): Tensor {
  const [N, H, W, C] = x.shape;
  const [Hp, Wp] = [H + 2 * P, W + 2 * P];
  const y = Tensor.empty([N, Hp, Wp, C]);
  const k = elementwiseKernel(
    'pad_spatial',
    y.size,
    `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;`,
    `let c = i % ${C}u;
  let px = (i / ${C}u) % ${Wp}u;
  let r = i / ${C * Wp}u;
  let py = r % ${Hp}u;
  let n = r / ${Hp}u;
  let ix = i32(px) - ${P};
  let iy = i32(py) - ${P};
  var v = 0.0;
  if (ix >= 0 && ix < ${W} && iy >= 0 && iy < ${H}) { v = xs[((n * ${H}u + u32(iy)) * ${W}u + u32(ix)) * ${C}u + c]; }
  ys[i] = v;`,
  );
  dispatch(k, [x, y], elementwiseGrid(y.size));
  return y;
}

/** y = Σ_z slices[z] for `slices` holding S consecutive tensors of `shape`. */
export function sumSlices(slices: Tensor, S: number, shape: number[]): Tensor {
  const y = Tensor.empty(shape);
  const n = y.size;
  const k = elementwiseKernel(
    'sum_slices',
    n,
    `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;`,
    `var s = 0.0;
  for (var z = 0u; z < ${S}u; z++) { s += xs[z * N + i]; }
  ys[i] = s;`,
  );
  dispatch(k, [slices, y], elementwiseGrid(n));
  return y;
}

/** Bias gradient: column sums of dz viewed as [pixels, Co]. */
export function biasGrad(dz: Tensor, Co: number): Tensor {
  return reduceRows(dz, { name: 'bias_grad', batch: 1, rows: dz.size / Co, channels: Co, outShape: [Co] });
}

/** The gradients a conv's inputs need, given the upstream gradient at its (pre-ReLU) output. */
export function conv2dBackward(s: ConvShape, x: Tensor, w: Tensor, b: Tensor, dz: Tensor): (Tensor | null)[] {
  return [
    x.requiresGrad ? conv2dGradInput(s, dz, w) : null, // the first layer's input needs none
    w.requiresGrad ? conv2dGradWeight(s, x, dz) : null,
    b.requiresGrad ? biasGrad(dz, s.Co) : null,
  ];
}

/** y = conv(x, w) + b, then ReLU if `relu`; `stride` and `padding` as ConvGeometryOptions. Shapes: see the top of this file. */
export function conv2d(x: Tensor, w: Tensor, b: Tensor, opts: { relu?: boolean } & ConvGeometryOptions = {}): Tensor {
  const relu = opts.relu ?? false;
  const op = relu ? 'conv2d+relu' : 'conv2d';
  return opBody(op, () => {
    const s = conv2dShape(op, x, w, b, opts);
    const y = conv2dForward(s, x, w, b, relu);
    return record(op, y, [x, w, b], (dy) => {
      const dz = relu ? reluBackward(dy, y) : dy;
      const grads = conv2dBackward(s, x, w, b, dz);
      if (dz !== dy) dz.dispose();
      return grads;
    });
  });
}
