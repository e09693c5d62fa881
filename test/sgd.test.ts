import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { runtimeStats } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { SGD, sgdStep, type ParamSpec } from '../kernels/sgd.ts';
import { dot } from '../kernels/elementwise.ts';
import { sgdStepRef } from './reference.ts';
import { expectClose, randomArray } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

// A decaying schedule: each step has its own lr, so the uniform path is exercised.
const lrs = [0.1, 0.1, 0.05, 0.02, 0.01, 0.005];

describe('sgdStep', () => {
  it('several steps match the float64 reference, without recompiling for a new lr', async () => {
    const shape = [3, 3, 5, 7];
    const n = 3 * 3 * 5 * 7;
    const w0 = randomArray(n, 81);
    const w = Tensor.fromArray(w0, shape);
    const v = Tensor.fromArray(new Float32Array(n), shape);
    const wRef = Float64Array.from(w0);
    const vRef = new Float64Array(n);
    const hyper = { momentum: 0.9, weightDecay: 5e-4 };
    let pipelines = -1;
    for (const [step, lr] of lrs.entries()) {
      const g = randomArray(n, 100 + step);
      const gT = Tensor.fromArray(g, shape);
      sgdStep(w, gT, v, { lr, ...hyper });
      sgdStepRef(wRef, g, vRef, lr, hyper.momentum, hyper.weightDecay);
      gT.dispose();
      if (step === 0) pipelines = runtimeStats().pipelines;
      expectClose(`step ${step} (lr ${lr}) weights`, await w.toArray(), wRef, 1e-5);
      expectClose(`step ${step} (lr ${lr}) velocity`, await v.toArray(), vRef, 1e-5);
    }
    expect(runtimeStats().pipelines).toBe(pipelines);
  });

  // Uploads submit, so the gradients go up first; then every step is recorded into one
  // submission, where each dispatch must still read its own lr (recycled uniform buffers).
  it('steps recorded in one submission each use their own lr', async () => {
    const shape = [5, 7];
    const n = 35;
    const w0 = randomArray(n, 83);
    const w = Tensor.fromArray(w0, shape);
    const v = Tensor.fromArray(new Float32Array(n), shape);
    const grads = lrs.map((_, step) => randomArray(n, 200 + step));
    const gTs = grads.map((g) => Tensor.fromArray(g, shape));
    const submitsBefore = runtimeStats().submits;
    const hyper = { momentum: 0.9, weightDecay: 5e-4 };
    lrs.forEach((lr, step) => sgdStep(w, gTs[step], v, { lr, ...hyper }));
    expect(runtimeStats().submits).toBe(submitsBefore);
    const wRef = Float64Array.from(w0);
    const vRef = new Float64Array(n);
    lrs.forEach((lr, step) => sgdStepRef(wRef, grads[step], vRef, lr, hyper.momentum, hyper.weightDecay));
    expectClose('weights after all steps', await w.toArray(), wRef, 1e-5);
    expectClose('velocity after all steps', await v.toArray(), vRef, 1e-5);
    gTs.forEach((g) => g.dispose());
  });

  it('rejects mismatched shapes, aliasing and non-finite hyperparameters with named errors', () => {
    tidy(() => {
      const w = Tensor.empty([4, 3]);
      const g = Tensor.empty([4, 3]);
      const v = Tensor.empty([4, 3]);
      const h = { lr: 0.1, momentum: 0.9, weightDecay: 0 };
      expect(() => sgdStep(w, Tensor.empty([3, 4]), v, h)).toThrow(/sgdStep: gradient has shape \[3, 4\], expected \[4, 3\]/);
      expect(() => sgdStep(w, g, Tensor.empty([12]), h)).toThrow(/sgdStep: velocity has shape \[12\], expected \[4, 3\]/);
      expect(() => sgdStep(w, g, g, h)).toThrow(/sgdStep: parameter, gradient and velocity must be distinct/);
      expect(() => sgdStep(w, g, v, { ...h, lr: NaN })).toThrow(/sgdStep: lr = NaN must be a finite number/);
    });
  });
});

