// SGD with momentum and L2 weight decay, in place on the GPU, as in the paper's Caffe training:
//   v ← μ·v − lr·(g + wd·w)
//   w ← w + v
// (Caffe stores the negated velocity and subtracts it; the trajectory is the same.)
// lr, μ and wd travel in the uniform buffer, so a learning-rate schedule never recompiles.
//
// `SGD` holds one velocity per parameter and per-parameter multipliers: the paper's prototxts give
// biases twice the base learning rate and no weight decay (blobs_lr: 1, 2; weight_decay: 1, 0),
// which NinModel (nin/model.ts) gives each bias parameter.
import { GpuError } from '../engine/device.ts';
import { upload, dispatch, wroteInPlace } from '../engine/runtime.ts';
import { Tensor, expectDtype, expectShape, keep } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel, F32_MAX, fill } from './elementwise.ts';

export interface SgdHyper {
  lr: number;
  momentum: number;
  weightDecay: number;
}


function checkHyper(op: string, h: SgdHyper): void {
  for (const [k, v] of Object.entries(h)) {
    if (!Number.isFinite(v)) throw new RangeError(`${op}: ${k} = ${v} must be a finite number`);
    // The kernel gets the hyperparameters as f32, where more is Infinity.
    if (Math.abs(v) > F32_MAX) throw new RangeError(`${op}: ${k} = ${v} is too large for float32 (max ${F32_MAX})`);
  }
  // Each would run training backwards or let it diverge, silently.
  if (h.lr < 0) throw new RangeError(`${op}: lr = ${h.lr} must not be negative`);
  // (the kernel gets it as f32, where 0.99999999 is 1)
  if (!(h.momentum >= 0 && Math.fround(h.momentum) < 1)) throw new RangeError(`${op}: momentum = ${h.momentum} must be in [0, 1) as a float32`);
  if (h.weightDecay < 0) throw new RangeError(`${op}: weightDecay = ${h.weightDecay} must not be negative`);
}

function checkStep(op: string, param: Tensor, grad: Tensor, velocity: Tensor, h: SgdHyper): void {
  expectDtype(op, 'parameter', param);
  expectShape(op, 'gradient', grad, param.shape);
  expectShape(op, 'velocity', velocity, param.shape);
  if (grad.buffer === param.buffer || velocity.buffer === param.buffer || velocity.buffer === grad.buffer) {
    throw new RangeError(`${op}: parameter, gradient and velocity must be distinct tensors`); // a written binding may not alias
  }
  checkHyper(op, h);
}

/** One in-place update of `param` and `velocity` from `grad` (all the same shape). */
export function sgdStep(param: Tensor, grad: Tensor, velocity: Tensor, h: SgdHyper): void {
  checkStep('sgdStep', param, grad, velocity, h);
  recordStep(param, grad, velocity, h);
}

/** sgdStep's dispatch, for arguments already checked (SGD.step checks all before updating any). */
function recordStep(param: Tensor, grad: Tensor, velocity: Tensor, h: SgdHyper): void {
  const k = elementwiseKernel(
    'sgd_step',
    param.size,
    `struct Hyper { lr: f32, momentum: f32, wd: f32 }
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<uniform> h: Hyper;`,
    `let wi = w[i];
  let vi = h.momentum * v[i] - h.lr * (g[i] + h.wd * wi);
  v[i] = vi;
  w[i] = wi + vi;`,
  );
  dispatch(k, [param, grad, velocity], elementwiseGrid(param.size), new Float32Array([h.lr, h.momentum, h.weightDecay]));
  wroteInPlace(param);
  wroteInPlace(velocity);
}

export interface ParamSpec {
  param: Tensor;
  /** Multiplies the base learning rate (default 1). */
  lrMult?: number;
  /** Multiplies the weight decay (default 1). */
  decayMult?: number;
}

export class SGD {
  readonly specs: Required<ParamSpec>[];
  readonly velocities: Tensor[];
  private disposed = false;

