// K×K convolution, stride 1, "same" zero padding, bias, optional fused ReLU — as implicit GEMMs.
//   x: [N, H, W, Ci] (NHWC)   w: [K, K, Ci, Co] (HWIO)   b: [Co]   y: [N, H, W, Co]
// A 1×1 convolution is the same op with K = 1; its loader is a plain row-major read, so it is
// exactly the GEMM [N·H·W × Ci]·[Ci × Co].
//
// forward      y[m, co]   = Σ_{tap, ci} x[m shifted by tap, ci] · w[tap, ci, co]   (M = NHW, K = K²Ci)
// grad input   dx[m, ci]  = Σ_{tap, co} dz[m shifted by −tap, co] · w[tap, ci, co]  (M = NHW, K = K²Co)
// grad weight  dw[tap·ci, co] = Σ_m x[m shifted by tap, ci] · dz[m, co]           (split-K over NHW)
// grad bias    db[co]     = Σ_m dz[m, co]
// where dz = dy masked by y > 0 when the ReLU is fused.
import { record } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor, expectRank, expectShape, opBody } from '../engine/tensor.ts';
import { chooseSplitK, gemmStyle, runGemm } from './gemm.ts';
import { elementwiseGrid, elementwiseKernel, NAN_WGSL, reluBackward } from './elementwise.ts';
import { reduceRows } from './reduce.ts';

export interface ConvShape {
  N: number;
  H: number;
  W: number;
  Ci: number;
  Co: number;
  K: number;
}

/**
 * WGSL `fn <name>(m: u32, t: u32) -> i32`: the offset in a [N, H, W, C] buffer of pixel m shifted
 * by tap t (ky, kx) — forward (sign 1) or backward (sign −1) — or −1 in the zero padding.
 */
function shiftedRow(s: ConvShape, C: number, sign: 1 | -1, name = 'aRow'): string {
  if (s.K === 1) return `fn ${name}(m: u32, t: u32) -> i32 { return i32(m * ${C}u); }`;
  const P = (s.K - 1) / 2;
  const off = (k: string) => (sign === 1 ? `i32(${k}) - ${P}` : `${P} - i32(${k})`);
  return /* wgsl */ `
fn ${name}(m: u32, t: u32) -> i32 {
  let x = m % ${s.W}u;
  let r = m / ${s.W}u;
  let y = r % ${s.H}u;
  let n = r / ${s.H}u;
  let iy = i32(y) + ${off(`t / ${s.K}u`)};
  let ix = i32(x) + ${off(`t % ${s.K}u`)};
  if (iy < 0 || iy >= ${s.H} || ix < 0 || ix >= ${s.W}) { return -1; }
  return i32(((n * ${s.H}u + u32(iy)) * ${s.W}u + u32(ix)) * ${C}u);
}`;
}

/** WGSL `fn <name>(m, tap, c) -> f32`: channel c of `buf` at pixel m shifted by tap, 0 in the padding. */
function shiftedReader(s: ConvShape, name: string, buf: string, C: number, sign: 1 | -1): string {
  return `${shiftedRow(s, C, sign, `${name}Row`)}
fn ${name}(m: u32, tap: u32, c: u32) -> f32 {
  let r = ${name}Row(m, tap);
  if (r < 0) { return 0.0; }
  return ${buf}[u32(r) + c];
}`;
}

export function conv2dShape(op: string, x: Tensor, w: Tensor, b: Tensor): ConvShape {
  expectRank(op, 'input', x, 4, 'NHWC');
  expectRank(op, 'weight', w, 4, 'K×K×Cin×Cout');
  const [N, H, W, Ci] = x.shape;
  const [K, K2, wCi, Co] = w.shape;
  if (K !== K2 || K % 2 !== 1) throw new RangeError(`${op}: weight has shape [${w.shape.join(', ')}]; the kernel must be square with odd K (1, 3, 5, …)`);
  if (wCi !== Ci) throw new RangeError(`${op}: input has shape [${x.shape.join(', ')}] with ${Ci} channels but weight [${w.shape.join(', ')}] expects ${wCi}`);
  expectShape(op, 'bias', b, [Co]);
  return { N, H, W, Ci, Co, K };
}

