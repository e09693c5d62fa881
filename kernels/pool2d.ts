// Max and average pooling, NHWC, with the Caffe conventions the NIN models were trained with:
//   - no padding; window k, stride s (NIN: k = 3, s = 2);
//   - output size OH = ceil((H − k) / s) + 1 (ceil, not floor: the last window may hang over the
//     bottom/right edge, e.g. 8 → 4 and 32 → 16 for k = 3, s = 2);
//   - a window that hangs over is clipped to the image; the average divides by the clipped
//     window's size (Caffe's AVE pooling without padding), not by k².
//   x: [N, H, W, C]  →  y: [N, OH, OW, C]
//
// One thread per output (forward) or input (backward) element, channel innermost so that
// neighbouring threads touch neighbouring addresses.
//
// Backward is a gather, not a scatter (WGSL has no float atomics): each input element sums over
// the at most ⌈k/s⌉² windows that contain it. Max pooling saves the argmax of every window (an
// i32 per output element: the input pixel index iy·W + ix) when a gradient is needed, rather than
// recomputing it in backward: the index tensor is only 1/s² of the input's size, while recomputing
// would re-read every covering window (≈ 4 windows × 9 taps per input element at k = 3, s = 2), and
// the saved index routes the gradient to exactly the element the forward picked, ties included
// (the first maximum in row-major window order).
import { needsGrad, record } from '../engine/autograd.ts';
import { dispatch } from '../engine/runtime.ts';
import { Tensor, expectRank, expectShape } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel, NAN_WGSL } from './elementwise.ts';

export interface PoolOptions {
  /** Window size (default 3). */
  k?: number;
  /** Stride (default 2). */
  s?: number;
}

export interface PoolShape {
  N: number;
  H: number;
  W: number;
  C: number;
  k: number;
  s: number;
  OH: number;
  OW: number;
}

/** Caffe's output size without padding: ceil((H − k)/s) + 1 (a window larger than the image gives 1). */
export function poolOutputSize(H: number, k: number, s: number): number {
  return Math.ceil(Math.max(H - k, 0) / s) + 1;
}

export function poolShape(op: string, x: Tensor, opts: PoolOptions): PoolShape {
  expectRank(op, 'input', x, 4, 'NHWC');
  const k = opts.k ?? 3;
  const s = opts.s ?? 2;
  if (!Number.isInteger(k) || k < 1 || !Number.isInteger(s) || s < 1) {
    throw new RangeError(`${op}: window k = ${k} and stride s = ${s} must be positive integers`);
  }
  const [N, H, W, C] = x.shape;
  const OH = poolOutputSize(H, k, s);
  const OW = poolOutputSize(W, k, s);
  // With s > k the ceil rule can start the last window past the image: it would be empty.
  if ((OH - 1) * s >= H || (OW - 1) * s >= W) {
    throw new RangeError(`${op}: input has shape [${x.shape.join(', ')}]; window k = ${k} with stride s = ${s} leaves the last window outside the image`);
  }
  return { N, H, W, C, k, s, OH, OW };
}

/** WGSL constants shared by the pooling kernels. */
function consts(p: PoolShape): string {
  return `const H: u32 = ${p.H}u; const W: u32 = ${p.W}u; const C: u32 = ${p.C}u;
const OH: u32 = ${p.OH}u; const OW: u32 = ${p.OW}u; const K: u32 = ${p.k}u; const S: u32 = ${p.s}u;`;
}

/** WGSL: decompose output index i into (n, oy, ox, c) and the clipped window [y0, y1) × [x0, x1). */
const outputWindow = /* wgsl */ `
  let c = i % C;
  let ox = (i / C) % OW;
  let oy = (i / (C * OW)) % OH;
  let n = i / (C * OW * OH);
  let y0 = oy * S; let y1 = min(y0 + K, H);
  let x0 = ox * S; let x1 = min(x0 + K, W);`;

/** WGSL: decompose input index i into (n, iy, ix, c) and the range of windows containing it. */
const coveringWindows = /* wgsl */ `
  let c = i % C;
  let ix = (i / C) % W;
  let iy = (i / (C * W)) % H;
  let n = i / (C * W * H);
  // Window o covers pixels [o·S, o·S + K): o ∈ [ceil((i − K + 1)/S), floor(i/S)] ∩ [0, O).
  var oy0 = 0u; if (iy + 1u >= K) { oy0 = (iy + 1u - K + S - 1u) / S; }
  var ox0 = 0u; if (ix + 1u >= K) { ox0 = (ix + 1u - K + S - 1u) / S; }
  let oy1 = min(iy / S, OH - 1u);
  let ox1 = min(ix / S, OW - 1u);`;