describe('SGD', () => {
  it('applies the paper\'s multipliers (bias: 2× lr, no decay) and round-trips its state', async () => {
    const wShape = [3, 3, 5, 7];
    const nw = 315;
    const nb = 7;
    const w0 = randomArray(nw, 91);
    const b0 = randomArray(nb, 92);
    const W = param(Tensor.fromArray(w0, wShape));
    const B = param(Tensor.fromArray(b0, [nb]));
    const frozen = Tensor.fromArray([1, 2, 3], [3]); // requiresGrad false: skipped
    const opts = { momentum: 0.9, weightDecay: 1e-3 };
    // The paper's multipliers (nin/model.ts): biases 2× lr and no weight decay.
    const paperSpecs = (w: Tensor, b: Tensor): ParamSpec[] => [{ param: w }, { param: b, lrMult: 2, decayMult: 0 }];
    const specs = paperSpecs(W, B);
    const opt = new SGD([...specs, frozen], opts);
    const wRef = Float64Array.from(w0), vwRef = new Float64Array(nw);
    const bRef = Float64Array.from(b0), vbRef = new Float64Array(nb);
    const setGrads = (step: number) => {
      const gw = randomArray(nw, 200 + step);
      const gb = randomArray(nb, 300 + step);
      W.grad?.dispose(); B.grad?.dispose();
      W.grad = Tensor.fromArray(gw, wShape);
      B.grad = Tensor.fromArray(gb, [nb]);
      return { gw, gb };
    };
    for (const [step, lr] of lrs.slice(0, 4).entries()) {
      const { gw, gb } = setGrads(step);
      opt.step(lr);
      sgdStepRef(wRef, gw, vwRef, lr, opts.momentum, opts.weightDecay);
      sgdStepRef(bRef, gb, vbRef, 2 * lr, opts.momentum, 0);
    }
    expectClose('SGD weights after 4 steps', await W.toArray(), wRef, 1e-5);
    expectClose('SGD biases after 4 steps', await B.toArray(), bRef, 1e-5);
    expect(Array.from(await frozen.toArray())).toEqual([1, 2, 3]);

    // Checkpoint: a fresh optimiser loaded with state() continues exactly like the original.
    const state = await opt.state();
    expect(state.map((s) => s.length)).toEqual([nw, nb, 3]);
    expectClose('SGD weight velocity state', state[0], vwRef, 1e-5);
    expectClose('SGD bias velocity state', state[1], vbRef, 1e-5);
    const W2 = param(Tensor.fromArray(await W.toArray(), wShape));
    const B2 = param(Tensor.fromArray(await B.toArray(), [nb]));
    const opt2 = new SGD([...paperSpecs(W2, B2), Tensor.fromArray([1, 2, 3], [3])], opts);
    opt2.loadState(state);
    const { gw, gb } = setGrads(9);
    W2.grad = Tensor.fromArray(gw, wShape);
    B2.grad = Tensor.fromArray(gb, [nb]);
    opt.step(0.01);
    opt2.step(0.01);
    expect(Array.from(await W2.toArray())).toEqual(Array.from(await W.toArray()));
    expect(Array.from(await B2.toArray())).toEqual(Array.from(await B.toArray()));

    expect(() => opt2.loadState(state.slice(0, 2))).toThrow(/SGD.loadState: got 2 velocity arrays for 3 parameters/);
    expect(() => opt2.loadState([state[0], new Float32Array(6), state[2]])).toThrow(/SGD.loadState: velocity 1 has 6 values, parameter \[7\] needs 7/);
    W2.grad.dispose();
    W2.grad = null;
    expect(() => opt2.step(0.01)).toThrow(/SGD.step: parameter 0 \[3, 3, 5, 7\] has no gradient/);
    opt.dispose();
    opt2.dispose();
  });

  it('checks every parameter before updating any, so an error leaves none half-stepped', async () => {
    const a = param(Tensor.fromArray([1, 1], [2]));
    const b = param(Tensor.fromArray([1, 1], [2]));
    a.grad = Tensor.fromArray([1, 1], [2]);
    const opt = new SGD([a, b], { momentum: 0, weightDecay: 0 });
    // (also a parameter the loss does not use, after backward() ran: not only "run backward() first")
    expect(() => opt.step(0.5)).toThrow("SGD.step: parameter 1 [2] has no gradient: backward() has not run since the last zeroGrad(), or the loss does not depend on it (give the optimiser the loss's parameters only, or set requiresGrad = false to freeze one)");
    // A step writes its parameters in place: a graph recorded before it refuses backward() (engine/autograd.ts).
    const recorded = dot(a, Tensor.fromArray([1, 1], [2]));
    b.grad = Tensor.fromArray([1, 1], [2]);
    opt.step(0);
    expect(() => backward(recorded)).toThrow(/^backward: input 0 of 'dot' .* was written in place \(an SGD step/);
    b.grad.dispose();
    b.grad = null;
    expect(Array.from(await a.toArray())).toEqual([1, 1]); // not stepped
    b.grad = Tensor.fromArray([1, 1, 1], [3]);
    expect(() => opt.step(0.5)).toThrow('SGD.step (parameter 1 [2]): gradient has shape [3], expected [2]');
    expect(Array.from(await a.toArray())).toEqual([1, 1]);
    b.grad.dispose();
    b.grad = Tensor.fromArray([1, 1], [2], 'i32');
    expect(() => opt.step(0.5)).toThrow('SGD.step (parameter 1 [2]): gradient must be an f32 tensor, got i32');
    b.dispose();
    expect(() => opt.step(0.5)).toThrow(/SGD.step: parameter 1 \[2\] \(tensor #\d+\) was disposed/);
    expect(Array.from(await a.toArray())).toEqual([1, 1]);
    opt.dispose();
    expect(() => opt.step(0.5)).toThrow('SGD.step: this optimiser was disposed');
    expect(() => opt.loadState([new Float32Array(2), new Float32Array(2)])).toThrow('SGD.loadState: this optimiser was disposed');
    a.dispose();
  });

  it('rejects a parameter listed twice and hyperparameters that would train wrongly, silently', async () => {
    const p = param(Tensor.fromArray([1, 2], [2]));
    p.grad = Tensor.fromArray([1, 1], [2]);
    expect(() => new SGD([p, { param: p, lrMult: 2 }], { momentum: 0, weightDecay: 0 })).toThrow('SGD: parameter 1 [2] is the same tensor as parameter 0');
    const ints = param(Tensor.fromArray([1, 2], [2], 'i32'));
    expect(() => new SGD([p, ints], { momentum: 0, weightDecay: 0 })).toThrow(new RangeError('SGD: parameter 1 must be an f32 tensor, got i32'));
    ints.dispose();
    for (const m of [-0.5, 1, 2, 0.99999999]) expect(() => new SGD([p], { momentum: m, weightDecay: 0 })).toThrow(`SGD: momentum = ${m} must be in [0, 1)`);
    // Left out: named at once (it was NaN at the first step()).
    expect(() => new SGD([p], { momentum: 0.9 } as unknown as { momentum: number; weightDecay: number })).toThrow(new TypeError('SGD: weightDecay is missing; give 0 for none'));
    expect(() => new SGD([p], { momentum: '0.9', weightDecay: 0 } as unknown as { momentum: number; weightDecay: number })).toThrow(new TypeError('SGD: momentum is not a number (0.9); give 0 for none'));
    expect(() => new SGD([p], { momentum: 0, weightDecay: -1 })).toThrow('SGD: weightDecay = -1 must not be negative');
    const opt = new SGD([p], { momentum: 0.9, weightDecay: 0 });
    expect(() => opt.step(-0.1)).toThrow('SGD.step (parameter 0 [2]): lr = -0.1 must not be negative');
    expect(() => opt.step(1e39)).toThrow(/SGD.step \(parameter 0 \[2\]\): lr = 1e\+39 is too large for float32/); // Infinity in the kernel
    expect(() => sgdStep(p, p.grad!, Tensor.empty([2]), { lr: 0.1, momentum: 1, weightDecay: 0 })).toThrow('sgdStep: momentum = 1 must be in [0, 1)');
    expect(() => opt.loadState([new Float32Array([NaN, 1])])).toThrow('SGD.loadState: velocity 0 has the non-finite value NaN at index 0');
    expect(() => opt.loadState([new Float32Array([Infinity, 1])], ['w'])).toThrow("SGD.loadState: the optimiser state of parameter 'w' has the non-finite value Infinity at index 0");
    expect(Array.from(await p.toArray())).toEqual([1, 2]);
    opt.step(0.5); // the velocities were left as they were (zero)
    expect(Array.from(await p.toArray())).toEqual([0.5, 1.5]);
    opt.dispose();
    p.dispose();
  });
});
