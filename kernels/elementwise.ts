// Element-wise kernels: fill, in-place add (gradient accumulation), ReLU and its backward, add,
// sub, mul, scale (by a number), sum and mean (to a scalar), dot (a test loss), scaleBy, reshape
// and copies.
// Sizes are baked into the source as constants, so each shape is its own cached pipeline.
import { expectKeptForBackward, record } from '../engine/autograd.ts';
import { copyBuffer, dispatch, grid1d, LINEAR_WORKGROUP, wroteInPlace, type BufferRef } from '../engine/runtime.ts';
import { Tensor, expectDtype, expectShape, type DType } from '../engine/tensor.ts';
import { reduceRows } from './reduce.ts';

const WG = 256;

/**
 * WGSL helpers for NaN, which max(NaN, 0) would turn into 0 on most GPUs (and WGSL lets compilers
 * assume floats are never NaN, so `v != v` may fold away): isNan tests the bits, and reluKeepNan
 * lets a NaN through as PyTorch's ReLU does, so that it reaches the loss, whose check stops a run.
 */
export const NAN_WGSL = /* wgsl */ `
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn reluKeepNan(v: f32) -> f32 { return select(0.0, v, v > 0.0 || isNan(v)); }`;

/** The largest finite float32. */
export const F32_MAX = 3.4028234663852886e38;