/** y = max over each clipped k×k window (stride s). */
export function maxPool2d(x: Tensor, opts: PoolOptions = {}): Tensor {
  const op = 'maxPool2d';
  const p = poolShape(op, x, opts);
  const y = Tensor.empty([p.N, p.OH, p.OW, p.C]);
  const withIndex = needsGrad(x);
  const idx = withIndex ? Tensor.empty(y.shape, 'i32') : null;
  const k = elementwiseKernel(
    withIndex ? 'maxpool_forward_argmax' : 'maxpool_forward',
    y.size,
    `${consts(p)}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${withIndex ? '@group(0) @binding(2) var<storage, read_write> arg: array<i32>;' : ''}
${NAN_WGSL}`,
    `${outputWindow}
  // Start from the window's first element (windows are never empty); strict > keeps the first max.
  // A NaN wins and stays (as in PyTorch), so it reaches the loss rather than vanishing here.
  var best = x[((n * H + y0) * W + x0) * C + c];
  var at = y0 * W + x0;
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) {
      let v = x[((n * H + iy) * W + ix) * C + c];
      if (!isNan(best) && (v > best || isNan(v))) { best = v; at = iy * W + ix; }
    }
  }
  y[i] = best;
  ${withIndex ? 'arg[i] = i32(at);' : '_ = at;'}`,
  );
  dispatch(k, idx ? [x, y, idx] : [x, y], elementwiseGrid(y.size));
  return record(op, y, [x], (dy) => [maxPool2dBackward(p, dy, idx!)], idx ? [idx] : []);
}

/** dx[n, iy, ix, c] = Σ over windows containing (iy, ix) whose argmax it is of dy[window]. */
function maxPool2dBackward(p: PoolShape, dy: Tensor, idx: Tensor): Tensor {
  expectShape('maxPool2dBackward', 'upstream gradient', dy, [p.N, p.OH, p.OW, p.C]);
  expectShape('maxPool2dBackward', 'argmax', idx, [p.N, p.OH, p.OW, p.C], 'i32');
  const dx = Tensor.empty([p.N, p.H, p.W, p.C]);
  const k = elementwiseKernel(
    'maxpool_backward',
    dx.size,
    `${consts(p)}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> arg: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`,
    `${coveringWindows}
  let me = i32(iy * W + ix);
  var g = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = ((n * OH + oy) * OW + ox) * C + c;
      if (arg[o] == me) { g += dy[o]; }
    }
  }
  dx[i] = g;`,
  );
  dispatch(k, [dy, idx, dx], elementwiseGrid(dx.size));
  return dx;
}

/** y = mean over each clipped k×k window (stride s), dividing by the clipped window's size. */
export function avgPool2d(x: Tensor, opts: PoolOptions = {}): Tensor {
  const op = 'avgPool2d';
  const p = poolShape(op, x, opts);
  const y = Tensor.empty([p.N, p.OH, p.OW, p.C]);
  const k = elementwiseKernel(
    'avgpool_forward',
    y.size,
    `${consts(p)}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;`,
    `${outputWindow}
  var sum = 0.0;
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) {
      sum += x[((n * H + iy) * W + ix) * C + c];
    }
  }
  y[i] = sum / f32((y1 - y0) * (x1 - x0));`,
  );
  dispatch(k, [x, y], elementwiseGrid(y.size));
  return record(op, y, [x], (dy) => [avgPool2dBackward(p, dy)]);
}

/** dx[n, iy, ix, c] = Σ over windows containing (iy, ix) of dy[window] / |window|. */
export function avgPool2dBackward(p: PoolShape, dy: Tensor): Tensor {
  expectShape('avgPool2dBackward', 'upstream gradient', dy, [p.N, p.OH, p.OW, p.C]);
  const dx = Tensor.empty([p.N, p.H, p.W, p.C]);
  const k = elementwiseKernel(
    'avgpool_backward',
    dx.size,
    `${consts(p)}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;`,
    `${coveringWindows}
  var g = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    let h = min(oy * S + K, H) - oy * S;
    for (var ox = ox0; ox <= ox1; ox++) {
      let w = min(ox * S + K, W) - ox * S;
      g += dy[((n * OH + oy) * OW + ox) * C + c] / f32(h * w);
    }
  }
  dx[i] = g;`,
  );
  dispatch(k, [dy, dx], elementwiseGrid(dx.size));
  return dx;
}