  constructor(params: (Tensor | ParamSpec)[], readonly opts: { momentum: number; weightDecay: number }) {
    // Left out, one became NaN at the first step() ("weightDecay = NaN must be a finite number").
    for (const k of ['momentum', 'weightDecay'] as const) if (typeof opts?.[k] !== 'number') throw new TypeError(`SGD: ${k} is ${opts?.[k] === undefined ? 'missing' : `not a number (${String(opts[k])})`}; give 0 for none`);
    checkHyper('SGD', { lr: 0, ...opts });
    this.specs = params.map((p) => {
      const s = p instanceof Tensor ? { param: p } : p;
      return { param: s.param, lrMult: s.lrMult ?? 1, decayMult: s.decayMult ?? 1 };
    });
    // Listed twice, a parameter would take two steps (with two velocities) per step().
    this.specs.forEach(({ param }, i) => {
      const j = this.specs.findIndex((s) => s.param === param);
      if (j !== i) throw new RangeError(`SGD: parameter ${i} [${param.shape.join(', ')}] is the same tensor as parameter ${j}`);
    });
    this.velocities = this.specs.map(({ param }, i) => {
      expectDtype('SGD', `parameter ${i}`, param); // (an i32 one failed only at the first step())
      const v = keep(Tensor.empty(param.shape));
      fill(v, 0);
      return v;
    });
  }

  /**
   * Updates every parameter from its `.grad` with base learning rate `lr`. Parameters that do not
   * require a gradient (frozen) are skipped; a trainable one without a gradient is an error.
   */
  step(lr: number): void {
    if (this.disposed) throw new GpuError('SGD.step: this optimiser was disposed');
    // Everything is checked before the first update: an error must not leave the parameters half-stepped.
    const updates: [Tensor, Tensor, Tensor, SgdHyper][] = [];
    this.specs.forEach(({ param, lrMult, decayMult }, i) => {
      if (!param.requiresGrad) return;
      const which = `parameter ${i} [${param.shape.join(', ')}]`;
      if (param.isDisposed) throw new GpuError(`SGD.step: ${which} (tensor #${param.id}) was disposed; an optimiser's parameters must outlive it`);
      param.assertAlive(`SGD.step (${which})`); // a device closeGpu() has closed
      if (!param.grad) throw new Error(`SGD.step: ${which} has no gradient: backward() has not run since the last zeroGrad(), or the loss does not depend on it (give the optimiser the loss's parameters only, or set requiresGrad = false to freeze one)`);
      const h = { lr: lr * lrMult, momentum: this.opts.momentum, weightDecay: this.opts.weightDecay * decayMult };
      checkStep(`SGD.step (${which})`, param, param.grad, this.velocities[i], h);
      updates.push([param, param.grad, this.velocities[i], h]);
    });
    for (const [param, grad, velocity, h] of updates) recordStep(param, grad, velocity, h);
  }

  /** The velocities, in parameter order (for checkpoints). */
  async state(): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const v of this.velocities) out.push(await v.toArray());
    return out;
  }

  /** Restores velocities saved by state(); `names` (one per parameter, e.g. a checkpoint's) name them in errors. */
  loadState(state: Float32Array[], names?: readonly string[]): void {
    if (state.length !== this.velocities.length) {
      throw new RangeError(`SGD.loadState: got ${state.length} velocity arrays for ${this.velocities.length} parameters`);
    }
    if (this.disposed) throw new GpuError('SGD.loadState: this optimiser was disposed');
    state.forEach((a, i) => {
      const v = this.velocities[i];
      const which = names ? `the optimiser state of parameter '${names[i]}'` : `velocity ${i}`;
      if (a.length !== v.size) {
        throw new RangeError(`SGD.loadState: ${which} has ${a.length} values, parameter [${v.shape.join(', ')}] needs ${v.size}`);
      }
      const bad = a.findIndex((x) => !Number.isFinite(x)); // it would spread into the weights at the next step
      if (bad >= 0) throw new RangeError(`SGD.loadState: ${which} has the non-finite value ${a[bad]} at index ${bad}`);
    });
    state.forEach((a, i) => upload(this.velocities[i], a));
  }

  dispose(): void {
    this.disposed = true;
    for (const v of this.velocities) v.dispose();
  }
}