/** A WGSL f32 literal for a JS number. */
export function f32(v: number): string {
  // (past F32_MAX the literal does not compile, and the error would come at the next read)
  if (!(Math.abs(v) <= F32_MAX)) throw new RangeError(`cannot write ${v} as a WGSL f32 literal`);
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/**
 * A 1-D kernel over `n` elements: `body` sees `i` (guarded to i < n). The kernel itself names `N`,
 * `i`, `wid`, `nwg` and `lid`, so `decls` and `body` must not declare those.
 */
export function elementwiseKernel(name: string, n: number, decls: string, body: string) {
  return {
    name,
    code: /* wgsl */ `
${decls}
const N: u32 = ${n}u;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (i >= N) { return; }
  ${body}
}`,
  };
}

export function elementwiseGrid(n: number) {
  return grid1d(Math.ceil(n / WG));
}

/** The kernel of y = f(x[i]) element by element (`expr` in x[i]; `decls` what it uses besides). */
function unaryOp(name: string, x: Tensor, expr: string, decls = '', uniforms?: ArrayBufferView): Tensor {
  const y = Tensor.empty(x.shape);
  const k = elementwiseKernel(
    name,
    x.size,
    `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${decls}`,
    `y[i] = ${expr};`,
  );
  dispatch(k, [x, y], elementwiseGrid(x.size), uniforms);
  return y;
}

/** The kernel of y = a ∘ b element by element (∘ a WGSL expression in a[i] and b[i]). */
function binaryOp(op: string, name: string, expr: string, a: Tensor, b: Tensor): Tensor {
  expectDtype(op, 'a', a);
  expectShape(op, 'b', b, a.shape);
  const y = Tensor.empty(a.shape);
  const k = elementwiseKernel(
    name,
    a.size,
    `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;`,
    `y[i] = ${expr};`,
  );
  dispatch(k, [a, b, y], elementwiseGrid(a.size));
  return y;
}

/** Sets every element of `t` to `value`. */
export function fill(t: BufferRef & { size: number; dtype?: DType }, value: number): void {
  if (t.dtype && t.dtype !== 'f32') throw new RangeError(`fill: the tensor must be f32, got ${t.dtype}`); // f32 bits in an i32 tensor
  if (typeof value !== 'number' || !(Math.abs(value) <= F32_MAX)) throw new RangeError(`fill: the value must be a finite float32, got ${String(value)}`);
  const k = elementwiseKernel('fill', t.size, '@group(0) @binding(0) var<storage, read_write> y: array<f32>;', `y[i] = ${f32(value)};`);
  dispatch(k, [t], elementwiseGrid(t.size));
  wroteInPlace(t);
}

/** acc += x, in place. */
export function addInPlace(acc: Tensor, x: Tensor): void {
  expectDtype('addInPlace', 'acc', acc);
  expectShape('addInPlace', 'x', x, acc.shape);
  const k = elementwiseKernel(
    'add_inplace',
    acc.size,
    `@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;`,
    'acc[i] = acc[i] + x[i];',
  );
  dispatch(k, [acc, x], elementwiseGrid(acc.size));
  wroteInPlace(acc);
}

/** y = max(x, 0), NaN kept. */
export function relu(x: Tensor): Tensor {
  expectDtype('relu', 'input', x);
  const y = unaryOp('relu_forward', x, 'reluKeepNan(x[i])', NAN_WGSL);
  return record('relu', y, [x], (gy) => [reluBackward(gy, y)]);
}

/** dx = dy where y > 0 else 0 (y is ReLU's output, so the mask needs no saved input). */
export function reluBackward(dy: Tensor, y: Tensor): Tensor {
  expectDtype('reluBackward', 'dy', dy);
  expectShape('reluBackward', 'y', y, dy.shape);
  const dx = Tensor.empty(dy.shape);
  const k = elementwiseKernel(
    'relu_backward',
    dy.size,
    `@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`,
    'dx[i] = select(0.0, dy[i], y[i] > 0.0);',
  );
  dispatch(k, [dy, y, dx], elementwiseGrid(dy.size));
  return dx;
}

/** y = a + b (same shapes); differentiable in both. */
export function add(a: Tensor, b: Tensor): Tensor {
  const y = binaryOp('add', 'add', 'a[i] + b[i]', a, b);
  return record('add', y, [a, b], (g) => [copyOf(g), copyOf(g)]);
}

/** y = a − b (same shapes); differentiable in both. */
export function sub(a: Tensor, b: Tensor): Tensor {
  const y = binaryOp('sub', 'sub', 'a[i] - b[i]', a, b);
  return record('sub', y, [a, b], (g) => [copyOf(g), scaleNoGrad(g, -1)]);
}

/** y = a ⊙ b (same shapes); differentiable in both (each input is kept for the other's gradient). */
export function mul(a: Tensor, b: Tensor): Tensor {
  const y = binaryOp('mul', 'mul', 'a[i] * b[i]', a, b);
  return record('mul', y, [a, b], (g) => [
    a.requiresGrad ? binaryOp('mul', 'mul', 'a[i] * b[i]', g, b) : null,
    b.requiresGrad ? binaryOp('mul', 'mul', 'a[i] * b[i]', g, a) : null,
  ]);
}

/** y = c · x for a number c (a uniform: another c needs no other pipeline); differentiable. */
export function scale(x: Tensor, c: number): Tensor {
  expectDtype('scale', 'x', x);
  return record('scale', scaleNoGrad(x, c), [x], (g) => [scaleNoGrad(g, c)]);
}

function scaleNoGrad(x: Tensor, c: number): Tensor {
  if (!Number.isFinite(c)) throw new RangeError(`scale: the factor must be a finite number, got ${c}`);
  const factor = `struct Factor { c: f32, pad0: f32, pad1: f32, pad2: f32 }
@group(0) @binding(2) var<uniform> f: Factor;`;
  return unaryOp('scale', x, 'x[i] * f.c', factor, new Float32Array([c, 0, 0, 0]));
}

/** Σ x over every element, as a scalar [1]; differentiable. */
export function sum(x: Tensor): Tensor {
  return sumScaled('sum', x, 1);
}

/** The mean of every element of x, as a scalar [1]; differentiable. */
export function mean(x: Tensor): Tensor {
  expectDtype('mean', 'x', x);
  return sumScaled('mean', x, 1 / x.size);
}

function sumScaled(op: string, x: Tensor, c: number): Tensor {
  expectDtype(op, 'x', x);
  const y = reduceRows(x, { name: op, batch: 1, rows: x.size, channels: 1, scale: c, outShape: [1] });
  // dx = c · g everywhere: g broadcast from its one element.
  return record(op, y, [x], (g) => {
    const dx = Tensor.empty(x.shape);
    const k = elementwiseKernel(
      `${op}_backward`,
      x.size,
      `@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;`,
      `dx[i] = g[0] * ${f32(Math.fround(c))};`,
    );
    dispatch(k, [g, dx], elementwiseGrid(x.size));
    return [dx];
  });
}

/** A fresh copy of x (backward functions must return tensors they own). */
export function copyOf(x: Tensor): Tensor {
  x.assertAlive('copyOf');
  return reshapeNoGrad(x, x.shape);
}

/** The same values under another shape (a copy, so every tensor owns its buffer); differentiable. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  expectDtype('reshape', 'x', x, null);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 1)) throw new RangeError(`reshape: the shape must be an array of positive integers, got ${JSON.stringify(shape) ?? String(shape)}`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== x.size) throw new RangeError(`reshape: [${x.shape.join(', ')}] has ${x.size} elements, [${shape.join(', ')}] needs ${n}`);
  const y = Tensor.empty(shape, x.dtype);
  copyBuffer(x, y, x.byteLength, 'reshape');
  return record('reshape', y, [x], (g) => [reshapeNoGrad(g, x.shape)]);
}

function reshapeNoGrad(g: Tensor, shape: readonly number[]): Tensor {
  const y = Tensor.empty(shape, g.dtype);
  copyBuffer(g, y, g.byteLength);
  return y;
}

// For tests and benches: a loss whose gradient is a given tensor.

/** Σ a ⊙ r as a scalar [1]; differentiable in `a` (r is a constant). Tests use it as a loss whose
 * gradient is r, so any op's backward can be checked against the reference's VJP. */
export function dot(a: Tensor, r: Tensor): Tensor {
  expectShape('dot', 'r', r, a.shape);
  const prod = binaryOp('dot', 'mul', 'a[i] * b[i]', a, r);
  const s = reduceRows(prod, { name: 'dot_sum', batch: 1, rows: a.size, channels: 1, outShape: [1] });
  prod.dispose();
  // r is no parent: its owner may dispose it, so backward checks it is still there.
  return record('dot', s, [a], (g) => {
    expectKeptForBackward('dot', 'r', r);
    return [scaleBy(r, g)];
  });
}

/** y = x · s[0] for a scalar tensor s, read on the GPU (dot's backward: its upstream gradient); not differentiable, unlike scale. */
export function scaleBy(x: Tensor, s: Tensor): Tensor {
  expectDtype('scaleBy', 'x', x);
  expectShape('scaleBy', 'scale', s, [1]);
  const y = Tensor.empty(x.shape);
  const k = elementwiseKernel(
    'scale_by',
    x.size,
    `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;`,
    'y[i] = x[i] * s[0];',
  );
  dispatch(k, [x, s, y], elementwiseGrid(x.size));
  return y;
}
