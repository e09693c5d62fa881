// SGD with momentum and L2 weight decay, in place on the GPU, as in the paper's Caffe training:
//   v ← μ·v − lr·(g + wd·w)
//   w ← w + v
// (Caffe stores the negated velocity and subtracts it; the trajectory is the same.)
// lr, μ and wd travel in the uniform buffer, so a learning-rate schedule never recompiles.
//
// `SGD` holds one velocity per parameter and per-parameter multipliers: the paper's prototxts give
// biases twice the base learning rate and no weight decay (blobs_lr: 1, 2; weight_decay: 1, 0),
// which NinModel (nin/model.ts) gives each bias parameter.
import { upload, dispatch } from '../engine/runtime.ts';
import { Tensor, expectShape, keep } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel, fill } from './elementwise.ts';

export interface SgdHyper {
  lr: number;
  momentum: number;
  weightDecay: number;
}

function checkHyper(op: string, h: SgdHyper): void {
  for (const [k, v] of Object.entries(h)) {
    if (!Number.isFinite(v)) throw new RangeError(`${op}: ${k} = ${v} must be a finite number`);
  }
}

/** One in-place update of `param` and `velocity` from `grad` (all the same shape). */
export function sgdStep(param: Tensor, grad: Tensor, velocity: Tensor, h: SgdHyper): void {
  const op = 'sgdStep';
  param.assertAlive(op);
  expectShape(op, 'gradient', grad, param.shape);
  expectShape(op, 'velocity', velocity, param.shape);
  if (grad.buffer === param.buffer || velocity.buffer === param.buffer || velocity.buffer === grad.buffer) {
    throw new RangeError(`${op}: parameter, gradient and velocity must be distinct tensors`); // a written binding may not alias
  }
  checkHyper(op, h);
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

  constructor(params: (Tensor | ParamSpec)[], readonly opts: { momentum: number; weightDecay: number }) {
    checkHyper('SGD', { lr: 0, ...opts });
    this.specs = params.map((p) => {
      const s = p instanceof Tensor ? { param: p } : p;
      return { param: s.param, lrMult: s.lrMult ?? 1, decayMult: s.decayMult ?? 1 };
    });
    this.velocities = this.specs.map(({ param }) => {
      param.assertAlive('SGD');
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
    this.specs.forEach(({ param, lrMult, decayMult }, i) => {
      if (!param.requiresGrad) return;
      if (!param.grad) throw new Error(`SGD.step: parameter ${i} [${param.shape.join(', ')}] has no gradient; run backward() first`);
      sgdStep(param, param.grad, this.velocities[i], {
        lr: lr * lrMult,
        momentum: this.opts.momentum,
        weightDecay: this.opts.weightDecay * decayMult,
      });
    });
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
    state.forEach((a, i) => {
      const v = this.velocities[i];
      if (a.length !== v.size) {
        const which = names ? `the optimiser state of parameter '${names[i]}'` : `velocity ${i}`;
        throw new RangeError(`SGD.loadState: ${which} has ${a.length} values, parameter [${v.shape.join(', ')}] needs ${v.size}`);
      }
    });
    state.forEach((a, i) => upload(this.velocities[i], a));
  }

  dispose(): void {
    for (const v of this.velocities) v.dispose();
  }
}