/** Forward pass into `y` (allocated by the caller). Used by conv2d and by the unfused mlpconv chain. */
export function conv2dForwardInto(s: ConvShape, x: Tensor, w: Tensor, b: Tensor, y: Tensor, relu: boolean): void {
  runGemm(
    {
      name: `conv${s.K}x${s.K}_forward`,
      M: s.N * s.H * s.W,
      N: s.Co,
      K: s.K * s.K * s.Ci,
      bindings: `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> bs: array<f32>;
@group(0) @binding(3) var<storage, read_write> ys: array<f32>;`,
      prelude: shiftedReader(s, 'readX', 'xs', s.Ci, 1) + (relu ? NAN_WGSL : ''),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readX(m, k / ${s.Ci}u, k % ${s.Ci}u); }`,
      loadB: `fn loadB(k: u32, n: u32) -> f32 { return ws[k * ${s.Co}u + n]; }`,
      store: `fn store(m: u32, n: u32, z: u32, v: f32) { ys[m * ${s.Co}u + n] = ${relu ? 'reluKeepNan(v + bs[n])' : 'v + bs[n]'}; }`,
      aTaps: { KI: s.Ci, aRow: shiftedRow(s, s.Ci, 1), aAt: 'fn aAt(i: u32) -> f32 { return xs[i]; }' },
      aContiguous: 'k',
      bContiguous: 'n',
    },
    [x, w, b, y],
  );
}

/** dx; with `mask` (a ReLU output shaped like x), the ReLU's backward is fused: dx = 0 where mask ≤ 0. */
export function conv2dGradInput(s: ConvShape, dz: Tensor, w: Tensor, mask?: Tensor): Tensor {
  const dx = Tensor.empty([s.N, s.H, s.W, s.Ci]);
  runGemm(
    {
      name: `conv${s.K}x${s.K}_grad_input`,
      M: s.N * s.H * s.W,
      N: s.Ci,
      K: s.K * s.K * s.Co,
      bindings: `@group(0) @binding(0) var<storage, read> dz: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${mask ? '@group(0) @binding(3) var<storage, read> mask: array<f32>;' : ''}`,
      prelude: shiftedReader(s, 'readDz', 'dz', s.Co, -1),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readDz(m, k / ${s.Co}u, k % ${s.Co}u); }`,
      loadB: `fn loadB(k: u32, n: u32) -> f32 { return ws[((k / ${s.Co}u) * ${s.Ci}u + n) * ${s.Co}u + k % ${s.Co}u]; }`,
      store: mask
        ? `fn store(m: u32, n: u32, z: u32, v: f32) { let i = m * ${s.Ci}u + n; dx[i] = select(0.0, v, mask[i] > 0.0); }`
        : `fn store(m: u32, n: u32, z: u32, v: f32) { dx[m * ${s.Ci}u + n] = v; }`,
      aTaps: { KI: s.Co, aRow: shiftedRow(s, s.Co, -1), aAt: 'fn aAt(i: u32) -> f32 { return dz[i]; }' },
      aContiguous: 'k',
      bContiguous: 'k',
    },
    mask ? [dz, w, dx, mask] : [dz, w, dx],
  );
  return dx;
}

export function conv2dGradWeight(s: ConvShape, x: Tensor, dz: Tensor): Tensor {
  const M = s.K * s.K * s.Ci;
  const Kdim = s.N * s.H * s.W;
  const name = `conv${s.K}x${s.K}_grad_weight`;
  const splitK = chooseSplitK(M, s.Co, Kdim, name);
  const out = Tensor.empty(splitK === 1 ? [s.K, s.K, s.Ci, s.Co] : [splitK, s.K, s.K, s.Ci, s.Co]);
  // simd kernels read a zero-padded copy of x (x itself for K = 1), where row m = (tap, ci) and
  // column k = pixel address x as rowOffset(m) + colOffset(k): no padding test or pixel
  // arithmetic per row.
  const P = (s.K - 1) / 2;
  const simd = gemmStyle() === 'simd';
  const padded = simd && P > 0 ? padSpatial(x, P) : null;
  const [Hp, Wp] = [s.H + 2 * P, s.W + 2 * P];
  runGemm(
    {
      name,
      M,
      N: s.Co,
      K: Kdim,
      splitK,
      bindings: `@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;`,
      prelude: shiftedReader(s, 'readX', 'xs', s.Ci, 1),
      loadA: `fn loadA(m: u32, k: u32) -> f32 { return readX(k, m / ${s.Ci}u, m % ${s.Ci}u); }`,
      aOffsets: simd
        ? {
            aRowOff: `fn aRowOff(m: u32) -> u32 { let tap = m / ${s.Ci}u; return ((tap / ${s.K}u) * ${Wp}u + tap % ${s.K}u) * ${s.Ci}u + m % ${s.Ci}u; }`,
            aColOff: `fn aColOff(k: u32) -> u32 { let x = k % ${s.W}u; let r = k / ${s.W}u; return (((r / ${s.H}u) * ${Hp}u + r % ${s.H}u) * ${Wp}u + x) * ${s.Ci}u; }`,
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

/** x with P zero pixels added on every side: [N, H + 2P, W + 2P, C]. */
export function padSpatial(x: Tensor, P: number): Tensor {
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

/** y = conv(x, w) + b, then ReLU if `relu`. Shapes: see the top of this file. */
export function conv2d(x: Tensor, w: Tensor, b: Tensor, opts: { relu?: boolean } = {}): Tensor {
  const relu = opts.relu ?? false;
  const op = relu ? 'conv2d+relu' : 'conv2d';
  return opBody(op, () => {
    const s = conv2dShape(op, x, w, b);
    const y = Tensor.empty([s.N, s.H, s.W, s.Co]);
    conv2dForwardInto(s, x, w, b, y, relu);
    return record(op, y, [x, w, b], (dy) => {
      const dz = relu ? reluBackward(dy, y) : dy;
      const grads = conv2dBackward(s, x, w, b, dz);
      if (dz !== dy) dz.dispose();
      return grads;
    });
  });
}
